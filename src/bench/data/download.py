"""`python -m bench.data download NAME`: fetch the datasets that have a public direct link.

MovieLens zips come from files.grouplens.org. The download resumes a partial file (HTTP
Range) and is checked before use: the extracted ratings file against its pinned sha256
where we know it (ml-100k, ml-latest-small), otherwise the zip against the md5 GroupLens
publishes next to it; the sha256 of what was accepted is written beside it. The other
datasets sit behind registration or terms pages: for those the command says where they
are published and where to put the file. Offline, it fails with that message.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from bench.errors import BenchError

GROUPLENS = "https://files.grouplens.org/datasets/movielens"


@dataclass(frozen=True)
class Source:
    url: str
    member: str  # the file the recipe reads, inside the zip
    member_sha256: str | None = None  # pinned; else the zip is checked against <url>.md5


SOURCES = {
    "ml-100k": Source(
        f"{GROUPLENS}/ml-100k.zip",
        "ml-100k/u.data",
        "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
    ),
    "ml-latest-small": Source(
        f"{GROUPLENS}/ml-latest-small.zip",
        "ml-latest-small/ratings.csv",
        "80da8b3393dae325bbba5a31f291a6ba55d8d4f4396de3c456f2c1635b1b70e8",
    ),
    "ml-1m": Source(f"{GROUPLENS}/ml-1m.zip", "ml-1m/ratings.dat"),
    "ml-20m": Source(f"{GROUPLENS}/ml-20m.zip", "ml-20m/ratings.csv"),
}

BY_HAND = {
    "yoochoose": "RecSys Challenge 2015 (yoochoose-clicks.dat), published on Kaggle and the "
    "challenge site after accepting its terms; put it at <data_dir>/yoochoose/yoochoose-clicks.dat",
    "diginetica": "CIKM Cup 2016 Track 2 (train-item-views.csv), published on the competition "
    "site after registration; put it at <data_dir>/diginetica/train-item-views.csv",
    "retailrocket": "Retailrocket recommender system dataset (events.csv) on Kaggle; put it at "
    "<data_dir>/retailrocket/events.csv",
    "rees46": "REES46 eCommerce behavior data (2019-Oct.csv, 2019-Nov.csv) on Kaggle; put them at "
    "<data_dir>/rees46/",
    "coveo": "Coveo SIGIR eCom 2021 data challenge (browsing_train.csv), published by Coveo after "
    "accepting its licence; put it at <data_dir>/coveo/browsing_train.csv",
    "ml-1m-bert4rec": "ml-1m.txt in the BERT4Rec repository (FeiSun/BERT4Rec, data/); put it at "
    "<data_dir>/movielens/ml-1m.txt",
}


def file_digest(path: Path, algo: str) -> str:
    """Hex digest of a file, read in 1 MiB blocks (large raw files never sit in memory)."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fetch(url: str, part: Path, timeout: float) -> None:
    """Download to `part`, continuing from its current size when the server allows it."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            resumed = have and response.status == 206
            with open(part, "ab" if resumed else "wb") as f:
                while block := response.read(1 << 20):
                    f.write(block)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # already complete
            return
        raise BenchError(f"download {url}: HTTP {e.code} {e.reason}") from None


def _published_md5(url: str, timeout: float) -> str:
    with urllib.request.urlopen(url + ".md5", timeout=timeout) as r:
        return r.read().decode().split()[0].strip().lower()


def download(name: str, dest: Path, timeout: float = 60.0) -> Path:
    """The recipe's input file for `name`, downloaded and checked; returns its path."""
    if name in BY_HAND:
        raise BenchError(f"download {name}: no public direct link. {BY_HAND[name]}")
    if name not in SOURCES:
        raise BenchError(
            f"download: unknown '{name}'; expected one of {', '.join([*SOURCES, *BY_HAND])}"
        )
    src = SOURCES[name]
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / src.member
    if target.is_file() and (target.with_name(target.name + ".sha256")).is_file():
        return target
    zip_path = dest / Path(src.url).name
    part = zip_path.with_name(zip_path.name + ".part")
    try:
        if not zip_path.is_file():
            _fetch(src.url, part, timeout)
            part.replace(zip_path)
        expected_md5 = None if src.member_sha256 else _published_md5(src.url, timeout)
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise BenchError(
            f"download {name}: cannot reach {src.url} ({reason}); download it by hand and put "
            f"it at {zip_path} (a partial download, if any, resumes from {part})"
        ) from None
    if expected_md5 is not None and file_digest(zip_path, "md5") != expected_md5:
        zip_path.unlink()
        raise BenchError(
            f"download {name}: {zip_path.name} does not match its published md5; removed it, run "
            "again"
        )
    try:
        with zipfile.ZipFile(zip_path) as z:
            z.extract(src.member, dest)
    except (zipfile.BadZipFile, KeyError) as e:
        raise BenchError(f"download {name}: {zip_path} is not the expected zip ({e})") from None
    sha = file_digest(target, "sha256")
    if src.member_sha256 and sha != src.member_sha256:
        target.unlink()
        raise BenchError(
            f"download {name}: {src.member} has sha256 {sha}, expected {src.member_sha256}; "
            "removed it"
        )
    target.with_name(target.name + ".sha256").write_text(f"{sha}  {target.name}\n")
    return target
