"""fave: generative sequential recommendation (FAVE and its baselines).

``fave.load(run_dir)`` gives a trained run as a recommender (see :mod:`fave.serving.recommender`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from fave.serving.ann import HNSWParams
    from fave.serving.recommender import Recommender

__version__ = "0.1.0"
__all__ = ["load", "__version__"]


def load(
    run_dir: str,
    data_dir: str | None = None,
    onnx: str | None = None,
    index: str = "exact",
    hnsw: HNSWParams | None = None,
) -> Recommender:
    """A trained run directory as a :class:`~fave.serving.recommender.Recommender` (raw ids in and out).

    The run directory alone suffices; ``data_dir`` (or the default data cache, when the dataset is
    there) adds the users' histories for ``recommend_user`` and the popularity fallback; ``onnx``
    (the run's ``fave export --format onnx`` file) scores with ONNX Runtime instead of torch eager.
    ``index``: "exact" (every item scored, the default), "flat" or "hnsw": the top-K from a faiss
    index over the model's item vectors (needs ``pip install 'fave[ann]'``; ``hnsw`` takes a
    :class:`~fave.serving.ann.HNSWParams`; see :mod:`fave.serving.ann` and docs/serving.md).
    """
    from fave.serving.recommender import load as _load

    return _load(run_dir, data_dir, onnx, index, hnsw)
