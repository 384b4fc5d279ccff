"""Downloads that never leave a half-written or unverified file behind.

A file is streamed into a temporary name next to its destination, hashed while it is
written, and renamed into place only when complete and (if a checksum is given) verified.
Failures become one-line :class:`FaveError` messages that say how to get the file by hand.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import shutil
import urllib.request
import zipfile
from pathlib import Path

from fave.data.paths import ENV_VAR
from fave.errors import FaveError
from fave.io_utils import atomic_write

log = logging.getLogger(__name__)

CHUNK = 1 << 20


class DownloadError(FaveError):
    """A failed download; ``reason`` is the short cause (for messages that combine sources)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def verify_sha256(path: str | Path, expected: str, what: str | None = None) -> None:
    """Check ``path`` against ``expected``; on mismatch remove the file and raise FaveError."""
    actual = sha256_file(path)
    if actual != expected.lower():
        Path(path).unlink(missing_ok=True)
        raise FaveError(
            f"checksum mismatch for {what or path}: expected sha256 {expected}, got {actual}; "
            f"the file was removed, fetch it again"
        )


def download(
    url: str,
    dest: str | Path,
    sha256: str | None = None,
    timeout: float = 30.0,
) -> Path:
    """Download ``url`` to ``dest`` atomically and return ``dest``.

    With ``sha256`` the content is verified before it is renamed into place; a mismatch
    leaves nothing behind. An unreachable URL raises a FaveError naming the manual fix.
    """
    dest = Path(dest)
    digest = hashlib.sha256()

    def _write(tmp: str) -> None:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
            for block in iter(lambda: response.read(CHUNK), b""):
                digest.update(block)
                out.write(block)
        if sha256 is not None and digest.hexdigest() != sha256.lower():
            raise _ChecksumMismatch(digest.hexdigest())

    log.info("downloading %s -> %s", url, dest)
    try:
        atomic_write(dest, _write)
    except _ChecksumMismatch as e:
        raise DownloadError(
            f"checksum mismatch for {url}: expected sha256 {sha256}, got {e.actual}; "
            f"the downloaded file was removed (nothing written to {dest})",
            reason=f"checksum mismatch (got {e.actual[:12]}...)",
        ) from None
    except (OSError, ValueError, http.client.HTTPException) as e:
        reason = str(getattr(e, "reason", None) or e)
        raise DownloadError(
            f"could not download {url} ({reason}); download the file by hand and put it at "
            f"{dest}, or set {ENV_VAR} to a directory that already holds it",
            reason=reason,
        ) from None
    return dest


def extract_member(archive: str | Path, member: str, dest: str | Path, sha256: str | None = None) -> Path:
    """Extract one member of a zip archive to ``dest`` atomically, verifying ``sha256``.

    Only the named member is read, so a hostile archive cannot write outside ``dest``.
    """

    def _write(tmp: str) -> None:
        try:
            with zipfile.ZipFile(archive) as zf, zf.open(member) as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, CHUNK)
        except KeyError:
            raise FaveError(f"{archive} has no member {member!r}; it is not the expected archive") from None
        except zipfile.BadZipFile:
            raise FaveError(f"{archive} is not a valid zip archive; remove it and fetch again") from None
        if sha256 is not None:
            actual = sha256_file(tmp)
            if actual != sha256.lower():
                raise _ChecksumMismatch(actual)

    try:
        atomic_write(dest, _write)
    except _ChecksumMismatch as e:
        raise FaveError(
            f"checksum mismatch for {member} in {archive}: expected sha256 {sha256}, got "
            f"{e.actual}; nothing was written to {dest}"
        ) from None
    return Path(dest)


class _ChecksumMismatch(Exception):
    def __init__(self, actual: str) -> None:
        super().__init__(actual)
        self.actual = actual
