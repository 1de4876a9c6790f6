"""A batch of trees as one padded node table, and the bottom-up evaluation over it.

A tree is a leaf, a ``str`` token, or an internal node, a tuple ``(label, child_1, ..., child_n)``
(n >= 1) whose label is a ``str`` token (the node's input x_j) or ``None`` (no input, x_j = 0).
ListOps' ``parse`` gives such trees, e.g. ``("[MAX", "2", "9", ("[MIN", "4", "7"), "0")``.

:func:`pack` writes the trees of a batch into arrays: tree b's nodes are rows ``0..n_b - 1`` of
its table, in post-order (children before their parent, left to right), its root last; rows
``n_b..N - 1`` are padding. A node's height is 0 for a leaf and ``1 + max(children's heights)``
otherwise, so the nodes of height h depend only on nodes of heights < h, and
:func:`bottom_up` computes the levels in order, every tree of the batch at once, in one
``lax.scan`` (a level's nodes in chunks of W, only real nodes computed): the depth of the
computation is the tree's height, O(log n) for a balanced tree of n leaves, against n for a
chain. No Python recursion at run time; the gradient is a custom VJP (a reverse scan).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from dlmodels.validation import ShapeError, check_choice, concrete

Tree = Any  # str | tuple[str | None, Tree, ...]


class Forest(NamedTuple):
    """A batch of B trees in one padded node table of N nodes (K child slots) per tree.

    Every field has the tree axis first, so a Forest of a whole data set can be sliced into
    batches like any other array pytree (``dlmodels.train.fit`` does so). Padding rows are
    ``tokens 0, has_token False, children -1, mask False, height 0, depth 0``.

    - ``tokens [B, N]`` int32: the token id of a leaf, or of an internal node's label (0 if none);
    - ``has_token [B, N]`` bool: the node has an input token (False for a ``None`` label);
    - ``children [B, N, K]`` int32: row indices of the node's children in order, -1 = none;
    - ``mask [B, N]`` bool: a real node (not padding);
    - ``height [B, N]`` int32: 0 for leaves, 1 + the children's maximum otherwise;
    - ``depth [B, N]`` int32: edges from the node up to its root (the root has 0);
    - ``root [B]`` int32: the root's row (= the tree's number of nodes - 1);
    - ``levels [B, L]`` int32: how many of tree b's nodes have height h = 0..L-1. Its length
      ``L`` (static: a shape) is the number of levels evaluated, ``max_height + 1`` when packed
      with ``max_height``, so batches packed with the same ``max_nodes``/``max_children``/
      ``max_height`` have the same shapes and share one compiled program. ``None`` (a Forest
      built by hand) falls back to the height's maximum + 1 when it is known, else N.
    """

    tokens: Any
    has_token: Any
    children: Any
    mask: Any
    height: Any
    depth: Any
    root: Any
    levels: Any = None


def _token_lookup(token_ids) -> Callable[[str], int]:
    """A function str -> int from a dict, a :class:`~dlmodels.text.vocab.Vocab` or a callable;
    unknown tokens raise ValueError (a Vocab is looked up with ``index``, not mapped to unk: use a
    callable such as ``lambda t: vocab.encode([t])[0]`` for that)."""
    if isinstance(token_ids, Mapping):
        def get(token):
            try:
                return token_ids[token]
            except KeyError:
                raise ValueError(f"pack: unknown token {token!r} (not in token_ids, "
                                 f"{len(token_ids)} tokens)") from None
    elif hasattr(token_ids, "index") and hasattr(token_ids, "encode"):   # a Vocab
        def get(token):
            try:
                return token_ids.index(token)
            except KeyError:
                raise ValueError(f"pack: unknown token {token!r} (not in the vocabulary, "
                                 f"{len(token_ids)} tokens)") from None
    elif callable(token_ids):
        get = token_ids
    else:
        raise TypeError(f"pack: token_ids must be a dict, a Vocab or a callable str -> int, got "
                        f"{type(token_ids).__name__}")
    cache: dict[str, int] = {}

    def lookup(token: str) -> int:
        if token not in cache:
            i = get(token)
            if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)) or i < 0:
                raise ValueError(f"pack: token {token!r} maps to {i!r}, not an integer id >= 0")
            cache[token] = int(i)
        return cache[token]

    return lookup


def _flatten(tree: Tree, lookup, b: int):
    """Tree b's nodes in post-order: lists of (token id, has token, children rows, height,
    depth). Iterative, so deep trees do not hit Python's recursion limit."""
    tokens, has, kids, heights, depths = [], [], [], [], []
    done: list[int] = []                          # rows of finished subtrees, in order
    stack = [(tree, 0, False)]
    while stack:
        node, d, expanded = stack.pop()
        if isinstance(node, str):
            done.append(len(tokens))
            tokens.append(lookup(node)), has.append(True), kids.append(())
            heights.append(0), depths.append(d)
        elif isinstance(node, tuple):
            if len(node) < 2:
                raise ValueError(f"pack: tree {b} has an internal node {node!r} without children "
                                 f"(a leaf is a str token, an internal node (label, child, ...))")
            label = node[0]
            if label is not None and not isinstance(label, str):
                raise TypeError(f"pack: tree {b}: a node's label must be a str token or None, "
                                f"got {label!r}")
            n = len(node) - 1
            if not expanded:
                stack.append((node, d, True))
                stack.extend((child, d + 1, False) for child in reversed(node[1:]))
                continue
            rows = tuple(done[-n:])
            del done[-n:]
            done.append(len(tokens))
            tokens.append(0 if label is None else lookup(label)), has.append(label is not None)
            kids.append(rows), heights.append(1 + max(heights[r] for r in rows)), depths.append(d)
        else:
            raise TypeError(f"pack: tree {b}: a node must be a str token or a tuple "
                            f"(label, *children), got {type(node).__name__} {node!r}")
    return tokens, has, kids, heights, depths


def pack(trees: Sequence[Tree], token_ids, *, max_children: int | None = None,
         max_nodes: int | None = None, max_height: int | None = None) -> Forest:
    """Pack a batch of trees into one padded node table (a :class:`Forest`), in numpy.

    ``token_ids``: str -> int, a dict, a :class:`~dlmodels.text.vocab.Vocab` (``index``: unknown
    tokens raise) or a callable. ``max_children`` (K), ``max_nodes`` (N), ``max_height`` (L - 1):
    the padded sizes; each defaults to the batch's own maximum (K at least 1). Give all three for
    the same shapes (one compiled program) across batches. Raises ValueError for an empty batch,
    an unknown token, a node with more than ``max_children`` children, a tree with more than
    ``max_nodes`` nodes or of height over ``max_height``; TypeError for a node that is neither a
    str nor a tuple. Not jittable (it walks Python tuples); call it when preparing data.
    """
    trees = list(trees) if not isinstance(trees, (str, tuple)) else None
    if trees is None:
        raise TypeError("pack: trees must be a list of trees (got a single tree: wrap it in [])")
    if not trees:
        raise ValueError("pack: the batch is empty (no trees)")
    for name, value in (("max_children", max_children), ("max_nodes", max_nodes)):
        if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
            raise ValueError(f"pack: {name} must be an integer >= 1, got {value!r}")
    if max_height is not None and (not isinstance(max_height, (int, np.integer))
                                   or max_height < 0):
        raise ValueError(f"pack: max_height must be an integer >= 0, got {max_height!r}")
    lookup = _token_lookup(token_ids)
    flat = [_flatten(t, lookup, b) for b, t in enumerate(trees)]
    n_nodes = [len(f[0]) for f in flat]
    n_kids = [max((len(k) for k in f[2]), default=0) for f in flat]
    heights = [f[3][-1] for f in flat]                   # the root's height is the tree's
    for b in range(len(trees)):
        if max_children is not None and n_kids[b] > max_children:
            raise ValueError(f"pack: tree {b} has a node with {n_kids[b]} children, more than "
                             f"max_children={max_children} (binarize it, or raise max_children)")
        if max_nodes is not None and n_nodes[b] > max_nodes:
            raise ValueError(f"pack: tree {b} has {n_nodes[b]} nodes, more than "
                             f"max_nodes={max_nodes}")
        if max_height is not None and heights[b] > max_height:
            raise ValueError(f"pack: tree {b} has height {heights[b]}, over "
                             f"max_height={max_height}")
    B = len(trees)
    N = max_nodes or max(n_nodes)
    K = max_children or max(1, max(n_kids))
    L = (max_height if max_height is not None else max(heights)) + 1
    tokens = np.zeros((B, N), np.int32)
    has_token = np.zeros((B, N), bool)
    children = np.full((B, N, K), -1, np.int32)
    mask = np.zeros((B, N), bool)
    height = np.zeros((B, N), np.int32)
    depth = np.zeros((B, N), np.int32)
    levels = np.zeros((B, L), np.int32)
    for b, (tok, has, kids, hs, ds) in enumerate(flat):
        n = len(tok)
        tokens[b, :n], has_token[b, :n], mask[b, :n] = tok, has, True
        height[b, :n], depth[b, :n] = hs, ds
        for j, rows in enumerate(kids):
            children[b, j, :len(rows)] = rows
        levels[b] = np.bincount(hs, minlength=L)
    root = np.asarray(n_nodes, np.int32) - 1
    return Forest(tokens, has_token, children, mask, height, depth, root, levels)


def binarize(tree: Tree, side: str = "left") -> Tree:
    """The tree with every node of n > 2 children split into binary nodes with the same label:
    ``(op, a, b, c)`` becomes ``(op, (op, a, b), c)`` (``side="left"``, left-branching) or
    ``(op, a, (op, b, c))`` (``side="right"``). Nodes with 1 or 2 children and leaves are kept
    (with their children binarized)."""
    check_choice("binarize: side", side, ("left", "right"))
    if isinstance(tree, str):
        return tree
    if not isinstance(tree, tuple) or len(tree) < 2:
        raise TypeError(f"binarize: a node must be a str token or a tuple (label, *children), "
                        f"got {tree!r}")
    label, kids = tree[0], [binarize(k, side) for k in tree[1:]]
    if len(kids) <= 2:
        return (label, *kids)
    if side == "left":
        node = (label, kids[0], kids[1])
        for k in kids[2:]:
            node = (label, node, k)
        return node
    node = (label, kids[-2], kids[-1])
    for k in reversed(kids[:-2]):
        node = (label, k, node)
    return node


def check_forest(forest: Forest, what: str) -> tuple[int, int, int]:
    """``(B, N, K)`` of a Forest whose fields have consistent shapes and integer/bool dtypes;
    ShapeError / TypeError naming the field otherwise. Free under jit (shapes are static)."""
    if not isinstance(forest, Forest):
        raise TypeError(f"{what}: expected a Forest (from dlmodels.recursive.pack), got "
                        f"{type(forest).__name__}")
    if jnp.ndim(forest.children) != 3:
        raise ShapeError(f"{what}: forest.children must be [B, N, K], got shape "
                         f"{jnp.shape(forest.children)}")
    B, N, K = jnp.shape(forest.children)
    for name in ("tokens", "has_token", "mask", "height", "depth"):
        if jnp.shape(getattr(forest, name)) != (B, N):
            raise ShapeError(f"{what}: forest.{name} must be [B, N] = [{B}, {N}] (as children "
                             f"[B, N, K]), got {jnp.shape(getattr(forest, name))}")
    if jnp.shape(forest.root) != (B,):
        raise ShapeError(f"{what}: forest.root must be [B] = [{B}], got {jnp.shape(forest.root)}")
    if forest.levels is not None and (jnp.ndim(forest.levels) != 2
                                      or jnp.shape(forest.levels)[0] != B):
        raise ShapeError(f"{what}: forest.levels must be [B, L] = [{B}, L], got "
                         f"{jnp.shape(forest.levels)}")
    for name in ("tokens", "children", "height", "root"):
        if not jnp.issubdtype(jnp.result_type(getattr(forest, name)), jnp.integer):
            raise TypeError(f"{what}: forest.{name} must be integers, got "
                            f"{jnp.result_type(getattr(forest, name))}")
    for name in ("has_token", "mask"):
        if jnp.result_type(getattr(forest, name)) != jnp.bool_:
            raise TypeError(f"{what}: forest.{name} must be bool, got "
                            f"{jnp.result_type(getattr(forest, name))}")
    children = concrete(forest.children)
    if children is not None and children.size and (children.min() < -1 or children.max() >= N):
        raise ValueError(f"{what}: forest.children holds rows outside -1..{N - 1}")
    return B, N, K


def n_levels(forest: Forest) -> int:
    """The number of levels :func:`bottom_up` evaluates (static): ``levels.shape[-1]``; for a
    Forest without ``levels``, the maximum height + 1 when known (outside jit), else N."""
    if forest.levels is not None:
        return int(jnp.shape(forest.levels)[-1])
    height = concrete(forest.height)
    if height is not None:
        return int(height.max(initial=0)) + 1
    return int(jnp.shape(forest.height)[-1])


def chunk_size(batch_size: int, n_nodes: int) -> int:
    """The default number of nodes :func:`bottom_up` evaluates per scan step:
    ``min(B N, max(64, 2 B))``."""
    return int(min(batch_size * n_nodes, max(64, 2 * batch_size)))


def bottom_up(forest: Forest, node_fn: Callable[[Any, Any, Any], Any], inputs: Any,
              initial: Any, *, weights: Any = None, chunk: int | None = None) -> Any:
    """Evaluate every node of every tree bottom-up, level by level, in one ``lax.scan``:

        state_j = node_fn(weights, inputs_j, (state_{c_1}, ..., state_{c_K}))  (0: no child)

    for the real nodes of height 0, then 1, ..., L-1, all trees of the batch at once.

    - ``inputs``: a pytree of floating per-node arrays ``[B, N, ...]`` (e.g. the embedded
      tokens);
    - ``initial``: a pytree of per-node state buffers ``[B, N, ...]`` (zeros): padding rows
      keep it;
    - ``weights``: a pytree of floating arrays (the parameters ``node_fn`` uses; pass them
      here, not by closure: the gradient is a custom VJP, below);
    - ``node_fn(weights, inputs_rows, kids)``: ``inputs_rows`` the inputs of W nodes
      ``[W, ...]``, ``kids`` the state pytree of their children ``[W, K, ...]`` (zeros for
      missing children) -> their new states ``[W, ...]``; a pure function of its arguments;
    - returns the state pytree ``[B, N, ...]``.

    How: the batch's B N rows are sorted by height (padding last), so level h is a contiguous
    run of ``c_h`` rows; the scan visits it in chunks of W = ``chunk`` rows (default
    :func:`chunk_size`), gathering the children's states from the flat state buffer and
    scattering the new states back, so a node is computed once, when all its children are done,
    and the work is proportional to the real nodes, not to B N L. The number of steps is static,
    ``L + ceil(B N / W)`` (L = :func:`n_levels`); steps past the last chunk skip the node
    computation with ``lax.cond``, so batches with the same padded shapes share one compiled
    program. The gradient is a custom VJP, a reverse scan over the same chunks that recomputes
    each chunk's ``node_fn`` VJP from the final states (a node's state never changes once
    written) and scatter-adds the cotangents into the children's rows in place: automatic
    differentiation of the scan would add a whole [B N, ...] buffer at every step. Jittable,
    differentiable (first order) w.r.t. ``weights``, ``inputs`` and ``initial``, vmappable
    (over weights; vmapped over forests the cond becomes a select and every step computes).
    """
    B, N, K = check_forest(forest, "bottom_up")
    L = n_levels(forest)
    W = chunk_size(B, N) if chunk is None else int(chunk)
    if W < 1:
        raise ValueError(f"bottom_up: chunk must be >= 1, got {chunk!r}")
    M = B * N                                             # flat rows; row M is a zero row
    height = jnp.asarray(forest.height).reshape(M)
    key = jnp.where(jnp.asarray(forest.mask).reshape(M), height, L)      # padding sorts last
    order = jnp.argsort(key, stable=True)                                # rows by level
    count = (key[:, None] == jnp.arange(L, dtype=key.dtype)[None, :]).sum(0)   # c_h [L]
    children = jnp.asarray(forest.children)
    offset = (jnp.arange(B, dtype=children.dtype) * N)[:, None, None]
    kids_flat = jnp.where(children >= 0, children + offset, M).reshape(M, K)
    n_chunks = -(-count // W)                                            # [L]
    plan = {"order": jnp.concatenate([order, jnp.full((W,), M, order.dtype)]),
            "count": count, "first": jnp.cumsum(count) - count, "n_chunks": n_chunks,
            "chunk_end": jnp.cumsum(n_chunks),
            "kids": jnp.concatenate([kids_flat, jnp.full((1, K), M, kids_flat.dtype)]),
            "written": jnp.concatenate([key < L, jnp.ones((1,), bool)])}    # row M: not kept

    def flat(a):                                          # [B, N, ...] -> [M + 1, ...]
        a = jnp.asarray(a).reshape((M,) + jnp.shape(a)[2:])
        return jnp.concatenate([a, jnp.zeros((1,) + a.shape[1:], a.dtype)])

    for name, tree in (("inputs", inputs), ("initial", initial), ("weights", weights)):
        for leaf in jax.tree_util.tree_leaves(tree):
            if not jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
                raise TypeError(f"bottom_up: {name} must be floating arrays (they are "
                                f"differentiated), got {jnp.result_type(leaf)}")
    config = (W, L + -(-M // W), M, L)
    state = _levels(node_fn, config, weights, jax.tree_util.tree_map(flat, inputs),
                    jax.tree_util.tree_map(flat, initial), plan)
    return jax.tree_util.tree_map(lambda s: s[:M].reshape((B, N) + s.shape[1:]), state)


def _chunk(t, plan, config):
    """Step t's chunk: the rows it computes (M where unused), their children's rows, the
    valid lanes, whether the step computes at all."""
    W, _, M, L = config
    h = jnp.minimum(jnp.searchsorted(plan["chunk_end"], t, side="right"), L - 1)
    r = t - (plan["chunk_end"][h] - plan["n_chunks"][h])                 # chunk within level
    n_valid = jnp.clip(plan["count"][h] - r * W, 0, W)
    active = t < plan["chunk_end"][-1]
    valid = (jnp.arange(W) < n_valid) & active
    rows = jnp.where(valid, lax.dynamic_slice(plan["order"], (plan["first"][h] + r * W,),
                                              (W,)), M)
    return rows, plan["kids"][rows], valid, active


def _zero_cotangent(a):
    a = jnp.asarray(a)
    if jnp.issubdtype(a.dtype, jnp.inexact):
        return jnp.zeros(a.shape, a.dtype)
    return np.zeros(a.shape, jax.dtypes.float0)


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _levels(node_fn, config, weights, inputs, state, plan):
    W, steps, M, _ = config

    def step(state, t):
        rows, kid_rows, valid, active = _chunk(t, plan, config)
        rows_in = jax.tree_util.tree_map(lambda a: a[rows], inputs)
        kids = jax.tree_util.tree_map(lambda s: s[kid_rows], state)              # [W, K, ...]
        new = lax.cond(active, lambda: node_fn(weights, rows_in, kids),
                       lambda: jax.tree_util.tree_map(
                           lambda s: jnp.zeros((W,) + s.shape[1:], s.dtype), state))
        target = jnp.where(valid, rows, M + 1)                               # M + 1: dropped
        state = jax.tree_util.tree_map(lambda s, n: s.at[target].set(n, mode="drop"),
                                       state, new)
        return state, None

    state, _ = lax.scan(step, state, jnp.arange(steps))
    return state


def _levels_fwd(node_fn, config, weights, inputs, state, plan):
    out = _levels(node_fn, config, weights, inputs, state, plan)
    return out, (weights, inputs, out, plan)


def _levels_bwd(node_fn, config, residuals, ct_out):
    weights, inputs, out, plan = residuals
    W, steps, M, _ = config

    def step(carry, t):
        ct_state, ct_inputs, ct_weights = carry
        rows, kid_rows, valid, active = _chunk(t, plan, config)
        target = jnp.where(valid, rows, M + 1)
        g_new = jax.tree_util.tree_map(
            lambda c: c.at[target].get(mode="fill", fill_value=0), ct_state)   # [W, ...]
        rows_in = jax.tree_util.tree_map(lambda a: a[rows], inputs)
        kids = jax.tree_util.tree_map(lambda s: s[kid_rows], out)     # final = read values

        def vjp():
            _, f_vjp = jax.vjp(lambda w, x, k: node_fn(w, x, k), weights, rows_in, kids)
            return f_vjp(g_new)

        def none():
            return (jax.tree_util.tree_map(_zero_cotangent, weights),
                    jax.tree_util.tree_map(_zero_cotangent, rows_in),
                    jax.tree_util.tree_map(_zero_cotangent, kids))

        d_w, d_in, d_kids = lax.cond(active, vjp, none)
        ct_weights = jax.tree_util.tree_map(jnp.add, ct_weights, d_w)
        ct_inputs = jax.tree_util.tree_map(lambda c, d: c.at[rows].add(d), ct_inputs, d_in)
        ct_state = jax.tree_util.tree_map(lambda c, d: c.at[kid_rows].add(d), ct_state, d_kids)
        return (ct_state, ct_inputs, ct_weights), None

    carry = (ct_out, jax.tree_util.tree_map(_zero_cotangent, inputs),
             jax.tree_util.tree_map(_zero_cotangent, weights))
    (ct_state, ct_inputs, ct_weights), _ = lax.scan(step, carry, jnp.arange(steps)[::-1])
    # A written row's initial value never reaches the output; row M is the shared zero row read
    # for missing children. (Zeroing written rows inside the loop would make XLA copy the buffer
    # at every step: nothing orders that write after the read of g_new.)
    kept = ~plan["written"]
    ct_state = jax.tree_util.tree_map(
        lambda c: jnp.where(kept.reshape((-1,) + (1,) * (c.ndim - 1)), c, jnp.zeros((), c.dtype)),
        ct_state)
    ct_inputs = jax.tree_util.tree_map(lambda c: c.at[M].set(0), ct_inputs)
    return (ct_weights, ct_inputs, ct_state, jax.tree_util.tree_map(_zero_cotangent, plan))


_levels.defvjp(_levels_fwd, _levels_bwd)


def root_rows(buffer: jax.Array, root: jax.Array) -> jax.Array:
    """The roots' rows of a per-node buffer: ``buffer [B, N, D]``, ``root [B]`` -> ``[B, D]``."""
    return jnp.take_along_axis(buffer, jnp.asarray(root)[:, None, None], axis=1)[:, 0]
