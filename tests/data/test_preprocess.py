import numpy as np
import pytest

from fave.data.preprocess import Interactions, kcore_mask, stable_time_order, to_sequences
from fave.errors import FaveError


def _seqs(data):
    """Sequences as lists of raw item ids, keyed by raw user id."""
    return {data.id_map.users[u]: [data.id_map.raw_item(int(i)) for i in s] for u, s in enumerate(data.sequences)}


def test_ties_keep_file_order_and_users_are_grouped():
    inter = Interactions(
        users=["1", "2", "1", "1", "2", "1"],
        items=["a", "x", "b", "c", "y", "d"],
        timestamps=np.array([5, 1, 3, 3, 1, 1]),
    )
    data = to_sequences(inter, "t")
    # user 1: d(1), b(3), c(3) in file order, a(5); user 2: x(1), y(1) in file order
    assert _seqs(data) == {"1": ["d", "b", "c", "a"], "2": ["x", "y"]}


def test_stable_time_order_equals_python_sorted():
    rng = np.random.default_rng(0)
    users = rng.integers(0, 5, 200)
    ts = rng.integers(0, 4, 200)  # many ties
    expected = sorted(range(200), key=lambda r: (users[r], ts[r]))
    assert stable_time_order(users, ts).tolist() == expected


def test_without_timestamps_file_order_is_kept():
    inter = Interactions(["u", "v", "u", "u"], ["3", "1", "2", "3"], None)
    assert _seqs(to_sequences(inter, "t")) == {"u": ["3", "2", "3"], "v": ["1"]}


def test_integer_ids_are_numbered_in_numeric_order():
    inter = Interactions(["10", "2", "10", "2"], ["30", "4", "100", "4"], np.array([1, 2, 3, 4]))
    data = to_sequences(inter, "t")
    assert data.id_map.users == ["2", "10"]  # numeric, not first appearance or string order
    assert data.id_map.items == ["4", "30", "100"]
    assert [s.tolist() for s in data.sequences] == [[1, 1], [2, 3]]
    assert data.num_items == 3


def test_raw_ids_1_to_n_map_to_themselves():
    items = [str(i) for i in (5, 3, 1, 4, 2)]
    data = to_sequences(Interactions(["1"] * 5, items, None), "t")
    assert data.sequences[0].tolist() == [5, 3, 1, 4, 2]


def test_string_ids_are_numbered_by_first_appearance_along_sequences():
    inter = Interactions(
        users=["bob", "amy", "bob", "amy"],
        items=["z", "y", "x", "z"],
        timestamps=np.array([2, 1, 1, 0]),
    )
    data = to_sequences(inter, "t")
    assert data.id_map.users == ["bob", "amy"]  # first appearance in the file
    # walk: bob -> x(1), z(2); amy -> z(0), y(1)
    assert data.id_map.items == ["x", "z", "y"]
    assert [s.tolist() for s in data.sequences] == [[1, 2], [2, 3]]


def test_appearance_order_can_be_forced_for_integer_ids():
    inter = Interactions(["2", "1"], ["9", "8"], None, id_order="appearance")
    data = to_sequences(inter, "t")
    assert data.id_map.users == ["2", "1"] and data.id_map.items == ["9", "8"]


def test_kcore_is_iterative():
    # Block: users a,b each rate p,q. User c rates p and r; user d rates r only.
    # 2-core pass 1 removes d (1 interaction); then r has 1 -> removed; then c has 1 -> removed.
    users = ["a", "a", "b", "b", "c", "c", "d"]
    items = ["p", "q", "p", "q", "p", "r", "r"]
    one_pass = kcore_mask(np.array([0, 0, 1, 1, 2, 2, 3]), np.array([0, 1, 0, 1, 0, 2, 2]), 2)
    assert one_pass.tolist() == [True] * 4 + [False] * 3
    data = to_sequences(Interactions(users, items, None), "t", kcore=2)
    assert _seqs(data) == {"a": ["p", "q"], "b": ["p", "q"]}
    assert data.num_items == 2


def test_min_user_interactions_drops_short_users_only_when_asked():
    inter = Interactions(["a", "a", "a", "b"], ["1", "2", "3", "4"], None)
    assert to_sequences(inter, "t").num_users == 2
    data = to_sequences(inter, "t", min_user_interactions=3)
    assert data.id_map.users == ["a"] and data.num_items == 3


def test_empty_and_fully_filtered_inputs_raise():
    with pytest.raises(FaveError, match="no interactions"):
        to_sequences(Interactions([], [], None, source="x.csv"), "t")
    with pytest.raises(FaveError, match="kcore=5"):
        to_sequences(Interactions(["a"], ["1"], None), "t", kcore=5)


def test_min_kcore_of_the_source_is_a_floor():
    inter = Interactions(["a", "a", "b", "b", "c"], ["1", "2", "1", "2", "1"], None, min_kcore=2)
    assert to_sequences(inter, "t", kcore=0).id_map.users == ["a", "b"]


def test_numeric_order_rejects_non_integer_ids():
    with pytest.raises(FaveError, match="integer ids"):
        to_sequences(Interactions(["a"], ["1"], None, id_order="numeric"), "t")
