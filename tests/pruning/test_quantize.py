"""Trained quantization: shared values move, indices and masks stay; quantization-aware
retraining through the shared values; the stage table's sizes."""

from __future__ import annotations

import numpy as np
import torch

from weightshare.codecs import decode_model, encode_model
from weightshare.networks.checkpoints import BASELINE_DIR, load_into, model_state
from weightshare.networks.lenet import LeNet5
from weightshare.networks.registry import TrainRecipe
from weightshare.networks.tensors import images_to_tensor
from weightshare.networks.training import accuracy
from weightshare.pruning.magnitude import apply_masks, magnitude_masks, prunable
from weightshare.pruning.quantize import (
    finetune_centroids,
    quantization_aware_retrain,
    share_pruned,
)
from weightshare.pruning.stages import stage_table


def _pruned_shared():
    torch.manual_seed(0)
    model = LeNet5()
    apply_masks(model, magnitude_masks(model, sparsity=0.8))
    weights = {k: w.detach().numpy().copy() for k, w in prunable(model).items()}
    sparse = share_pruned(weights, dict.fromkeys(weights, 8))
    with torch.no_grad():
        for key, sp in sparse.items():
            prunable(model)[key].copy_(torch.from_numpy(sp.dequantize()))
    return model, sparse


def test_centroids_train_with_indices_and_masks_fixed(small_search):
    model, sparse = _pruned_shared()
    keys = set(model.state_dict())
    x = torch.from_numpy(small_search.images[:256]).float().unsqueeze(1) / 255.0
    y = torch.from_numpy(small_search.labels[:256])
    tuned = finetune_centroids(
        model, sparse, x, y, TrainRecipe(epochs=1, batch_size=64, lr=1e-3, weight_decay=0.0)
    )
    assert set(model.state_dict()) == keys  # no parametrization left behind
    for key, sp in tuned.items():
        before = sparse[key]
        assert np.array_equal(sp.mask, before.mask)
        assert not np.array_equal(sp.shared.codebook, before.shared.codebook)
        assert np.all(np.diff(sp.shared.codebook[0]) >= 0)
        # same partition of the survivors: weights that shared a value still share one
        old, new = before.shared.indices, sp.shared.indices
        assert all(len(set(new[old == c].tolist())) <= 1 for c in range(before.shared.k_eff))
        assert np.array_equal(model.state_dict()[key].numpy(), sp.dequantize())


def _baseline_pruned(bits: int):
    """The trained LeNet-5, 80 % pruned by magnitude (float weights kept), and its survivors
    shared with 2^bits values per layer."""
    model = load_into(LeNet5(), BASELINE_DIR / "lenet5_fashionmnist.pt")
    apply_masks(model, magnitude_masks(model, sparsity=0.8))
    weights = {k: w.detach().numpy().copy() for k, w in prunable(model).items()}
    return model, share_pruned(weights, dict.fromkeys(weights, 2**bits))


def _shared_accuracy(model, sparse, x, y) -> float:
    """Top-1 of ``model`` with its weights replaced by the shared values (model unchanged)."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for key, sp in sparse.items():
            prunable(model)[key].copy_(torch.from_numpy(sp.dequantize()))
    try:
        return accuracy(model, x, y)
    finally:
        model.load_state_dict(state)


def _qat(model, sparse, x, y, seed=0, epochs=4):
    recipe = TrainRecipe(epochs=epochs, batch_size=64, lr=0.05, weight_decay=0.0, seed=seed)
    return quantization_aware_retrain(model, sparse, x, y, recipe)


def test_quantization_aware_retraining_keeps_masks_and_recovers_accuracy(small_search):
    x = images_to_tensor(small_search.images[:512], 28)
    y = torch.from_numpy(small_search.labels[:512])
    unseen = (
        images_to_tensor(small_search.images[512:], 28),
        torch.from_numpy(small_search.labels[512:]),
    )
    model, sparse = _baseline_pruned(bits=1)  # 2 values per layer: a large loss to recover
    keys = set(model.state_dict())
    before = _shared_accuracy(model, sparse, *unseen)
    tuned = _qat(model, sparse, x, y)  # starts from the float weights, as the pipeline does
    assert set(model.state_dict()) == keys  # no parametrization left behind
    assert accuracy(model, *unseen) > before + 0.15  # measured on 488 images: 0.475 -> 0.779
    moved = 0
    for key, sp in tuned.items():
        start = sparse[key]
        assert np.array_equal(sp.mask, start.mask)
        assert sp.shared.k == start.shared.k and sp.shared.method == "qat"
        assert np.all(np.diff(sp.shared.codebook[0]) >= 0)
        assert np.array_equal(prunable(model)[key].detach().numpy(), sp.dequantize())
        moved += int((sp.shared.indices != start.shared.indices).sum())
    assert moved > 0  # unlike the centroid fine-tuning, a weight may change its shared value


def test_quantization_aware_retraining_is_seeded_and_encodes_exactly(small_search):
    x = images_to_tensor(small_search.images[:256], 28)
    y = torch.from_numpy(small_search.labels[:256])
    runs = []
    for seed in (3, 3, 4):
        model, sparse = _baseline_pruned(bits=3)
        runs.append((model, _qat(model, sparse, x, y, seed=seed, epochs=1)))
    (model, tuned), (_, again), (_, other) = runs
    for key in tuned:
        assert np.array_equal(tuned[key].shared.codebook, again[key].shared.codebook)
        assert np.array_equal(tuned[key].shared.indices, again[key].shared.indices)
    assert any(  # another seed shuffles otherwise
        not np.array_equal(tuned[key].shared.codebook, other[key].shared.codebook) for key in tuned
    )
    decoded = decode_model(encode_model(model_state(model), tuned, network="lenet5_fashionmnist"))
    for key, value in model_state(model).items():
        assert np.array_equal(decoded.state[key], value), key


def test_stage_table_reads_the_real_chunk_sizes():
    model, sparse = _pruned_shared()
    state = model_state(model)
    pq = decode_model(encode_model(state, sparse, network="t", coder="fixed")).manifest
    pqh = decode_model(encode_model(state, sparse, network="t", coder="ans")).manifest
    table = stage_table(pq, pqh, dense_bytes=4 * 61706)
    fc1 = next(r for r in table["layers"] if r["layer"] == "fc1.weight")
    entry = next(e for e in pq.tensors if e.name == "fc1.weight")
    assert fc1["kept"] == round(0.2 * 48000) / 48000
    assert fc1["ratio_pq"] == 4 * 48000 / entry.coded_bytes
    assert (
        fc1["weight_bits_pq"]
        == 8 * next(c.length for c in entry.chunks if c.kind == "indices") / entry.params["nnz"]
    )
    assert table["total"]["ratio_pqh"] == 4 * 61706 / pqh.file_bytes
    assert table["total"]["file_bytes_pq"] == pq.file_bytes
