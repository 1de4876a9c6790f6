"""dlmodels.recursive: the packed node table against hand-made tables, and the recursive net and
Tree-LSTMs (outputs AND gradients w.r.t. every parameter and every node input) against a
per-tree recursion over the tuple tree written from the papers' equations (no node table, no
scan); check_grads; batching and padding invariance; child order (N-ary) vs permutation
invariance (child-sum); one trace for batches of the same padded sizes; vmap over seeds; errors.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlmodels.recursive import (Forest, binarize, bottom_up, node_states, pack, recursive_net,
                                tree_lstm)
from dlmodels.text.vocab import Vocab
from dlmodels.validation import ShapeError

TOKENS = ["<pad>"] + [str(d) for d in range(10)] + ["[MIN", "[MAX", "[MED", "[SM"]
IDS = {t: i for i, t in enumerate(TOKENS)}
V, C = len(TOKENS), 10

# Trees of different shapes and heights (0..3), labelled, unlabelled (None) and unary nodes.
TREES = [
    ("[MAX", "2", "9", ("[MIN", "4", "7"), "0"),
    "3",
    (None, ("[SM", "1", "2"), "5"),
    ("[MIN", ("[MAX", ("[SM", "1", ("[MED", "8")), "3"), "4"),
    ("[MED", "6", "1", "5"),
]
BINARY = [binarize(t) for t in TREES]


# ---------------------------------------------------------------------------------------------
# The independent reference: a recursion over the tuple tree, one tree at a time, un-jitted,
# written from the papers' equations. Nodes are numbered in post-order only to hand each one
# its entry of `inputs` and to return per-node states.

def _walk(tree, params, E, inputs, node_fn):
    """Post-order recursion; node_fn(x, child_states) -> state. Returns the list of states."""
    states, table = [], params["embedding"]["table"]

    def rec(node):
        if isinstance(node, str):
            label, kids = node, []
        else:
            label, kids = node[0], [rec(k) for k in node[1:]]
        j = len(states)
        if label is None:
            x = jnp.zeros(E, table.dtype)
        else:
            x = table[IDS[label]] if inputs is None else inputs[j]
        s = node_fn(x, kids, isinstance(node, str))
        states.append(s)
        return s

    rec(tree)
    return states


def ref_recursive_net(params, tree, dim, leaf_is_embedding=True, inputs=None):
    """Socher: p = tanh(W [c1; c2] + U x + b), leaf = its embedding (or tanh(U x + b))."""
    def node(x, kids, is_leaf):
        if is_leaf and leaf_is_embedding:
            return x
        cs = list(kids) + [jnp.zeros(dim, x.dtype)] * (2 - len(kids))
        return jnp.tanh(jnp.concatenate(cs) @ params["w_c"] + x @ params["w_x"] + params["b"])

    E = params["w_x"].shape[0]
    return _walk(tree, params, E, inputs, node)


def ref_child_sum(params, tree, H, inputs=None):
    """Tai et al. (2015) eqs. 2-8, gates (i, f, o, u) in w_x / b, (i, o, u) in u_iou."""
    W, b, U, Uf = params["w_x"], params["b"], params["u_iou"], params["u_f"]
    sig = jax.nn.sigmoid

    def node(x, kids, is_leaf):
        hs = [h for h, _ in kids]
        h_sum = sum(hs) if hs else jnp.zeros(H, x.dtype)
        i = sig(x @ W[:, :H] + h_sum @ U[:, :H] + b[:H])
        o = sig(x @ W[:, 2 * H:3 * H] + h_sum @ U[:, H:2 * H] + b[2 * H:3 * H])
        u = jnp.tanh(x @ W[:, 3 * H:] + h_sum @ U[:, 2 * H:] + b[3 * H:])
        c = i * u
        for h_k, c_k in kids:
            f_k = sig(x @ W[:, H:2 * H] + h_k @ Uf + b[H:2 * H])
            c = c + f_k * c_k
        return o * jnp.tanh(c), c

    return [h for h, _ in _walk(tree, params, W.shape[0], inputs, node)]


def ref_nary(params, tree, H, N, inputs=None):
    """Tai et al. (2015) eqs. 9-14: per-position U^(l), forget gates U_f^(kl)."""
    W, b, U, Uf = params["w_x"], params["b"], params["u_iou"], params["u_f"]
    sig = jax.nn.sigmoid

    def node(x, kids, is_leaf):
        i = x @ W[:, :H] + b[:H]
        o = x @ W[:, 2 * H:3 * H] + b[2 * H:3 * H]
        u = x @ W[:, 3 * H:] + b[3 * H:]
        for l, (h_l, _) in enumerate(kids):
            i = i + h_l @ U[l][:, :H]
            o = o + h_l @ U[l][:, H:2 * H]
            u = u + h_l @ U[l][:, 2 * H:]
        c = sig(i) * jnp.tanh(u)
        for k, (_, c_k) in enumerate(kids):
            f_k = x @ W[:, H:2 * H] + b[H:2 * H]
            for l, (h_l, _) in enumerate(kids):
                f_k = f_k + h_l @ Uf[l, :, k, :]
            c = c + sig(f_k) * c_k
        return sig(o) * jnp.tanh(c), c

    return [h for h, _ in _walk(tree, params, W.shape[0], inputs, node)]


def head(params, h):
    b = params["head"]["b"]
    return h @ params["head"]["w"] + b.reshape((1,) * (h.ndim - 1) + b.shape)


H = 5
MODELS = {
    "rnn": (lambda **kw: recursive_net(V, H, C, **kw), BINARY,
            lambda p, t, inputs=None: ref_recursive_net(p, t, H, inputs=inputs)),
    "rnn_leaf_layer": (lambda **kw: recursive_net(V, H, C, embed_dim=3, **kw), BINARY,
                       lambda p, t, inputs=None: ref_recursive_net(p, t, H, False, inputs)),
    "child_sum": (lambda **kw: tree_lstm(V, H, C, embed_dim=4, **kw), TREES,
                  lambda p, t, inputs=None: ref_child_sum(p, t, H, inputs)),
    "nary": (lambda **kw: tree_lstm(V, H, C, kind="nary", max_children=2, **kw), BINARY,
             lambda p, t, inputs=None: ref_nary(p, t, H, 2, inputs)),
    "nary3": (lambda **kw: tree_lstm(V, H, C, kind="nary", max_children=3, **kw),
              [binarize(t) if t is TREES[0] else t for t in TREES],
              lambda p, t, inputs=None: ref_nary(p, t, H, 3, inputs)),
}
LABELS = np.array([9, 3, 8, 1, 5])


def _xent(logits, labels):
    return -jnp.sum(jax.nn.log_softmax(logits)[jnp.arange(len(labels)), labels])


@pytest.mark.parametrize("name", list(MODELS))
def test_outputs_and_gradients_equal_per_tree_recursion(name):
    make, trees, ref = MODELS[name]
    with jax.enable_x64(True):
        model = make()
        params = model.init(jax.random.PRNGKey(1), jnp.float64)
        params = jax.tree_util.tree_map(lambda a: a + 0.1 * jnp.sin(jnp.arange(a.size).reshape(
            a.shape)), params)                                   # non-zero biases
        forest = pack(trees, IDS)

        def loss_model(p):
            return _xent(model.apply(p, forest), LABELS)

        def loss_ref(p):
            roots = jnp.stack([ref(p, t)[-1] for t in trees])
            return _xent(head(p, roots), LABELS)

        logits = model.apply(params, forest)
        want = head(params, jnp.stack([ref(params, t)[-1] for t in trees]))
        np.testing.assert_allclose(logits, want, rtol=1e-12, atol=1e-12)
        # every node's state, padding rows zero
        states = node_states(model, params, forest)
        for b, t in enumerate(trees):
            ref_states = jnp.stack(ref(params, t))
            n = len(ref_states)
            np.testing.assert_allclose(states[b, :n], ref_states, rtol=1e-12, atol=1e-12)
            assert np.all(np.asarray(states[b, n:]) == 0)
        g_model = jax.grad(loss_model)(params)
        g_ref = jax.grad(loss_ref)(params)
        assert set(g_model) == set(g_ref)
        for (path, a), b_ in zip(jax.tree_util.tree_leaves_with_path(g_model),
                                 jax.tree_util.tree_leaves(g_ref)):
            assert np.abs(np.asarray(b_)).max() > 0, jax.tree_util.keystr(path)
            np.testing.assert_allclose(a, b_, rtol=1e-10, atol=1e-12,
                                       err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize("name", ["rnn", "child_sum", "nary"])
def test_node_inputs_and_their_gradients_equal_the_recursion(name):
    """``inputs=`` replaces the embedding look-up; d loss / d x_j at every node as the recursion
    has it (the quantity the ListOps gradient study measures at the leaves)."""
    make, trees, ref = MODELS[name]
    with jax.enable_x64(True):
        model = make()
        params = model.init(jax.random.PRNGKey(2), jnp.float64)
        forest = pack(trees, IDS)
        table = params["embedding"]["table"]
        inputs = table[forest.tokens] + 0.3                      # [B, N, E], not the embedding
        np.testing.assert_allclose(model.apply(params, forest, inputs=table[forest.tokens]),
                                   model.apply(params, forest), rtol=1e-12)
        g = jax.grad(lambda x: _xent(model.apply(params, forest, inputs=x), LABELS))(inputs)
        for b, t in enumerate(trees):
            def loss_tree(x, b=b, t=t):
                return _xent(head(params, ref(params, t, inputs=x)[-1])[None], LABELS[b:b + 1])
            want = jax.grad(loss_tree)(inputs[b])
            np.testing.assert_allclose(g[b], want * np.asarray(forest.has_token[b])[:, None],
                                       rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("name", ["rnn", "child_sum", "nary"])
def test_node_classifier_is_the_head_on_every_node(name):
    make, trees, ref = MODELS[name]
    model = make(node_classifier=True)
    params = model.init(jax.random.PRNGKey(3))
    forest = pack(trees, IDS, max_nodes=12)
    logits = model.apply(params, forest)
    assert logits.shape == (len(trees), 12, C)
    for b, t in enumerate(trees):
        want = head(params, jnp.stack(ref(params, t)))
        np.testing.assert_allclose(logits[b, :len(want)], want, rtol=1e-5, atol=1e-6)
        assert np.all(np.asarray(logits[b, len(want):]) == 0)


@pytest.mark.parametrize("name", ["rnn", "child_sum", "nary"])
def test_check_grads(name):
    make, trees, _ = MODELS[name]
    with jax.enable_x64(True):
        model = make()
        params = model.init(jax.random.PRNGKey(4), jnp.float64)
        forest = pack(trees[:3], IDS)
        jax.test_util.check_grads(lambda p: _xent(model.apply(p, forest), LABELS[:3]), (params,),
                                  order=1, modes=("rev",))


# ---------------------------------------------------------------------------------------------
# Packing.

def test_pack_table_by_hand():
    f = pack([TREES[0], "3"], IDS)
    # post-order of ("[MAX", "2", "9", ("[MIN", "4", "7"), "0"): 2 9 4 7 [MIN 0 [MAX
    np.testing.assert_array_equal(f.tokens[0], [IDS[t] for t in
                                                ["2", "9", "4", "7", "[MIN", "0", "[MAX"]])
    np.testing.assert_array_equal(f.children[0, 4], [2, 3, -1, -1])
    np.testing.assert_array_equal(f.children[0, 6], [0, 1, 4, 5])
    np.testing.assert_array_equal(f.height[0], [0, 0, 0, 0, 1, 0, 2])
    np.testing.assert_array_equal(f.depth[0], [1, 1, 2, 2, 1, 1, 0])
    np.testing.assert_array_equal(f.root, [6, 0])
    np.testing.assert_array_equal(f.mask[1], [True] + [False] * 6)
    np.testing.assert_array_equal(f.tokens[1], [IDS["3"]] + [0] * 6)
    np.testing.assert_array_equal(f.levels, [[5, 1, 1], [1, 0, 0]])
    assert f.children.shape == (2, 7, 4) and f.has_token.all(where=f.mask)
    g = pack([TREES[2]], IDS)
    assert not g.has_token[0, g.root[0]] and g.tokens[0, g.root[0]] == 0
    assert all(a.dtype == np.int32 for a in (f.tokens, f.children, f.height, f.depth, f.root))


def _height_depth(tree, d=0, out=None):
    """Post-order (height, depth) of every node, by recursion (independent of pack)."""
    out = [] if out is None else out
    if isinstance(tree, str):
        out.append((0, d))
        return 0, out
    hs = [_height_depth(k, d + 1, out)[0] for k in tree[1:]]
    out.append((1 + max(hs), d))
    return 1 + max(hs), out


def test_pack_is_topological_with_heights_and_depths_of_the_recursion():
    f = pack(TREES, IDS, max_nodes=15, max_children=5, max_height=6)
    assert f.levels.shape == (len(TREES), 7)
    for b, t in enumerate(TREES):
        _, hd = _height_depth(t)
        n = len(hd)
        np.testing.assert_array_equal(f.height[b, :n], [h for h, _ in hd])
        np.testing.assert_array_equal(f.depth[b, :n], [d for _, d in hd])
        assert f.root[b] == n - 1 and f.mask[b].sum() == n
        for j in range(n):
            for k in f.children[b, j][f.children[b, j] >= 0]:
                assert k < j and f.height[b, k] < f.height[b, j]
                assert f.depth[b, k] == f.depth[b, j] + 1
        np.testing.assert_array_equal(f.levels[b], np.bincount([h for h, _ in hd], minlength=7))


def test_pack_takes_a_vocab_and_a_callable():
    vocab = Vocab(TOKENS, specials=("<pad>",))
    a = pack(TREES, IDS)
    for ids in (vocab, IDS.__getitem__):
        b = pack(TREES, ids)
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


def test_binarize():
    assert binarize(("a", "1", "2", "3", "4")) == ("a", ("a", ("a", "1", "2"), "3"), "4")
    assert binarize(("a", "1", "2", "3", "4"), "right") == ("a", "1", ("a", "2", ("a", "3", "4")))
    assert binarize((None, "1", ("b", "2", "3", "4"), "5")) == \
        (None, (None, "1", ("b", ("b", "2", "3"), "4")), "5")
    assert binarize(("a", "1")) == ("a", "1") and binarize("7") == "7"
    assert binarize(("a", "1", "2")) == ("a", "1", "2")
    assert max(len(n) for n in [BINARY[0], BINARY[4]]) == 3


@pytest.mark.parametrize("trees, kwargs, match", [
    ([], {}, "empty"),
    ([("[MAX", "1", "x")], {}, "unknown token 'x'"),
    ([("x", "1")], {}, "unknown token 'x'"),
    ([TREES[0]], {"max_children": 3}, "4 children, more than max_children=3"),
    ([TREES[0]], {"max_nodes": 6}, "7 nodes, more than max_nodes=6"),
    (["1", TREES[3]], {"max_height": 3}, "tree 1 has height 4, over max_height=3"),
    ([("[MAX",)], {}, "without children"),
    ([TREES[0]], {"max_nodes": 0}, "max_nodes must be"),
])
def test_pack_errors(trees, kwargs, match):
    with pytest.raises(ValueError, match=match):
        pack(trees, IDS, **kwargs)


def test_pack_type_errors():
    with pytest.raises(TypeError, match="a node must be a str token or a tuple"):
        pack([("[MAX", 1, "2")], IDS)
    with pytest.raises(TypeError, match="label must be a str token or None"):
        pack([(3, "1", "2")], IDS)
    with pytest.raises(TypeError, match="list of trees"):
        pack(TREES[0], IDS)
    with pytest.raises(TypeError, match="token_ids"):
        pack(TREES, 3)
    with pytest.raises(ValueError, match="not an integer id"):
        pack(TREES, lambda t: -1)


def test_pack_deep_chain_without_recursion_limit():
    tree = "1"
    for _ in range(3000):
        tree = ("[SM", tree)
    f = pack([tree], IDS)
    assert f.height[0, f.root[0]] == 3000 and f.depth[0, 0] == 3000 and f.levels.shape == (1, 3001)


# ---------------------------------------------------------------------------------------------
# Batching, compilation, vmap.

@pytest.mark.parametrize("name", ["rnn", "child_sum", "nary"])
def test_a_trees_output_does_not_depend_on_the_batch_or_padding(name):
    make, trees, _ = MODELS[name]
    model = make()
    params = model.init(jax.random.PRNGKey(5))
    K = 5 if name == "child_sum" else 2
    together = model.apply(params, pack(trees, IDS))
    padded = model.apply(params, pack(trees[::-1], IDS, max_nodes=20, max_children=K,
                                      max_height=8))[::-1]
    for b, t in enumerate(trees):
        alone = model.apply(params, pack([t], IDS))
        np.testing.assert_allclose(together[b], alone[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(padded[b], alone[0], rtol=1e-5, atol=1e-6)


def test_child_order_matters_for_nary_and_recursive_net_not_for_child_sum():
    a = ("[MAX", "1", ("[MIN", "2", "3"))
    b = ("[MAX", ("[MIN", "3", "2"), "1")             # the same children, both levels swapped
    forest = pack([a, b], IDS)
    cs = tree_lstm(V, H, C)
    out = cs.apply(cs.init(jax.random.PRNGKey(6)), forest)
    np.testing.assert_allclose(out[0], out[1], rtol=1e-6, atol=1e-7)   # sums are symmetric
    for model in (tree_lstm(V, H, C, kind="nary"), recursive_net(V, H, C)):
        out = model.apply(model.init(jax.random.PRNGKey(6)), forest)
        assert np.abs(np.asarray(out[0] - out[1])).max() > 1e-3


def test_jit_compiles_once_for_batches_of_the_same_padded_sizes():
    model = tree_lstm(V, H, C)
    params = model.init(jax.random.PRNGKey(7))
    sizes = dict(max_nodes=16, max_children=5, max_height=5)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def f(p, forest):
        return model.apply(p, forest)

    chex.clear_trace_counter()
    out1 = f(params, pack(TREES[:3], IDS, **sizes))
    out2 = f(params, pack(TREES[2:], IDS, **sizes))       # different trees, heights, sizes
    np.testing.assert_allclose(out2[0], out1[2], rtol=1e-6)
    np.testing.assert_allclose(out2, model.apply(params, pack(TREES[2:], IDS)), rtol=1e-5,
                               atol=1e-6)


def test_slicing_a_packed_data_set_gives_the_batches_forests():
    """``fit`` slices every field along the tree axis: a slice is the forest of those trees."""
    model = recursive_net(V, H, C)
    params = model.init(jax.random.PRNGKey(8))
    sizes = dict(max_nodes=16, max_children=2, max_height=6)
    everything = pack(BINARY, IDS, **sizes)
    idx = np.array([3, 0])
    batch = Forest(*(np.asarray(a)[idx] for a in everything))
    np.testing.assert_allclose(jax.jit(model.apply)(params, batch),
                               model.apply(params, pack([BINARY[3], BINARY[0]], IDS, **sizes)),
                               rtol=1e-6)


def test_forest_without_levels():
    model = tree_lstm(V, H, C, kind="nary")
    params = model.init(jax.random.PRNGKey(9))
    forest = pack(BINARY, IDS)
    bare = forest._replace(levels=None)
    want = model.apply(params, forest)
    np.testing.assert_allclose(model.apply(params, bare), want, rtol=1e-6)
    np.testing.assert_allclose(jax.jit(model.apply)(params, bare), want, rtol=1e-5, atol=1e-6)


def test_vmap_over_seeds_equals_a_loop():
    model = tree_lstm(V, H, C, kind="nary")
    forest = pack(BINARY, IDS)
    keys = jax.random.split(jax.random.PRNGKey(10), 3)
    stacked = jax.vmap(model.init)(keys)
    out = jax.jit(jax.vmap(lambda p: model.apply(p, forest)))(stacked)
    for s, k in enumerate(keys):
        np.testing.assert_allclose(out[s], model.apply(model.init(k), forest), rtol=1e-5,
                                   atol=1e-6)


def test_vmap_over_forests():
    model = recursive_net(V, H, C)
    params = model.init(jax.random.PRNGKey(11))
    sizes = dict(max_nodes=16, max_children=2, max_height=6)
    f1, f2 = pack(BINARY[:2], IDS, **sizes), pack(BINARY[2:4], IDS, **sizes)
    both = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), f1, f2)
    out = jax.vmap(model.apply, in_axes=(None, 0))(params, both)
    np.testing.assert_allclose(out[1], model.apply(params, f2), rtol=1e-6)


def test_bottom_up_counts_descendants():
    """A closed form through the generic level loop: s_j = 1 + sum of the children's s."""
    forest = pack(TREES, IDS)
    zeros = jnp.zeros(forest.tokens.shape + (1,))
    size = bottom_up(forest, lambda w, inputs, kids: 1 + kids.sum(axis=1), zeros, zeros)
    for b, t in enumerate(TREES):
        assert size[b, forest.root[b], 0] == len(_height_depth(t)[1])


def test_dropout_uses_the_key_in_training_only():
    model = tree_lstm(V, H, C, dropout=0.5)
    params = model.init(jax.random.PRNGKey(12))
    forest = pack(TREES, IDS)
    ev = model.apply(params, forest)
    np.testing.assert_array_equal(ev, model.apply(params, forest, key=jax.random.PRNGKey(0)))
    t1 = model.apply(params, forest, key=jax.random.PRNGKey(0), train=True)
    t2 = model.apply(params, forest, key=jax.random.PRNGKey(1), train=True)
    assert np.abs(np.asarray(t1 - ev)).max() > 1e-4 and np.abs(np.asarray(t1 - t2)).max() > 1e-4
    with pytest.raises(ValueError, match="PRNG key"):
        model.apply(params, forest, train=True)


# ---------------------------------------------------------------------------------------------
# Errors.

def test_model_errors():
    forest = pack(TREES, IDS)                              # 4 child slots
    rnn = recursive_net(V, H, C)
    with pytest.raises(ValueError, match="binary"):
        rnn.apply(rnn.init(jax.random.PRNGKey(0)), forest)
    nary = tree_lstm(V, H, C, kind="nary", max_children=3)
    with pytest.raises(ValueError, match="more than the N-ary"):
        nary.apply(nary.init(jax.random.PRNGKey(0)), forest)
    cs = tree_lstm(V, H, C)
    p = cs.init(jax.random.PRNGKey(0))
    with pytest.raises(ShapeError, match="inputs must be"):
        cs.apply(p, forest, inputs=jnp.zeros((5, 3, H)))
    with pytest.raises(TypeError, match="inputs must be floating"):
        cs.apply(p, forest, inputs=jnp.zeros(forest.tokens.shape + (H,), jnp.int32))
    with pytest.raises(TypeError, match="expected a Forest"):
        cs.apply(p, tuple(forest))
    with pytest.raises(ShapeError, match="forest.height"):
        cs.apply(p, forest._replace(height=forest.height[:, :3]))
    with pytest.raises(TypeError, match="forest.children must be integers"):
        cs.apply(p, forest._replace(children=forest.children.astype(np.float32)))
    with pytest.raises(TypeError, match="forest.mask must be bool"):
        cs.apply(p, forest._replace(mask=forest.mask.astype(np.int32)))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        cs.apply(p, forest._replace(tokens=forest.tokens + V))
    with pytest.raises(ValueError, match="children holds rows outside"):
        cs.apply(p, forest._replace(children=forest.children + 20))


@pytest.mark.parametrize("make, match", [
    (lambda: tree_lstm(V, H, C, kind="gru"), "kind"),
    (lambda: tree_lstm(V, 0, C), "hidden"),
    (lambda: tree_lstm(V, H, C, max_children=0), "max_children"),
    (lambda: tree_lstm(V, H, C, dropout=1.0), "dropout"),
    (lambda: recursive_net(0, H, C), "vocab_size"),
    (lambda: recursive_net(V, H, C, embed_dim=2.5), "embed_dim"),
])
def test_factory_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_nary_on_a_forest_with_fewer_child_slots_than_n():
    """K = 2 slots with N = 3 positions: position 3's weights unused (its child is 0)."""
    model = tree_lstm(V, H, C, kind="nary", max_children=3)
    params = model.init(jax.random.PRNGKey(13))
    forest = pack(BINARY, IDS)
    assert forest.children.shape[-1] == 2
    want = head(params, jnp.stack([ref_nary(params, t, H, 3)[-1] for t in BINARY]))
    np.testing.assert_allclose(model.apply(params, forest), want, rtol=1e-5, atol=1e-6)


def _ref_bottom_up(tree, u, x_rows, j=None):
    """s_j = tanh(x_j + (sum_k s_k) U) by recursion; x_rows[j] for the j-th node in post-order."""
    out = []

    def rec(node):
        kids = [rec(k) for k in node[1:]] if isinstance(node, tuple) else []
        s_sum = sum(kids) if kids else jnp.zeros(u.shape[0], u.dtype)
        s = jnp.tanh(x_rows[len(out)] + s_sum @ u)
        out.append(s)
        return s

    rec(tree)
    return jnp.stack(out)


@pytest.mark.parametrize("chunk", [1, 4, None])
def test_bottom_up_values_and_custom_vjp_equal_the_recursion_for_any_chunk(chunk):
    """Chunks of 1 node up to one chunk for everything; the custom VJP against autodiff of the
    recursion, w.r.t. the weights, every node's input and the initial state (which only the
    padding rows keep)."""
    with jax.enable_x64(True):
        forest = pack(TREES, IDS, max_nodes=12)
        B, N = forest.tokens.shape
        D = 3
        kx, ku, kr, ki = jax.random.split(jax.random.PRNGKey(14), 4)
        x = jax.random.normal(kx, (B, N, D), jnp.float64)
        u = 0.5 * jax.random.normal(ku, (D, D), jnp.float64)
        r = jax.random.normal(kr, (B, N, D), jnp.float64)
        init = jax.random.normal(ki, (B, N, D), jnp.float64)

        def node_fn(w, x_rows, kids):
            return jnp.tanh(x_rows + kids.sum(axis=1) @ w["u"])

        def loss(w, x, init):
            return jnp.sum(r * bottom_up(forest, node_fn, x, init, weights=w, chunk=chunk))

        out = bottom_up(forest, node_fn, x, init, weights={"u": u}, chunk=chunk)
        mask = np.asarray(forest.mask)
        np.testing.assert_array_equal(out[~mask], init[~mask])

        def loss_ref(w, x):
            total = 0.0
            for b, t in enumerate(TREES):
                s = _ref_bottom_up(t, w["u"], x[b])
                total = total + jnp.sum(r[b, :len(s)] * s)
            return total

        for b, t in enumerate(TREES):
            s = _ref_bottom_up(t, u, x[b])
            np.testing.assert_allclose(out[b, :len(s)], s, rtol=1e-12, atol=1e-14)
        g_w, g_x, g_init = jax.grad(loss, argnums=(0, 1, 2))({"u": u}, x, init)
        r_w, r_x = jax.grad(loss_ref, argnums=(0, 1))({"u": u}, x)
        np.testing.assert_allclose(g_w["u"], r_w["u"], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(g_x, r_x, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(g_init, np.where(mask[..., None], 0.0, r), atol=0)


def test_gradients_vmapped_over_seeds_equal_a_loop():
    """fit(seeds=...) vmaps value_and_grad over params: the custom VJP under vmap."""
    model = tree_lstm(V, H, C)
    forest = pack(TREES, IDS)
    keys = jax.random.split(jax.random.PRNGKey(15), 2)

    def loss(p):
        return _xent(model.apply(p, forest), LABELS)

    grads = jax.jit(jax.vmap(jax.grad(loss)))(jax.vmap(model.init)(keys))
    for s, k in enumerate(keys):
        for a, b in zip(jax.tree_util.tree_leaves(grads),
                        jax.tree_util.tree_leaves(jax.grad(loss)(model.init(k)))):
            np.testing.assert_allclose(a[s], b, rtol=1e-4, atol=1e-6)
