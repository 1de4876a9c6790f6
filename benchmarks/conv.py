"""Suite "conv": one training step of LeNet-5 and of a reduced AlexNet against Flax Linen and
PyTorch, with the same weights, data and optimizer on every side.

What is timed is one training step: forward, backward and the optimizer update, SGD with momentum
0.9 (lr 1e-3, no weight decay, no Nesterov), mean softmax cross-entropy over integer labels,
float32, one fixed batch (uniform [0, 1) images, uniform labels) already in place on every side,
the parameters and optimizer state carried from step to step:

* LeNet-5, batch 128, 28x28x1, 10 classes, ReLU and 2x2 max pooling (``lenet5(activation="relu",
  pool="max")``): C1 6@5x5 pad 2 [28, 28, 6] -> pool [14, 14, 6] -> C3 16@5x5 [10, 10, 16] ->
  pool [5, 5, 16] -> C5 dense 400-120 -> F6 120-84 -> 84-10.
* AlexNet at 64x64x3 (a reduced ImageNet: 1000 classes), batch 32, the paper's channels (width 1):
  conv1 96@11x11 stride 4 pad 2 [15, 15, 96], LRN, 3x3/2 max pool [7, 7, 96]; conv2 256@5x5 pad 2
  [7, 7, 256], LRN, pool [3, 3, 256]; conv3 384@3x3, conv4 384@3x3, conv5 256@3x3 (pad 1,
  [3, 3, C]), pool [1, 1, 256]; fc6 256-4096, fc7 4096-4096, fc8 4096-1000; ReLU everywhere. LRN
  on (the paper's k = 2, n = 5, alpha = 1e-4, beta = 0.75), dropout off on every side (rate 0).

The sides:

* ours (``dlmodels``): ``dlmodels.cnn.lenet5 / alexnet``, the loss of
  ``dlmodels.train.objectives.classifier``, ``optax.sgd(lr, momentum=0.9)``; the step
  ``value_and_grad -> optimizer.update -> apply_updates`` under ``jax.jit`` with the params and the
  optimizer state donated (``donate_argnums=(0, 1)``: XLA writes the new params and momenta into
  the old buffers instead of fresh ones; measured in development, AlexNet's step took the same
  time with and without it).
* ``dlmodels train_step`` (context): the library trainer's ``make_train_step`` (the same step plus
  its non-finite guard: a check of the loss and every gradient and a select of the new or old
  state), jitted with the ``TrainState`` donated.
* ``flax``: a Flax Linen module written here (``nn.Conv`` on NHWC with explicit padding,
  ``nn.max_pool``, ``nn.Dense``; LRN by hand, as Linen has none: ``jnp.square``, a window sum
  over the channel axis with ``lax.reduce_window``, ``jnp.power``), ``optax.sgd`` with momentum,
  the step jitted with the same donation as ours. (Written instead as the sum of 5 shifted slices
  of the channel-padded squares, the whole AlexNet step took ~25% longer in development; with
  ``jnp.cumsum``, ~10% longer: the faster form is used.)
* ``torch`` (NCHW) and ``torch channels_last``: ``nn.Sequential`` of ``nn.Conv2d``,
  ``nn.ReLU(inplace=True)``, ``nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2)`` (PyTorch
  divides alpha by n), ``nn.MaxPool2d``, ``nn.Flatten``, ``nn.Linear``; ``F.cross_entropy``,
  ``torch.optim.SGD(momentum=0.9)``; ``zero_grad(set_to_none=True)``, forward, ``backward()``,
  ``step()``, ``loss.item()``; float32, ``torch.set_num_threads(cpu count)``, on CUDA when JAX runs
  on a GPU and PyTorch sees one (``harness.torch_device``), else on the CPU; the second variant has
  model and input in ``torch.channels_last`` memory format. "PyTorch" in the summary is the faster
  of the two in the same rounds. ``OMP_WAIT_POLICY=PASSIVE`` is set (unless already set) before
  torch is imported, as in ``benchmarks/rnn.py``: libgomp's spin-waiting threads otherwise fight
  the JAX calls timed next to them on a shared 2-core machine.

Same function: before timing, our initial params are copied into the Flax and PyTorch models
(HWIO -> OIHW for torch; the first dense layer after the flatten has its rows permuted from our
NHWC (h, w, c) order to PyTorch's (c, h, w) order) and every side runs ``CHECK_STEPS`` training
steps from them on the same batch; the losses of every step must agree with ours within
``MAX_REL_LOSS_DIFF`` relative (step 1 checks the forward pass, steps 2 and 3 the gradients and
the momentum update; on a GPU ``backend.matmul_rtol`` loosens it, as float32 convolutions and
matmuls may run in TF32 there). The suite exits 1 if they do not.

All sides of one case are timed in interleaved rounds (``harness.time_interleaved``), together with
a large float32 ``jnp`` matmul (the machine's matmul rate, for context) and, for the AlexNet case,
the forward pass of its largest convolution (conv2, batch 32) alone in XLA and in PyTorch (the
conv kernels' rates without the rest of the step). FLOPs are counted analytically, forward:
``2 kh kw Cin Cout Hout Wout`` per image per conv, ``2 in out`` per image per dense layer; a
training step counts as 3x the forward (pooling, LRN, activations, loss, update not counted).

Run: ``python -m dlmodels.benchmarks.conv [--repeats N] [--quick] [--out PATH]`` or ``dlmodels bench conv``.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import sys
from typing import Callable

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads libgomp; see above

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlmodels.benchmarks.harness import (Case, Measurement, Result, environment, make_parser, matmul_peak,
                                print_table, time_interleaved, torch_device, write_json,
                                OtherLoad, goal_row, print_goals)
from dlmodels import backend
from dlmodels.cnn import alexnet, lenet5
from dlmodels.train import step as train_step_lib
from dlmodels.train.objectives import classifier
from dlmodels.train.state import create as create_state
from dlmodels.extras import optional_import

SUITE = "conv"
OURS = "dlmodels"
TRAINER = "dlmodels train_step"
FASTEST = "fastest peer"
PEERS = ("dlmodels train_step", "flax", "torch", "torch channels_last")
LR, MOMENTUM = 1e-3, 0.9
CHECK_STEPS = 3
MAX_REL_LOSS_DIFF = 1e-4


@dataclasses.dataclass(frozen=True)
class Net:
    """``kind``: "lenet5" or "alexnet"; ``width``: AlexNet's channel multiplier."""

    name: str
    kind: str
    batch: int
    input_shape: tuple[int, int, int]
    n_classes: int
    width: float = 1.0


NETS = (Net("lenet5", "lenet5", 128, (28, 28, 1), 10),
        Net("alexnet", "alexnet", 32, (64, 64, 3), 1000, 1.0))
QUICK_NETS = (Net("lenet5", "lenet5", 8, (28, 28, 1), 10),
              Net("alexnet", "alexnet", 2, (64, 64, 3), 10, 1 / 16))


def our_model(net: Net):
    if net.kind == "lenet5":
        return lenet5(net.n_classes, input_shape=net.input_shape, activation="relu", pool="max")
    return alexnet(net.n_classes, input_shape=net.input_shape, width=net.width, lrn=True,
                   dropout_rate=0.0)


def init_params(net: Net, seed: int = 0) -> dict:
    """``our_model(net).init(PRNGKey(seed))`` as one program (not one compile per op), compiled at
    XLA's backend optimisation level 0 (the threefry and truncated-normal kernels take seconds to
    optimise; run once, they need no speed)."""
    key = jax.random.PRNGKey(seed)
    init = jax.jit(our_model(net).init).lower(key).compile({"xla_backend_optimization_level": 0})
    return init(key)


def batch_data(net: Net, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(net.batch, *net.input_shape)).astype(np.float32)
    y = rng.integers(0, net.n_classes, size=net.batch).astype(np.int32)
    return x, y


def feature_shapes(net: Net, params) -> dict[str, tuple[int, ...]]:
    """The shapes of our model's ``return_features`` maps for one image (conv/fc outputs are named
    like their params; LeNet's last pool is "s4", AlexNet's "pool5")."""
    model = our_model(net)
    x = jax.ShapeDtypeStruct((1, *net.input_shape), jnp.float32)
    _, feats = jax.eval_shape(lambda p, x: model.apply(p, x, return_features=True), params, x)
    return {k: tuple(v.shape) for k, v in feats.items()}


def forward_flops(net: Net, params) -> tuple[float, dict]:
    """Forward FLOPs of one batch (convs and dense layers), and per layer."""
    feats = feature_shapes(net, params)
    per_layer = {}
    for name, p in params.items():
        w = p["w"]
        if w.ndim == 4:
            kh, kw, cin, cout = w.shape
            _, ho, wo, _ = feats[name]
            per_layer[name] = 2.0 * kh * kw * cin * cout * ho * wo * net.batch
        else:
            per_layer[name] = 2.0 * w.shape[0] * w.shape[1] * net.batch
    return sum(per_layer.values()), per_layer


# -- ours ----------------------------------------------------------------------------------------

def _copy(tree):
    return jax.tree.map(lambda a: jnp.array(a, copy=True), tree)


def _carry(step, state: list, *data) -> Callable[[], jax.Array]:
    """A zero-argument call of ``step(*state, *data) -> (*new_state, loss)`` that keeps the new
    state for the next call (the old one is donated) and returns the loss."""
    def go():
        *new, loss = step(*state, *data)
        state[:] = new
        return loss
    return go


def ours(net: Net, params, x, y):
    model = our_model(net)
    loss_fn, _ = classifier(model.apply, train_mode=False)
    optimizer = optax.sgd(LR, momentum=MOMENTUM)

    def step(params, opt_state, x, y):
        (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, (x, y), None)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    step = jax.jit(step, donate_argnums=(0, 1))
    params = _copy(params)
    return _carry(step, [params, optimizer.init(params)], jnp.asarray(x), jnp.asarray(y))


def ours_train_step(net: Net, params, x, y):
    model = our_model(net)
    loss_fn, _ = classifier(model.apply, train_mode=False)
    optimizer = optax.sgd(LR, momentum=MOMENTUM)
    step = jax.jit(train_step_lib.make_train_step(loss_fn, optimizer), donate_argnums=0)
    holder = [create_state(_copy(params), optimizer, jax.random.PRNGKey(0))]
    batch = (jnp.asarray(x), jnp.asarray(y))

    def go():
        holder[0], metrics = step(holder[0], batch)
        return metrics.loss
    return go


def vmapped_seed_sides(net: Net, k: int) -> dict[str, Callable]:
    """K seeds of ``net`` through the trainer, one update of every seed per call, as
    ``fit(..., seeds=K)`` and K single ``fit`` runs make them on the CPU (``steps_per_call=1``):
    ``"vmapped"``, ``make_vmapped_train_steps`` on the K stacked states (its default
    ``members="auto"``: on the CPU a convolutional step runs the K members one after another in
    the one program), and ``"sequential"``, K calls of ``make_train_steps``, one per seed."""
    model = our_model(net)
    loss_fn, _ = classifier(model.apply, train_mode=False)
    optimizer = optax.sgd(LR, momentum=MOMENTUM)
    x, y = batch_data(net)
    data = (jnp.asarray(x), jnp.asarray(y))
    rows = jnp.arange(net.batch)[None]               # one step: the whole batch
    states = [create_state(init_params(net, seed), optimizer, jax.random.PRNGKey(seed))
              for seed in range(k)]
    step_k = jax.jit(train_step_lib.make_vmapped_train_steps(loss_fn, optimizer), donate_argnums=0)
    step_1 = jax.jit(train_step_lib.make_train_steps(loss_fn, optimizer), donate_argnums=0)
    stacked = [jax.tree.map(lambda *a: jnp.stack(a), *states)]
    singles = [_copy(s) for s in states]

    def go_vmapped():
        stacked[0], metrics = step_k(stacked[0], data, rows)
        return metrics.loss[:, 0]

    def go_sequential():
        losses = []
        for i in range(k):
            singles[i], metrics = step_1(singles[i], data, rows)
            losses.append(metrics.loss[0])
        return losses

    return {"vmapped": go_vmapped, "sequential": go_sequential}


def vmapped_seeds(net: Net, k: int, *, warmup: int, repeats: int) -> tuple[Result, dict]:
    """Time ``vmapped_seed_sides`` in interleaved rounds; the first call of each side is checked
    to give the same K losses (the vmapped convolutions equal the unbatched ones). The row's
    ratio is sequential / vmapped per member (> 1: the vmapped program is faster), the median of
    the per-round ratios, with their quartiles."""
    sides = vmapped_seed_sides(net, k)
    first_v = np.asarray(sides["vmapped"]())
    first_s = np.asarray([np.asarray(l) for l in sides["sequential"]()])
    rel = float(np.max(np.abs(first_v - first_s) / np.abs(first_s)))
    timings = time_interleaved(sides, warmup=warmup, repeats=repeats)
    case = Case(f"{net.name} x{k} seeds", {"seeds": k, "batch": net.batch},
                {"path": "jax.vmap(make_train_step) vs K single-run steps"})
    result = Result(case, Measurement("vmapped", timings["vmapped"]),
                    Measurement("sequential", timings["sequential"]),
                    {"max_rel_loss_diff": rel, "same_function": rel <= MAX_REL_LOSS_DIFF})
    ratios = result.round_ratios
    q = result.ratio_quartiles()
    row = {"case": case.name, "seeds": k, "vmapped_ms": timings["vmapped"].median * 1e3,
           "sequential_ms": timings["sequential"].median * 1e3,
           "ratio_sequential_over_vmapped": statistics.median(ratios),
           "ratio_q25_q75": list(q), "max_rel_loss_diff": rel,
           "vmapped_times_s": list(timings["vmapped"].times),
           "sequential_times_s": list(timings["sequential"].times)}
    return result, row


# -- Flax Linen ----------------------------------------------------------------------------------

def _flax_modules():
    import flax.linen as nn

    def lrn(x, size=5, k=2.0, alpha=1e-4, beta=0.75):
        """Across channels (last axis): x / (k + alpha * sum of the squares of the n nearest)^beta,
        the window sum as a ``reduce_window`` over the channel axis (zero-padded)."""
        pads = ((0, 0), (0, 0), (0, 0), (size // 2, (size - 1) // 2))
        window = jax.lax.reduce_window(jnp.square(x), 0.0, jax.lax.add, (1, 1, 1, size),
                                       (1, 1, 1, 1), pads)
        return x / jnp.power(k + alpha * window, beta)

    class LeNet5(nn.Module):
        n_classes: int

        @nn.compact
        def __call__(self, x):
            x = nn.relu(nn.Conv(6, (5, 5), padding=((2, 2), (2, 2)), name="c1")(x))
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
            x = nn.relu(nn.Conv(16, (5, 5), padding="VALID", name="c3")(x))
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
            x = x.reshape((x.shape[0], -1))
            x = nn.relu(nn.Dense(120, name="c5")(x))
            x = nn.relu(nn.Dense(84, name="f6")(x))
            return nn.Dense(self.n_classes, name="output")(x)

    class AlexNet(nn.Module):
        channels: tuple[int, ...]
        fc: tuple[int, int]
        n_classes: int

        @nn.compact
        def __call__(self, x):
            c1, c2, c3, c4, c5 = self.channels
            pool = lambda h: nn.max_pool(h, (3, 3), strides=(2, 2))  # noqa: E731
            x = nn.relu(nn.Conv(c1, (11, 11), strides=(4, 4), padding=((2, 2), (2, 2)),
                                name="conv1")(x))
            x = pool(lrn(x))
            x = pool(lrn(nn.relu(nn.Conv(c2, (5, 5), padding=((2, 2), (2, 2)), name="conv2")(x))))
            x = nn.relu(nn.Conv(c3, (3, 3), padding=((1, 1), (1, 1)), name="conv3")(x))
            x = nn.relu(nn.Conv(c4, (3, 3), padding=((1, 1), (1, 1)), name="conv4")(x))
            x = pool(nn.relu(nn.Conv(c5, (3, 3), padding=((1, 1), (1, 1)), name="conv5")(x)))
            x = x.reshape((x.shape[0], -1))
            x = nn.relu(nn.Dense(self.fc[0], name="fc6")(x))
            x = nn.relu(nn.Dense(self.fc[1], name="fc7")(x))
            return nn.Dense(self.n_classes, name="fc8")(x)

    return LeNet5, AlexNet


def _sizes(params) -> dict:
    return {name: p["w"].shape[-1] for name, p in params.items()}


def flax_side(net: Net, params, x, y):
    LeNet5, AlexNet = _flax_modules()
    out = _sizes(params)
    if net.kind == "lenet5":
        module = LeNet5(net.n_classes)
    else:
        module = AlexNet(tuple(out[f"conv{i}"] for i in range(1, 6)), (out["fc6"], out["fc7"]),
                         net.n_classes)
    # our weights, copied: Linen's Conv kernel is HWIO and its Dense kernel [in, out], as ours
    variables = {"params": {name: {"kernel": jnp.array(p["w"]), "bias": jnp.array(p["b"])}
                            for name, p in params.items()}}
    shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), jnp.zeros((1, *net.input_shape)))
    if jax.tree.structure(shapes) != jax.tree.structure(variables) or any(
            a.shape != b.shape for a, b in zip(jax.tree.leaves(shapes), jax.tree.leaves(variables))):
        raise AssertionError("flax peer: parameter shapes differ from ours")
    optimizer = optax.sgd(LR, momentum=MOMENTUM)

    def loss_fn(p, x, y):
        logits = module.apply({"params": p}, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def step(p, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, loss

    step = jax.jit(step, donate_argnums=(0, 1))
    p = variables["params"]
    return _carry(step, [p, optimizer.init(p)], jnp.asarray(x), jnp.asarray(y))


# -- PyTorch -------------------------------------------------------------------------------------

def _torch_module(net: Net, params):
    torch = optional_import("torch", needed_for="the PyTorch side of the conv benchmark")
    nn = torch.nn

    out = _sizes(params)
    if net.kind == "lenet5":
        c = net.input_shape[2]
        layers = [nn.Conv2d(c, 6, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                  nn.Conv2d(6, 16, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Flatten(),
                  nn.Linear(params["c5"]["w"].shape[0], 120), nn.ReLU(inplace=True), nn.Linear(120, 84),
                  nn.ReLU(inplace=True), nn.Linear(84, net.n_classes)]
        names = {0: "c1", 3: "c3", 7: "c5", 9: "f6", 11: "output"}
        flat = 7
    else:
        c1, c2, c3, c4, c5 = (out[f"conv{i}"] for i in range(1, 6))
        f6, f7 = out["fc6"], out["fc7"]
        lrn = lambda: nn.LocalResponseNorm(5, alpha=5 * 1e-4, beta=0.75, k=2.0)  # noqa: E731
        layers = [nn.Conv2d(net.input_shape[2], c1, 11, stride=4, padding=2),
                  nn.ReLU(inplace=True), lrn(), nn.MaxPool2d(3, 2),
                  nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(inplace=True), lrn(), nn.MaxPool2d(3, 2),
                  nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(inplace=True),
                  nn.Conv2d(c3, c4, 3, padding=1), nn.ReLU(inplace=True),
                  nn.Conv2d(c4, c5, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
                  nn.Flatten(), nn.Linear(params["fc6"]["w"].shape[0], f6), nn.ReLU(inplace=True),
                  nn.Linear(f6, f7), nn.ReLU(inplace=True), nn.Linear(f7, net.n_classes)]
        names = {0: "conv1", 4: "conv2", 8: "conv3", 10: "conv4", 12: "conv5", 16: "fc6",
                 18: "fc7", 20: "fc8"}
        flat = 16
    module = nn.Sequential(*layers)
    # our weights, copied: HWIO -> OIHW, [in, out] -> [out, in]; the dense layer after the flatten
    # takes its inputs in NCHW (c, h, w) order where ours are NHWC (h, w, c)
    with torch.no_grad():
        for i, name in names.items():
            w, b = np.array(params[name]["w"]), np.array(params[name]["b"])
            if w.ndim == 4:
                w = w.transpose(3, 2, 0, 1)
            elif i == flat:
                _, hh, ww, cc = feature_shapes(net, params)["s4" if net.kind == "lenet5" else "pool5"]
                w = w.reshape(hh, ww, cc, -1).transpose(3, 2, 0, 1).reshape(w.shape[1], -1)
            else:
                w = w.T
            layer = module[i]
            if tuple(layer.weight.shape) != w.shape:
                raise AssertionError(f"torch peer: {name} weight {tuple(layer.weight.shape)} "
                                     f"vs ours {w.shape}")
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
            layer.bias.copy_(torch.from_numpy(b))
    return module


def torch_side(net: Net, params, x, y, *, channels_last: bool = False):
    torch = optional_import("torch", needed_for="the PyTorch side of the conv benchmark")
    F = torch.nn.functional

    torch.set_num_threads(os.cpu_count() or 1)
    device = torch_device()
    module = _torch_module(net, params).to(device)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().to(device)      # NHWC -> NCHW
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
        xt = xt.contiguous(memory_format=torch.channels_last)
    yt = torch.from_numpy(y).long().to(device)
    optimizer = torch.optim.SGD(module.parameters(), lr=LR, momentum=MOMENTUM)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(module(xt), yt)
        loss.backward()
        optimizer.step()
        return loss.item()                                          # the step is done by now

    return step


# -- context: matmul and conv rates ----------------------------------------------------------------

def conv_rates(net: Net, params) -> tuple[dict[str, Callable], float]:
    """AlexNet's conv2 forward alone (its input as in the step, batch ``net.batch``) in XLA and in
    PyTorch (NCHW and channels_last), and its flops."""
    torch = optional_import("torch", needed_for="the PyTorch side of the conv benchmark")
    F = torch.nn.functional

    w = np.asarray(params["conv2"]["w"])                              # HWIO
    _, h, wd, c = feature_shapes(net, params)["pool1"]
    x = np.random.default_rng(1).uniform(size=(net.batch, h, wd, c)).astype(np.float32)
    xj, wj = jnp.asarray(x), jnp.asarray(w)
    conv = jax.jit(lambda x, w: jax.lax.conv_general_dilated(
        x, w, (1, 1), ((2, 2), (2, 2)), dimension_numbers=("NHWC", "HWIO", "NHWC")))
    device = torch_device()
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().to(device)
    wt = torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1))).to(device)
    xt_cl = xt.contiguous(memory_format=torch.channels_last)
    wt_cl = wt.contiguous(memory_format=torch.channels_last)

    def torch_conv(a, b):
        def go():
            with torch.no_grad():
                return F.conv2d(a, b, padding=2).sum().item()       # .item() waits for it
        return go

    flops = 2.0 * 5 * 5 * c * w.shape[-1] * h * wd * net.batch
    return {"conv2 xla": lambda: conv(xj, wj), "conv2 torch": torch_conv(xt, wt),
            "conv2 torch channels_last": torch_conv(xt_cl, wt_cl)}, flops


# -- checks --------------------------------------------------------------------------------------

def loss_trajectories(sides: dict[str, Callable], steps: int) -> dict[str, list[float]]:
    return {name: [float(fn()) for _ in range(steps)] for name, fn in sides.items()}


def make_sides(net: Net, params, x, y, peers) -> tuple[dict[str, Callable], dict]:
    factories = {
        OURS: lambda: ours(net, params, x, y),
        "dlmodels train_step": lambda: ours_train_step(net, params, x, y),
        "flax": lambda: flax_side(net, params, x, y),
        "torch": lambda: torch_side(net, params, x, y),
        "torch channels_last": lambda: torch_side(net, params, x, y, channels_last=True),
    }
    sides, skipped = {}, {}
    for name in (OURS, *peers):
        try:
            sides[name] = factories[name]()
        except ImportError as e:
            skipped[name] = f"not installed ({e.name})"
            print(f"  skipped {name}: not installed ({e.name})", flush=True)
    return sides, skipped


def same_function(sides: dict[str, Callable]) -> dict:
    """Every side (all starting from our initial params) trained ``CHECK_STEPS`` steps on the
    batch: the losses and their largest relative difference from ours."""
    losses = loss_trajectories(sides, CHECK_STEPS)
    tolerance = backend.matmul_rtol(MAX_REL_LOSS_DIFF)
    ref = np.asarray(losses[OURS])
    diffs = {name: float(np.max(np.abs(np.asarray(v) - ref) / np.abs(ref)))
             for name, v in losses.items() if name != OURS}
    return {"steps": CHECK_STEPS, "losses": losses, "max_rel_loss_diff": diffs,
            "tolerance": tolerance,
            "passed": all(d <= tolerance for d in diffs.values())}


def summary_table(summary: list[dict]) -> str:
    """One line per case: median ms of every side, our GFLOP/s, and peer/ours of the fastest peer."""
    sides = list(dict.fromkeys(row["side"] for c in summary for row in c["sides"]))
    header = ["case", *(f"{s} ms" for s in sides), "ours GFLOP/s", "peak matmul GFLOP/s",
              "fastest peer", "fastest/ours"]
    rows = []
    for c in summary:
        ms = {row["side"]: f"{row['ms']:.2f}" for row in c["sides"]}
        ratio = c["ratio_fastest_peer_over_ours"]
        q = c["ratio_fastest_peer_q25_q75"]
        rows.append([c["case"], *(ms.get(s, "-") for s in sides), f"{c['ours_gflops']:.1f}",
                     f"{c['context_gflops']['peak matmul']:.1f}", c["fastest_peer"] or "-",
                     f"{ratio:.2f}x [{q[0]:.2f}-{q[1]:.2f}]" if ratio else "-"])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["summary (medians; fastest/ours with the quartiles of its per-round ratios):",
             "  ".join(h.ljust(w) for h, w in zip(header, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


# -- main ----------------------------------------------------------------------------------------

def _shapes(net: Net, params) -> dict:
    out = {"batch": net.batch, "input": net.input_shape, "classes": net.n_classes}
    if net.kind == "alexnet":
        out["width"] = net.width
        out["channels"] = tuple(params[f"conv{i}"]["w"].shape[-1] for i in range(1, 6))
        out["fc"] = (params["fc6"]["w"].shape[0], params["fc6"]["w"].shape[1],
                     params["fc7"]["w"].shape[1])
    return out


#: issue 18's goals, judged from the medians of per-round ratios
FASTEST_PEER_GOAL = 1.0      # fastest peer / our trainer step (the path fit runs)
TRAINER_OVERHEAD_GOAL = 1.03  # our trainer step / our hand-written step
SEEDS_GOAL = 1.0             # K sequential single-seed steps / one vmapped K-seed step
def main(argv: list[str] | None = None) -> int:
    parser = make_parser(SUITE, "LeNet-5 and AlexNet training step (SGD + momentum) vs Flax Linen "
                                "and PyTorch.")
    parser.add_argument("--nets", nargs="+", choices=[n.name for n in NETS],
                        default=[n.name for n in NETS])
    parser.add_argument("--peers", nargs="+", choices=PEERS, default=list(PEERS))
    parser.add_argument("--alexnet-width", type=float, default=None,
                        help="AlexNet channel multiplier (default 1; ignored with --quick)")
    parser.add_argument("--seeds", type=int, default=8,
                        help="K for the case 'K LeNet-5 seeds vmapped vs one after another' "
                             "(0: skip it; 2 with --quick)")
    parser.add_argument("--reuse-freed-memory", action="store_true",
                        help="call dlmodels.backend.reuse_freed_memory() before JAX starts")
    args = parser.parse_args(argv)
    if args.seeds < 0:
        parser.error("--seeds must be >= 0")
    freed = backend.reuse_freed_memory() if args.reuse_freed_memory else False
    if args.quick:
        nets, repeats, warmup = QUICK_NETS, 1, 1
    else:
        nets, repeats, warmup = NETS, args.repeats, args.warmup
        if args.alexnet_width:
            nets = tuple(dataclasses.replace(n, width=args.alexnet_width)
                         if n.kind == "alexnet" else n for n in nets)
    nets = [n for n in nets if n.name in args.nets]
    if repeats < 1:
        parser.error("--repeats must be >= 1")

    env = environment()
    torch_info = {}
    if any(p.startswith("torch") for p in args.peers):
        try:
            import torch
            torch.set_num_threads(os.cpu_count() or 1)
            torch_info = {"device": torch_device(), "num_threads": torch.get_num_threads(),
                          "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                          "mkldnn": bool(torch.backends.mkldnn.is_available())}
        except ImportError:
            pass
    print(f"suite {SUITE}: {env['device_kind']} ({env['backend']}), {env['cpu_count']} CPUs, "
          f"jax {env['versions']['jax']}, {env['date']}; medians of {repeats} interleaved rounds "
          f"after {warmup} warm-up calls; torch: {torch_info or 'not run'}", flush=True)

    peak_fn, peak_flops = matmul_peak(args.quick)
    other_load = OtherLoad().__enter__()
    goals: list[dict] = []
    results: list[Result] = []
    summary, skipped_all, failed = [], {}, []
    for net in nets:
        params = init_params(net)
        x, y = batch_data(net)
        shapes_d = _shapes(net, params)
        fwd, per_layer = forward_flops(net, params)
        step_flops = 3.0 * fwd
        print(f"\n{net.name} ({', '.join(f'{k}={v}' for k, v in shapes_d.items())}; "
              f"{step_flops / 1e9:.3f} GFLOP per step):", flush=True)

        sides, skipped = make_sides(net, params, x, y, args.peers)
        skipped_all.update({f"{net.name}: {k}": v for k, v in skipped.items()})
        checks = same_function(sides)    # the first steps of every side; timing continues from there
        if not checks["passed"]:
            failed.append(f"{net.name}: losses differ {checks['max_rel_loss_diff']}")
        print("  same function: " + ", ".join(f"{k} {v:.1e}" for k, v in
                                             checks["max_rel_loss_diff"].items())
              + f" (max relative loss difference from ours over {CHECK_STEPS} steps; "
                f"tolerance {checks['tolerance']:.0e})", flush=True)

        context: dict[str, Callable] = {"peak matmul": peak_fn}
        conv_flops = None
        if net.kind == "alexnet" and any(p.startswith("torch") for p in sides):
            rates, conv_flops = conv_rates(net, params)
            context.update(rates)
        timings = time_interleaved({**sides, **context}, warmup=warmup, repeats=repeats)
        context_rates = {"peak matmul": peak_flops / timings.pop("peak matmul").median / 1e9}
        for name in list(timings):
            if name.startswith("conv2 "):
                context_rates[name] = conv_flops / timings.pop(name).median / 1e9

        case = Case(net.name, shapes_d, {
            "step_gflop": step_flops / 1e9, "forward_gflop_per_layer":
                {k: v / 1e9 for k, v in per_layer.items()},
            "activation": "relu", "pool": "max 2x2" if net.kind == "lenet5" else "max 3x3/2",
            "lrn": net.kind == "alexnet", "dropout": 0.0,
            "optimizer": f"sgd lr={LR} momentum={MOMENTUM}"})
        ours_m = Measurement(OURS, timings[OURS])
        rows = []
        for name, t in timings.items():
            row = {"side": name, "ms": t.median * 1e3, "gflops": step_flops / t.median / 1e9}
            if name != OURS:
                result = Result(case, ours_m, Measurement(name, t),
                                {"same_function": checks["passed"],
                                 "max_rel_loss_diff": checks["max_rel_loss_diff"].get(name)})
                results.append(result)
                row["ratio_peer_over_ours"] = result.ratio
                q = result.ratio_quartiles()
                row["ratio_q25_q75"] = list(q) if q else None
            rows.append(row)
        torch_sides = [n for n in ("torch", "torch channels_last") if n in timings]
        best_torch = min(torch_sides, key=lambda n: timings[n].median) if torch_sides else None
        framework_peers = [n for n in ("flax", best_torch) if n and n in timings]
        fastest = min(framework_peers, key=lambda n: timings[n].median) if framework_peers else None
        fastest_result = None
        if fastest:
            fastest_result = Result(case, ours_m, Measurement(FASTEST, timings[fastest]),
                                    {"peer": fastest, "same_function": checks["passed"]})
            results.append(fastest_result)
        if TRAINER in timings:
            trainer_m = Measurement(TRAINER, timings[TRAINER])
            overhead = Result(case, ours_m, trainer_m)      # trainer time / hand-written time
            q = overhead.ratio_quartiles()
            goals.append(goal_row(f"{net.name}: trainer step / hand-written step", overhead.ratio, q,
                               TRAINER_OVERHEAD_GOAL, above=False))
            if fastest:
                via_trainer = Result(case, trainer_m, Measurement(FASTEST, timings[fastest]),
                                     {"peer": fastest})
                q = via_trainer.ratio_quartiles()
                goals.append(goal_row(f"{net.name}: fastest peer ({fastest}) / trainer step",
                                   via_trainer.ratio, q, FASTEST_PEER_GOAL, above=True))
        peak = context_rates["peak matmul"]
        for row in rows:
            ratio, q = row.get("ratio_peer_over_ours"), row.get("ratio_q25_q75")
            print(f"  {row['side']:<22} {row['ms']:9.2f} ms  {row['gflops']:7.1f} GFLOP/s "
                  f"({100 * row['gflops'] / peak:4.1f}% of peak matmul)"
                  + (f"   peer/ours {ratio:5.2f}x [{q[0]:.2f}-{q[1]:.2f}]" if ratio else ""),
                  flush=True)
        print("  context: " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in context_rates.items()),
              flush=True)
        if fastest_result:
            q = fastest_result.ratio_quartiles()
            print(f"  PyTorch = {best_torch}; fastest peer: {fastest}, peer/ours "
                  f"{fastest_result.ratio:.2f}x [{q[0]:.2f}-{q[1]:.2f}] (target >= 1.0)",
                  flush=True)
        summary.append({
            "case": net.name, "net": dataclasses.asdict(net), "shapes": shapes_d,
            "step_gflop": step_flops / 1e9, "sides": rows, "checks": checks,
            "ours_gflops": step_flops / timings[OURS].median / 1e9,
            "context_gflops": context_rates, "pytorch": best_torch, "fastest_peer": fastest,
            "ratio_fastest_peer_over_ours": fastest_result.ratio if fastest_result else None,
            "ratio_fastest_peer_q25_q75": (list(fastest_result.ratio_quartiles())
                                           if fastest_result else None)})

    seeds_row = None
    if args.seeds:
        lenet = next(n for n in (QUICK_NETS if args.quick else NETS) if n.kind == "lenet5")
        k = 2 if args.quick else args.seeds
        print(f"\n{lenet.name}, {k} seeds: one vmapped training step (make_train_step, as "
              f"fit(..., seeds={k}) runs it) vs {k} single-run steps; reuse_freed_memory: {freed}",
              flush=True)
        _, seeds_row = vmapped_seeds(lenet, k, warmup=warmup, repeats=repeats)
        q = seeds_row["ratio_q25_q75"]
        print(f"  vmapped {seeds_row['vmapped_ms']:.1f} ms, sequential "
              f"{seeds_row['sequential_ms']:.1f} ms; sequential / vmapped (median of per-round "
              f"ratios) {seeds_row['ratio_sequential_over_vmapped']:.2f}x [{q[0]:.2f}-{q[1]:.2f}] "
              f"(target >= 1.0); losses equal to {seeds_row['max_rel_loss_diff']:.1e}", flush=True)
        goals.append(goal_row(f"{lenet.name} x{k} seeds: sequential / vmapped",
                           seeds_row["ratio_sequential_over_vmapped"], tuple(q), SEEDS_GOAL,
                           above=True))
        if seeds_row["max_rel_loss_diff"] > MAX_REL_LOSS_DIFF:
            failed.append(f"{k} seeds: vmapped losses differ {seeds_row['max_rel_loss_diff']}")

    print()
    for label in dict.fromkeys(r.peer.label for r in results):
        title = (f"{FASTEST} (the faster of flax and the faster PyTorch variant, per case) vs {OURS}"
                 if label == FASTEST else f"{label} vs {OURS}")
        print_table(title, [r for r in results if r.peer.label == label])
        print()
    print(summary_table(summary))
    print()
    other_load.__exit__(None, None, None)
    print_goals(goals, other_load.share, quick=args.quick)
    print()

    config = {"repeats": repeats, "warmup": warmup, "quick": args.quick, "peers": args.peers,
              "nets": [dataclasses.asdict(n) for n in nets], "lr": LR, "momentum": MOMENTUM,
              "loss": "mean softmax cross-entropy, integer labels, float32",
              "ours": "jax.jit(step, donate_argnums=(0, 1)): params and optimizer state donated",
              "torch": torch_info, "check_steps": CHECK_STEPS,
              "max_rel_loss_diff": backend.matmul_rtol(MAX_REL_LOSS_DIFF),
              "flops": "forward 2*kh*kw*Cin*Cout*Hout*Wout per conv, 2*in*out per dense, per "
                       "image; step = 3x forward"}
    config["seeds"] = {"k": seeds_row["seeds"] if seeds_row else 0,
                       "reuse_freed_memory": freed}
    extra = {"cases": summary, "vmapped_seeds": seeds_row, "skipped": skipped_all,
             "failed_checks": failed, "goals": goals,
             "other_processes_cpu_share": other_load.share}
    path = write_json(SUITE, results, out=args.out, config=config, extra=extra)
    print(f"wrote {path}")
    if failed:
        print(f"FAILED: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
