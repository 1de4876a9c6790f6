"""LSTM and GRU against Flax's cells (mapped weights) and PyTorch's modules (converted weights):
outputs and gradients."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlmodels import rnn

D, H, B, T = 5, 7, 3, 9
XS = jax.random.normal(jax.random.PRNGKey(0), (B, T, D))


def _loss_ours(cell):
    return lambda p, xs: jnp.sum(jnp.sin(rnn.unroll(cell, p, xs)[0]))


def _flax_run(cell_module, variables, xs):
    return nn.RNN(cell_module).apply({"params": {"cell": variables}}, xs)


def test_lstm_equals_flax_lstm_cell():
    flax_cell = nn.LSTMCell(H)
    carry = flax_cell.initialize_carry(jax.random.PRNGKey(1), (B, D))
    variables = flax_cell.init(jax.random.PRNGKey(2), carry, XS[:, 0])["params"]
    variables = jax.tree.map(lambda a: a + 0.2, variables)  # non-zero biases
    g = "ifgo"
    ours = {"w_x": jnp.concatenate([variables[f"i{k}"]["kernel"] for k in g], 1),
            "w_h": jnp.concatenate([variables[f"h{k}"]["kernel"] for k in g], 1),
            "b": jnp.concatenate([variables[f"h{k}"]["bias"] for k in g])}
    cell = rnn.lstm(H)
    ref = _flax_run(flax_cell, variables, XS)
    np.testing.assert_allclose(rnn.unroll(cell, ours, XS)[0], ref, rtol=1e-5, atol=1e-5)
    flax_loss = lambda v, xs: jnp.sum(jnp.sin(_flax_run(flax_cell, v, xs)))
    gv, gx_ref = jax.grad(flax_loss, argnums=(0, 1))(variables, XS)
    gp, gx = jax.grad(_loss_ours(cell), argnums=(0, 1))(ours, XS)
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gp["w_h"], jnp.concatenate([gv[f"h{k}"]["kernel"] for k in g], 1),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gp["w_x"], jnp.concatenate([gv[f"i{k}"]["kernel"] for k in g], 1),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gp["b"], jnp.concatenate([gv[f"h{k}"]["bias"] for k in g]),
                               rtol=1e-5, atol=1e-5)


def test_gru_equals_flax_gru_cell():
    flax_cell = nn.GRUCell(H)
    carry = flax_cell.initialize_carry(jax.random.PRNGKey(1), (B, D))
    variables = flax_cell.init(jax.random.PRNGKey(2), carry, XS[:, 0])["params"]
    variables = jax.tree.map(lambda a: a + 0.2, variables)
    zeros = jnp.zeros(H)
    ours = {"w_x": jnp.concatenate([variables[f"i{k}"]["kernel"] for k in "rzn"], 1),
            "w_h": jnp.concatenate([variables[f"h{k}"]["kernel"] for k in "rzn"], 1),
            "b_x": jnp.concatenate([variables[f"i{k}"]["bias"] for k in "rzn"]),
            "b_h": jnp.concatenate([zeros, zeros, variables["hn"]["bias"]])}
    cell = rnn.gru(H)
    np.testing.assert_allclose(rnn.unroll(cell, ours, XS)[0], _flax_run(flax_cell, variables, XS),
                               rtol=1e-5, atol=1e-5)
    flax_loss = lambda v, xs: jnp.sum(jnp.sin(_flax_run(flax_cell, v, xs)))
    gv, gx_ref = jax.grad(flax_loss, argnums=(0, 1))(variables, XS)
    gp, gx = jax.grad(_loss_ours(cell), argnums=(0, 1))(ours, XS)
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gp["w_h"], jnp.concatenate([gv[f"h{k}"]["kernel"] for k in "rzn"], 1),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gp["b_h"][2 * H:], gv["hn"]["bias"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_equals_pytorch(kind):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = getattr(torch.nn, kind)(D, H, batch_first=True)
    x = torch.tensor(np.asarray(XS), requires_grad=True)
    out, _ = module(x)
    torch.sin(out).sum().backward()
    convert = rnn.lstm_from_torch if kind == "LSTM" else rnn.gru_from_torch
    cell = rnn.lstm(H) if kind == "LSTM" else rnn.gru(H)
    params = convert(module)
    ys, final = rnn.unroll(cell, params, XS)
    np.testing.assert_allclose(ys, out.detach().numpy(), rtol=1e-5, atol=1e-5)
    gp, gx = jax.grad(_loss_ours(cell), argnums=(0, 1))(params, XS)
    np.testing.assert_allclose(gx, x.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gp["w_x"], module.weight_ih_l0.grad.numpy().T, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gp["w_h"], module.weight_hh_l0.grad.numpy().T, rtol=1e-4, atol=1e-5)
    if kind == "LSTM":
        assert isinstance(final, rnn.LSTMState)
        np.testing.assert_allclose(gp["b"], module.bias_hh_l0.grad.numpy(), rtol=1e-4, atol=1e-5)
    else:
        np.testing.assert_allclose(gp["b_h"], module.bias_hh_l0.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_torch_conversion_refuses_unsupported_modules():
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match="batch_first"):
        rnn.lstm_from_torch(torch.nn.LSTM(D, H))
    with pytest.raises(ValueError, match="num_layers"):
        rnn.gru_from_torch(torch.nn.GRU(D, H, num_layers=2, batch_first=True))
    with pytest.raises(TypeError, match="LSTM"):
        rnn.lstm_from_torch(torch.nn.GRU(D, H, batch_first=True))
