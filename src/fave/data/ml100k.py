"""MovieLens-100k: fetched by the user's machine, never redistributed.

Primary source: the GroupLens archive (``u.data``, ``u.item``). Fallback for machines that
only reach PyPI: the ``recbole==1.2.1`` wheel bundles the same 100,000 ratings in the same
order (``ml-100k.inter``) plus titles (``ml-100k.item``). The wheel is downloaded as a file,
checked against its sha256 and read with ``zipfile``; RecBole is never installed or imported.
Every extracted file is checked against its known sha256.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from fave.data.download import DownloadError, download, extract_member, sha256_file
from fave.data.fileio import numbered_lines
from fave.data.paths import ENV_VAR
from fave.data.preprocess import Interactions
from fave.data.userlog import read_delimited, read_inter
from fave.errors import FaveError

log = logging.getLogger(__name__)

NAME = "ml-100k"
GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
U_DATA_SHA256 = "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"

RECBOLE_VERSION = "1.2.1"
WHEEL_NAME = f"recbole-{RECBOLE_VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
WHEEL_URL = (
    "https://files.pythonhosted.org/packages/ab/fe/"
    f"7d606cb7cd2b166a36b100cb9435d21014ceee16c192d972deb0976967a8/{WHEEL_NAME}"
)
PYPI_JSON_URLS = (
    f"https://pypi.org/pypi/recbole/{RECBOLE_VERSION}/json",
    "https://pypi.org/pypi/recbole/json",
)
WHEEL_MEMBER = "recbole/dataset_example/ml-100k/"
INTER_SHA256 = "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff"
ITEM_SHA256 = "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532"


def ratings_file(data_dir: Path) -> Path | None:
    """The verified ratings file under ``<data_dir>/ml-100k``, or None.

    A file whose checksum does not match is removed, so the next fetch replaces it.
    """
    for name, sha in (("u.data", U_DATA_SHA256), ("ml-100k.inter", INTER_SHA256)):
        path = data_dir / NAME / name
        if path.is_file():
            if sha256_file(path) == sha:
                return path
            log.warning("removing %s: its sha256 does not match the known file", path)
            path.unlink()
    return None


def fetch_ml100k(data_dir: Path, allow_download: bool = True) -> Path:
    """The ML-100k ratings file, downloading it first if needed (GroupLens, then PyPI)."""
    found = ratings_file(data_dir)
    if found is not None:
        return found
    target = data_dir / NAME
    if not allow_download:
        raise FaveError(
            f"ml-100k is not in {target}; fetch it with `fave data fetch ml-100k` "
            f"(or set {ENV_VAR} to a directory holding ml-100k/u.data)"
        )
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FaveError(
            f"cannot create {target} ({e.strerror or e}); pass --data-dir or set {ENV_VAR} to a writable directory"
        ) from None
    failures: list[str] = []
    for label, attempt in (("GroupLens", _from_grouplens), ("PyPI recbole wheel", _from_wheel)):
        try:
            return attempt(target)
        except FaveError as e:
            log.info("ml-100k from %s failed: %s", label, e)
            failures.append(f"{label}: {getattr(e, 'reason', e)}")
    raise FaveError(
        f"could not fetch ml-100k ({'; '.join(failures)}); download {GROUPLENS_URL} by hand "
        f"and put it at {target / 'ml-100k.zip'} (or {WHEEL_NAME} from PyPI into {target}), "
        f"or set {ENV_VAR} to a directory that holds ml-100k/u.data"
    )


def _from_grouplens(target: Path) -> Path:
    """Extract ``u.data`` and ``u.item`` from ``ml-100k.zip`` (downloaded unless present)."""
    archive = target / "ml-100k.zip"
    if not archive.is_file():
        download(GROUPLENS_URL, archive)
    try:
        extract_member(archive, "ml-100k/u.item", target / "u.item")
        return extract_member(archive, "ml-100k/u.data", target / "u.data", U_DATA_SHA256)
    finally:  # a bad archive must not be reused by the next fetch
        archive.unlink(missing_ok=True)


def _from_wheel(target: Path) -> Path:
    """Extract ``ml-100k.inter`` and ``ml-100k.item`` from the recbole wheel."""
    wheel = target / WHEEL_NAME
    if not (wheel.is_file() and sha256_file(wheel) == WHEEL_SHA256):
        wheel.unlink(missing_ok=True)
        _download_wheel(wheel)
    extract_member(wheel, WHEEL_MEMBER + "ml-100k.item", target / "ml-100k.item", ITEM_SHA256)
    ratings = extract_member(wheel, WHEEL_MEMBER + "ml-100k.inter", target / "ml-100k.inter", INTER_SHA256)
    wheel.unlink()
    return ratings


class _WheelError(FaveError):
    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reason = "; ".join(reasons)


def _download_wheel(dest: Path) -> Path:
    """The verified recbole wheel at ``dest``: known URL, then the PyPI JSON API, then pip."""
    reasons: list[str] = []
    try:
        return download(WHEEL_URL, dest, sha256=WHEEL_SHA256)
    except DownloadError as e:
        reasons.append(f"files.pythonhosted.org: {e.reason}")
    for url in dict.fromkeys(_wheel_urls_from_pypi()):
        if url == WHEEL_URL:
            continue
        try:
            return download(url, dest, sha256=WHEEL_SHA256)
        except DownloadError as e:
            reasons.append(f"{url}: {e.reason}")
    try:
        with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".pip-") as tmp:
            wheel = _pip_download(Path(tmp))
            wheel.replace(dest)
            return dest
    except FaveError as e:
        reasons.append(str(e))
    raise _WheelError(reasons)


def _wheel_urls_from_pypi() -> list[str]:
    """Wheel URLs with the expected sha256 listed by the PyPI JSON API."""
    urls: list[str] = []
    for api in PYPI_JSON_URLS:
        try:
            with urllib.request.urlopen(api, timeout=30) as response:
                meta = json.load(response)
        except (OSError, ValueError):
            continue
        files = list(meta.get("urls", [])) + list(meta.get("releases", {}).get(RECBOLE_VERSION, []))
        urls += [f["url"] for f in files if f.get("digests", {}).get("sha256") == WHEEL_SHA256]
        if urls:
            break
    return urls


def _pip_download(tmp: Path) -> Path:
    """Let pip fetch the wheel (it knows the machine's index and proxy settings)."""
    out = tmp / "pip"
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        f"recbole=={RECBOLE_VERSION}",
        "--no-deps",
        "--only-binary=:all:",
        "--quiet",
        "-d",
        str(out),
    ]
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as e:
        detail = " ".join(str(getattr(e, "stderr", None) or e).split())
        raise FaveError(f"pip download failed ({detail[-200:]})") from None
    wheel = out / WHEEL_NAME
    if not wheel.is_file() or sha256_file(wheel) != WHEEL_SHA256:
        raise FaveError(f"pip download did not produce {WHEEL_NAME} with the expected sha256")
    return wheel


def read_ml100k(path: str | Path) -> Interactions:
    """``u.data`` (user, item, rating, time; tabs, no header) or RecBole ``ml-100k.inter``."""
    path = Path(path)
    if path.suffix == ".inter":
        return read_inter(path)
    return read_delimited(path, delimiter="\t", header="none")


def ml100k_titles(data_dir: Path) -> dict[str, str] | None:
    """Raw item id -> ``"Title (year)"`` from ``u.item`` or ``ml-100k.item``, if present.

    RecBole's ``ml-100k.item`` is checked against its known sha256 (a mismatch gives no
    titles). GroupLens's ``u.item`` has no published checksum and the archive is not pinned
    (only ``u.data`` is), so it is read unverified: titles are display text only, never
    executed and never part of training or metrics, and a bad file costs a wrong label.
    """
    u_item = data_dir / NAME / "u.item"
    recbole_item = data_dir / NAME / "ml-100k.item"
    if not u_item.is_file() and recbole_item.is_file() and sha256_file(recbole_item) != ITEM_SHA256:
        log.warning("ignoring %s: its sha256 does not match the known file", recbole_item)
        return None
    if u_item.is_file():
        titles = {}
        for _, line in numbered_lines(u_item, encoding="latin-1"):
            fields = line.split("|")
            if len(fields) >= 2:
                titles[fields[0]] = fields[1]
        return titles
    if recbole_item.is_file():
        titles = {}
        lines = numbered_lines(recbole_item)
        header = [h.split(":")[0] for h in next(lines)[1].split("\t")]
        col = {name: i for i, name in enumerate(header)}
        for _, line in lines:
            fields = line.split("\t") + [""] * len(header)
            title = fields[col["movie_title"]]
            year = fields[col["release_year"]] if "release_year" in col else ""
            titles[fields[col["item_id"]]] = f"{title} ({year})" if year else title
        return titles
    return None
