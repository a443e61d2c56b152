"""modes/sharing.py: a k map is clustered, swapped in for the ``with`` body, and the pristine
weights come back afterwards, also when the body fails (numpy backend: no framework)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.dse.fake_backend import NumpyMLP
from weightshare.modes.sharing import cluster_layers, shared_weights


def test_the_shared_weights_are_in_place_inside_and_the_pristine_ones_after():
    backend = NumpyMLP()
    pristine = backend.get_weights("fc1")
    shared = cluster_layers(backend, {"fc1": 4}, "layer", "linear")
    with shared_weights(backend, shared):
        inside = backend.current_weights("fc1")
        assert np.array_equal(inside, shared["fc1"].dequantize())
        assert np.unique(inside).size == 4
        assert np.array_equal(backend.current_weights("fc2"), backend.get_weights("fc2"))
    assert np.array_equal(backend.current_weights("fc1"), pristine)


def test_the_pristine_weights_come_back_when_the_body_fails():
    backend = NumpyMLP()
    pristine = backend.get_weights("fc2")
    shared = cluster_layers(backend, {"fc2": 2}, "channel", "quantile")
    with pytest.raises(RuntimeError, match=r"^scoring failed$"), shared_weights(backend, shared):
        assert np.unique(backend.current_weights("fc2")[0]).size <= 2
        raise RuntimeError("scoring failed")
    assert np.array_equal(backend.current_weights("fc2"), pristine)
