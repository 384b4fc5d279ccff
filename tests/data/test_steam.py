import datetime
import gzip
import os
import pickle

import pytest

from fave.data.preprocess import to_sequences
from fave.data.sources import detect_format, read_interactions
from fave.data.steam import load_pickle_safely, read_split_pickle, read_steam_reviews
from fave.errors import FaveError


def _seqs(data):
    return {data.id_map.users[u]: [data.id_map.raw_item(int(i)) for i in s] for u, s in enumerate(data.sequences)}


def test_raw_steam_reviews(tmp_path):
    lines = [
        {"username": "zed", "hours": 1.5, "product_id": "730", "date": "2017-12-17", "text": "gg"},
        {"username": "amy", "product_id": "10", "date": "2016-01-02", "early_access": False},
        {"username": "zed", "product_id": "20", "date": "2017-12-17"},  # same day: file order
        {"username": "zed", "product_id": "10", "date": "2014-05-01", "page": 3},
        {"user_id": "7656", "product_id": "20", "date": "2015-01-01"},  # no username
    ]
    path = tmp_path / "steam_reviews.json.gz"
    path.write_bytes(gzip.compress("".join(repr(r) + "\n" for r in lines).encode()))
    assert detect_format(path) == "steam"
    inter = read_steam_reviews(path)
    assert inter.users == ["zed", "amy", "zed", "zed", "7656"]
    data = to_sequences(inter, "steam")
    assert _seqs(data) == {"zed": ["10", "730", "20"], "amy": ["10"], "7656": ["20"]}
    assert data.id_map.items == ["10", "20", "730"]  # integer product ids: numeric order


def test_raw_steam_malformed_lines(tmp_path):
    path = tmp_path / "s.json"
    path.write_text("{'username': 'a', 'product_id': '1', 'date': '2017-1-1x'}\n")
    with pytest.raises(FaveError, match=r"s.json, line 1: date '2017-1-1x' is not YYYY-MM-DD"):
        read_steam_reviews(path)
    path.write_text("{'username': 'a', 'date': '2017-01-01'}\n")
    with pytest.raises(FaveError, match="line 1: review has no product_id"):
        read_steam_reviews(path)
    path.write_text("{'username': 'a', 'product_id': __import__('os').getcwd()}\n")
    with pytest.raises(FaveError, match="line 1: not a Python-literal dict"):
        read_steam_reviews(path)


def test_diffurec_split_pickle(tmp_path):
    obj = {
        "train": {1: [1, 2, 3], 2: [2, 3]},
        "val": {1: [4], 2: [1]},
        "test": {1: [5], 2: [4]},
        "umap": {"u_one": 1, "u_two": 2},
        "smap": {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5},
    }
    path = tmp_path / "dataset.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=4))
    assert detect_format(path) == "pickle"
    data = to_sequences(read_split_pickle(path), "steam")
    assert data.id_map.users == ["1", "2"]
    assert [s.tolist() for s in data.sequences] == [[1, 2, 3, 4, 5], [2, 3, 1, 4]]


def test_plain_user_to_items_pickle(tmp_path):
    path = tmp_path / "seqs.pickle"
    path.write_bytes(pickle.dumps({"u": ["x", "y"], "v": ["y"]}, protocol=2))
    assert _seqs(to_sequences(read_interactions(path), "t")) == {"u": ["x", "y"], "v": ["y"]}


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_malicious_pickle_is_refused_without_running_it(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "dataset.pkl"
    path.write_bytes(pickle.dumps({"train": {1: [1]}, "x": _Evil(marker)}, protocol=protocol))
    with pytest.raises(FaveError, match=r"refusing to load .*contains a global \((os|posix)"):
        read_interactions(path)
    assert not marker.exists()


def test_any_class_is_refused(tmp_path):
    path = tmp_path / "d.pkl"
    path.write_bytes(pickle.dumps({"train": {1: [1]}, "when": datetime.date(2020, 1, 1)}))
    with pytest.raises(FaveError, match=r"contains a global \(datetime.date\)"):
        load_pickle_safely(path)


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ([1, 2], "holds a list"),
        ({"train": {1: [1]}, "val": {1: [2]}}, "'test' is missing"),
        ({"train": {1: [1]}, "val": {2: [2]}, "test": {1: [3]}}, "user 2 is in 'val' but not"),
        ({"u": 5}, r"data\['u'\] is a int"),
        ({"u": [1.5]}, "item ids must be ints or strings"),
        ({}, "holds no interactions"),
    ],
)
def test_unexpected_pickle_layouts(tmp_path, obj, expected):
    path = tmp_path / "d.pkl"
    path.write_bytes(pickle.dumps(obj))
    with pytest.raises(FaveError, match=expected):
        read_split_pickle(path)


def test_truncated_pickle(tmp_path):
    path = tmp_path / "d.pkl"
    path.write_bytes(pickle.dumps({"u": [1, 2, 3]})[:-4])
    with pytest.raises(FaveError, match="not a readable pickle"):
        read_split_pickle(path)
