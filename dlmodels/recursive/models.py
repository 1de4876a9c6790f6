"""Recursive networks over trees: Socher's recursive neural network and the child-sum and N-ary
Tree-LSTMs of Tai, Socher & Manning (2015), with a softmax classifier on the root (or on every
node), evaluated on a packed :class:`~dlmodels.recursive.forest.Forest` level by level.

Every node j has an input ``x_j``: the embedding of its token (a leaf's word, an internal node's
label such as ListOps' ``[MAX``), 0 where the node has no token. Its children are ``c_1..c_n`` (in
order); missing children (a slot past the node's n) have state 0.

The models' ``apply(params, forest, *, key=None, train=False, inputs=None,
return_states=False)``:

- ``forest``: a :class:`Forest` of B trees in N rows (K child slots) each, from :func:`pack`;
- ``inputs [B, N, E]`` (optional): replaces the embedding look-up, ``x_j = inputs[b, j]`` (still
  0 where ``has_token`` is False), so a caller can differentiate with respect to each node's
  input (the gradient reaching a leaf);
- returns the root's logits ``[B, n_classes]``, with ``node_classifier=True`` every node's
  ``[B, N, n_classes]`` (0 on padding rows), with ``return_states=True`` the node states
  ``[B, N, hidden]`` (0 on padding rows; :func:`node_states`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dlmodels.model import Model
from dlmodels.nn import dense, initializers
from dlmodels.nn.dropout import dropout as _dropout
from dlmodels.recursive.forest import Forest, bottom_up, check_forest, root_rows
from dlmodels.text.embedding import embedding
from dlmodels.validation import ShapeError, check_choice, check_in_range

KINDS = ("child_sum", "nary")
_KIND_ALIASES = {"child_sum": "child_sum", "child-sum": "child_sum", "childsum": "child_sum",
                 "nary": "nary", "n_ary": "nary", "n-ary": "nary"}


def _check_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def _node_inputs(embed: Model, params: dict, forest: Forest, inputs, embed_dim: int,
                 what: str) -> jax.Array:
    """``x [B, N, E]``: the embedding of each node's token (or ``inputs``), 0 without a token."""
    B, N, _ = jnp.shape(forest.children)
    if inputs is None:
        x = embed.apply(params["embedding"], jnp.asarray(forest.tokens))        # [B, N, E]
    else:
        if jnp.shape(inputs) != (B, N, embed_dim):
            raise ShapeError(f"{what}: inputs must be [B, N, E] = [{B}, {N}, {embed_dim}], got "
                             f"{jnp.shape(inputs)}")
        if not jnp.issubdtype(jnp.result_type(inputs), jnp.floating):
            raise TypeError(f"{what}: inputs must be floating point, got "
                            f"{jnp.result_type(inputs)}")
        x = jnp.asarray(inputs)
    return jnp.where(jnp.asarray(forest.has_token)[..., None], x, jnp.zeros((), x.dtype))


def _outputs(head: Model, params: dict, states: jax.Array, forest: Forest, *, node_classifier,
             return_states, dropout_rate, key, train):
    """States, every node's logits (0 on padding) or the root's logits."""
    mask = jnp.asarray(forest.mask)[..., None]
    states = jnp.where(mask, states, jnp.zeros((), states.dtype))               # [B, N, H]
    if return_states:
        return states
    if node_classifier:
        feats = _dropout(states, dropout_rate, key=key, train=train)
        logits = head.apply(params["head"], feats)                               # [B, N, C]
        return jnp.where(mask, logits, jnp.zeros((), logits.dtype))
    feats = _dropout(root_rows(states, forest.root), dropout_rate, key=key, train=train)
    return head.apply(params["head"], feats)                                    # [B, C]


def _split(key, train, rate):
    if key is not None and train and rate:
        return tuple(jax.random.split(key))
    return None, None


def recursive_net(vocab_size: int, dim: int, n_classes: int, *, embed_dim: int | None = None,
                  node_classifier: bool = False, dropout: float = 0.0) -> Model:
    """Socher's recursive neural network (Socher et al. 2011, 2013; Goller & Kuechler 1996):
    each internal node j with children c_1, c_2 (binary trees: :func:`binarize` others) is

        p_j = tanh(W [c_1; c_2] + U x_j + b)            (missing child = 0; x_j = 0 without label)

    and a leaf's vector is its word embedding, ``p_j = x_j = E[token]`` (Socher's word vectors;
    ``embed_dim=None``, so E = ``dim``). With ``embed_dim`` given, leaves go through the same
    layer with no children, ``p_j = tanh(U x_j + b)`` (x_j in R^embed_dim). The classifier is
    ``softmax(p_root W_s + b_s)`` (or on every node, ``node_classifier``).

    Params (row-vector convention, ``x @ W``): ``{"embedding": {"table" [V, E]}, "w_c"
    [2 dim, dim] (rows: child 1 then child 2), "w_x" [E, dim], "b" [dim], "head": {"w" [dim,
    C], "b" [C]}}``; Glorot-uniform weights, zero biases, N(0, 1) embeddings. ``dropout``:
    inverted dropout on the node inputs x and the classifier's input (training only, from
    ``key``). A forest with more than 2 child slots raises ValueError. Module doc for ``apply``.
    """
    vocab_size, dim, n_classes = (_check_int(n, v) for n, v in (
        ("vocab_size", vocab_size), ("dim", dim), ("n_classes", n_classes)))
    leaf_is_embedding = embed_dim is None
    E = dim if embed_dim is None else _check_int("embed_dim", embed_dim)
    check_in_range("dropout", dropout, 0.0, 1.0, closed_high=False)
    embed = embedding(vocab_size, E)
    head = dense(dim, n_classes)
    glorot = initializers.glorot_uniform

    def init(key, dtype=jnp.float32):
        k_e, k_c, k_x, k_h = jax.random.split(key, 4)
        return {"embedding": embed.init(k_e, dtype), "w_c": glorot(k_c, (2 * dim, dim), dtype),
                "w_x": glorot(k_x, (E, dim), dtype), "b": jnp.zeros((dim,), dtype),
                "head": head.init(k_h, dtype)}

    def apply(params, forest, *, key=None, train=False, inputs=None, return_states=False):
        B, N, K = check_forest(forest, "recursive_net")
        if K > 2:
            raise ValueError(f"recursive_net: the forest has {K} child slots; the recursive net "
                             f"is binary (pack binarize(tree) with max_children=2)")
        k_x, k_h = _split(key, train, dropout)
        x = _node_inputs(embed, params, forest, inputs, E, "recursive_net")     # [B, N, E]
        x = _dropout(x, dropout, key=k_x, train=train)
        is_leaf = jnp.all(jnp.asarray(forest.children) < 0, axis=-1)             # [B, N]

        def node_fn(w, node, kids):                          # W nodes; kids [W, K, dim]
            p = jnp.tanh(kids.reshape(-1, K * dim) @ w["w_c"][:K * dim]
                         + node["x"] @ w["w_x"] + w["b"][None])                  # [W, dim]
            if not leaf_is_embedding:
                return p
            return jnp.where(node["leaf"][:, None] > 0, node["x"], p)

        weights = {k: params[k] for k in ("w_c", "w_x", "b")}
        states = bottom_up(forest, node_fn, {"x": x, "leaf": is_leaf.astype(x.dtype)},
                           jnp.zeros((B, N, dim), x.dtype), weights=weights)
        return _outputs(head, params, states, forest, node_classifier=node_classifier,
                        return_states=return_states, dropout_rate=dropout, key=k_h, train=train)

    return Model(init, apply)


def tree_lstm(vocab_size: int, hidden: int, n_classes: int, *, kind: str = "child_sum",
              max_children: int = 2, embed_dim: int | None = None, dropout: float = 0.0,
              node_classifier: bool = False, forget_bias: float = 1.0) -> Model:
    """Tree-LSTM (Tai, Socher & Manning 2015): an LSTM unit whose state comes from all its
    children, ``(h_k, c_k)`` for k = 1..n (0 for a missing child; leaves have none).

    Child-sum (``kind="child_sum"``, eqs. 2-8; any number of unordered children):

        h~_j = sum_k h_k
        i_j = sigma(W_i x_j + U_i h~_j + b_i)       f_jk = sigma(W_f x_j + U_f h_k + b_f)
        o_j = sigma(W_o x_j + U_o h~_j + b_o)       u_j = tanh(W_u x_j + U_u h~_j + b_u)
        c_j = i_j * u_j + sum_k f_jk * c_k           h_j = o_j * tanh(c_j)

    N-ary (``kind="nary"``, eqs. 9-14; N = ``max_children`` ordered child positions, each with
    its own weights; a forest's K child slots must be <= N):

        i_j = sigma(W_i x_j + sum_l U_i^(l) h_jl + b_i)     (likewise o_j, u_j)
        f_jk = sigma(W_f x_j + sum_l U_f^(kl) h_jl + b_f)
        c_j = i_j * u_j + sum_l f_jl * c_jl                   h_j = o_j * tanh(c_j)

    x_j = the embedding of node j's token (0 without one). The classifier is ``softmax(h_root
    W_s + b_s)`` (every node with ``node_classifier``). ``embed_dim``: E (default ``hidden``).
    ``dropout``: inverted dropout on the inputs x and on the classifier's input (training only,
    from ``key``).

    Params (row vectors, ``x @ W``; gates in the order (i, f, o, u)): ``{"embedding": {"table"
    [V, E]}, "w_x" [E, 4H], "b" [4H] (b_f starts at ``forget_bias``, +1 as Gers et al. 2000 and
    Jozefowicz et al. 2015 advise; zero elsewhere), "u_iou", "u_f", "head": {"w" [H, C], "b"
    [C]}}`` with, child-sum: ``u_iou [H, 3H]`` (U_i, U_o, U_u), ``u_f [H, H]``; N-ary:
    ``u_iou [N, H, 3H]`` (``u_iou[l]`` = the U^(l) of position l), ``u_f [N, H, N, H]``
    (``u_f[l, :, k, :]`` = U_f^(kl), from child l to child k's forget gate). Glorot-uniform
    weights, N(0, 1) embeddings. Module doc for ``apply``.
    """
    vocab_size, hidden, n_classes, max_children = (_check_int(n, v) for n, v in (
        ("vocab_size", vocab_size), ("hidden", hidden), ("n_classes", n_classes),
        ("max_children", max_children)))
    check_choice("kind", kind, tuple(_KIND_ALIASES))
    kind = _KIND_ALIASES[kind]
    E = hidden if embed_dim is None else _check_int("embed_dim", embed_dim)
    check_in_range("dropout", dropout, 0.0, 1.0, closed_high=False)
    H, NC = hidden, max_children
    embed = embedding(vocab_size, E)
    head = dense(H, n_classes)
    glorot = initializers.glorot_uniform

    def init(key, dtype=jnp.float32):
        k_e, k_x, k_iou, k_f, k_h = jax.random.split(key, 5)
        params = {"embedding": embed.init(k_e, dtype), "w_x": glorot(k_x, (E, 4 * H), dtype),
                  "b": jnp.zeros((4 * H,), dtype).at[H:2 * H].set(forget_bias)}
        if kind == "child_sum":
            params["u_iou"] = glorot(k_iou, (H, 3 * H), dtype)
            params["u_f"] = glorot(k_f, (H, H), dtype)
        else:
            params["u_iou"] = glorot(k_iou, (NC * H, 3 * H), dtype).reshape(NC, H, 3 * H)
            params["u_f"] = glorot(k_f, (NC * H, NC * H), dtype).reshape(NC, H, NC, H)
        params["head"] = head.init(k_h, dtype)
        return params

    def apply(params, forest, *, key=None, train=False, inputs=None, return_states=False):
        B, N, K = check_forest(forest, "tree_lstm")
        if kind == "nary" and K > NC:
            raise ValueError(f"tree_lstm: the forest has {K} child slots, more than the N-ary "
                             f"Tree-LSTM's max_children={NC}")
        k_x, k_h = _split(key, train, dropout)
        x = _node_inputs(embed, params, forest, inputs, E, "tree_lstm")         # [B, N, E]
        x = _dropout(x, dropout, key=k_x, train=train)
        def node_fn(w, x, kids):                             # W nodes: x [W, E]
            h, c = kids                                                          # [W, K, H]
            xw = x @ w["w_x"] + w["b"][None]                                     # [W, 4H]
            x_i, x_f, x_o, x_u = jnp.split(xw, 4, axis=-1)                       # [W, H] each
            x_iou = jnp.concatenate([x_i, x_o, x_u], -1)                         # [W, 3H]
            if kind == "child_sum":
                iou = x_iou + h.sum(axis=1) @ w["u_iou"]                         # [W, 3H]
                f = jax.nn.sigmoid(x_f[:, None, :] + h @ w["u_f"])               # [W, K, H]
            else:
                h_flat = h.reshape(-1, K * H)                                    # [W, K H]
                iou = x_iou + h_flat @ w["u_iou"][:K].reshape(K * H, 3 * H)
                f = jax.nn.sigmoid(x_f[:, None, :] + (
                    h_flat @ w["u_f"][:K, :, :K, :].reshape(K * H, K * H)).reshape(-1, K, H))
            i, o, u = jnp.split(iou, 3, axis=-1)
            c_new = jax.nn.sigmoid(i) * jnp.tanh(u) + (f * c).sum(axis=1)        # [W, H]
            return jax.nn.sigmoid(o) * jnp.tanh(c_new), c_new

        zeros = jnp.zeros((B, N, H), x.dtype)
        weights = {k: params[k] for k in ("w_x", "b", "u_iou", "u_f")}
        h, _ = bottom_up(forest, node_fn, x, (zeros, zeros), weights=weights)
        return _outputs(head, params, h, forest, node_classifier=node_classifier,
                        return_states=return_states, dropout_rate=dropout, key=k_h, train=train)

    return Model(init, apply)


def node_states(model: Model, params, forest: Forest, *, inputs=None) -> jax.Array:
    """Every node's state ``[B, N, hidden]`` (``h_j`` of a Tree-LSTM, ``p_j`` of the recursive
    net; 0 on padding rows) of a model from :func:`recursive_net` or :func:`tree_lstm`,
    evaluation mode; ``inputs [B, N, E]`` as in ``apply``."""
    return model.apply(params, forest, inputs=inputs, return_states=True)
