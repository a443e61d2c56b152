"""Conformance suite every backend runs: subclass :class:`BackendConformance` and provide the
``backend`` fixture (a backend over a trained network) and ``split`` (a small labelled split).

It checks the contract of :class:`weightshare.backends.base.Backend`: layers listed with unique
names and shapes, weights round trip, restore is bit-exact, evaluation is deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest

from weightshare.types import LAYER_KINDS


class BackendConformance:
    """Mix-in test class; subclasses define the ``backend`` and ``split`` fixtures."""

    def test_layers_have_unique_names_known_kinds_and_matching_weights(self, backend):
        layers = backend.layers()
        assert layers, "a network must expose at least one clusterable layer"
        assert len({layer.name for layer in layers}) == len(layers)
        for layer in layers:
            assert layer.kind in LAYER_KINDS
            weights = backend.get_weights(layer.name)
            assert weights.dtype == np.float32 and weights.shape == layer.shape
            assert layer.n_weights == weights.size

    def test_get_weights_returns_a_copy(self, backend):
        name = backend.layers()[0].name
        weights = backend.get_weights(name)
        weights[...] = 0
        assert np.any(backend.get_weights(name) != 0)

    def test_set_weights_changes_predictions_and_restore_is_bit_exact(self, backend, split):
        before = backend.evaluate(split)
        pristine = {layer.name: backend.get_weights(layer.name) for layer in backend.layers()}
        rng = np.random.default_rng(0)
        backend.set_weights(
            {n: rng.normal(size=w.shape).astype(np.float32) for n, w in pristine.items()}
        )
        scrambled = backend.evaluate(split)
        assert not np.array_equal(scrambled.correct, before.correct)
        backend.restore()
        after = backend.evaluate(split)
        assert np.array_equal(after.correct, before.correct)
        assert (after.top1, after.top5) == (before.top1, before.top5)
        for name, weights in pristine.items():
            assert np.array_equal(backend.get_weights(name), weights)

    def test_set_weights_round_trips_exactly(self, backend):
        layer = backend.layers()[-1]
        value = np.linspace(-1, 1, layer.n_weights, dtype=np.float32).reshape(layer.shape)
        backend.set_weights({layer.name: value})
        try:
            assert np.array_equal(backend.current_weights(layer.name), value)
        finally:
            backend.restore()

    def test_evaluation_is_deterministic_and_consistent(self, backend, split):
        first, second = backend.evaluate(split), backend.evaluate(split)
        assert np.array_equal(first.correct, second.correct)
        assert first.n_images == len(split) == first.correct.size
        assert first.top1 == pytest.approx(first.correct.mean())
        assert 0.0 <= first.top1 <= first.top5 <= 1.0

    def test_predict_gives_float32_logits_one_row_per_image_agreeing_with_evaluate(
        self, backend, split
    ):
        logits = backend.predict(split)
        assert isinstance(logits, np.ndarray) and logits.dtype == np.float32
        assert logits.ndim == 2 and logits.shape[0] == len(split) and logits.shape[1] >= 2
        assert np.array_equal(backend.predict(split), logits)
        labels = np.asarray(split.labels, np.int64)
        assert np.array_equal(logits.argmax(axis=1) == labels, backend.evaluate(split).correct)

    def test_predict_follows_set_weights_and_restore(self, backend, split):
        before = backend.predict(split)
        layer = backend.layers()[0]
        backend.set_weights({layer.name: np.zeros(layer.shape, np.float32)})
        try:
            assert not np.array_equal(backend.predict(split), before)
        finally:
            backend.restore()
        assert np.array_equal(backend.predict(split), before)

    def test_wrong_shape_is_refused(self, backend):
        layer = backend.layers()[0]
        with pytest.raises(ValueError, match="shape"):
            backend.set_weights({layer.name: np.zeros((1, 2, 3), np.float32)})

    def test_unknown_layer_is_refused(self, backend):
        with pytest.raises(Exception, match="unknown layer"):
            backend.get_weights("no.such.layer")
