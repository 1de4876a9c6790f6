"""The seq2seq benchmark suite: the PyTorch twin is the same model (our params copied in: equal
teacher-forced logits with padded sources, equal beams and scores, with and without length
normalisation and with beams that end early; equal losses over several Adam updates with
clipping), the headline by hand, and the --quick run's report (ratios and rates recomputed from
the recorded times)."""

import json
import statistics

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlmodels import seq2seq
from dlmodels.benchmarks import harness
from dlmodels.benchmarks import seq2seq as bench

SMALL = bench.Shape(vocab=12, batch=5, src_len=7, tgt_len=6, embed=6, hidden=10, steps=3,
                    beam=4, max_len=7, decode_batch=6)


def _params(s, seed=0, eos_bias=0.0):
    params = bench.make_model(s).init(jax.random.PRNGKey(seed))
    # a larger eos logit makes beams end at different steps (the ended-beam rule is exercised)
    params["out"]["b"] = params["out"]["b"].at[bench.EOS].add(eos_bias)
    return params


def test_headline_is_median_round_ratio():
    t = lambda times: harness.Timing(statistics.median(times), tuple(times))
    r = harness.Result(harness.Case("c", {}), harness.Measurement("dlmodels", t([1.0, 2.0, 1.0])),
                       harness.Measurement("torch", t([3.0, 1.0, 1.5])))
    h = bench.headline(r)
    assert h["median_round_ratio"] == pytest.approx(1.5)           # rounds 3, 0.5, 1.5
    assert h["round_ratio_q25_q75"] == pytest.approx([1.0, 2.25])  # inclusive quartiles
    assert h["met"] is True and bench.headline(None) is None


def test_synthetic_batch_layout():
    b = bench.synthetic_batch(SMALL, 9, seed=3, full_length=False)
    for i in range(9):
        n, m1 = b["src_lengths"][i], b["tgt_lengths"][i]
        assert np.all(b["src"][i, :n] >= 4) and np.all(b["src"][i, n:] == 0)
        assert b["tgt_in"][i, 0] == bench.BOS and b["tgt_out"][i, m1 - 1] == bench.EOS
        np.testing.assert_array_equal(b["tgt_in"][i, 1:m1], b["tgt_out"][i, :m1 - 1])
        assert np.all(b["tgt_out"][i, m1:] == 0)
    full = bench.synthetic_batch(SMALL, 4)
    assert np.all(full["src_lengths"] == SMALL.src_len)
    assert np.all(full["tgt_lengths"] == SMALL.tgt_len)


def test_torch_twin_same_logits_and_beams():
    torch = pytest.importorskip("torch")
    params = _params(SMALL, eos_bias=1.5)
    model = bench.make_model(SMALL)
    module = bench.torch_twin(SMALL, params)
    batch = bench.synthetic_batch(SMALL, 8, seed=4, full_length=False)
    ours = np.asarray(model.apply(params, *(jnp.asarray(batch[k]) for k in
                                            ("src", "src_lengths", "tgt_in"))))
    tb = bench.torch_batch(batch)
    with torch.no_grad():
        theirs = module(tb["src"], tb["src_lengths"], tb["tgt_in"]).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0)
    src, lengths = batch["src"], batch["src_lengths"]
    for penalty in (0.0, 1.0):
        step_fn, state = seq2seq.decoder(model, params, jnp.asarray(src), jnp.asarray(lengths),
                                         beam_size=SMALL.beam)
        tokens, scores = seq2seq.beam_search(step_fn, state, batch_size=len(src),
                                             beam_size=SMALL.beam, max_len=SMALL.max_len,
                                             bos_id=bench.BOS, eos_id=bench.EOS,
                                             length_penalty=penalty)
        t_tokens, t_scores = bench.torch_beam_search(
            module, torch.from_numpy(src.astype(np.int64)),
            torch.from_numpy(lengths.astype(np.int64)), beam_size=SMALL.beam,
            max_len=SMALL.max_len, length_penalty=penalty)
        np.testing.assert_array_equal(np.asarray(tokens), t_tokens.numpy())
        np.testing.assert_allclose(np.asarray(scores), t_scores.numpy(), atol=1e-5, rtol=1e-5)
        ended = np.asarray(tokens) == bench.EOS
        assert ended.any(axis=2).any() and not ended[..., 0].all()   # some end early, not all


def test_training_updates_equal():
    pytest.importorskip("torch")
    ours, params0 = bench.ours_train(SMALL)
    theirs = bench.torch_train(SMALL, params0)
    a, b = ours(), theirs()                       # 3 updates each: loss 2 and 3 follow Adam
    assert a.shape == b.shape == (SMALL.steps,)
    np.testing.assert_allclose(a, b, rtol=1e-5)
    np.testing.assert_allclose(ours(), theirs(), rtol=1e-5)   # and 3 more from the new state


def test_seq2seq_quick_writes_report(tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "seq2seq.json"
    assert bench.main(["--quick", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["suite"] == "seq2seq" and report["failed_checks"] == []
    assert report["config"]["quick"] and report["config"]["repeats"] <= 2
    assert {"device_kind", "platform", "cpu_count", "versions", "date"} <= set(
        report["environment"])
    checks = report["twin_checks"]
    assert checks["max_abs_logit_diff"] <= 1e-5 and checks["beam_sentences_equal"] == 1.0
    s = report["config"]["shape"]
    by_case = {r["case"].split(" (")[0]: r for r in report["results"]}
    assert set(by_case) == {"train step", "beam search"}
    for key, r in zip(("train", "beam"), (by_case["train step"], by_case["beam search"])):
        ours, peer = r["ours"]["times_s"], r["peer"]["times_s"]
        assert r["ratio_of_medians"] == pytest.approx(
            statistics.median(peer) / statistics.median(ours), rel=1e-12)
        assert r["ratio_peer_over_ours"] == pytest.approx(  # the headline
            statistics.median(p / o for p, o in zip(peer, ours)), rel=1e-12)
        assert r["round_ratios"] == pytest.approx([p / o for p, o in zip(peer, ours)])
        h = report["headlines"][key]
        assert h["median_round_ratio"] == pytest.approx(statistics.median(r["round_ratios"]))
        assert h["met"] == (h["median_round_ratio"] >= 1.0)
    sides = report["sides"]
    assert sides["train"]["dlmodels"]["pairs_per_second"] == pytest.approx(
        s["steps"] * s["batch"] / by_case["train step"]["ours"]["median_s"])
    assert sides["beam"]["torch"]["sentences_per_second"] == pytest.approx(
        s["decode_batch"] / by_case["beam search"]["peer"]["median_s"])
    losses = by_case["train step"]["checks"]["first_call_losses"]
    np.testing.assert_allclose(losses["dlmodels"], losses["torch"], rtol=1e-4)
    assert "PyTorch" in capsys.readouterr().out
