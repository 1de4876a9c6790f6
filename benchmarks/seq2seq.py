"""Suite "seq2seq": a training step of the attention encoder-decoder and batched beam-search
decoding, ``dlmodels.seq2seq`` against a PyTorch implementation of the same model.

**The model** (both sides): ``dlmodels.seq2seq.encoder_decoder(V, V, cell="lstm", hidden=H,
embed_dim=E, attention="bahdanau")`` with V = 1,000 source and target words (a synthetic
vocabulary: uniform random ids; the time of a step does not depend on the text), E = H = 256,
one LSTM layer in the encoder and in the decoder, float32:

    h_s = LSTM_enc(E_src[x_s], h_{s-1})                  encoder, lengths masked
    e_ts = v^T tanh(s_{t-1} W_s + h_s W_h),  a_t = softmax over the real positions,
    c_t = sum_s a_ts h_s,  s_t = LSTM_dec([E_tgt[y_{t-1}] ; c_t], s_{t-1}),
    p(y_t) = softmax([s_t ; c_t] W_out + b_out)          (Bahdanau, Cho & Bengio 2015)

The PyTorch side (:class:`TorchSeq2Seq`) is the same model written as a PyTorch user would:
``nn.Embedding`` x 2, ``nn.LSTM(E, H, batch_first=True)`` for the encoder (through
``pack_padded_sequence`` when some source is shorter than the padded width), ``nn.LSTMCell(E + H,
H)`` in a Python loop over the target for the decoder, ``nn.Linear`` for ``W_s``, ``W_h`` (the
keys ``h_s W_h`` computed once per sentence, as ours), ``v`` and the output layer; our params
are copied into it (:func:`copy_params`), and before timing the suite checks that both give the
same logits and the same beams.

**Case 1, training step**: B = 64 pairs, source and target length 20 (every sentence full
length), the mean cross-entropy over the target tokens, its gradient, the global gradient norm
clipped to 1, an Adam update (lr 1e-3). Ours is the trainer's path: what ``fit`` runs for
``seq2seq.loss_fn(model)`` with ``make_optimizer(OptimizerConfig("adam", 1e-3, clip_norm=1))``:
the compiled ``make_train_steps`` program (``--steps`` updates, default 2, in one ``lax.scan``
with the non-finite guard), and the host work around it (batch indices, fetching the finite
flags and losses). PyTorch: ``zero_grad``, forward, ``backward``, ``clip_grad_norm_(1.0)``,
``torch.optim.Adam.step``, ``loss.item()``, the same number of updates per timed call (the LSTMs'
``bias_hh`` held at 0 and not trained: ours has one bias per gate, PyTorch two).

**Case 2, beam search**: beam 4, at most 20 output tokens, 64 sentences per call, length penalty
0 (the plain sum of log-probabilities), the same (untrained) params on both sides. Ours:
``seq2seq.translate(model, params, src, lengths, max_len=20, beam_size=4)`` (one compiled
``lax.while_loop``: the encoder once, the beams of all sentences as one batch of B x 4 rows,
top-k over the 4 x V candidates of each sentence, the states reordered by parent beam; it stops
when every beam has ended). PyTorch: the same algorithm batched over sentences and beams under
``torch.no_grad()`` (:func:`torch_beam_search`: a Python loop over steps with ``topk``,
``gather`` and ``index_select``, stopping when every beam has ended). Throughput = sentences
per second.

Both sides are timed in interleaved rounds (``harness.time_interleaved``); ratios are ``peer
time / our time`` per round (> 1: ours is faster); the headline is the median of the per-round
ratios with their quartiles. PyTorch runs with ``torch.set_num_threads(cpu count)`` and
``OMP_WAIT_POLICY=PASSIVE`` (set before torch is imported; see ``benchmarks/rnn.py``), on CUDA
when JAX runs on a GPU and PyTorch sees one (``harness.torch_device``; sequence lengths stay on
the CPU, as ``pack_padded_sequence`` wants them), else on the CPU. Target: >= 1.0x on both cases.

Checks (the suite exits 1 when one fails): logits within ``MAX_ABS_LOGIT_DIFF`` of PyTorch's (on a
GPU within ``backend.matmul_rtol`` of their scale, as float32 matmuls may run in TF32 there),
every beam equal to PyTorch's (on the CPU; on a GPU a near-tie may order two beams differently,
so the fraction equal is recorded and printed, not failed), the training losses within
``MAX_REL_LOSS_DIFF`` (``backend.matmul_rtol`` of it).

Run: ``python -m dlmodels bench seq2seq [--quick] [--rounds N]`` or
``python -m dlmodels.benchmarks.seq2seq``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads libgomp; see rnn.py

import jax
import jax.numpy as jnp
import numpy as np

from dlmodels.benchmarks.harness import (Case, Measurement, Result, environment, finish,
                                         make_parser, print_table, time_interleaved,
                                         torch_device, torch_environment)
from dlmodels import backend
from dlmodels.data.batching import batch_indices
from dlmodels.extras import optional_import

SUITE = "seq2seq"
OURS = "dlmodels"
PARTS = ("train", "beam")
LEARNING_RATE = 1e-3
CLIP_NORM = 1.0
BOS, EOS = 2, 3
# ours vs the PyTorch twin with the same params, float32: rounding only
MAX_ABS_LOGIT_DIFF = 1e-4
MAX_REL_LOSS_DIFF = 1e-4


@dataclasses.dataclass(frozen=True)
class Shape:
    """``vocab`` V (source and target), ``batch`` B, ``src_len`` S, ``tgt_len`` T, ``embed`` E,
    ``hidden`` H, ``steps`` updates per timed call, ``beam`` K, ``max_len`` N decoded tokens,
    ``decode_batch`` sentences per decoding call."""

    vocab: int
    batch: int
    src_len: int
    tgt_len: int
    embed: int
    hidden: int
    steps: int
    beam: int
    max_len: int
    decode_batch: int


SHAPE = Shape(vocab=1000, batch=64, src_len=20, tgt_len=20, embed=256, hidden=256, steps=2,
              beam=4, max_len=20, decode_batch=64)
QUICK = Shape(vocab=40, batch=4, src_len=6, tgt_len=5, embed=8, hidden=16, steps=2, beam=3,
              max_len=6, decode_batch=4)


def make_model(s: Shape):
    from dlmodels import seq2seq

    return seq2seq.encoder_decoder(s.vocab, s.vocab, cell="lstm", hidden=s.hidden,
                                   embed_dim=s.embed, attention="bahdanau")


def synthetic_batch(s: Shape, n: int, seed: int = 0, *, full_length: bool = True) -> dict:
    """``n`` pairs in the layout of ``seq2seq.make_batch``: ids uniform over the words (ids >= 4,
    after the specials); every source and target of the full widths S and T - 1 (+ eos), or with
    ``full_length=False`` lengths uniform in [1, width] (the first one full)."""
    rng = np.random.default_rng(seed)
    V, S, T = s.vocab, s.src_len, s.tgt_len
    src = rng.integers(4, V, size=(n, S)).astype(np.int32)
    words = rng.integers(4, V, size=(n, T - 1)).astype(np.int32)
    if full_length:
        src_len = np.full(n, S, np.int32)
        m = np.full(n, T - 1, np.int32)
    else:
        src_len = rng.integers(1, S + 1, size=n).astype(np.int32)
        m = rng.integers(0, T, size=n).astype(np.int32)
        src_len[0], m[0] = S, T - 1
    src[np.arange(S)[None, :] >= src_len[:, None]] = 0
    tgt_in = np.zeros((n, T), np.int32)
    tgt_out = np.zeros((n, T), np.int32)
    for i in range(n):
        tgt_in[i, :m[i] + 1] = np.concatenate([[BOS], words[i, :m[i]]])
        tgt_out[i, :m[i] + 1] = np.concatenate([words[i, :m[i]], [EOS]])
    return {"src": src, "src_lengths": src_len, "tgt_in": tgt_in, "tgt_out": tgt_out,
            "tgt_lengths": (m + 1).astype(np.int32)}


# -- the PyTorch twin ----------------------------------------------------------------------------

def torch_model_class():
    """:class:`TorchSeq2Seq`, defined when torch is importable."""
    torch = optional_import("torch", needed_for="the PyTorch side of the seq2seq benchmark")
    nn = torch.nn

    class TorchSeq2Seq(nn.Module):
        """The Bahdanau encoder-decoder of the module docstring in PyTorch."""

        def __init__(self, src_vocab: int, tgt_vocab: int, embed: int, hidden: int):
            super().__init__()
            self.src_embed = nn.Embedding(src_vocab, embed)
            self.tgt_embed = nn.Embedding(tgt_vocab, embed)
            self.encoder = nn.LSTM(embed, hidden, batch_first=True)
            self.decoder = nn.LSTMCell(embed + hidden, hidden)
            self.w_s = nn.Linear(hidden, hidden, bias=False)
            self.w_h = nn.Linear(hidden, hidden, bias=False)
            self.v = nn.Linear(hidden, 1, bias=False)
            self.out = nn.Linear(2 * hidden, tgt_vocab)

        def encode(self, src, lengths):
            """``((h, c) [B, H] each, values [B, S, H], keys [B, S, H], mask [B, S])``;
            ``lengths`` an int64 CPU tensor (``src`` on the module's device)."""
            S = src.shape[1]
            x = self.src_embed(src)                                          # [B, S, E]
            if bool((lengths == S).all()):
                values, (h, c) = self.encoder(x)
            else:
                packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True,
                                                           enforce_sorted=False)
                out, (h, c) = self.encoder(packed)
                values, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True,
                                                             total_length=S)   # 0 at padding
            mask = torch.arange(S, device=src.device)[None, :] < lengths.to(src.device)[:, None]
            return (h[0], c[0]), values, self.w_h(values), mask

        def step(self, state, y_prev, values, keys, mask):
            """One decoder step: ``(logits [B, V], (h, c))``."""
            h, c = state
            e = self.v(torch.tanh(keys + self.w_s(h)[:, None, :])).squeeze(-1)     # [B, S]
            a = torch.softmax(e.masked_fill(~mask, float("-inf")), dim=-1)
            context = torch.bmm(a[:, None, :], values).squeeze(1)                # [B, H]
            h, c = self.decoder(torch.cat([self.tgt_embed(y_prev), context], dim=-1), (h, c))
            return self.out(torch.cat([h, context], dim=-1)), (h, c)

        def forward(self, src, lengths, tgt_in):
            """Teacher-forced logits ``[B, T, V]``."""
            state, values, keys, mask = self.encode(src, lengths)
            logits = []
            for t in range(tgt_in.shape[1]):
                out, state = self.step(state, tgt_in[:, t], values, keys, mask)
                logits.append(out)
            return torch.stack(logits, dim=1)

    return TorchSeq2Seq


def copy_params(module, params) -> None:
    """Our params into a :class:`TorchSeq2Seq` (PyTorch computes ``x W^T``; ours ``x W``; the
    LSTM gates are in the same order i, f, g, o; our one bias goes to ``bias_ih``)."""
    import torch

    def t(x):
        return torch.from_numpy(np.array(x, dtype=np.float32))

    enc, dec = params["encoder"]["layer_0"], params["decoder"]["layer_0"]
    att = params["attention"]
    with torch.no_grad():
        module.src_embed.weight.copy_(t(params["src_embed"]["table"]))
        module.tgt_embed.weight.copy_(t(params["tgt_embed"]["table"]))
        for target, p in ((module.encoder, "l0"), (module.decoder, None)):
            src = enc if p else dec
            suffix = f"_{p}" if p else ""
            getattr(target, f"weight_ih{suffix}").copy_(t(src["w_x"]).T)
            getattr(target, f"weight_hh{suffix}").copy_(t(src["w_h"]).T)
            getattr(target, f"bias_ih{suffix}").copy_(t(src["b"]))
            # our LSTM has one bias b = b_ih + b_hh: bias_hh stays 0 and is not trained (two
            # trained copies would each get the full gradient and Adam step, and count twice
            # in the clipped norm: a different model in training)
            getattr(target, f"bias_hh{suffix}").zero_()
            getattr(target, f"bias_hh{suffix}").requires_grad_(False)
        module.w_s.weight.copy_(t(att["w_s"]).T)
        module.w_h.weight.copy_(t(att["w_h"]).T)
        module.v.weight.copy_(t(att["v"])[None, :])
        module.out.weight.copy_(t(params["out"]["w"]).T)
        module.out.bias.copy_(t(params["out"]["b"]))


def torch_twin(s: Shape, params):
    """A :class:`TorchSeq2Seq` holding ``params``."""
    torch = optional_import("torch", needed_for="the PyTorch side of the seq2seq benchmark")
    torch.set_num_threads(os.cpu_count() or 1)
    module = torch_model_class()(s.vocab, s.vocab, s.embed, s.hidden)
    copy_params(module, params)
    return module.to(torch_device())


def torch_loss(module, batch):
    """The mean cross-entropy over the real target tokens (as ``seq2seq.loss_fn``)."""
    import torch
    import torch.nn.functional as F

    logits = module(batch["src"], batch["src_lengths"], batch["tgt_in"])        # [B, T, V]
    T = logits.shape[1]
    mask = (torch.arange(T, device=logits.device)[None, :] < batch["tgt_lengths"][:, None]).float()
    nats = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["tgt_out"].reshape(-1),
                           reduction="none").reshape(mask.shape)
    return (nats * mask).sum() / mask.sum().clamp(min=1.0)


def torch_batch(batch: dict) -> dict:
    """int64 tensors on ``torch_device()``, but ``src_lengths`` on the CPU (for packing)."""
    import torch

    device = torch_device()
    return {k: torch.from_numpy(np.asarray(v).astype(np.int64)).to(
        "cpu" if k == "src_lengths" else device) for k, v in batch.items()}


def torch_beam_search(module, src, lengths, *, beam_size: int, max_len: int, bos_id: int = BOS,
                      eos_id: int = EOS, length_penalty: float = 0.0):
    """Batched beam search, the algorithm of ``seq2seq.beam_search`` in PyTorch: every beam
    extended by every word, the K best of each sentence's K x V candidates kept (ranked by
    ``score / length ** length_penalty``), an ended beam extended only by eos at no cost, only
    beam 0 alive at the start, stop when every beam has ended or after ``max_len`` steps.
    Returns ``(tokens [B, K, max_len], scores [B, K])``, best first."""
    import torch

    B, K, N = src.shape[0], int(beam_size), int(max_len)
    device = src.device
    with torch.no_grad():
        state, values, keys, mask = module.encode(src, lengths)
        state = tuple(x.repeat_interleave(K, dim=0) for x in state)
        values, keys, mask = (x.repeat_interleave(K, dim=0) for x in (values, keys, mask))
        V = module.out.out_features
        neg_inf = float("-inf")
        only_eos = torch.full((V,), neg_inf, device=device)
        only_eos[eos_id] = 0.0
        scores = torch.full((B, K), neg_inf, device=device)
        scores[:, 0] = 0.0
        lens = torch.zeros((B, K), dtype=torch.long, device=device)
        ended = torch.zeros((B, K), dtype=torch.bool, device=device)
        tokens = torch.full((B, K, N), eos_id, dtype=torch.long, device=device)
        last = torch.full((B * K,), bos_id, dtype=torch.long, device=device)
        base = (torch.arange(B, device=device) * K)[:, None]
        t = 0
        while t < N and not bool((ended | torch.isneginf(scores)).all()):
            logits, state = module.step(state, last, values, keys, mask)
            log_probs = torch.log_softmax(logits, dim=-1).view(B, K, V)
            log_probs = torch.where(ended[..., None], only_eos, log_probs)
            cand = (scores[..., None] + log_probs).view(B, K * V)
            cand_len = torch.where(ended, lens, torch.full_like(lens, t + 1))          # [B, K]
            if length_penalty:
                rank = cand / (cand_len.clamp(min=1).to(cand.dtype) ** length_penalty
                               ).repeat_interleave(V, dim=1)
            else:
                rank = cand
            best = rank.topk(K, dim=1).indices                                         # [B, K]
            parent, token = best // V, best % V
            scores = cand.gather(1, best)
            lens = cand_len.gather(1, parent)
            ended = ended.gather(1, parent) | (token == eos_id)
            tokens = tokens.gather(1, parent[..., None].expand(B, K, N)).clone()
            tokens[:, :, t] = token
            rows = (base + parent).view(-1)
            state = tuple(x.index_select(0, rows) for x in state)
            last = token.view(-1)
            t += 1
        final = scores / lens.clamp(min=1).to(scores.dtype) ** length_penalty
        order = torch.argsort(-final, dim=1, stable=True)
        return tokens.gather(1, order[..., None].expand(B, K, N)), final.gather(1, order)


# -- the sides -----------------------------------------------------------------------------------

def _train_setup(s: Shape, seed: int = 0):
    """The model, estimator, optimizer, the trainer's state and data, as ``fit`` builds them."""
    from dlmodels import seq2seq
    from dlmodels.train import OptimizerConfig, init_state, make_optimizer
    from dlmodels.train.estimators import as_estimator

    model = make_model(s)
    estimator = as_estimator(seq2seq.loss_fn(model))
    optimizer = make_optimizer(OptimizerConfig(name="adam", learning_rate=LEARNING_RATE,
                                               clip_norm=CLIP_NORM), total_steps=s.steps)
    data = synthetic_batch(s, s.steps * s.batch, seed)
    state = init_state(model.init, optimizer, seed,
                       lambda key, params: estimator.init(key, params, data))
    return model, estimator, optimizer, data, state


def ours_train(s: Shape, seed: int = 0):
    """``(step, initial params)``: a zero-argument call running ``s.steps`` updates as ``fit``'s
    loop does (the state advances from call to call); returns the losses ``[steps]``."""
    from dlmodels.train import make_train_steps

    model, estimator, optimizer, data, state = _train_setup(s, seed)
    params0 = jax.tree.map(np.asarray, state.params)
    data = jax.device_put(jax.tree.map(jnp.asarray, data))
    n = data["src"].shape[0]
    holder = [state]
    run = jax.jit(make_train_steps(estimator, optimizer, halt_on_nonfinite=True))
    key = jax.random.PRNGKey(seed)

    def step():
        idx = batch_indices(key, n, s.batch, epoch=0, shuffle=False)[:s.steps]
        holder[0], metrics = run(holder[0], data, jnp.asarray(idx))
        if not np.asarray(metrics.finite).all():
            raise FloatingPointError("non-finite loss in the seq2seq benchmark")
        return np.asarray(metrics.loss)

    return step, params0


def torch_train(s: Shape, params, seed: int = 0):
    """The same updates on the PyTorch twin (our initial params copied in)."""
    torch = optional_import("torch", needed_for="the PyTorch side of the seq2seq benchmark")
    module = torch_twin(s, params)
    trained = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.Adam(trained, lr=LEARNING_RATE)
    data = synthetic_batch(s, s.steps * s.batch, seed)
    batches = [torch_batch({k: v[i * s.batch:(i + 1) * s.batch] for k, v in data.items()})
               for i in range(s.steps)]

    def step():
        losses = []
        for batch in batches:
            opt.zero_grad(set_to_none=True)
            loss = torch_loss(module, batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trained, CLIP_NORM)
            opt.step()
            losses.append(loss.item())
        return np.asarray(losses)

    return step


def _decode_inputs(s: Shape, seed: int = 1):
    b = synthetic_batch(s, s.decode_batch, seed)
    return b["src"], b["src_lengths"]


def ours_beam(s: Shape, model, params):
    """A zero-argument ``seq2seq.translate`` call (beam ``s.beam``) on ``s.decode_batch``
    sentences; returns the best tokens ``[B, N]``."""
    from dlmodels import seq2seq

    src, lengths = (jnp.asarray(a) for a in _decode_inputs(s))
    params = jax.tree.map(jnp.asarray, params)

    def call():
        return seq2seq.translate(model, params, src, lengths, max_len=s.max_len,
                                 beam_size=s.beam, bos_id=BOS, eos_id=EOS)

    return call


def torch_beam(s: Shape, module):
    import torch

    src, lengths = (torch.from_numpy(a.astype(np.int64)) for a in _decode_inputs(s))
    src = src.to(torch_device())

    def call():
        tokens, _ = torch_beam_search(module, src, lengths, beam_size=s.beam, max_len=s.max_len)
        return tokens[:, 0].cpu().numpy()

    return call


# -- checks --------------------------------------------------------------------------------------

def twin_checks(s: Shape, model, params, module) -> dict:
    """Ours against the PyTorch twin with the same params: teacher-forced logits (variable
    lengths, so packing and masking are exercised), and every beam's tokens and score."""
    import torch

    from dlmodels import seq2seq

    batch = synthetic_batch(s, s.decode_batch, seed=2, full_length=False)
    p = jax.tree.map(jnp.asarray, params)
    ours = np.asarray(model.apply(p, jnp.asarray(batch["src"]),
                                  jnp.asarray(batch["src_lengths"]),
                                  jnp.asarray(batch["tgt_in"])))
    tb = torch_batch(batch)
    with torch.no_grad():
        theirs = module(tb["src"], tb["src_lengths"], tb["tgt_in"]).cpu().numpy()
    src, lengths = _decode_inputs(s)
    step_fn, state = seq2seq.decoder(model, p, jnp.asarray(src), jnp.asarray(lengths),
                                     beam_size=s.beam)
    tokens, scores = jax.jit(lambda st: seq2seq.beam_search(
        step_fn, st, batch_size=len(src), beam_size=s.beam, max_len=s.max_len, bos_id=BOS,
        eos_id=EOS))(state)
    t_tokens, t_scores = torch_beam_search(module,
                                           torch.from_numpy(src.astype(np.int64)).to(torch_device()),
                                           torch.from_numpy(lengths.astype(np.int64)),
                                           beam_size=s.beam, max_len=s.max_len)
    tokens, t_tokens, t_scores = np.asarray(tokens), t_tokens.cpu().numpy(), t_scores.cpu().numpy()
    same = np.all(tokens == t_tokens, axis=(1, 2))
    return {"max_abs_logit_diff": float(np.max(np.abs(ours - theirs))),
            "logit_scale": float(np.max(np.abs(theirs))),
            "beam_sentences_equal": float(np.mean(same)),
            "beam_max_abs_score_diff": float(np.max(np.abs(np.asarray(scores)
                                                           - t_scores))),
            "best_beam_equal": float(np.mean(np.all(tokens[:, 0] == t_tokens[:, 0], axis=1)))}


# -- report --------------------------------------------------------------------------------------

def headline(result: Result | None) -> dict | None:
    """The median of the per-round ratios ``peer / ours`` with their quartiles."""
    if result is None:
        return None
    summary = result.summary()
    return {"case": result.case.name, "peer": result.peer.label, **summary,
            "target": 1.0, "met": summary["median_round_ratio"] >= 1.0}


def _record(part: str, case: Case, timings: dict, checks: dict, items_per_call: int, unit: str,
            per_call: str, results: list, extra: dict) -> None:
    """Print each side's time and rate for ``part``, store them in ``extra``, and append the
    ours-vs-torch Result (with its headline) when PyTorch ran."""
    extra["sides"][part] = {name: {"seconds_per_call": t.median,
                                   f"{unit}_per_second": items_per_call / t.median}
                            for name, t in timings.items()}
    for name, t in timings.items():
        print(f"  {part:<6} {name:<9} {t.median:8.4f} s / {per_call}  "
              f"{items_per_call / t.median:9.1f} {unit}/s", flush=True)
    if "torch" in timings:
        r = Result(case, Measurement(OURS, timings[OURS]), Measurement("torch", timings["torch"]),
                   checks)
        results.append(r)
        extra["headlines"][part] = headline(r)


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(SUITE, "Bahdanau-attention encoder-decoder: training step (B=64, S=T=20, "
                                "H=256) and beam-4 decoding vs the same model in PyTorch.")
    parser.add_argument("--rounds", type=int, dest="repeats", default=argparse.SUPPRESS,
                        help="interleaved timed rounds (the same as --repeats)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--steps", type=int, default=None,
                        help=f"training updates per timed call (default {SHAPE.steps})")
    args = parser.parse_args(argv)
    if args.quick:
        shape, repeats, warmup = QUICK, min(args.repeats, 2), 1
    else:
        shape, repeats, warmup = SHAPE, args.repeats, args.warmup
    if args.steps:
        shape = dataclasses.replace(shape, steps=args.steps)
    if repeats < 1 or warmup < 0 or shape.steps < 1:
        parser.error("--rounds and --steps must be >= 1, --warmup >= 0")

    env = environment()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"suite {SUITE}: {env['device_kind']} ({env['backend']}), {env['cpu_count']} CPUs, "
          f"jax {env['versions']['jax']}, {env['date']}; {repeats} interleaved rounds after "
          f"{warmup} warm-up calls; load average {load}; shape {dataclasses.asdict(shape)}",
          flush=True)
    shapes = {"V": shape.vocab, "B": shape.batch, "S": shape.src_len, "T": shape.tgt_len,
              "E": shape.embed, "H": shape.hidden}
    results: list[Result] = []
    extra: dict = {"headlines": {}, "skipped": {}, "failed_checks": [], "sides": {}}

    train_step, params0 = ours_train(shape)
    model = make_model(shape)
    module = None
    try:
        module = torch_twin(shape, params0)
    except ImportError as e:
        extra["skipped"]["torch"] = f"not installed: {e}"
        print(f"  skipped torch: not installed: {e}", flush=True)
    checks = {}
    if module is not None:
        checks = twin_checks(shape, model, params0, module)
        print(f"  twin checks: {checks}", flush=True)
        logit_tol = max(MAX_ABS_LOGIT_DIFF, backend.matmul_rtol(0.0) * checks["logit_scale"])
        if not checks["max_abs_logit_diff"] <= logit_tol:
            extra["failed_checks"].append(f"logits differ from PyTorch's: {checks}")
        if checks["beam_sentences_equal"] < 1.0:
            if backend.name() == "cpu":
                extra["failed_checks"].append(f"beams differ from PyTorch's: {checks}")
            else:
                print(f"  note: {checks['beam_sentences_equal']:.0%} of the sentences have every "
                      f"beam equal to PyTorch's (TF32 near-ties; not failed off the CPU)",
                      flush=True)
    extra["twin_checks"] = checks

    if "train" in args.parts:
        sides = {OURS: train_step}
        if module is not None:
            sides["torch"] = torch_train(shape, params0)
        first = {name: fn() for name, fn in sides.items()}        # compilation = first warm-up
        if "torch" in first:
            rel = float(np.max(np.abs(first[OURS] - first["torch"]) / np.abs(first["torch"])))
            checks_train = {"first_call_losses": {k: v.tolist() for k, v in first.items()},
                            "max_rel_loss_diff": rel}
            if not rel <= backend.matmul_rtol(MAX_REL_LOSS_DIFF):
                extra["failed_checks"].append(f"training losses differ: {checks_train}")
        else:
            checks_train = {"first_call_losses": {k: v.tolist() for k, v in first.items()}}
        timings = time_interleaved(sides, warmup=max(warmup - 1, 0), repeats=repeats)
        case = Case("train step (Bahdanau attention)", {**shapes, "updates_per_call": shape.steps},
                    {"optimizer": f"clip_by_global_norm({CLIP_NORM}) + adam({LEARNING_RATE})",
                     "ours": "jit(train.make_train_steps(as_estimator(seq2seq.loss_fn(model)), "
                             "make_optimizer(...))) + fit's host work per call",
                     "torch": "TorchSeq2Seq: nn.LSTM encoder, nn.LSTMCell decoder loop, "
                              "backward, clip_grad_norm_, torch.optim.Adam"})
        _record("train", case, timings, checks_train, shape.steps * shape.batch, "pairs",
                f"{shape.steps} updates", results, extra)

    if "beam" in args.parts:
        sides = {OURS: ours_beam(shape, model, params0)}
        if module is not None:
            sides["torch"] = torch_beam(shape, module)
        timings = time_interleaved(sides, warmup=warmup, repeats=repeats)
        case = Case(f"beam search (beam {shape.beam})",
                    {**shapes, "beam": shape.beam, "max_len": shape.max_len,
                     "sentences_per_call": shape.decode_batch},
                    {"ours": "seq2seq.translate (beam_search in one lax.while_loop)",
                     "torch": "torch_beam_search under torch.no_grad(), batched over "
                              "sentences and beams"})
        _record("beam", case, timings, checks, shape.decode_batch, "sentences",
                f"{shape.decode_batch} sentences", results, extra)

    print()
    for r in results:
        print_table(f"{r.case.name}: torch vs {OURS}", [r])
        print()
    for key, h in extra["headlines"].items():
        q = h["round_ratio_q25_q75"]
        print(f"{key}: {h['median_round_ratio']:.2f}x PyTorch [per-round q25-q75 {q[0]:.2f}-"
              f"{q[1]:.2f}]; target >= 1.0x: {'met' if h['met'] else 'NOT met'}", flush=True)

    config = {"repeats": repeats, "warmup": warmup, "quick": args.quick, "parts": args.parts,
              "shape": dataclasses.asdict(shape), "learning_rate": LEARNING_RATE,
              "clip_norm": CLIP_NORM, "dtype": "float32", "torch": torch_environment(),
              "load_average_at_start": list(load) if load else None}
    return finish(SUITE, results, out=args.out, config=config, extra=extra)


if __name__ == "__main__":
    sys.exit(main())
