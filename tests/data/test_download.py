import hashlib
import urllib.request
import zipfile

import pytest

from fave.data import download as dl
from fave.data.download import download, extract_member, sha256_file, verify_sha256
from fave.errors import FaveError

PAYLOAD = b"user\titem\n1\t2\n" * 1000


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def source(tmp_path):
    src = tmp_path / "remote" / "file.bin"
    src.parent.mkdir()
    src.write_bytes(PAYLOAD)
    return src


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_file_url_with_matching_checksum(source, tmp_path):
    dest = tmp_path / "out" / "file.bin"
    assert download(source.as_uri(), dest, sha256=_sha(PAYLOAD)) == dest
    assert dest.read_bytes() == PAYLOAD
    assert _leftovers(dest.parent) == ["file.bin"]


def test_checksum_mismatch_leaves_nothing_and_names_both_hashes(source, tmp_path):
    dest = tmp_path / "out" / "file.bin"
    wrong = "0" * 64
    with pytest.raises(FaveError) as err:
        download(source.as_uri(), dest, sha256=wrong)
    msg = str(err.value)
    assert wrong in msg and _sha(PAYLOAD) in msg and "removed" in msg
    assert _leftovers(dest.parent) == []


def test_unreachable_url_names_the_manual_fix_and_leaves_nothing(tmp_path):
    dest = tmp_path / "out" / "file.bin"
    with pytest.raises(FaveError) as err:
        download((tmp_path / "missing.bin").as_uri(), dest)
    msg = str(err.value)
    assert "could not download" in msg and str(dest) in msg and "FAVE_DATA_DIR" in msg
    assert "\n" not in msg
    assert _leftovers(dest.parent) == []


def test_connection_dropped_midway_leaves_no_partial_file(monkeypatch, tmp_path):
    class Broken:
        def __init__(self):
            self.calls = 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self, n):
            self.calls += 1
            if self.calls > 1:
                raise TimeoutError("timed out")
            return b"partial"

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Broken())
    dest = tmp_path / "out" / "file.bin"
    with pytest.raises(FaveError, match="timed out"):
        download("https://example.invalid/file.bin", dest)
    assert _leftovers(dest.parent) == []


def test_verify_sha256_removes_a_bad_file(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"abc")
    verify_sha256(path, _sha(b"abc"))
    assert path.exists()
    with pytest.raises(FaveError, match="removed"):
        verify_sha256(path, _sha(b"abd"))
    assert not path.exists()


def test_extract_member_verifies_and_is_atomic(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("dir/data.txt", PAYLOAD)
    good = extract_member(archive, "dir/data.txt", tmp_path / "x" / "data.txt", _sha(PAYLOAD))
    assert good.read_bytes() == PAYLOAD
    with pytest.raises(FaveError, match="checksum mismatch"):
        extract_member(archive, "dir/data.txt", tmp_path / "y" / "data.txt", "1" * 64)
    assert _leftovers(tmp_path / "y") == []
    with pytest.raises(FaveError, match="no member"):
        extract_member(archive, "dir/other.txt", tmp_path / "z" / "other.txt")


def test_sha256_file_reads_in_chunks(monkeypatch, tmp_path):
    monkeypatch.setattr(dl, "CHUNK", 7)
    path = tmp_path / "f.bin"
    path.write_bytes(PAYLOAD)
    assert sha256_file(path) == _sha(PAYLOAD)
