import gzip
import json
from pathlib import Path

import pytest

from fave.data.amazon import BEAUTY_SHA256, beauty_candidates, find_beauty, read_amazon_reviews
from fave.data.dataset import Split
from fave.data.download import sha256_file
from fave.data.load import load_dataset
from fave.data.preprocess import to_sequences
from fave.data.sources import detect_format
from fave.errors import FaveError

CORE_USERS = ["UA", "UB", "UC", "UD", "UE"]
CORE_ITEMS = ["B001", "B002", "B003", "B004", "B005"]


def _reviews() -> list[dict]:
    """A 5-core block plus a chain that only iterative filtering removes.

    W1..W4 have 4 reviews (fail pass 1); item BX then has 1 review (fails pass 2); user U6
    then has 4 (fails pass 3). A single pass would keep U6 and BX.
    """
    rows = [{"reviewerID": "W1", "asin": "BX", "unixReviewTime": 1}]  # first line is dropped
    for w in ["W2", "W3", "W4"]:
        rows.append({"reviewerID": w, "asin": "BX", "unixReviewTime": 1})
    for w in ["W1", "W2", "W3", "W4"]:
        rows += [{"reviewerID": w, "asin": a, "unixReviewTime": 2} for a in CORE_ITEMS[:3]]
    # UA's reviews out of time order, with a tie (B002 then B001 at t=100 in file order).
    times = {"B003": 300, "B002": 100, "B001": 100, "B005": 500, "B004": 400}
    rows += [{"reviewerID": "UA", "asin": a, "unixReviewTime": t} for a, t in times.items()]
    for i, u in enumerate(CORE_USERS[1:]):
        rows += [
            {"reviewerID": u, "asin": a, "unixReviewTime": 10 * (i + j)} for j, a in enumerate(reversed(CORE_ITEMS))
        ]
    rows += [{"reviewerID": "U6", "asin": a, "unixReviewTime": 7} for a in CORE_ITEMS[:4]]
    rows.append({"reviewerID": "U6", "asin": "BX", "unixReviewTime": 8})
    return rows


def _write_gz(path, rows, python_literal_every=3):
    lines = []
    for n, r in enumerate(rows):
        r = {**r, "overall": 5.0, "reviewText": 'it\'s "fine"'}
        lines.append(repr(r) if n % python_literal_every == 0 else json.dumps(r))
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return path


def test_s3rec_preprocessing_iterative_5core_time_order_first_appearance(tmp_path):
    path = _write_gz(tmp_path / "reviews_Beauty_5.json.gz", _reviews())
    assert detect_format(path) == "amazon"
    data = to_sequences(read_amazon_reviews(path), "beauty")  # 5-core comes with the source
    assert data.id_map.users == CORE_USERS  # first appearance among kept users
    # UA walked first: B002, B001 (tie kept in file order), B003, B004, B005
    assert data.id_map.items == ["B002", "B001", "B003", "B004", "B005"]
    assert data.sequences[0].tolist() == [1, 2, 3, 4, 5]
    # the other core users reviewed B005..B001 with increasing time
    assert all(s.tolist() == [5, 4, 3, 1, 2] for s in data.sequences[1:])
    assert data.num_interactions == 25


def test_malformed_review_lines(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{"reviewerID": "a", "asin": "b", "unixReviewTime": 1}\n{"reviewerID": "a"\n')
    with pytest.raises(FaveError, match=r"r.json, line 2: not a JSON object"):
        read_amazon_reviews(path)
    path.write_text('{"reviewerID": "a", "asin": "b"}\n')
    with pytest.raises(FaveError, match="line 1: review has no unixReviewTime"):
        read_amazon_reviews(path)
    path.write_text('{"reviewerID": "a", "asin": "b", "unixReviewTime": "soon"}\n')
    with pytest.raises(FaveError, match="line 1: unixReviewTime 'soon' is not a number"):
        read_amazon_reviews(path)


def test_beauty_is_looked_up_in_the_data_dir_first(tmp_path):
    assert beauty_candidates(tmp_path)[0] == tmp_path / "beauty" / "Beauty.txt"
    mine = tmp_path / "beauty" / "Beauty.txt"
    mine.parent.mkdir()
    mine.write_text("1 1 2 3\n")
    assert find_beauty(tmp_path) == mine.resolve()


def test_missing_beauty_names_the_places_and_the_fix(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("fave.data.amazon.repo_root", lambda: None)
    with pytest.raises(FaveError, match="Beauty data not found") as err:
        find_beauty(tmp_path / "dd")
    assert str(tmp_path / "dd" / "beauty") in str(err.value)


@pytest.fixture(scope="module")
def real_beauty():
    for p in beauty_candidates(Path("/nonexistent-data-dir")):
        if p.is_file():
            return p
    pytest.skip("shared Beauty.txt not found (../shared/data/beauty/Beauty.txt)")


def test_real_beauty_stats_and_raw_ids_kept(real_beauty, tmp_path):
    assert sha256_file(real_beauty) == BEAUTY_SHA256
    data = load_dataset("beauty", data_dir=tmp_path)
    assert (data.num_users, data.num_items, data.num_interactions) == (22363, 12101, 198502)
    with open(real_beauty) as f:
        expected = [[int(x) for x in line.split()[1:]] for line in f]
    assert [s.tolist() for s in data.sequences] == expected  # ids 1..12101 unchanged
    Split(data)  # every user has >= 3 interactions
