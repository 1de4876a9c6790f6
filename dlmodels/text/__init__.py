"""Language: tokenisers, vocabularies, batching of text, embeddings, language models, sequence
labelling (CRF, Viterbi, HMM, structured perceptron, BiLSTM taggers), text classification and the
count-based baselines (Kneser-Ney n-grams). Submodules are imported on first use."""

import importlib

_LAZY = {"Vocab": ("dlmodels.text.vocab", "Vocab")}


def __getattr__(name):
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    try:
        return importlib.import_module(f"dlmodels.text.{name}")
    except ModuleNotFoundError as e:
        if e.name == f"dlmodels.text.{name}":
            raise AttributeError(f"module 'dlmodels.text' has no attribute {name!r}") from None
        raise


__all__ = ["Vocab"]
