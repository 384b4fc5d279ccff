import gzip

import pytest

from fave.data.sources import detect_format, read_interactions
from fave.data.userlog import parse_time, read_delimited, read_inter, read_lines, sniff_delimiter
from fave.errors import FaveError


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def _rows(inter):
    ts = None if inter.timestamps is None else inter.timestamps.tolist()
    return list(zip(inter.users, inter.items, ts or [None] * len(inter), strict=True))


def test_csv_with_header_in_any_column_order(tmp_path):
    path = _write(tmp_path / "log.csv", "timestamp,movieId,rating,userId\n30,7,4,1\n10,8,5,2\n")
    assert detect_format(path) == "csv"
    assert _rows(read_interactions(path)) == [("1", "7", 30.0), ("2", "8", 10.0)]


def test_tsv_without_header_uses_the_u_data_layout(tmp_path):
    path = _write(tmp_path / "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    assert detect_format(path) == "tsv"
    assert _rows(read_interactions(path)) == [
        ("196", "242", 881250949.0),
        ("186", "302", 891717742.0),
    ]


def test_three_columns_without_header_are_user_item_time(tmp_path):
    path = _write(tmp_path / "log.txt", "a;x;2\nb;y;1\n")
    assert sniff_delimiter(["a;x;2", "b;y;1"]) == ";"
    assert _rows(read_interactions(path)) == [("a", "x", 2.0), ("b", "y", 1.0)]


def test_header_without_timestamp_keeps_file_order(tmp_path):
    path = _write(tmp_path / "log.csv", "user_id,item_id\nu,1\nu,2\n")
    inter = read_interactions(path)
    assert inter.timestamps is None and inter.items == ["1", "2"]


def test_quoted_csv_fields(tmp_path):
    path = _write(tmp_path / "log.csv", 'user,item,time\n"Smith, J",7,1\n"Doe, A",8,2\n')
    assert read_interactions(path).users == ["Smith, J", "Doe, A"]


def test_recbole_inter(tmp_path):
    path = _write(
        tmp_path / "x.inter",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n196\t242\t3\t881250949\n",
    )
    assert detect_format(path) == "inter"
    assert _rows(read_inter(path)) == [("196", "242", 881250949.0)]


def test_lines_format(tmp_path):
    path = _write(tmp_path / "Beauty.txt", "1 1 2 3\n\n2 4 2\n1 9\n")
    assert detect_format(path) == "lines"
    inter = read_lines(path)
    assert inter.timestamps is None
    assert list(zip(inter.users, inter.items, strict=True)) == [
        ("1", "1"),
        ("1", "2"),
        ("1", "3"),
        ("2", "4"),
        ("2", "2"),
        ("1", "9"),
    ]


def test_gzip_is_detected_by_content(tmp_path):
    path = tmp_path / "log.csv.gz"
    path.write_bytes(gzip.compress(b"user,item,ts\na,b,1\n"))
    assert _rows(read_interactions(path)) == [("a", "b", 1.0)]


def test_iso_dates_are_timestamps():
    assert parse_time("1970-01-02") == 86400.0
    assert parse_time("1970-01-01T00:01:00Z") == 60.0
    assert parse_time("12.5") == 12.5


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("log.csv", "user,item,ts\na,b,1\nc,d\n", r"log.csv, line 3: expected 3 fields"),
        ("log.csv", "user,item,ts\na,b,yesterday\n", r"line 2: timestamp 'yesterday' is not"),
        ("log.csv", "user,item,ts\na,b,nan\n", r"line 2: timestamp 'nan'"),
        ("log.csv", "user,product_name,ts\na,b,1\n", r"has no item column; name the columns"),
        ("log.csv", "customer,thing\na,b\n", r"has no user column"),
        ("log.csv", "", r"is empty"),
        ("log.csv", "\n\n", r"is empty"),
        ("log.csv", "user,item,ts\n", r"header but no data rows"),
        ("log.csv", "1,2,3,4,5\n", r"5 columns and no header"),
        ("x.txt", "1 2 3\n7\n", r"x.txt, line 2: a user id with no items"),
        ("x.inter", "196\t242\n", r"has no user column"),
    ],
)
def test_malformed_input_is_one_line_error_naming_problem_and_fix(tmp_path, name, text, expected):
    path = _write(tmp_path / name, text)
    with pytest.raises(FaveError, match=expected) as err:
        read_interactions(path)
    assert "\n" not in str(err.value)


def test_explicit_format_overrides_detection(tmp_path):
    path = _write(tmp_path / "seqs.dat", "1 5 6 7\n2 5 6\n")
    assert detect_format(path) == "lines"  # ragged whitespace rows
    assert read_interactions(path, "lines").items == ["5", "6", "7", "5", "6"]
    with pytest.raises(FaveError, match="line 2: expected 4 fields separated by whitespace"):
        read_interactions(path, "csv")  # as a log: first row sets the width


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(FaveError, match="unknown data format 'xml'"):
        read_interactions(tmp_path / "x", "xml")
    with pytest.raises(FaveError, match="not found"):
        read_interactions(tmp_path / "missing.csv")


def test_equal_width_whitespace_rows_are_ambiguous(tmp_path):
    path = _write(tmp_path / "log.dat", "1 5 6\n2 5 7\n")
    with pytest.raises(FaveError, match="--format"):
        detect_format(path)


def test_read_delimited_header_none_reads_first_line_as_data(tmp_path):
    path = _write(tmp_path / "u.data", "1\t2\t5\t100\n")
    assert _rows(read_delimited(path, "\t", header="none")) == [("1", "2", 100.0)]
