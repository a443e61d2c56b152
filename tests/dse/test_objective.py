from fractions import Fraction

from weightshare.dse.objective import ModelLayout


def test_sizes_count_fp32_layers_and_unclustered_tensors():
    layout = ModelLayout({"conv1": 150, "fc1": 48000}, n_unclustered=236)
    assert layout.original_bits == 32 * (48150 + 236)
    bits = {"fc1": 4 * 48000 + 32 * 16}
    assert layout.layer_bits(bits) == 32 * 150 + 4 * 48000 + 512
    assert layout.model_bits(bits) == 32 * 150 + 4 * 48000 + 512 + 32 * 236
    assert Fraction(layout.ratio_layers(bits)).limit_denominator(10**9) == Fraction(
        32 * 48150, 32 * 150 + 4 * 48000 + 512
    )
    assert layout.ratio_model({}) == 1.0
