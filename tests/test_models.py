"""Every model factory in the library, checked the same way (one row each in ``MODELS``):

- the shapes and dtypes ``jax.eval_shape`` predicts for ``init`` and ``apply`` are the real ones;
- params and outputs are finite;
- ``jit`` equals eager (in training mode with a dropout key, where the model takes one);
- ``vmap`` over examples equals a loop over them, and ``vmap`` over a batch of params (seeds)
  equals a loop over the seeds;
- a second jitted call with new values of the same shapes does not retrace
  (``chex.assert_max_traces``);
- every wrong input shape raises ``dlmodels.validation.ShapeError`` naming the actual shape.

A recurrent cell ``apply(params, carry, x_t) -> (carry, y_t)`` enters the table through
``cell_model``: ``init(key) = cell.init(key, input_size)`` and ``apply`` runs two steps from the
zero carry (so the recurrent weights act) and returns ``(carry, y)``.

A new factory adds one line to ``MODELS``. A row whose module does not yet meet the contract is
listed in ``PENDING`` with the reason; its check is a strict xfail, so it fails loudly (XPASS) the
day the module is fixed and the entry must be removed.
"""

from __future__ import annotations

import inspect
import re
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlmodels import capsules, rnn
from dlmodels.autoencoders import autoencoder, deep_autoencoder
from dlmodels.cnn import alexnet, convnet, lenet5, resnet, vgg
from dlmodels.mlp import mlp
from dlmodels.gan import dcgan_discriminator, dcgan_generator, mlp_discriminator, mlp_generator
from dlmodels.model import Model, StatefulModel, stateful
from dlmodels.nn import batch_norm, conv1d_layer, conv2d_layer, conv_transpose2d_layer, dense
from dlmodels.recursive import Forest, binarize, pack, recursive_net, tree_lstm
from dlmodels.seq2seq import encoder_decoder
from dlmodels.text.classify import bow_logistic, rnn_classifier
from dlmodels.text.embedding import embedding
from dlmodels.text.lm import language_model
from dlmodels.text.tagger import bilstm_tagger
from dlmodels.validation import ShapeError

pytestmark = pytest.mark.usefixtures("strict_dtypes")


def cell_model(cell: rnn.Cell, input_size: int) -> Model:
    """A cell as a ``Model``: two steps from the zero carry, ``x [B, D] -> (carry, y [B, O])``."""

    def init(key):
        return cell.init(key, input_size)

    def apply(params, x, *, key=None, train=False):
        carry = cell.initial_carry(x.shape[0], x.dtype)
        carry, _ = cell.apply(params, carry, x)
        return cell.apply(params, carry, x)

    return Model(init, apply)


def stateful_model(model: StatefulModel) -> Model:
    """A ``StatefulModel`` as a ``Model`` run from its initial state:
    ``apply(params, x) -> (y, new_state)`` (eval mode: the running statistics, state unchanged;
    training mode: the batch's statistics and the updated state)."""

    def apply(params, x, *, key=None, train=False):
        return model.apply(params, model.init_state(), x, key=key, train=train)

    return Model(model.init, apply)


class Ints(NamedTuple):
    """An input of token ids: int32 of ``shape`` in ``0..high-1`` (the float rows use uniform(-1, 1))."""

    shape: tuple
    high: int


def full_length(model: Model) -> Model:
    """A model taking ``(ids [B, T], lengths [B])`` as one taking ``ids`` (every text full length)."""

    def apply(params, ids, *, key=None, train=False):
        if ids.ndim != 2:  # the model's own check needs the lengths to match the batch
            return model.apply(params, ids, jnp.full(ids.shape[:1], 1, jnp.int32), key=key, train=train)
        return model.apply(params, ids, jnp.full(ids.shape[:1], ids.shape[1], jnp.int32), key=key,
                           train=train)

    return Model(model.init, apply)


def seq2seq_model(model: Model, src_len: int) -> Model:
    """An encoder-decoder taking ``ids [B, S + T]`` as ``src = ids[:, :S]``, ``tgt_in = ids[:, S:]``,
    every sentence full length (an input of another rank goes through whole, as the source)."""

    def apply(params, ids, *, key=None, train=False):
        if ids.ndim != 2:  # the model's own check names the source's shape
            return model.apply(params, ids, jnp.ones(ids.shape[:1], jnp.int32), ids, key=key,
                               train=train)
        lengths = jnp.full(ids.shape[:1], src_len, jnp.int32)
        return model.apply(params, ids[:, :src_len], lengths, ids[:, src_len:], key=key,
                           train=train)

    return Model(model.init, apply)


# one tree of every kind of node: binary, ternary, unary, leaves at depths 1-3; labels on the
# internal nodes (the ListOps layout); its 6 leaves take their tokens from the input row
TEMPLATE = ("a", ("b", "x", "x", ("c", "x", "x")), ("d", "x"), "x")


def forest_model(model: Model, tree=TEMPLATE, max_children: int = 3) -> Model:
    """A recursive model taking ``leaf ids [B, L]`` as the forest of B copies of ``tree`` whose
    L leaves hold those ids (the labels a..d are ids 1..4); another shape goes in as the
    forest's ``tokens``, so the model's own check names it."""
    template = pack([tree], lambda t: {"a": 1, "b": 2, "c": 3, "d": 4, "x": 0}[t],
                    max_children=max_children)
    leaves = np.flatnonzero(np.asarray(template.mask[0]) & (np.asarray(template.height[0]) == 0))

    def apply(params, ids, *, key=None, train=False):
        tile = lambda a: jnp.repeat(jnp.asarray(a), ids.shape[0] if ids.ndim else 1, axis=0)
        forest = Forest(*(tile(a) for a in template[:-1]), levels=tile(template.levels))
        if ids.ndim == 2 and ids.shape[1] == len(leaves):
            forest = forest._replace(tokens=forest.tokens.at[:, leaves].set(ids))
        else:
            forest = forest._replace(tokens=ids)
        return model.apply(params, forest, key=key, train=train)

    return Model(model.init, apply)


def rbm_model():
    from dlmodels.energy import rbm
    return rbm.rbm(6, 4, visible="bernoulli", hidden="bernoulli")


# name: (factory, input shape of a batch of 4, wrong input shapes). CNNs as small as their layouts
# allow: every distinct kernel shape costs an eager compilation here.
MODELS = {
    "dense":               (lambda: dense(5, 3), (4, 5), [(4, 6)]),
    "dense_no_bias":       (lambda: dense(5, 3, use_bias=False), (4, 5), [(4, 4)]),
    "conv2d_layer":        (lambda: conv2d_layer(3, 3, 2, 4, padding="SAME"), (4, 6, 6, 2), [(4, 6, 6, 3), (6, 6, 2)]),
    "conv1d_layer":        (lambda: conv1d_layer(3, 2, 4, stride=2), (4, 9, 2), [(4, 9, 3), (9, 2)]),
    "mlp_relu":            (lambda: mlp((12, 16, 8, 3)), (4, 12), [(4, 11), (12,)]),
    "mlp_sigmoid_dropout": (lambda: mlp((12, 16, 3), activation="sigmoid", output_activation="sigmoid", dropout_rate=0.3), (4, 12), [(12,)]),
    "lenet5_tanh_avg":     (lambda: lenet5(3, input_shape=(12, 12, 1)), (4, 12, 12, 1), [(4, 12, 12, 2), (12, 12, 1)]),
    "convnet_dropout":     (lambda: convnet((3,), 3, input_shape=(6, 6, 1), kernel=3, hidden=5, dropout_rate=0.5), (4, 6, 6, 1), [(4, 6, 5, 1)]),
    "convnet_no_pool":     (lambda: convnet((3,), 3, input_shape=(4, 4, 2), kernel=3, pool=None, hidden=5), (4, 4, 4, 2), [(4, 2, 4, 4)]),
    "vgg_tiny":            (lambda: vgg(((4,),), 3, input_shape=(4, 4, 2), fc=(8,)), (4, 4, 4, 2), [(4, 2, 4, 4)]),
    "resnet_tiny":         (lambda: resnet((1, 1), (4, 4), 3, input_shape=(6, 6, 3)), (4, 6, 6, 3), [(4, 6, 6)]),
    "alexnet_tiny":        (lambda: alexnet(3, input_shape=(16, 16, 1), width=0.02, conv1_kernel=3, conv1_stride=1, conv1_padding=1), (2, 16, 16, 1), [(2, 16, 16, 3)]),
    "autoencoder":         (lambda: autoencoder(12, 5), (4, 12), [(4, 11), (12,)]),
    "autoencoder_tied":    (lambda: autoencoder(12, 5, tied=True, encoder="identity"), (4, 12), [(4, 13)]),
    "deep_autoencoder":    (lambda: deep_autoencoder((12, 8, 3)), (4, 12), [(4, 8), (12,)]),
    "rbm":                 (rbm_model, (4, 6), [(4, 5), (4, 6, 5)]),
    "elman_cell":          (lambda: cell_model(rnn.elman(6), 5), (4, 5), [(4, 4)]),
    "elman_cell_output":   (lambda: cell_model(rnn.elman(6, output_size=3), 5), (4, 5), [(4, 6)]),
    "jordan_cell":         (lambda: cell_model(rnn.jordan(6, 3), 5), (4, 5), [(4, 4)]),
    "leaky_cell_learned":  (lambda: cell_model(rnn.leaky(6, alpha=None), 5), (4, 5), [(4, 4)]),
    "gru_cell":            (lambda: cell_model(rnn.gru(6), 5), (4, 5), [(4, 4)]),
    "lstm_cell":           (lambda: cell_model(rnn.lstm(6), 5), (4, 5), [(4, 4)]),
    "lstm_no_forget_cell": (lambda: cell_model(rnn.lstm_no_forget(6), 5), (4, 5), [(4, 4)]),
    "peephole_lstm_cell":  (lambda: cell_model(rnn.peephole_lstm(6, diagonal=True), 5), (4, 5), [(4, 4)]),
    "time_skip_cell":      (lambda: cell_model(rnn.time_skip(rnn.elman(6), 2), 5), (4, 5), [(4, 4)]),
    "seq_lstm_last":       (lambda: rnn.sequence_model(rnn.lstm(6), 5, 3), (4, 7, 5), [(4, 7, 4), (7, 5)]),
    "seq_elman_per_step":  (lambda: rnn.sequence_model(rnn.elman(6), 5, 3, head="per_step"), (4, 7, 5), [(4, 7, 6)]),
    "embedding":           (lambda: embedding(7, 3), Ints((4, 5), 7), []),
    "lm_lstm_tied_dropout": (lambda: language_model(7, cell="lstm", hidden=6, layers=2, embed_dim=5, tie=True, dropout=0.2, embed_dropout=0.1), Ints((4, 5), 7), [(4,), (4, 5, 2)]),
    "lm_gru_one_hot":      (lambda: language_model(7, cell="gru", hidden=6, one_hot=True), Ints((4, 5), 7), [(4,)]),
    "lm_elman":            (lambda: language_model(7, cell="elman", hidden=6, embed_dim=4), Ints((4, 5), 7), [(5,)]),
    "bilstm_tagger":       (lambda: bilstm_tagger(12, 5, embed_dim=6, hidden=4, dropout=0.3), Ints((4, 7), 12), [(4,), (4, 7, 2)]),
    "bilstm_crf_tagger":   (lambda: bilstm_tagger(12, 5, embed_dim=6, hidden=4, crf=True), Ints((4, 7), 12), [(4,)]),
    "rnn_classifier":      (lambda: full_length(rnn_classifier(50, 3, embed_dim=8, hidden=6, dropout=0.2)), Ints((4, 7), 50), [(4,)]),
    "rnn_classifier_bidir_gru": (lambda: full_length(rnn_classifier(50, 3, cell="gru", embed_dim=8, hidden=6, bidirectional=True)), Ints((4, 7), 50), [(4, 7, 2)]),
    "bow_logistic":        (lambda: bow_logistic(20, 2), (4, 20), [(4, 19), (20,)]),
    "encoder_decoder":     (lambda: seq2seq_model(encoder_decoder(9, 7, hidden=6, embed_dim=5), 5), Ints((4, 9), 7), [(9,), (4, 9, 2)]),
    "enc_dec_bahdanau_bidir": (lambda: seq2seq_model(encoder_decoder(9, 7, cell="gru", hidden=6, layers=2, bidirectional=True, attention="bahdanau", dropout=0.2), 5), Ints((4, 9), 7), [(9,)]),
    "enc_dec_luong":       (lambda: seq2seq_model(encoder_decoder(9, 7, cell="elman", hidden=6, attention="luong"), 4), Ints((4, 9), 7), [(9,)]),
    "recursive_net":       (lambda: forest_model(recursive_net(9, 6, 3, embed_dim=5), binarize(TEMPLATE), 2), Ints((4, 6), 9), [(4, 5), (4,)]),
    "tree_lstm_child_sum": (lambda: forest_model(tree_lstm(9, 6, 3, dropout=0.2)), Ints((4, 6), 9), [(4, 5), (4,)]),
    "tree_lstm_n_ary_nodes": (lambda: forest_model(tree_lstm(9, 6, 3, kind="n_ary", max_children=3, node_classifier=True)), Ints((4, 6), 9), [(4, 7)]),
    "seq_gru_bidir_deep":  (lambda: rnn.sequence_model([rnn.gru(4), rnn.gru(3)], 5, 2, bidirectional=True), (4, 7, 5), [(4, 7, 4)]),
    "conv_transpose2d_layer": (lambda: conv_transpose2d_layer(4, 4, 2, 3, stride=2, padding=1), (4, 5, 5, 2), [(4, 5, 5, 3), (5, 5, 2)]),
    "batch_norm_images":   (lambda: stateful_model(batch_norm(3)), (4, 5, 5, 3), [(4, 5, 5, 2)]),
    "batch_norm_features": (lambda: stateful_model(batch_norm(5, momentum=0.5, scale=False)), (4, 5), [(4, 6), (5,)]),
    "stateful_dense":      (lambda: stateful_model(stateful(dense(5, 3))), (4, 5), [(4, 6)]),
    "gan_mlp_generator":   (lambda: stateful_model(mlp_generator(6, (8,), image_shape=(4, 4, 1))), (4, 6), [(4, 5), (6,)]),
    "gan_mlp_discriminator": (lambda: stateful_model(mlp_discriminator((5,), pieces=3, image_shape=(4, 4, 1))), (4, 4, 4, 1), [(4, 4, 4, 2), (4, 16)]),
    "dcgan_generator":     (lambda: stateful_model(dcgan_generator(6, (4, 3), image_shape=(8, 8, 1))), (4, 6), [(4, 5)]),
    "dcgan_discriminator": (lambda: stateful_model(dcgan_discriminator((3, 4), image_shape=(8, 8, 1))), (4, 8, 8, 1), [(4, 8, 8, 2)]),
    "primary_caps":        (lambda: capsules.primary_caps(2, 3, 4, kernel=3, stride=2), (4, 7, 7, 2), [(4, 7, 7, 3), (7, 7, 2)]),
    "digit_caps":          (lambda: capsules.digit_caps(6, 3, 4, 5, iterations=2), (4, 6, 4), [(4, 6, 3), (6, 4)]),
    "capsule_decoder":     (lambda: capsules.decoder(6, (8,), 10), (4, 6), [(4, 5)]),
    "capsnet":             (lambda: capsules.capsnet(3, input_shape=(12, 12, 1), conv_channels=4, conv_kernel=3, primary_types=2, primary_dim=4, primary_kernel=3, digit_dim=5, decoder_hidden=(8,)), (4, 12, 12, 1), [(4, 12, 12, 2), (12, 12, 1)]),
    "capsnet_no_decoder_r1": (lambda: capsules.capsnet(3, input_shape=(10, 10, 1), conv_channels=4, conv_kernel=3, primary_types=2, primary_dim=4, primary_kernel=3, digit_dim=5, iterations=1, decoder_hidden=None), (4, 10, 10, 1), [(4, 10, 10, 2)]),
}

SLOW = {"alexnet_tiny"}  # eight layers of eager compilations: ~30 s on a busy 2-core CPU

# (row, check) -> why the row does not yet meet the contract (the module must change, not the row)
PENDING: dict[tuple[str, str], str] = {
}

# (row, check) -> why the check does not apply to the row
NOT_APPLICABLE: dict[tuple[str, str], str] = {
    ("embedding", "wrong_shape"): "ids of any shape are valid: there is no wrong shape",
}

CHECKS = ("eval_shape", "jit", "vmap", "retrace", "wrong_shape")


def _cases(check):
    out = []
    for name in sorted(MODELS):
        marks = [pytest.mark.slow] if name in SLOW else []
        if (name, check) in NOT_APPLICABLE:
            continue
        if (name, check) in PENDING:
            marks.append(pytest.mark.xfail(strict=True, reason=PENDING[name, check]))
        out.append(pytest.param(name, marks=marks, id=name))
    return out


def _build(name):
    factory, shape, wrong = MODELS[name]
    model = factory()
    params = model.init(jax.random.PRNGKey(0))
    if isinstance(shape, Ints):
        x = jax.random.randint(jax.random.PRNGKey(1), shape.shape, 0, shape.high, jnp.int32)
    else:
        x = jax.random.uniform(jax.random.PRNGKey(1), shape, minval=-1.0, maxval=1.0)
    return model, params, x, wrong


def _new_values(name, x):
    """Another input of the same shape and dtype as ``x``."""
    shape = MODELS[name][1]
    return (x + 1) % shape.high if isinstance(shape, Ints) else x + 1.0


def _zeros(name, shape):
    return jnp.zeros(shape, jnp.int32 if isinstance(MODELS[name][1], Ints) else jnp.float32)


def _takes_train(apply) -> bool:
    return "train" in inspect.signature(apply).parameters


def _close(a, b, **tol):
    tol = {"rtol": 1e-5, "atol": 1e-6, **tol}
    chex.assert_trees_all_equal_shapes_and_dtypes(a, b)
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, **tol), a, b)


def _library_factories() -> set[str]:
    """The public functions of the library that build a model: their body returns ``Model(...)``,
    ``Cell(...)`` or ``make_cell(...)``, or their return annotation is a NamedTuple with ``init``
    and ``apply`` fields (as the RBM's)."""
    import importlib
    import pkgutil

    import dlmodels
    names = set()
    for info in pkgutil.walk_packages(dlmodels.__path__, "dlmodels."):
        if (info.name.startswith(("dlmodels.experiments", "dlmodels.benchmarks"))
                or info.name.endswith("__main__")):
            continue
        module = importlib.import_module(info.name)
        for attr, obj in vars(module).items():
            if (attr.startswith("_") or not inspect.isfunction(obj)
                    or obj.__module__ != module.__name__):
                continue
            returns = obj.__annotations__.get("return")
            if isinstance(returns, str):
                returns = vars(module).get(returns.strip())
            fields = set(getattr(returns, "_fields", ()))
            if ({"init", "apply"} <= fields
                    or re.search(r"return (Model|Cell|make_cell)\(", inspect.getsource(obj))):
                names.add(attr)
    return names


def test_table_covers_every_factory():
    """Every function in the library that returns a ``Model`` or a ``Cell`` has a row."""
    factories = _library_factories() - {"make_cell"}  # make_cell assembles the others' parts
    assert {"dense", "mlp", "lstm", "resnet", "time_skip", "rbm"} <= factories  # the search works
    rows = " ".join(inspect.getsource(f) for f, _, _ in MODELS.values()) + inspect.getsource(rbm_model)
    missing = sorted(f for f in factories if not re.search(rf"\b{f}\(", rows))
    assert not missing, f"factories without a row in MODELS: {missing}"


@pytest.mark.parametrize("name", _cases("eval_shape"))
def test_eval_shape_matches_apply_and_is_finite(name):
    model, params, x, _ = _build(name)
    init_shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0))
    chex.assert_trees_all_equal_shapes_and_dtypes(init_shapes, params)
    out = model.apply(params, x)
    chex.assert_trees_all_equal_shapes_and_dtypes(jax.eval_shape(model.apply, params, x), out)
    assert jax.tree.leaves(out), "apply returned nothing"
    chex.assert_tree_all_finite(params)
    chex.assert_tree_all_finite(out)


@pytest.mark.parametrize("name", _cases("jit"))
def test_jit_equals_eager(name):
    model, params, x, _ = _build(name)
    key = jax.random.PRNGKey(2)
    if _takes_train(model.apply):  # training mode: the dropout masks come from the key
        forward = lambda p, x, k: model.apply(p, x, key=k, train=True)
    else:
        forward = lambda p, x, k: model.apply(p, x)
    _close(jax.jit(forward)(params, x, key), forward(params, x, key))


@pytest.mark.parametrize("name", _cases("vmap"))
def test_vmap_equals_loop(name):
    model, params, x, _ = _build(name)
    over_examples = jax.vmap(model.apply, in_axes=(None, 0))(params, x[:, None])
    for i in range(x.shape[0]):
        _close(jax.tree.map(lambda a: a[i], over_examples), model.apply(params, x[i:i + 1]))
    seeds = jax.vmap(model.init)(jax.random.split(jax.random.PRNGKey(3), 3))
    over_params = jax.vmap(model.apply, in_axes=(0, None))(seeds, x)
    for k, key in enumerate(jax.random.split(jax.random.PRNGKey(3), 3)):
        one = model.init(key)
        _close(jax.tree.map(lambda a: a[k], seeds), one)
        _close(jax.tree.map(lambda a: a[k], over_params), model.apply(one, x))


@pytest.mark.parametrize("name", _cases("retrace"))
def test_second_call_does_not_retrace(name):
    model, params, x, _ = _build(name)
    chex.clear_trace_counter()  # the counter is keyed by source location, shared by the rows
    forward = jax.jit(chex.assert_max_traces(lambda p, x: model.apply(p, x), n=1))
    first = forward(params, x)
    second = forward(jax.tree.map(lambda a: a * 0.5, params), _new_values(name, x))  # same shapes, new values
    chex.assert_trees_all_equal_shapes_and_dtypes(first, second)


@pytest.mark.parametrize("name", _cases("wrong_shape"))
def test_wrong_shape_raises_shape_error(name):
    model, params, _, wrongs = _build(name)
    assert wrongs
    for wrong in wrongs:
        actual = r",\s*".join(map(str, wrong)) + ("," if len(wrong) == 1 else "")
        with pytest.raises(ShapeError, match=rf"\({actual}\)"):  # the message names the shape
            model.apply(params, _zeros(name, wrong))
    assert issubclass(ShapeError, ValueError)
