import pytest

from fave.data.paths import ENV_VAR, default_cache_dir, repo_root, resolve_data_dir


def test_explicit_beats_env_beats_cache(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert resolve_data_dir(None) == tmp_path / "env"
    monkeypatch.delenv(ENV_VAR)
    assert resolve_data_dir() == tmp_path / "xdg" / "fave"


def test_cache_without_xdg_is_home_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / ".cache" / "fave"
    assert resolve_data_dir("") == tmp_path / ".cache" / "fave"


def test_resolving_creates_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "not-yet"))
    resolve_data_dir()
    assert not (tmp_path / "not-yet").exists()


def test_repo_root_is_the_checkout_holding_the_package():
    root = repo_root()
    if root is None:
        pytest.skip("fave is installed outside a source checkout")
    assert (root / "pyproject.toml").is_file()
    assert (root / "src" / "fave" / "data" / "paths.py").is_file()
