"""Writing a figure: PNG (matplotlib, Agg backend) + JSON + Markdown, each atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fave.io_utils import atomic_write, atomic_write_json, atomic_write_text


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed), or a FaveError naming the extra."""
    from fave.errors import FaveError

    try:
        import matplotlib
        import sklearn  # noqa: F401  (t-SNE; checked here so a missing extra fails before any work)
    except ImportError as e:
        raise FaveError(
            f"figures need matplotlib and scikit-learn ({e.name} is missing): pip install 'fave[plot]'"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: Path, dpi: int = 150) -> Path:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
    return path


def write_figure(fig: Any, data: dict[str, Any], markdown: str, out: str | Path) -> list[Path]:
    """``OUT.png``, ``OUT.json`` and ``OUT.md`` (``out`` is a path stem); the figure is closed."""
    plt = pyplot()
    stem = Path(out)
    png, js, md = (stem.with_name(stem.name + ext) for ext in (".png", ".json", ".md"))
    try:
        save_png(fig, png)
    finally:
        plt.close(fig)
    atomic_write_json(js, data)
    atomic_write_text(md, markdown)
    return [png, js, md]
