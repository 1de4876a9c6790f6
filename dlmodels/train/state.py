"""The train state: everything a training run needs to continue exactly where it stopped."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax


class TrainState(NamedTuple):
    """``params``: the model's pytree; ``opt_state``: the optax state; ``step``: int32 scalar, the
    number of updates done; ``key``: a raw ``uint32[2]`` PRNG key. The key of step ``s`` is
    ``fold_in(key, s)``, so a resumed run draws the same dropout masks as an uninterrupted one.
    ``model_state``: non-trainable state carried from step to step by a
    :class:`~dlmodels.train.estimators.GradientEstimator` (PCD's persistent Gibbs chains;
    ``()``, no leaves, for a plain loss_fn). Checkpointed and restored with the rest.

    For K runs trained in one vmapped program every leaf has a leading axis K.
    """

    params: Any
    opt_state: Any
    step: jax.Array
    key: jax.Array
    model_state: Any = ()


InitModelState = Callable[[jax.Array, Any], Any]


def create(params: Any, optimizer: optax.GradientTransformation, key: jax.Array,
           model_state: Any = ()) -> TrainState:
    """A state at step 0 for ``params``."""
    return TrainState(params, optimizer.init(params), jnp.zeros((), jnp.int32), key, model_state)


def init_state(init_fn: Callable[[jax.Array], Any], optimizer: optax.GradientTransformation,
               seed: int | jax.Array, init_model_state: InitModelState | None = None) -> TrainState:
    """Initialise from ``seed``: ``key_init, key_train = split(PRNGKey(seed))``,
    ``params = init_fn(key_init)``, ``model_state = init_model_state(fold_in(key_init, 1),
    params)`` (``()`` without it)."""
    key = jax.random.PRNGKey(seed) if np.ndim(seed) == 0 else seed
    key_init, key_train = jax.random.split(key)
    params = init_fn(key_init)
    model_state = (() if init_model_state is None
                   else init_model_state(jax.random.fold_in(key_init, 1), params))
    return create(params, optimizer, key_train, model_state)


def init_states(init_fn: Callable[[jax.Array], Any] | Sequence[Callable[[jax.Array], Any]],
                optimizer: optax.GradientTransformation, seeds: Sequence[int],
                init_model_state: InitModelState | None = None) -> TrainState:
    """K states, one per seed, stacked on a leading axis; member k equals
    ``init_state(init_fn, optimizer, seeds[k])``. ``init_fn`` may also be a sequence of K
    functions (e.g. K initialisation schemes of one architecture): member k then uses the k-th."""
    if callable(init_fn):
        keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
        return jax.vmap(lambda k: init_state(init_fn, optimizer, k, init_model_state))(keys)
    fns = list(init_fn)
    if len(fns) != len(seeds):
        raise ValueError(f"{len(fns)} init functions for {len(seeds)} runs")
    states = [init_state(f, optimizer, s, init_model_state) for f, s in zip(fns, seeds)]
    return jax.tree.map(lambda *a: jnp.stack(a), *states)


def set_hyperparams(opt_state: Any, **values) -> Any:
    """Set the hyper-parameters of an ``optax.inject_hyperparams`` optimizer inside ``opt_state``.

    For K vmapped runs pass arrays of length K to give each run its own value (a learning-rate
    sweep in one program). Raises if the optimizer has no injected hyper-parameter of that name.
    """
    found = set()

    def is_injected(x):
        return hasattr(x, "hyperparams") and isinstance(getattr(x, "hyperparams"), dict)

    def replace(x):
        if not is_injected(x):
            return x
        hp = dict(x.hyperparams)
        for name, v in values.items():
            if name in hp:
                hp[name] = jnp.asarray(v, dtype=jnp.result_type(hp[name]))
                found.add(name)
        return x._replace(hyperparams=hp)

    new = jax.tree.map(replace, opt_state, is_leaf=is_injected)
    missing = set(values) - found
    if missing:
        raise ValueError(f"no injected hyper-parameter named {sorted(missing)} in the optimizer state; "
                         "build the optimizer with optax.inject_hyperparams(...)")
    return new
