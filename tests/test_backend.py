"""The backend-chosen work-arounds (dlmodels.backend) and the GPU-only code paths that can be run
on the CPU: our LSTM against jax.experimental.rnn's pure-JAX reference of cuDNN's LSTM on the
packed weights of rnn.lstm_to_cudnn; the rnn suite's cuDNN peer (absent here; with cuDNN replaced by
that reference, the suite's GPU flow and goals); translation_invariance's vmapped-seeds path (taken
on a GPU) against its per-seed runs; benchmarks/gpu.sh covering every suite. No GPU is needed."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import rnn as jax_rnn

from dlmodels import backend, experiment, rnn
from dlmodels.benchmarks import rnn as rnn_suite


# -- dlmodels.backend -------------------------------------------------------------------------------

def test_choices_by_backend():
    assert jax.default_backend() == "cpu"           # this machine: the default is the CPU's choice
    assert backend.name() == "cpu"
    assert [backend.conv_steps_per_call(100, b) for b in ("cpu", "gpu", "tpu")] == [1, 100, 100]
    assert backend.conv_steps_per_call(100) == 1
    assert [backend.vmap_conv_seeds(b) for b in ("cpu", "gpu", "tpu")] == [False, True, True]
    assert backend.vmap_conv_seeds() is False
    assert [backend.matmul_rtol(1e-4, b) for b in ("cpu", "gpu", "tpu")] == [1e-4, 1e-2, 5e-2]
    assert backend.matmul_rtol(0.1, "gpu") == 0.1  # never tighter than the CPU's


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown backend 'cuda'"):
        backend.conv_steps_per_call(100, "cuda")    # a platform name, not a backend name
    with pytest.raises(ValueError, match="steps_per_call must be >= 1"):
        backend.conv_steps_per_call(0, "gpu")


# -- our LSTM as cuDNN's packed weights ---------------------------------------------------------------

B, T, D, H = 3, 7, 5, 4


def _ours_and_reference():
    cell = rnn.lstm(H)
    params = cell.init(jax.random.PRNGKey(0), D)
    # a non-zero bias everywhere, so a bias in the wrong slot shows
    params["b"] = params["b"] + jax.random.normal(jax.random.PRNGKey(2), (4 * H,))
    xs = jax.random.normal(jax.random.PRNGKey(1), (B, T, D))

    def ours(params, xs):
        ys, carry = rnn.unroll(cell, params, xs)
        return ys, carry.h, carry.c

    def reference(weights, xs):
        # jax's pure-JAX reference of cuDNN's LSTM, weights unpacked by jax's own layout
        w_ih, w_hh, b_ih, b_hh = jax_rnn.unpack_lstm_weights(weights, D, H, 1, False)
        zeros = jnp.zeros((1, B, H))
        ys, h, c = jax_rnn.lstm_ref(xs, zeros, zeros, w_ih, w_hh, b_ih, b_hh,
                                    jnp.full((B,), T, jnp.int32), D, H, 1, 0.0, False)
        return ys, h[0], c[0]

    return ours, reference, params, xs


def test_lstm_to_cudnn_layout():
    _, _, params, _ = _ours_and_reference()
    weights = rnn.lstm_to_cudnn(params)
    assert weights.shape == (jax_rnn.get_num_params_in_lstm(D, H, 1, False),) == (4 * H * (D + H + 2),)
    w_ih, w_hh, b_ih, b_hh = jax_rnn.unpack_lstm_weights(weights, D, H, 1, False)
    # PyTorch's and cuDNN's layout: gate rows (i, f, g, o) of W_ih [4H, D], W_hh [4H, H]
    for gate in range(4):
        rows = slice(gate * H, (gate + 1) * H)
        np.testing.assert_array_equal(w_ih[0][rows], np.asarray(params["w_x"])[:, rows].T)
        np.testing.assert_array_equal(w_hh[0][rows], np.asarray(params["w_h"])[:, rows].T)
    np.testing.assert_array_equal(b_ih[0], params["b"])
    np.testing.assert_array_equal(b_hh[0], np.zeros(4 * H))


def test_ours_equals_cudnn_reference_values_and_gradients():
    ours, reference, params, xs = _ours_and_reference()
    weights = rnn.lstm_to_cudnn(params)
    for got, want in zip(ours(params, xs), reference(weights, xs)):   # ys, h_T, c_T
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

    def loss(f):
        return lambda p, x: sum(jnp.sum(jnp.sin(a)) for a in f(p, x))    # every output weighted

    g_params, g_xs = jax.grad(loss(ours), argnums=(0, 1))(params, xs)
    g_weights, g_xs_ref = jax.grad(loss(reference), argnums=(0, 1))(weights, xs)
    np.testing.assert_allclose(g_xs, g_xs_ref, rtol=1e-5, atol=1e-6)
    w_ih, w_hh, b_ih, b_hh = jax_rnn.unpack_lstm_weights(g_weights, D, H, 1, False)
    np.testing.assert_allclose(g_params["w_x"], w_ih[0].T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g_params["w_h"], w_hh[0].T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g_params["b"], b_ih[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g_params["b"], b_hh[0], rtol=1e-5, atol=1e-6)
    # and the gradient flows back through the conversion itself
    g_through = jax.grad(lambda p, x: loss(reference)(rnn.lstm_to_cudnn(p), x))(params, xs)
    for k in params:
        np.testing.assert_allclose(g_through[k], g_params[k], rtol=1e-5, atol=1e-6)


def test_lstm_to_cudnn_rejects_other_params():
    with pytest.raises(ValueError, match="expected the params of dlmodels.rnn.lstm"):
        rnn.lstm_to_cudnn(rnn.gru(H).init(jax.random.PRNGKey(0), D))
    params = rnn.lstm(H).init(jax.random.PRNGKey(0), D)
    with pytest.raises(ValueError, match="mismatched shapes"):
        rnn.lstm_to_cudnn({**params, "b": params["b"][:-1]})


# -- the rnn suite's cuDNN peer and GPU goals -----------------------------------------------------

def test_cudnn_peer_absent_on_cpu():
    assert rnn_suite.cudnn_unavailable("lstm") == "not measured (backend cpu)"
    assert rnn_suite.cudnn_unavailable("lstm", "gpu") is None
    assert rnn_suite.cudnn_unavailable("gru", "gpu") == "LSTM only"
    s = rnn_suite.QUICK_SHAPES[0]
    sides, skipped = rnn_suite.make_sides("lstm", s, [rnn_suite.CUDNN])
    assert set(sides) == {"dlmodels"}
    assert skipped == {rnn_suite.CUDNN: "not measured (backend cpu)"}
    sides, skipped = rnn_suite.make_sides("gru", s, [rnn_suite.CUDNN])
    assert set(sides) == {"dlmodels"} and skipped == {}


def _case(name, batch, ms):
    """A summary row as the suite writes it: ``ms`` {side: milliseconds}, ours is "dlmodels"."""
    rows = [{"side": side, "ms": t} | ({} if side == "dlmodels" else
                                       {"ratio_peer_over_ours": t / ms["dlmodels"]})
            for side, t in ms.items()]
    return {"case": name, "cell": "lstm", "shape": {"batch": batch}, "sides": rows}


def test_gpu_goals():
    cudnn, opt, plain = rnn_suite.CUDNN, "flax OptimizedLSTMCell", "flax LSTMCell"
    summary = [
        _case("small batch", 32, {"dlmodels": 10.0, cudnn: 1.0, opt: 5.0}),          # B < 64: no goal
        _case("met", 64, {"dlmodels": 3.0, cudnn: 2.0, opt: 3.3, plain: 4.0}),       # 1.5x exactly
        _case("not met", 256, {"dlmodels": 3.1, cudnn: 2.0, opt: 3.0, plain: 9.0}),  # 1.55x; Flax faster
        _case("no peers", 128, {"dlmodels": 1.0}),
        {**_case("gru", 128, {"dlmodels": 1.0, cudnn: 1.0}), "cell": "gru"},
    ]
    goals = {(g["case"], g["goal"]): g for g in rnn_suite.gpu_goals(summary)}
    assert set(goals) == {(c, g) for c in ("met", "not met", "no peers")
                          for g in ("within 1.5x of cuDNN", "faster than Flax")}
    assert goals[("met", "within 1.5x of cuDNN")]["met"] is True
    assert goals[("met", "faster than Flax")]["ratio_peer_over_ours"] == pytest.approx(1.1)
    assert goals[("met", "faster than Flax")]["met"] is True
    assert goals[("not met", "within 1.5x of cuDNN")]["met"] is False
    assert goals[("not met", "faster than Flax")]["met"] is False                 # the faster Flax cell
    assert goals[("no peers", "within 1.5x of cuDNN")]["met"] is None
    assert goals[("no peers", "faster than Flax")]["met"] is None


# -- translation_invariance: the GPU path (seeds vmapped, 100 steps per call) on the CPU ---------

def _fake_load(name, split):
    n = {"train": 96, "valid": 32, "test": 40}[split]
    rng = np.random.default_rng(["train", "valid", "test"].index(split))
    return rng.uniform(size=(n, 784)).astype(np.float32), rng.integers(0, 10, n).astype(np.int32)


@pytest.mark.slow
def test_translation_invariance_gpu_path_equals_cpu_path(tmp_path, monkeypatch):
    monkeypatch.setattr("dlmodels.data.load", _fake_load)
    overrides = {"channels": (4,), "hidden": 8, "epochs": 2, "batch_size": 32, "max_shift": 1,
                 "n_seeds": 2}
    _, per_seed = experiment.run("translation_invariance", overrides, run_dir=str(tmp_path / "cpu"))
    monkeypatch.setattr(backend, "vmap_conv_seeds", lambda backend=None: True)
    monkeypatch.setattr(backend, "conv_steps_per_call", lambda default, backend=None: default)
    _, vmapped = experiment.run("translation_invariance", overrides, run_dir=str(tmp_path / "gpu"))
    assert (tmp_path / "gpu" / "max_seeds").is_dir() and (tmp_path / "cpu" / "max_seed1").is_dir()
    for name, row in per_seed["networks"].items():
        # the same two runs: accuracies are counts out of 40 (or 160), equal up to float rounding
        np.testing.assert_allclose(vmapped["networks"][name]["accuracy_by_shift"],
                                   row["accuracy_by_shift"], atol=1e-6)


def _lstm_on_cpu(x, h0, c0, weights, seq_lengths, input_size, hidden_size, num_layers, dropout,
                 bidirectional):
    """``jax.experimental.rnn.lstm`` (cuDNN, GPU only) as its pure-JAX reference."""
    unpacked = jax_rnn.unpack_lstm_weights(weights, input_size, hidden_size, num_layers,
                                           bidirectional)
    return jax_rnn.lstm_ref(x, h0, c0, *unpacked, seq_lengths, input_size, hidden_size,
                            num_layers, dropout, bidirectional)


def test_cudnn_peer_computes_our_step(monkeypatch):
    """The suite's cuDNN side, with jax.experimental.rnn.lstm (GPU only) replaced by its pure-JAX
    reference on the unpacked weights: the same loss and gradients as our step, so the suite's
    on-device check (cudnn_vs_ours) passes for the right reason."""
    monkeypatch.setattr(jax_rnn, "lstm", _lstm_on_cpu)
    s = rnn_suite.Shape("small", 3, 6, 5, 4)
    sides = {"dlmodels": rnn_suite._ours_side("lstm", s), rnn_suite.CUDNN: rnn_suite._cudnn("lstm", s)}
    assert rnn_suite.cudnn_vs_ours(sides) < 1e-5
    # a peer that computes something else is caught
    step, weights, xs = rnn_suite.cudnn_lstm(s)
    sides[rnn_suite.CUDNN] = lambda: step(weights * 1.01, xs)
    assert rnn_suite.cudnn_vs_ours(sides) > 1e-3


# -- the prepared GPU script ------------------------------------------------------------------------

def test_gpu_script_covers_every_suite(tmp_path):
    import os
    import pathlib
    import subprocess

    script = pathlib.Path(__file__).parents[1] / "benchmarks" / "gpu.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
    out = subprocess.run([str(script), str(tmp_path), "--dry-run"], capture_output=True,
                         text=True, check=True, env=env).stdout
    suites = {p.stem for p in script.parent.glob("*.py")} - {"__init__", "harness"}
    ran = {line.split("dlmodels bench ")[1].split()[0] for line in out.splitlines()
           if "dlmodels bench " in line}
    assert ran == suites
    assert "JAX_PLATFORMS=cuda" in out                      # the default
    for suite in suites:                                     # each report lands in OUT_DIR
        assert f"--out {tmp_path}/{suite}.json" in out
    assert list(tmp_path.iterdir()) == []                    # a dry run writes nothing


def test_rnn_suite_gpu_flow_on_cpu(monkeypatch, tmp_path, capsys):
    """The suite's main as it runs on a GPU (backend "gpu", cuDNN replaced by its reference, tiny
    shapes): the cuDNN side is timed and checked, the B >= 64 shape gets its goals, and they are
    printed and recorded."""
    monkeypatch.setattr(jax_rnn, "lstm", _lstm_on_cpu)
    monkeypatch.setattr(backend, "name", lambda b=None: "gpu" if b is None else b)
    monkeypatch.setattr(rnn_suite, "SHAPES", (rnn_suite.Shape("small", 4, 5, 6, 8),))
    monkeypatch.setattr(rnn_suite, "GPU_SHAPES", (rnn_suite.Shape("B64-small", 64, 5, 6, 8),))
    out = tmp_path / "rnn.json"
    assert rnn_suite.main(["--cells", "lstm", "--peers", "flax LSTMCell", rnn_suite.CUDNN,
                           "--repeats", "1", "--warmup", "0", "--compile-steps", "2", "4",
                           "--memory-steps", "4", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [c["case"] for c in report["cases"]] == ["lstm small", "lstm B64-small"]
    for case in report["cases"]:
        assert case["cudnn_vs_ours_rel_diff"] < 1e-5
        assert {r["side"] for r in case["sides"]} == {"dlmodels", "flax LSTMCell", rnn_suite.CUDNN}
    goals = report["gpu_goals"]
    assert [(g["case"], g["goal"]) for g in goals] == [("lstm B64-small", "within 1.5x of cuDNN"),
                                                      ("lstm B64-small", "faster than Flax")]
    sides = {r["side"]: r for r in report["cases"][1]["sides"]}
    assert goals[0]["ratio_peer_over_ours"] == sides[rnn_suite.CUDNN]["ratio_peer_over_ours"]
    assert goals[1]["ratio_peer_over_ours"] == sides["flax LSTMCell"]["ratio_peer_over_ours"]
    assert all(isinstance(g["met"], bool) for g in goals)
    printed = capsys.readouterr().out
    assert printed.count("GPU goal, lstm B64-small") == 2 and "cuDNN peer: not measured" not in printed


def test_reuse_freed_memory_sets_glibc_malloc_options_in_a_fresh_process():
    import subprocess
    import sys

    code = ("from dlmodels import backend; before = backend.vmap_conv_seeds(); "
            "print(before, backend.reuse_freed_memory(), backend.vmap_conv_seeds())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, applied, after = out.stdout.split()
    assert before == "False" and applied in ("True", "False")  # False: not glibc
    assert after == applied  # the CPU vmaps conv seeds once freed memory is reused
