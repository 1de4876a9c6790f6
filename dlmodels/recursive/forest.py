"""A batch of trees as one padded node table, and the bottom-up evaluation over it.

A tree is a leaf, a ``str`` token, or an internal node, a tuple ``(label, child_1, ..., child_n)``
(n >= 1) whose label is a ``str`` token (the node's input x_j) or ``None`` (no input, x_j = 0).
ListOps' ``parse`` gives such trees, e.g. ``("[MAX", "2", "9", ("[MIN", "4", "7"), "0")``.

:func:`pack` writes the trees of a batch into arrays: tree b's nodes are rows ``0..n_b - 1`` of
its table, in post-order (children before their parent, left to right), its root last; rows
``n_b..N - 1`` are padding. A node's height is 0 for a leaf and ``1 + max(children's heights)``
otherwise, so the nodes of height h depend only on nodes of heights < h, and
:func:`bottom_up` computes a whole level (every tree of the batch at once) per step of one
``lax.scan`` over the heights 0..L-1: the depth of the computation is the tree's height, O(log n)
for a balanced tree of n leaves, against n for a chain.
"""

from __future__ import annotations

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


def gather_children(buffer: jax.Array, children: jax.Array) -> jax.Array:
    """The children's rows of a per-node buffer: ``buffer [B, N, D]``, ``children [B, N, K]``
    (-1 = none) -> ``[B, N, K, D]``, zero in the slots of missing children."""
    B, N, K = children.shape
    idx = jnp.maximum(children, 0).reshape(B, N * K, 1)
    rows = jnp.take_along_axis(buffer, idx, axis=1).reshape(B, N, K, buffer.shape[-1])
    return jnp.where((children >= 0)[..., None], rows, jnp.zeros((), buffer.dtype))


def bottom_up(forest: Forest, node_fn: Callable[[Any], Any], initial: Any) -> Any:
    """Evaluate every node of every tree, level by level: for h = 0..L-1 (one ``lax.scan``),

        state[b, j] = node_fn(children's states)[b, j]   for the real nodes j with height h,

    all trees at once; other rows keep their state (``initial``, zeros for padding).

    ``initial``: a pytree of per-node buffers ``[B, N, ...]``. ``node_fn(kids)`` receives the
    same pytree with the children's states gathered, ``[B, N, K, ...]`` (zeros for missing
    children), and returns new states for every node ``[B, N, ...]`` (its per-node inputs come
    by closure); it is computed for all nodes at every level and written only where the height
    is h, so at level h every child read was written at a lower level. Jittable and vmappable;
    the number of levels is static (:func:`n_levels`), so no recompilation between batches of the
    same padded shapes.
    """
    check_forest(forest, "bottom_up")
    L = n_levels(forest)
    children = jnp.asarray(forest.children)
    is_real = jnp.asarray(forest.mask)
    height = jnp.asarray(forest.height)

    def level(state, h):
        kids = jax.tree_util.tree_map(lambda buf: gather_children(buf, children), state)
        new = node_fn(kids)
        write = is_real & (height == h)
        state = jax.tree_util.tree_map(
            lambda n, s: jnp.where(write.reshape(write.shape + (1,) * (s.ndim - 2)), n, s),
            new, state)
        return state, None

    state, _ = lax.scan(level, initial, jnp.arange(L, dtype=height.dtype))
    return state


def root_rows(buffer: jax.Array, root: jax.Array) -> jax.Array:
    """The roots' rows of a per-node buffer: ``buffer [B, N, D]``, ``root [B]`` -> ``[B, D]``."""
    return jnp.take_along_axis(buffer, jnp.asarray(root)[:, None, None], axis=1)[:, 0]
