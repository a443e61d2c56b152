"""Weight sharing of pruned layers and trained quantization (Deep Compression, section 3).

:func:`share_pruned` clusters each layer's surviving weights (1-D k-means, linear
initialisation, the paper's best) into a :class:`~weightshare.codecs.sparse.SparseShared`.
:func:`finetune_centroids` then trains the shared values: each layer's weight becomes
``W = scatter(positions, C[indices])`` (zeros elsewhere), so autograd gives every centroid the
sum of the gradients of the weights that share it (the paper's eq. 3), with indices and masks
fixed; biases and BatchNorm parameters train as usual.
:func:`quantization_aware_retrain` (optional, before the fine-tuning) retrains the surviving
weights themselves with the forward pass through their shared values, so that the network
learns to live with them (the straight-through estimator; indices free to change).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping

import numpy as np

from weightshare.codecs.sparse import SparseShared
from weightshare.dse.clustering import share_weights
from weightshare.networks.registry import TrainRecipe
from weightshare.types import SharedWeights


def share_pruned(
    weights: Mapping[str, np.ndarray], k: Mapping[str, int], *, init: str = "linear"
) -> dict[str, SparseShared]:
    """Cluster the nonzero weights of each layer.

    Args:
        weights: weight key -> float32 array whose zeros are the pruned positions.
        k: weight key -> shared values (layers not named are not shared).
        init: k-means initialisation (``linear``, the paper's choice; see ``kmeans_1d``).

    Returns:
        weight key -> :class:`SparseShared` (mask = the nonzeros).
    """
    out = {}
    for key, n in k.items():
        w = np.asarray(weights[key], dtype=np.float32)
        mask = w != 0
        out[key] = SparseShared(mask, share_weights(w[mask], n, init=init))
    return out


def _sorted(codebook: np.ndarray, indices: np.ndarray, survivors: np.ndarray, k: int, method: str):
    order = np.argsort(codebook, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    new_indices = rank[indices.astype(np.int64)].astype(indices.dtype)
    values = codebook[order].astype(np.float32)
    inertia = float(((survivors.astype(np.float64) - values[new_indices]) ** 2).sum())
    codebook = values[None, :]
    return SharedWeights(codebook, new_indices, inertia, k, "layer", method)


@contextlib.contextmanager
def _parametrized(model, sparse: Mapping[str, SparseShared], make: Callable) -> Iterator[dict]:
    """Inside the block each layer of ``sparse`` computes its weight through ``make(sp)`` (a
    ``torch.nn.utils.parametrize`` parametrization); yields weight key -> module. On leaving,
    even by an exception, the parametrizations are removed and each layer holds its original
    weight parameter again."""
    from torch.nn.utils import parametrize

    modules = {}
    try:
        for key, sp in sparse.items():
            module = model.get_submodule(key.rsplit(".", 1)[0])
            parametrize.register_parametrization(module, "weight", make(sp))
            modules[key] = module
        yield modules
    finally:
        for module in modules.values():
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)


def _hold(model, shared: Mapping[str, SparseShared]) -> None:
    """Set each layer of ``shared`` to its dequantized values, as a trainable parameter."""
    import torch

    with torch.no_grad():
        for key, sp in shared.items():
            weight = model.get_submodule(key.rsplit(".", 1)[0]).weight
            weight.copy_(torch.from_numpy(sp.dequantize()))
            weight.requires_grad_(True)


def finetune_centroids(
    model,
    sparse: Mapping[str, SparseShared],
    x,
    y,
    recipe: TrainRecipe,
    *,
    progress: bool = False,
    loss=None,
) -> dict[str, SparseShared]:
    """Train the shared values of ``model``'s layers in ``sparse`` (indices, masks fixed).

    Args:
        model: the PyTorch module; its layers' weights are replaced by the shared ones.
        sparse: weight key (``<module>.weight``) -> :class:`SparseShared`.
        x: float32 (N, C, S, S) images; y: int64 (N,) labels.
        recipe: epochs, batch, peak lr, weight decay (use 0: decay would shrink centroids).
        loss: the batch loss (``fit``'s ``loss``); None: cross-entropy.

    Returns:
        weight key -> the fine-tuned :class:`SparseShared` (codebook re-sorted ascending with
        the indices renumbered; ``inertia`` measured against the weights before sharing).
        ``model`` holds exactly these values afterwards, as plain parameters.
    """
    import torch
    from torch import nn

    from weightshare.networks.training import fit_seeded

    class _Shared(nn.Module):
        def __init__(self, sp: SparseShared) -> None:
            super().__init__()
            self.codebook = nn.Parameter(torch.from_numpy(sp.shared.codebook[0].copy()))
            self.register_buffer("positions", torch.from_numpy(np.flatnonzero(sp.mask)))
            self.register_buffer("indices", torch.from_numpy(sp.shared.indices.astype(np.int64)))
            self.shape = sp.shape

        def forward(self, _original: torch.Tensor) -> torch.Tensor:
            flat = torch.zeros(int(np.prod(self.shape)), dtype=self.codebook.dtype)
            flat = flat.index_put((self.positions,), self.codebook[self.indices])
            return flat.reshape(self.shape)

    survivors = {
        key: model.get_submodule(key.rsplit(".", 1)[0])
        .weight.detach()
        .numpy()
        .reshape(-1)[np.flatnonzero(sp.mask)]
        for key, sp in sparse.items()
    }
    with _parametrized(model, sparse, _Shared) as modules:
        for module in modules.values():
            module.parametrizations.weight.original.requires_grad_(False)
        fit_seeded(model, x, y, recipe, desc="centroids", progress=progress, loss=loss)
        codebooks = {
            key: module.parametrizations.weight[0].codebook.detach().numpy().copy()
            for key, module in modules.items()
        }
    out = {}
    for key, sp in sparse.items():
        shared = _sorted(
            codebooks[key], sp.shared.indices, survivors[key], sp.shared.k, "finetuned"
        )
        out[key] = SparseShared(sp.mask, shared)
    _hold(model, out)
    return out


def quantization_aware_retrain(
    model,
    sparse: Mapping[str, SparseShared],
    x,
    y,
    recipe: TrainRecipe,
    *,
    progress: bool = False,
    loss=None,
) -> dict[str, SparseShared]:
    """Retrain the surviving weights with the network computing through their shared values.

    Every layer in ``sparse`` computes with ``W_q = mask * C[nearest(W)]``: the loss sees the
    shared values, and the gradient of ``W_q`` passes to the float weights ``W`` unchanged (the
    straight-through estimator, Bengio, Leonard, Courville 2013). After every optimizer step
    the removed weights are set back to 0 and each codebook takes one Lloyd step over the
    survivors (each shared value becomes the mean of the weights nearest it; a value no weight
    is nearest keeps its place), so the codebook follows the weights. Unlike
    :func:`finetune_centroids` a weight may move to another shared value (it crosses a
    midpoint); masks stay fixed. Biases and BatchNorm parameters train as usual.

    Args:
        model: the pruned PyTorch module (removed weights 0); its float weights are where
            the retrained weights start (pass them, not their shared values, which would
            lose what lies between the codebook's values).
        sparse: weight key (``<module>.weight``) -> :class:`SparseShared`: the masks and the
            starting codebooks (:func:`share_pruned` of the model's weights).
        x: float32 (N, C, S, S) images; y: int64 (N,) labels.
        recipe: epochs, batch, peak lr, weight decay (on the float weights), augmentation;
            ``recipe.seed`` seeds the shuffling and the augmentation.
        loss: the batch loss (``fit``'s ``loss``); None: cross-entropy.

    Returns:
        weight key -> :class:`SparseShared` with the same masks: the last codebook (ascending)
        and each survivor's nearest value in it (``inertia`` against the float weights at the
        end). ``model`` holds exactly these values afterwards, as plain parameters.
    """
    import torch
    from torch import nn

    from weightshare.networks.training import fit_seeded

    class _Nearest(nn.Module):
        def __init__(self, sp: SparseShared) -> None:
            super().__init__()
            self.register_buffer("mask", torch.from_numpy(sp.mask.copy()))
            self.register_buffer("codebook", torch.from_numpy(sp.shared.codebook[0].copy()))

        def nearest(self, w: torch.Tensor) -> torch.Tensor:
            """Index of the nearest shared value of each weight (ties: the lower value; float64
            midpoints, as ``share_weights`` assigns)."""
            c = self.codebook.double()
            return torch.bucketize(w.double(), (c[1:] + c[:-1]) * 0.5)

        def forward(self, w: torch.Tensor) -> torch.Tensor:
            shared = torch.where(self.mask, self.codebook[self.nearest(w)], 0.0)
            return shared + (w - w.detach())  # the shared values exactly; gradient to w

        @torch.no_grad()
        def follow(self, w: torch.Tensor) -> None:
            """Zero the removed weights of ``w`` (in place); one Lloyd step of the codebook."""
            w.mul_(self.mask)
            survivors = w[self.mask]
            idx = self.nearest(survivors)
            k = len(self.codebook)
            sums = torch.zeros(k, dtype=torch.float64).index_add_(0, idx, survivors.double())
            counts = torch.bincount(idx, minlength=k).double()
            means = torch.where(counts > 0, sums / counts.clamp(min=1), self.codebook.double())
            self.codebook.copy_(torch.sort(means.float()).values)

    with _parametrized(model, sparse, _Nearest) as modules:

        def after_step() -> None:
            for module in modules.values():
                weights = module.parametrizations.weight
                weights[0].follow(weights.original)

        fit_seeded(
            model, x, y, recipe, after_step=after_step, desc="quantization-aware",
            progress=progress, loss=loss,
        )  # fmt: skip
        ends = {}
        for key, module in modules.items():
            quantizer = module.parametrizations.weight[0]
            survivors = module.parametrizations.weight.original.detach()[quantizer.mask]
            ends[key] = (quantizer.codebook.numpy().copy(), survivors, quantizer.nearest(survivors))
    out = {}
    for key, (codebook, survivors, indices) in ends.items():
        sp = sparse[key]
        dtype = sp.shared.indices.dtype
        shared = _sorted(
            codebook, indices.numpy().astype(dtype), survivors.numpy(), sp.shared.k, "qat"
        )
        out[key] = SparseShared(sp.mask, shared)
    _hold(model, out)
    return out
