"""Two convolutions + pooling on Fashion-MNIST, beside the Fashion-MNIST benchmark table.

The network is the table's "2 Conv+pooling" entry from TensorFlow's layers tutorial
(32@5x5 and 64@5x5 'SAME' convolutions with ReLU, 2x2 max pooling after each, a dense ReLU layer
with dropout 0.4, 10 logits) with the dense layer cut from 1,024 to 256 units for the CPU budget
(``dlmodels.cnn.convnet((32, 64), kernel=5, hidden=256, dropout_rate=0.4)``), trained on the
60,000 training images with Adam (cosine-decayed rate) and softmax cross-entropy; no preprocessing beyond scaling to [0, 1], no augmentation. The test set monitors
each epoch (Fashion-MNIST has no validation split; no choice is made on it). Target: >= 91.6 %.

Entries of the table (github.com/zalandoresearch/fashion-mnist, "Benchmark"; submitted, not
verified by its authors): 2 Conv+pooling 0.876 (K. Rasul) and 0.916 (TensorFlow's doc);
2 Conv+pooling+ELU 0.903; 2 Conv with normalisation and augmentation 0.919; 2 Conv < 100K
parameters 0.925.
"""

from __future__ import annotations

import dataclasses
import os

from dlmodels.cnn import count_params
from dlmodels.cnn import convnet
from dlmodels.plots import training_curves
from dlmodels.experiments.cnn_mnist import image_splits, train_and_test

TABLE = {"2 Conv+pooling (K. Rasul)": 0.876, "2 Conv+pooling (TensorFlow's doc)": 0.916,
         "2 Conv+pooling+ELU (PyTorch)": 0.903,
         "2 Conv, normalisation + augmentation": 0.919, "2 Conv < 100K parameters": 0.925}


@dataclasses.dataclass(frozen=True)
class Config:
    dataset: str = "fashion_mnist"  # data set: digits, mnist or fashion_mnist
    channels: tuple[int, ...] = (32, 64)  # channels of the 5x5 conv layers (2x2 max pooling after each)
    hidden: int = 256  # units of the dense layer before the classifier
    dropout: float = 0.4  # dropout rate before the dense layers
    epochs: int = 10  # training epochs
    batch_size: int = 128  # examples per update
    learning_rate: float = 1e-3  # peak Adam learning rate (cosine-decayed)
    weight_decay: float = 0.0  # decoupled weight decay (AdamW; 0: plain Adam)
    seed: int = 0  # seed of the initial params, dropout and batch order
    n_train: int = 0  # training examples used (0: the whole training split)


def main(config: Config, run_dir: str) -> dict:
    splits = image_splits(config.dataset, config.n_train)
    model = convnet(config.channels, 10, input_shape=splits["train"][0].shape[1:], kernel=5,
                    hidden=config.hidden, dropout_rate=config.dropout)
    result, test, seconds = train_and_test(
        model, splits, epochs=config.epochs, batch_size=config.batch_size,
        learning_rate=config.learning_rate, weight_decay=config.weight_decay, seed=config.seed,
        run_dir=run_dir)
    print(f"2 Conv+pooling on {config.dataset}: test accuracy {test['accuracy']:.4f} after "
          f"{config.epochs} epochs in {seconds:.0f} s (table: 0.916)", flush=True)
    curves = training_curves({"2 conv + pooling": result.history},
                             os.path.join(run_dir, "curves.png"), keys=("train_loss", "eval_error"),
                             title=f"2 Conv+pooling on {config.dataset} (eval = test set)")
    return {
        "test_accuracy": test["accuracy"], "test_error": test["error"],
        "target_accuracy": 0.916, "meets_target": test["accuracy"] >= 0.916,
        "train_seconds": seconds, "epochs": config.epochs,
        "n_params": count_params(result.state.params), "n_train": len(splits["train"][1]),
        "table": TABLE, "history": result.history, "curves_png": os.path.basename(curves),
    }
