"""Optional dependencies, imported only where they are used.

The core library needs only what ``pyproject.toml`` lists under ``dependencies``. A few functions
use packages from the extras (``pip install "dlmodels[dev]"``: scikit-learn, scipy, sacrebleu, nltk;
``pip install "dlmodels[bench]"``: torch, equinox, dm-haiku, pytorch-crf); they import them through
``optional_import`` at the point of use, so importing ``dlmodels`` never needs them and a missing
one fails with an error that says which extra to install.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# top-level module -> (distribution on PyPI, the dlmodels extra that installs it)
OPTIONAL: dict[str, tuple[str, str]] = {
    "sklearn": ("scikit-learn", "dev"),
    "scipy": ("scipy", "dev"),
    "sacrebleu": ("sacrebleu", "dev"),
    "torch": ("torch", "bench"),
    "equinox": ("equinox", "bench"),
    "haiku": ("dm-haiku", "bench"),
    "nltk": ("nltk", "dev"),
    "gensim": ("gensim", "dev"),
    "torchcrf": ("pytorch-crf", "bench"),
}


def optional_import(module: str, *, needed_for: str = "") -> ModuleType:
    """``importlib.import_module(module)`` for a module of an optional package (``"sklearn.svm"``,
    ``"torch"``), or an ``ImportError`` naming the package and ``pip install "dlmodels[EXTRA]"``.

    ``needed_for``: what the caller wanted it for, put in the message (e.g. ``"novikoff_bound"``).
    Raises ``ValueError`` for a module whose top-level package is not in `OPTIONAL`.
    """
    top = module.split(".")[0]
    if top not in OPTIONAL:
        raise ValueError(f"{top!r} is not one of dlmodels' optional packages {sorted(OPTIONAL)}")
    distribution, extra = OPTIONAL[top]
    try:
        return importlib.import_module(module)
    except ImportError as e:
        what = f"{needed_for} needs" if needed_for else "this needs"
        raise ImportError(f"{what} the optional package {distribution} (module {module!r}), "
                          f"which is not installed: pip install \"dlmodels[{extra}]\"") from e
