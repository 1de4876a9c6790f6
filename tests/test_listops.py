"""experiments/listops.py: a tiny end-to-end run (with resume) on generated expressions (no
fetched data: ``listops.load`` is replaced by ``listops.generate``), and its pieces against
independent references: the gradient study's leaf gradients against the gradient of the models'
own embedding lookup, the per-distance means against a Python loop, model selection on valid."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlmodels import experiment, losses, recursive
from dlmodels.data import listops
from dlmodels.text.classify import rnn_classifier

from dlmodels.experiments import listops as exp  # noqa: E402


def fake_load(sizes):
    def load(split):
        exprs = listops.generate(sizes[split], seed={"train": 1, "valid": 2, "test": 3}[split],
                                 max_depth=3, max_args=3)
        labels = np.array([listops.evaluate(listops.parse(e)) for e in exprs])
        return exprs, labels
    return load


TINY = {"models": ("treelstm", "lstm"), "train_size": 0, "row_nodes": 24,
        "embed_dim": 8, "hidden": 8, "epochs": 2, "batch_size": 16, "evals_per_epoch": 2,
        "eval_batch_size": 32, "length_bins": (8, 16), "grad_examples": 20,
        "checkpoint_every": 2, "learning_rate": 0.01}


@pytest.mark.slow  # an experiment's smoke run: kept out of the 15-minute default run
def test_listops_smoke_and_resume(tmp_path, monkeypatch):
    check_run(tmp_path, monkeypatch, TINY)


@pytest.mark.slow
def test_listops_every_model(tmp_path, monkeypatch):
    check_run(tmp_path, monkeypatch, {**TINY, "models": exp.MODELS})


def check_run(tmp_path, monkeypatch, TINY):
    monkeypatch.setattr(listops, "load", fake_load({"train": 64, "valid": 24, "test": 40}))
    run_dir, results = experiment.run("listops", TINY, run_dir=str(tmp_path / "run"))
    on_disk = json.loads((tmp_path / "run" / "results.json").read_text())
    assert set(on_disk) == set(results)
    assert results["data"]["train"] == 64 and results["data"]["test"] == 40
    assert sum(results["data"]["test_depth_counts"]) == 40
    assert sum(results["data"]["test_length_counts"]) == 40
    assert set(results["models"]) == set(TINY["models"])
    for name, row in results["models"].items():
        assert 0 <= row["test_accuracy"] <= 1 and 0 <= row["valid_accuracy"] <= 1
        assert row["chosen_step"] in row["curve"]["step"]
        assert len(row["curve"]["step"]) == 4                     # 2 epochs x 2 evaluations
        # the chosen point has the best valid accuracy of the curve
        assert row["valid_accuracy"] == max(row["curve"]["valid_accuracy"])
        # per-depth accuracies weighted by their counts give the overall accuracy
        counts = np.array(results["data"]["test_depth_counts"])
        acc = np.array([0.0 if a is None else a for a in row["test_accuracy_by_depth"]])
        assert np.sum(acc * counts) / counts.sum() == pytest.approx(row["test_accuracy"])
        counts = np.array(results["data"]["test_length_counts"])
        acc = np.array([0.0 if a is None else a for a in row["test_accuracy_by_length"]])
        assert np.sum(acc * counts) / counts.sum() == pytest.approx(row["test_accuracy"])
    assert results["models"]["treelstm"]["info"]["max_children"] <= 3
    if "rnn" in results["models"]:
        assert results["models"]["rnn"]["info"]["max_children"] == 2
    g = results["gradients"]
    assert g["tree"]["model"] == "treelstm" and g["chain"]["model"] == "lstm"
    for state in ("trained", "untrained"):
        assert sum(g["tree"][state]["count"]) > 0
        assert sum(g["chain"][state]["input"]["count"]) == sum(g["chain"][state]["hidden"]["count"])
        assert g["tree"][state]["max_distance"] <= 3            # leaf depth <= max_depth
    if "bilstm" in TINY["models"]:
        assert isinstance(results["target_met"], bool)
    else:
        assert results["target_met"] is None                    # nothing to compare with
    for plot in results["plots"].values():
        assert (tmp_path / "run" / plot).stat().st_size > 0
    # a second call on the same run directory resumes every finished phase: same numbers
    _, again = experiment.run("listops", {}, run_dir=run_dir, resume=True)
    for name in TINY["models"]:
        assert again["models"][name]["test_accuracy"] == results["models"][name]["test_accuracy"]
        assert again["models"][name]["chosen_step"] == results["models"][name]["chosen_step"]


@pytest.mark.parametrize("kind", ["treelstm", "rnn"])
def test_rows_of_several_trees_equal_one_tree_at_a_time(kind):
    """``pack_rows`` puts several trees in one node-table row; the root logits read at each
    tree's slot equal those of the tree packed alone (the model's plain root classifier)."""
    exprs = listops.generate(30, seed=5, max_depth=4, max_args=4)
    trees = [listops.parse(e) for e in exprs]
    if kind == "rnn":
        trees = [recursive.binarize(t) for t in trees]
    vocab = exp.vocabulary()
    config = exp.Config(hidden=6, embed_dim=5)
    K = 2 if kind == "rnn" else 4
    H = max(exp._height(t) for t in trees)
    rows, slots, index = exp.pack_rows(trees, vocab, capacity=60, max_children=K, max_height=H,
                                       seed=0)
    assert sorted(index[index >= 0].tolist()) == list(range(30))      # every tree once
    assert len(rows["root"]) < 30                                      # several per row
    every = exp.build(kind, len(vocab), config, K, node_classifier=True)
    root = exp.build(kind, len(vocab), config, K)
    params = every.init(jax.random.PRNGKey(2))
    f = exp.logits_fn(kind, every)
    logits, used = f(params, {**rows, "slots": slots, "slot_used": index >= 0})
    assert np.array_equal(np.asarray(used), index >= 0)
    alone = root.apply(params, recursive.pack(trees, vocab, max_children=K))   # a tree per row
    r, m = np.nonzero(index >= 0)
    np.testing.assert_allclose(np.asarray(logits)[r, m], np.asarray(alone)[index[r, m]],
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="capacity"):
        exp.pack_rows(trees, vocab, capacity=3, max_children=K, max_height=H, seed=0)


def test_tree_leaf_gradients_match_the_embedding_gradient():
    """With a distinct token at every node, row t of d(loss)/d(embedding table) is dL/dx of the
    node holding token t: the model's own lookup, differentiated, is the reference."""
    tree = ("a", ("b", "l1", ("c", "l2", "l3")), "l4", ("d", "l5"))
    names = ["a", "b", "c", "d", "l1", "l2", "l3", "l4", "l5"]
    ids = {t: i + 2 for i, t in enumerate(names)}
    expected_depth = {"l1": 2, "l2": 3, "l3": 3, "l4": 1, "l5": 2}
    model = recursive.tree_lstm(16, 6, 10, kind="child_sum", max_children=3, embed_dim=5)
    params = model.init(jax.random.PRNGKey(0))
    forest = recursive.pack([tree], ids, max_children=3)
    labels = jnp.array([7])
    norms, depth = exp.tree_leaf_gradients(model, params, forest, labels)

    def loss(table):
        p = {**params, "embedding": {**params["embedding"], "table": table}}
        return jnp.sum(losses.softmax_cross_entropy(model.apply(p, forest), labels))

    g = jax.grad(loss)(params["embedding"]["table"])
    leaf_tokens = np.asarray(forest.tokens)[np.asarray(forest.mask)
                                            & (np.asarray(forest.height) == 0)]
    by_id = {v: k for k, v in ids.items()}
    np.testing.assert_allclose(norms, np.linalg.norm(np.asarray(g)[leaf_tokens], axis=-1),
                               rtol=1e-5, atol=1e-8)
    assert [expected_depth[by_id[int(t)]] for t in leaf_tokens] == depth.tolist()


def test_chain_gradients_match_the_embedding_gradient():
    """Token t at position t: row t of d(loss)/d(table) of ``rnn_classifier`` is dL/dx_t; the
    distance is L - 1 - t; the hidden-state norms at the last step equal ||dL/dh_L|| from the
    head alone (h_L only feeds the head)."""
    T, hidden = 7, 5
    model = rnn_classifier(T + 4, 10, cell="lstm", embed_dim=4, hidden=hidden)
    params = model.init(jax.random.PRNGKey(1))
    ids = jnp.arange(T)[None] + 2
    lengths, labels = jnp.array([T]), jnp.array([3])

    def loss(table):
        p = {**params, "embedding": {"table": table}}
        return jnp.sum(losses.softmax_cross_entropy(model.apply(p, ids, lengths), labels))

    g = np.asarray(jax.grad(loss)(params["embedding"]["table"]))
    out = exp.chain_gradients(hidden, params, ids, lengths, labels, leaf_ids=np.arange(T) + 2)
    assert out["distance"].tolist() == list(range(T - 1, -1, -1))
    np.testing.assert_allclose(out["input"], np.linalg.norm(g[2:T + 2], axis=-1), rtol=1e-4,
                               atol=1e-8)
    # at the last step dL/dh = W_head (softmax - onehot)
    w = np.asarray(params["head"]["w"])
    logits = np.asarray(model.apply(params, ids, lengths))[0]
    p = np.exp(logits - logits.max())
    p /= p.sum()
    p[3] -= 1
    np.testing.assert_allclose(out["hidden"][-1], np.linalg.norm(w @ p), rtol=1e-4)


def test_by_distance_against_a_loop():
    rng = np.random.default_rng(0)
    dist = rng.integers(0, 6, 300)
    norms = np.exp(-0.7 * dist) * rng.uniform(0.5, 1.5, 300)
    out = exp.by_distance(norms, dist, min_count=1)
    for d in range(6):
        sel = norms[dist == d]
        assert out["count"][d] == len(sel)
        assert out["mean_norm"][d] == pytest.approx(sel.mean())
        assert out["geometric_mean_norm"][d] == pytest.approx(np.exp(np.log(sel).mean()))
    means = np.array([norms[dist == d].mean() for d in range(6)])
    slope = np.polyfit(np.arange(6), np.log10(means), 1)[0]
    assert out["slope_log10_per_step"] == pytest.approx(slope)
    assert out["ratio_far_to_near"] == pytest.approx(means[5] / means[0])


def test_select_takes_the_best_valid_point():
    def entry(step, valid, loss, test):
        e = {"step": step, "epoch": step / 10, "train_loss": 1.0, "eval_valid_correct": valid,
             "eval_valid_n": 1.0, "eval_valid_loss": loss, "eval_test_correct": test,
             "eval_test_n": 0.5, "eval_test_loss": 0.1}
        for d in range(2):
            e[f"eval_test_correct_depth_{d}"], e[f"eval_test_n_depth_{d}"] = test / 2, 0.25
        e["eval_test_correct_length_0"], e["eval_test_n_length_0"] = test, 0.5
        return e
    history = [entry(10, 0.5, 1.0, 0.2), entry(20, 0.8, 0.6, 0.3), entry(30, 0.8, 0.5, 0.4),
               entry(40, 0.7, 0.4, 0.45)]
    row = exp.select(history, 2, 1)
    assert row["chosen_step"] == 30 and row["valid_accuracy"] == 0.8
    assert row["test_accuracy"] == pytest.approx(0.8)
    assert row["test_accuracy_by_depth"] == [pytest.approx(0.8)] * 2


def test_config_refuses_bad_values():
    with pytest.raises(ValueError, match="models"):
        exp.Config(models=("cnn",))
    with pytest.raises(ValueError, match="length_bins"):
        exp.Config(length_bins=(10, 5))
    with pytest.raises(ValueError, match="hidden"):
        exp.Config(hidden=0)
    with pytest.raises(ValueError, match="tree_dropout"):
        exp.Config(tree_dropout=1.0)
