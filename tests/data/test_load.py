import pytest

from fave.data import load as load_mod
from fave.data.dataset import Split
from fave.data.load import dataset_key, fetch, load_dataset
from fave.errors import FaveError

LOG = "user,item,timestamp\n1,10,3\n1,20,1\n1,30,2\n2,10,5\n2,30,4\n2,20,6\n3,20,1\n3,10,2\n"


@pytest.fixture
def log_csv(tmp_path):
    path = tmp_path / "my_log.csv"
    path.write_text(LOG)
    return path


def _npz(data_dir):
    return sorted((data_dir / "processed").glob("*.npz"))


def test_load_a_file_and_reuse_the_cache(monkeypatch, log_csv, tmp_path):
    dd = tmp_path / "dd"
    data = load_dataset(str(log_csv), data_dir=dd)
    assert data.name == "my_log"
    assert [s.tolist() for s in data.sequences] == [[2, 3, 1], [3, 1, 2], [2, 1]]
    assert data.id_map.items == ["10", "20", "30"]
    (cache,) = _npz(dd)
    assert cache.name.startswith("my_log-")

    def _no_parsing(*a, **k):
        raise AssertionError("parsed again instead of using the cache")

    monkeypatch.setattr(load_mod, "read_interactions", _no_parsing)
    again = load_dataset(str(log_csv), data_dir=dd)
    assert [s.tolist() for s in again.sequences] == [s.tolist() for s in data.sequences]
    assert again.id_map == data.id_map and again.num_items == 3 and again.name == "my_log"


def test_changed_file_or_options_get_a_new_cache(log_csv, tmp_path):
    dd = tmp_path / "dd"
    load_dataset(str(log_csv), data_dir=dd)
    load_dataset(str(log_csv), data_dir=dd, min_user_interactions=3)
    log_csv.write_text(LOG + "3,30,9\n")
    data = load_dataset(str(log_csv), data_dir=dd)
    assert len(_npz(dd)) == 3
    assert data.sequences[2].tolist() == [2, 1, 3]


@pytest.mark.parametrize("garbage", [b"", b"not a zip at all", b"PK\x03\x04broken"])
def test_corrupt_cache_is_rebuilt(log_csv, tmp_path, garbage):
    dd = tmp_path / "dd"
    first = load_dataset(str(log_csv), data_dir=dd)
    (cache,) = _npz(dd)
    cache.write_bytes(garbage)
    again = load_dataset(str(log_csv), data_dir=dd)
    assert [s.tolist() for s in again.sequences] == [s.tolist() for s in first.sequences]
    assert cache.stat().st_size > 100  # rewritten


def test_short_users_are_kept_unless_asked(log_csv, tmp_path):
    data = load_dataset(str(log_csv), data_dir=tmp_path)
    assert data.num_users == 3  # user 3 has only 2 interactions and is not dropped
    with pytest.raises(FaveError, match="fewer than 3 interactions"):
        Split(data)
    kept = load_dataset(str(log_csv), data_dir=tmp_path, min_user_interactions=3)
    assert kept.id_map.users == ["1", "2"]
    Split(kept)


def test_unknown_name_lists_names_and_paths(tmp_path):
    with pytest.raises(FaveError) as err:
        load_dataset("movielens-42", data_dir=tmp_path)
    msg = str(err.value)
    assert all(n in msg for n in ("ml-100k", "beauty", "steam")) and "CSV/TSV/.inter/.txt" in msg
    with pytest.raises(FaveError, match="unknown dataset"):
        fetch("movielens-42", tmp_path)


def test_unknown_format(log_csv, tmp_path):
    with pytest.raises(FaveError, match="unknown data format 'parquet'"):
        load_dataset(str(log_csv), data_dir=tmp_path, fmt="parquet")


def test_explicit_format(tmp_path):
    path = tmp_path / "seqs.log"
    path.write_text("a x y z\nb y z\n")
    data = load_dataset(str(path), data_dir=tmp_path, fmt="lines")
    assert data.id_map.users == ["a", "b"] and data.id_map.items == ["x", "y", "z"]


def test_dataset_key():
    assert dataset_key("ml-100k") == "ml-100k"
    assert dataset_key("beauty") == "beauty"
    assert dataset_key("steam") == "steam"
    assert dataset_key("ML-100K") == "ml-100k" and dataset_key("amazon_beauty") == "beauty"
    assert dataset_key("/tmp/my_log.csv") == "custom"


def test_fetch_returns_an_existing_path(log_csv, tmp_path):
    assert fetch(str(log_csv), tmp_path) == log_csv


def test_missing_steam_explains_where_to_put_it(tmp_path):
    with pytest.raises(FaveError, match=r"Steam data not found in .*steam_reviews.json.gz"):
        load_dataset("steam", data_dir=tmp_path)


def test_steam_pickle_in_the_data_dir(tmp_path):
    import pickle

    (tmp_path / "steam").mkdir()
    obj = {"train": {0: [1, 2], 1: [2, 3]}, "val": {0: [3], 1: [1]}, "test": {0: [4], 1: [4]}}
    (tmp_path / "steam" / "dataset.pkl").write_bytes(pickle.dumps(obj))
    data = load_dataset("steam", data_dir=tmp_path)
    assert data.name == "steam" and data.stats()["interactions"] == 8
    Split(data)


def test_ml100k_offline_without_files_names_the_fetch_command(tmp_path):
    with pytest.raises(FaveError, match="fave data fetch ml-100k"):
        load_dataset("ml-100k", data_dir=tmp_path, download=False)
    assert not (tmp_path / "ml-100k").exists() or not any((tmp_path / "ml-100k").iterdir())
