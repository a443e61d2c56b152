"""Fixed-width bit packing (MSB first, zero padding)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from weightshare.codecs.bitpack import pack_bits, packed_size, padding_is_zero, unpack_bits


@pytest.mark.parametrize("width", [*range(0, 18), 24, 31, 32, 33, 40, 48, 63, 64])
@pytest.mark.parametrize("count", [0, 1, 7, 8, 9, 1000])
def test_roundtrip_every_width(width, count):
    rng = np.random.default_rng(width * 1000 + count)
    high = np.iinfo(np.uint64).max if width == 64 else (1 << width) - 1
    values = rng.integers(0, high, size=count, dtype=np.uint64, endpoint=True)
    data = pack_bits(values, width)
    assert len(data) == packed_size(count, width)
    assert padding_is_zero(data, count * width)
    out = unpack_bits(data, width, count)
    assert out.dtype.itemsize * 8 >= max(width, 1)
    np.testing.assert_array_equal(out.astype(np.uint64), values)


def test_msb_first_layout():
    assert pack_bits(np.array([1, 0, 3]), 2) == bytes([0b01001100])
    assert pack_bits(np.array([5, 2]), 3) == bytes([0b10101000])
    assert pack_bits(np.array([0x123]), 12) == bytes([0x12, 0x30])
    assert pack_bits(np.array([0xABCD]), 16) == bytes([0xAB, 0xCD])


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.integers(0, 2**20 - 1), max_size=50), width=st.integers(20, 26))
def test_roundtrip_property(values, width):
    array = np.array(values, dtype=np.uint64)
    np.testing.assert_array_equal(
        unpack_bits(pack_bits(array, width), width, len(values)).astype(np.uint64), array
    )


def test_short_input_raises():
    with pytest.raises(ValueError, match="need 2 bytes"):
        unpack_bits(b"\x01", 4, 3)


def test_padding_check():
    assert padding_is_zero(bytes([0b10100000]), 3)
    assert not padding_is_zero(bytes([0b10100001]), 3)
    assert padding_is_zero(b"", 0)
