"""Damage figures (KL, flip rate, cross-entropy) against the fp32 outputs: exact values, and
their path through the evaluator and the trial store."""

import math

import numpy as np
import pytest

from tests.dse.fake_backend import FakeFactory
from weightshare.dse.damage import damage, log_softmax, per_image
from weightshare.dse.space import Candidate
from weightshare.dse.trials import TrialStore


def test_identical_outputs_have_no_damage_and_the_labels_cross_entropy():
    logits = np.array([[2.0, 0.0], [0.0, 1.0]], np.float32)
    hurt = damage(logits, logits, np.array([0, 0]))
    assert hurt.kl == 0.0 and hurt.flip == 0.0
    # -log softmax: image 0 label 0 -> log(1 + e^-2); image 1 label 0 -> log(1 + e^1)
    assert hurt.cross_entropy == pytest.approx((math.log1p(math.exp(-2)) + math.log1p(math.e)) / 2)


def test_kl_and_flips_match_the_closed_form():
    reference = np.array([[0.0, 0.0], [3.0, 0.0]], np.float32)
    logits = np.array([[math.log(3.0), 0.0], [0.0, 3.0]], np.float32)
    kl, flip, _ = per_image(reference, logits, np.array([0, 1]))
    # image 0: p = (1/2, 1/2), q = (3/4, 1/4): KL = 1/2 log(2/3) + 1/2 log 2
    assert kl[0] == pytest.approx(0.5 * math.log(2 / 3) + 0.5 * math.log(2), rel=1e-6)
    # image 1: the two classes swap: KL = (p0 - p1) * 3 with p0 = 1/(1+e^-3)
    p0 = 1 / (1 + math.exp(-3))
    assert kl[1] == pytest.approx((p0 - (1 - p0)) * 3, rel=1e-6)
    assert flip.tolist() == [False, True]  # image 0 ties at fp32: argmax is class 0 both times


def test_log_softmax_is_stable_for_large_logits():
    out = log_softmax(np.array([[1000.0, 0.0]], np.float32))
    assert out[0, 0] == 0.0 and out[0, 1] == -1000.0


def test_shapes_must_match():
    with pytest.raises(ValueError, match="reference shape"):
        damage(np.zeros((2, 3)), np.zeros((2, 4)), np.zeros(2, np.int64))


@pytest.fixture(scope="module")
def evaluator():
    return FakeFactory(0.05)()


def test_the_evaluator_scores_damage_against_the_fp32_outputs_of_the_same_images(evaluator):
    fp32 = evaluator.evaluate(Candidate(()))
    assert (fp32.kl, fp32.flip) == (0.0, 0.0) and fp32.cross_entropy > 0
    layer = evaluator.layers[0].name
    shared = evaluator.evaluate(Candidate.of({layer: 2}))
    split = evaluator.splits["search"]
    backend = evaluator.backend
    parts = [sub for _, _, sub in evaluator.parts("search")]  # the batches it scores in

    def logits():
        return np.concatenate([backend.predict(sub) for sub in parts])

    reference = logits()
    backend.set_weights({layer: evaluator.cache.get(layer, 2).dequantize()})
    try:
        expected = damage(reference, logits(), split.labels)
    finally:
        backend.restore()
    assert (shared.kl, shared.flip, shared.cross_entropy) == (
        expected.kl,
        expected.flip,
        expected.cross_entropy,
    )
    assert shared.kl > 0.01 and shared.flip > 0
    # a coarser layer hurts more than a finer one of the same layer
    assert evaluator.evaluate(Candidate.of({layer: 32})).kl < shared.kl


def test_the_store_keeps_the_damage_figures_across_a_reopen(tmp_path, evaluator):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    result = evaluator.evaluate(Candidate.of({"fc1": 3}))
    TrialStore(url, {"a": 1}).add(
        "knapsack", Candidate.of({"fc1": 3}), result, size_bytes=10.0, target=0.5
    )
    (record,) = TrialStore(url, {"a": 1}).records("knapsack")
    assert record.result == result
    assert (record.kl, record.flip, record.cross_entropy) == (
        result.kl,
        result.flip,
        result.cross_entropy,
    )
