"""Optional packages are imported where used, and a missing one names the extra to install."""

import sys

import numpy as np
import pytest

from dlmodels.classic import perceptron
from dlmodels.extras import OPTIONAL, optional_import


def test_missing_optional_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    with pytest.raises(ImportError, match=r'converter needs the optional package torch .*'
                                          r'pip install "dlmodels\[bench\]"'):
        optional_import("torch", needed_for="converter")
    monkeypatch.setitem(sys.modules, "haiku", None)
    with pytest.raises(ImportError, match=r'dm-haiku .*pip install "dlmodels\[bench\]"'):
        optional_import("haiku")


def test_novikoff_bound_without_scikit_learn_says_pip_install_dev(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.svm", None)
    x, y = np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([0, 1])
    with pytest.raises(ImportError, match=r'novikoff_bound.*scikit-learn.*'
                                          r'pip install "dlmodels\[dev\]"'):
        perceptron.novikoff_bound(x, y)
    # an explicit separator needs no scikit-learn
    assert perceptron.novikoff_bound(x, y, np.array([1.0, -1.0])).margin > 0


def test_installed_optional_module_is_returned_and_unknown_names_refused():
    scipy = pytest.importorskip("scipy")
    assert optional_import("scipy") is scipy
    assert set(OPTIONAL) == {"sklearn", "scipy", "sacrebleu", "torch", "equinox", "haiku", "nltk",
                             "torchcrf", "gensim"}
    with pytest.raises(ValueError, match="not one of dlmodels' optional packages"):
        optional_import("numpy")


def test_importing_the_library_needs_no_optional_package():
    import subprocess

    code = ("import sys\n"
            "for name in ('sklearn', 'scipy', 'sacrebleu', 'torch', 'equinox', 'haiku'):\n"
            "    sys.modules[name] = None\n"
            "import dlmodels, dlmodels.classic, dlmodels.cnn, dlmodels.nn, dlmodels.autoencoders\n"
            "import dlmodels.energy, dlmodels.adversarial, dlmodels.plots, dlmodels.data\n"
            "import dlmodels.analysis, dlmodels.train, dlmodels.rnn\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
