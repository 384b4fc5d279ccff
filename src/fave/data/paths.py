"""Where datasets live on disk.

One rule everywhere: an explicit directory (``--data-dir``) wins, then the ``FAVE_DATA_DIR``
environment variable, then a per-user cache (``$XDG_CACHE_HOME/fave`` or ``~/.cache/fave``).
Keeping the rule in one function means the CLI, the tests and the library agree on it.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "FAVE_DATA_DIR"


def default_cache_dir() -> Path:
    """The per-user cache: ``$XDG_CACHE_HOME/fave``, or ``~/.cache/fave`` when unset."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "fave"


def resolve_data_dir(explicit: str | Path | None = None) -> Path:
    """The data directory: ``explicit`` > ``$FAVE_DATA_DIR`` > :func:`default_cache_dir`.

    The directory is not created here; writers create what they write into.
    """
    if explicit is not None and str(explicit) != "":
        return Path(explicit).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return default_cache_dir()


def repo_root() -> Path | None:
    """The source checkout holding this package (the first parent with ``pyproject.toml``).

    None when the package is installed outside a checkout (e.g. in site-packages).
    """
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").is_file():
            return parent
    return None
