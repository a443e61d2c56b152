"""The numpy backend the DSE tests run on meets the same backend contract as the real ones."""

import pytest

from tests.backends.conformance import BackendConformance
from tests.dse.fake_backend import NumpyMLP


@pytest.fixture(scope="module")
def backend():
    return NumpyMLP()


@pytest.fixture(scope="module")
def split(small_search):
    return small_search


class TestNumpyMLP(BackendConformance):
    """The conformance suite on the module's ``backend`` and ``split`` fixtures."""


def test_the_fake_model_is_trained(search_split):
    """Clustering must be able to hurt it: well above chance (10 %) on the 5k search images."""
    assert NumpyMLP().evaluate(search_split).top1 > 0.7
