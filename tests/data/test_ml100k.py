import hashlib
import os
import zipfile
from pathlib import Path

import pytest

from fave.data import ml100k
from fave.data.dataset import Split
from fave.data.load import fetch, load_dataset
from fave.data.paths import default_cache_dir
from fave.data.sources import item_titles
from fave.errors import FaveError

U_DATA = "".join(
    f"{u}\t{i}\t{r}\t{t}\n"
    for u, i, r, t in [
        (2, 20, 5, 300),
        (1, 10, 3, 200),
        (1, 30, 4, 100),
        (1, 20, 1, 200),
        (2, 10, 2, 100),
        (2, 30, 2, 400),
    ]
)
INTER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + U_DATA
U_ITEM = "10|Alpha (1995)|01-Jan-1995||http://x|0|1\n20|B\xe9ta (1996)|||x|0\n30|Gamma (1997)||\n"
RB_ITEM = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n" + (
    "10\tAlpha\t1995\tComedy\n20\tBéta\t1996\tDrama\n30\tGamma\t\tDrama\n"
)
EXPECTED = [[30, 10, 20], [10, 20, 30]]  # stable (user, time): the tie 10/20 keeps file order
# (first training item, validation target, test target) of real ML-100k users in the stable
# (user, timestamp) order; with an item tie-break instead, 281 users get another test item.
KNOWN = {1: (168, 74, 102), 2: (286, 314, 281), 100: (302, 326, 346), 500: (286, 242, 313), 943: (64, 228, 234)}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """Every remote source points at a missing local file; pip is unavailable."""
    missing = (tmp_path / "nowhere" / "file").as_uri()
    monkeypatch.setattr(ml100k, "GROUPLENS_URL", missing)
    monkeypatch.setattr(ml100k, "WHEEL_URL", missing)
    monkeypatch.setattr(ml100k, "PYPI_JSON_URLS", (missing,))

    def no_pip(tmp):
        raise FaveError("pip download failed (offline)")

    monkeypatch.setattr(ml100k, "_pip_download", no_pip)
    return tmp_path


def _grouplens_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ml-100k/u.data", U_DATA)
        zf.writestr("ml-100k/u.item", U_ITEM.encode("latin-1"))
    return path


def _wheel(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(ml100k.WHEEL_MEMBER + "ml-100k.inter", INTER)
        zf.writestr(ml100k.WHEEL_MEMBER + "ml-100k.item", RB_ITEM)
        zf.writestr("recbole/__init__.py", "raise SystemExit('never imported')")
    return path


def _sequences(data):
    return [[int(data.id_map.raw_item(int(i))) for i in s] for s in data.sequences]


def test_grouplens_archive(monkeypatch, offline):
    archive = _grouplens_zip(offline / "ml-100k.zip")
    monkeypatch.setattr(ml100k, "GROUPLENS_URL", archive.as_uri())
    monkeypatch.setattr(ml100k, "U_DATA_SHA256", _sha(U_DATA.encode()))
    dd = offline / "dd"
    assert fetch("ml-100k", dd) == dd / "ml-100k" / "u.data"
    assert sorted(p.name for p in (dd / "ml-100k").iterdir()) == ["u.data", "u.item"]
    assert _sequences(load_dataset("ml-100k", data_dir=dd)) == EXPECTED
    assert item_titles("ml-100k", dd) == {"10": "Alpha (1995)", "20": "Béta (1996)", "30": "Gamma (1997)"}


def test_falls_back_to_the_recbole_wheel(monkeypatch, offline):
    wheel = _wheel(offline / "w.whl")
    monkeypatch.setattr(ml100k, "WHEEL_URL", wheel.as_uri())
    monkeypatch.setattr(ml100k, "WHEEL_SHA256", _sha(wheel.read_bytes()))
    monkeypatch.setattr(ml100k, "INTER_SHA256", _sha(INTER.encode()))
    monkeypatch.setattr(ml100k, "ITEM_SHA256", _sha(RB_ITEM.encode()))
    dd = offline / "dd"
    assert fetch("ml-100k", dd).name == "ml-100k.inter"
    assert sorted(p.name for p in (dd / "ml-100k").iterdir()) == ["ml-100k.inter", "ml-100k.item"]
    assert _sequences(load_dataset("ml-100k", data_dir=dd)) == EXPECTED
    assert item_titles("ml-100k", dd) == {"10": "Alpha (1995)", "20": "Béta (1996)", "30": "Gamma"}


def test_wheel_with_a_wrong_checksum_is_not_used(monkeypatch, offline):
    wheel = _wheel(offline / "w.whl")
    monkeypatch.setattr(ml100k, "WHEEL_URL", wheel.as_uri())
    dd = offline / "dd"
    with pytest.raises(FaveError, match="checksum mismatch"):
        fetch("ml-100k", dd)
    assert not any((dd / "ml-100k").iterdir())


def test_all_sources_down_names_the_manual_fix_and_leaves_nothing(offline):
    dd = offline / "dd"
    with pytest.raises(FaveError) as err:
        fetch("ml-100k", dd)
    msg = str(err.value)
    assert "could not fetch ml-100k" in msg and "GroupLens" in msg and "pip download" in msg
    assert str(dd / "ml-100k" / "ml-100k.zip") in msg and "FAVE_DATA_DIR" in msg
    assert "\n" not in msg
    assert not any((dd / "ml-100k").iterdir())


def test_an_archive_put_there_by_hand_is_used(monkeypatch, offline):
    dd = offline / "dd"
    (dd / "ml-100k").mkdir(parents=True)
    _grouplens_zip(dd / "ml-100k" / "ml-100k.zip")
    monkeypatch.setattr(ml100k, "U_DATA_SHA256", _sha(U_DATA.encode()))
    assert fetch("ml-100k", dd).name == "u.data"
    assert not (dd / "ml-100k" / "ml-100k.zip").exists()


def test_a_corrupt_ratings_file_is_replaced(monkeypatch, offline):
    dd = offline / "dd"
    (dd / "ml-100k").mkdir(parents=True)
    (dd / "ml-100k" / "u.data").write_text("1\t2\t3\n")  # truncated copy
    archive = _grouplens_zip(offline / "ml-100k.zip")
    monkeypatch.setattr(ml100k, "GROUPLENS_URL", archive.as_uri())
    monkeypatch.setattr(ml100k, "U_DATA_SHA256", _sha(U_DATA.encode()))
    assert (dd / "ml-100k" / "u.data").read_text() != U_DATA
    fetch("ml-100k", dd)
    assert (dd / "ml-100k" / "u.data").read_text() == U_DATA


def _independent_split(path: Path) -> tuple[dict[int, list[int]], int]:
    """Sequences by a plain stable sort on (user, timestamp), and the last-timestamp ties."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            user, item, _, ts = line.rstrip("\n").split("\t")
            if user.isdigit():  # skips the .inter header
                rows.append((int(user), int(item), int(float(ts))))
    sequences: dict[int, list[int]] = {}
    times: dict[int, list[int]] = {}
    for user, item, ts in sorted(rows, key=lambda r: (r[0], r[2])):
        sequences.setdefault(user, []).append(item)
        times.setdefault(user, []).append(ts)
    ties = sum(1 for t in times.values() if t[-1] == t[-2])
    return sequences, ties


@pytest.mark.network
def test_real_ml100k_split_equals_fmrec_stable_order():
    data_dir = Path(os.environ.get("FAVE_TEST_DATA_DIR") or default_cache_dir())
    try:
        path = fetch("ml-100k", data_dir)
    except FaveError as e:
        pytest.skip(f"ml-100k could not be downloaded: {e}")
    expected, ties = _independent_split(path)
    assert ties == 415  # why the stable order matters

    data = load_dataset("ml-100k", data_dir=data_dir, download=False)
    assert (data.num_users, data.num_items, data.num_interactions) == (943, 1682, 100000)
    assert data.id_map.items == [str(i) for i in range(1, 1683)]  # raw ids kept
    split = Split(data)
    valid, test = split.eval_set("valid"), split.eval_set("test")
    index = data.id_map.user_index()
    for raw_user, known in KNOWN.items():
        u = index[str(raw_user)]
        seq = expected[raw_user]
        assert (seq[0], seq[-2], seq[-1]) == known
        assert int(data.id_map.raw_item(int(split.train[u][0]))) == seq[0]
        assert int(data.id_map.raw_item(int(valid.targets[u]))) == seq[-2]
        assert int(data.id_map.raw_item(int(test.targets[u]))) == seq[-1]
    assert _sequences(data) == [expected[u] for u in sorted(expected)]
    titles = item_titles("ml-100k", data_dir)
    assert titles is not None and titles["1"] == "Toy Story (1995)"
