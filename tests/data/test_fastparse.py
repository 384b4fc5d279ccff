"""The pyarrow reader (``engine="arrow"``) gives what the line reader gives, or hands the file back to it."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from fave.data import fastparse
from fave.data.preprocess import to_sequences
from fave.data.userlog import read_delimited, read_inter, sniff_layout
from fave.errors import FaveError

pytest.importorskip("pyarrow")

EXACT = {  # files the arrow reader reads itself
    "header.csv": "timestamp,movieId,rating,userId\n30,7,4,1\n10,8,5,2\n30,8,1,1\n",
    "u.data": "196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t302\t3\t881250949\n",
    "semi.txt": "a;x;2\nb;y;1\na;y;+1.5e1\n",
    "quoted.csv": 'user,item,time\n"Smith, J",7,1\n"Doe, A",8,.5\n"Smith, J", 8 ,2.\n',
    "bom.csv": "\ufeffuser,item\nu,1\n\nu,2\nv,1\n",
    "dates.csv": "user,item,date\na,1,2017-12-17\nb,2,2017-12-17T10:00:00Z\na,3,5\nb,1,2017-12-18\n",
    "ml1m.dat": "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978300000\n",
    "pipes.csv": "user|item|ts\n u1 |i 1|3\nu2|i 2|1\r\nu1|i 2|2\n",
    "unicode.csv": "user,item,ts\nü,ß,1\n\u00a0ü\u00a0,x,٣\n",  # NBSP stripped; an Arabic-Indic digit is a number
}
FALLBACK = {  # files the line reader must read (same result, or its error naming the line)
    "ragged.csv": "user,item,ts\na,1,1\nb,2,2,extra\n",
    "blanks.csv": "user,item\na,1\n   \nb,2\n",
    "spaces.txt": "a x 2\nb  y 1\n",
    "colon.dat": "1::a:b::5\n2::c::6\n",
}
ERRORS = {
    "empty-id.csv": ("user,item\na,1\n,2\n", "line 3: empty user or item id"),
    "bad-time.csv": ("user,item,ts\na,1,1\nb,2,soon\n", "line 3: timestamp 'soon'"),
    "inf-time.csv": ("user,item,ts\na,1,1e999\n", "line 2: timestamp '1e999'"),
}


def _write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def _as_lists(inter) -> tuple[list, list, list | None]:
    ts = None if inter.timestamps is None else inter.timestamps.tolist()
    return list(inter.users), list(inter.items), ts


@pytest.mark.parametrize("name", sorted(EXACT))
def test_arrow_reads_these_itself_with_the_line_readers_result(tmp_path, name: str) -> None:
    path = _write(tmp_path, name, EXACT[name])
    assert fastparse.read_arrow(path, sniff_layout(path)) is not None
    fast, slow = read_delimited(path, engine="arrow"), read_delimited(path, engine="python")
    assert _as_lists(fast) == _as_lists(slow)
    assert fast.users.uniques == slow.users.uniques and fast.items.uniques == slow.items.uniques


@pytest.mark.parametrize("name", sorted(FALLBACK))
def test_arrow_hands_back_what_it_would_read_differently(tmp_path, name: str) -> None:
    path = _write(tmp_path, name, FALLBACK[name])
    assert fastparse.read_arrow(path, sniff_layout(path)) is None
    assert _as_lists(read_delimited(path, engine="arrow")) == _as_lists(read_delimited(path, engine="python"))


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_bad_rows_get_the_line_readers_error(tmp_path, name: str) -> None:
    text, message = ERRORS[name]
    path = _write(tmp_path, name, text)
    for engine in ("arrow", "python"):
        with pytest.raises(FaveError, match=message):
            read_delimited(path, engine=engine)


def test_a_generated_log_gives_identical_sequences_and_id_maps(tmp_path) -> None:
    rng = np.random.default_rng(0)
    n = 20_000
    users = rng.integers(0, 500, n)
    items = (rng.zipf(1.5, n) % 3000).astype(str)
    times = rng.integers(0, 50, n)  # many ties: the stable order matters
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    lines += [f"u{u}\t{'0' * (u % 2)}{i}\t{t}" for u, i, t in zip(users, items, times, strict=True)]
    path = tmp_path / "big.inter.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    fast, slow = read_inter(path, engine="arrow"), read_inter(path, engine="python")
    assert fastparse.read_arrow(path, sniff_layout(path, "\t", "required")) is not None
    a, b = to_sequences(fast, "x", kcore=2), to_sequences(slow, "x", kcore=2)
    assert a.id_map == b.id_map and a.num_items == b.num_items
    assert all(np.array_equal(x, y) for x, y in zip(a.sequences, b.sequences, strict=True))


def test_arrow_engine_without_pyarrow_names_the_extra(tmp_path, monkeypatch) -> None:
    path = _write(tmp_path, "log.csv", "user,item\na,1\n")
    monkeypatch.setattr(fastparse, "available", lambda: False)
    with pytest.raises(FaveError, match=r"fave\[fast\]"):
        read_delimited(path, engine="arrow")
    assert list(read_delimited(path).users) == ["a"]  # auto: the line reader


def test_unknown_engine_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(FaveError, match="unknown CSV engine 'polars'"):
        read_delimited(_write(tmp_path, "log.csv", "user,item\na,1\n"), engine="polars")
