"""Structural channel surgery: make a network physically smaller by dropping output channels.

A :class:`Chain` names a conv whose filters may be removed, the BatchNorm that follows it (if
any) and the one layer that reads its channels (a conv, or a linear after a flatten). FPGM
(:mod:`weightshare.pruning.fpgm`) picks the channels to keep; :func:`shrink` copies the kept
slices into smaller modules; :func:`resize` rebuilds the smaller shapes from channel counts
alone (to load a pruned checkpoint). The channel counts travel as JSON beside a plain state
dict (``<checkpoint>.arch.json``), never pickled.

Only chains whose channels feed nothing else are declared: in ResNet-20 that is the first conv
of each basic block (its output goes only to the block's second conv); the second conv's
channels are added to the shortcut, so removing them would break the residual sum.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from weightshare.errors import UserError

ARCH_SUFFIX = ".arch.json"


@dataclass(frozen=True)
class Chain:
    """A conv whose output channels can be removed, and what follows them.

    Attributes:
        conv: name of the ``Conv2d`` (groups 1) whose filters are removed.
        bn: name of the ``BatchNorm2d`` on its output, or None.
        consumer: name of the ``Conv2d`` or ``Linear`` reading those channels.
        features_per_channel: consumer inputs per channel (``H * W`` for a linear after a
            flatten, 1 for a conv).
    """

    conv: str
    bn: str | None
    consumer: str
    features_per_channel: int = 1


def _resnet20_chains() -> tuple[Chain, ...]:
    return tuple(
        Chain(f"layer{s}.{b}.conv1", f"layer{s}.{b}.bn1", f"layer{s}.{b}.conv2")
        for s in (1, 2, 3)
        for b in range(3)
    )


CHAINS: dict[str, tuple[Chain, ...]] = {
    "lenet5_fashionmnist": (
        Chain("conv1", None, "conv2"),
        Chain("conv2", None, "fc1", features_per_channel=25),
    ),
    "resnet20_fashionmnist": _resnet20_chains(),
}


def chains_for(network: str) -> tuple[Chain, ...]:
    """The prunable chains of a registry network.

    Raises:
        UserError: the network declares none (FPGM cannot shrink it).
    """
    if network not in CHAINS:
        raise UserError(
            f"--method fpgm supports --network_dataset {', '.join(CHAINS)}; got {network!r}"
        )
    return CHAINS[network]


def _set(model, name: str, module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, module)


def shrink(model, chains: Sequence[Chain], keep: Mapping[str, Sequence[int]]):
    """Replace, in place, each chain's conv / BatchNorm / consumer by smaller modules holding
    the kept output channels ``keep[chain.conv]`` (sorted ascending, >= 1 each); chains not in
    ``keep`` are left alone. Returns ``model``."""
    import torch
    from torch import nn

    for chain in chains:
        if chain.conv not in keep:
            continue
        conv = model.get_submodule(chain.conv)
        idx = torch.as_tensor(sorted(int(i) for i in keep[chain.conv]), dtype=torch.long)
        if len(idx) < 1 or int(idx[-1]) >= conv.out_channels or len(set(idx.tolist())) < len(idx):
            raise UserError(
                f"{chain.conv}: channels to keep must be distinct in [0, {conv.out_channels}) "
                f"and at least one; got {idx.tolist()}"
            )
        n = len(idx)
        with torch.no_grad():
            new = nn.Conv2d(
                conv.in_channels,
                n,
                conv.kernel_size,
                conv.stride,
                conv.padding,
                conv.dilation,
                bias=conv.bias is not None,
            )
            new.weight.copy_(conv.weight[idx])
            if conv.bias is not None:
                new.bias.copy_(conv.bias[idx])
            _set(model, chain.conv, new)
            if chain.bn is not None:
                bn = model.get_submodule(chain.bn)
                nbn = nn.BatchNorm2d(n, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
                for key in ("weight", "bias", "running_mean", "running_var"):
                    if getattr(bn, key) is not None:
                        getattr(nbn, key).copy_(getattr(bn, key)[idx])
                if bn.num_batches_tracked is not None:
                    nbn.num_batches_tracked.copy_(bn.num_batches_tracked)
                _set(model, chain.bn, nbn)
            old = model.get_submodule(chain.consumer)
            f = chain.features_per_channel
            cols = (idx[:, None] * f + torch.arange(f)[None, :]).reshape(-1)
            if isinstance(old, nn.Linear):
                cons = nn.Linear(n * f, old.out_features, bias=old.bias is not None)
                cons.weight.copy_(old.weight[:, cols])
            else:
                cons = nn.Conv2d(
                    n,
                    old.out_channels,
                    old.kernel_size,
                    old.stride,
                    old.padding,
                    old.dilation,
                    bias=old.bias is not None,
                )
                cons.weight.copy_(old.weight[:, idx])
            if old.bias is not None:
                cons.bias.copy_(old.bias)
            _set(model, chain.consumer, cons)
    return model


def channel_counts(model, chains: Sequence[Chain]) -> dict[str, int]:
    """Output channels of each chain's conv: the architecture record of a pruned model."""
    return {c.conv: int(model.get_submodule(c.conv).out_channels) for c in chains}


def resize(model, chains: Sequence[Chain], channels: Mapping[str, int]):
    """Give ``model`` (fresh from its builder) the channel counts ``channels`` (conv name ->
    output channels, from :func:`channel_counts`), so a pruned state dict loads strictly."""
    names = {c.conv: c for c in chains}
    unknown = sorted(set(channels) - set(names))
    if unknown:
        raise UserError(f"architecture names unknown prunable layers {unknown[:3]}")
    keep = {}
    for name, n in channels.items():
        full = model.get_submodule(name).out_channels
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= full:
            raise UserError(f"architecture: {name} must have 1..{full} channels; got {n!r}")
        keep[name] = range(n)
    return shrink(model, chains, keep)


def resize_to_state(model, network: str, shapes: Mapping[str, Sequence[int]]):
    """Resize ``model`` (fresh from ``network``'s builder) to the channel counts a state dict's
    tensor shapes imply (a decoded model file of a structurally pruned network); a no-op for
    networks without chains or a full-size state. Returns ``model``."""
    chains = CHAINS.get(network, ())
    channels = {
        c.conv: int(shapes[f"{c.conv}.weight"][0])
        for c in chains
        if f"{c.conv}.weight" in shapes and len(shapes[f"{c.conv}.weight"]) == 4
    }
    full = {c.conv: int(model.get_submodule(c.conv).out_channels) for c in chains}
    if all(channels.get(name, n) == n for name, n in full.items()):
        return model
    return resize(model, chains, channels)


def architecture_path(checkpoint: Path) -> Path:
    """The JSON beside a checkpoint that records its pruned channel counts."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.name + ARCH_SUFFIX)


def write_architecture(checkpoint: Path, network: str, channels: Mapping[str, int]) -> Path:
    """Write ``{"network", "channels"}`` beside ``checkpoint``; returns the JSON's path."""
    path = architecture_path(checkpoint)
    from weightshare.outputs import write_text_atomic

    return write_text_atomic(
        path, json.dumps({"network": network, "channels": dict(channels)}, indent=2)
    )


def read_architecture(checkpoint: Path) -> tuple[str, dict[str, int]] | None:
    """``(network, channel counts)`` recorded beside ``checkpoint``, or None without a JSON.

    Raises:
        UserError: unreadable or malformed JSON.
    """
    path = architecture_path(checkpoint)
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} is not a readable architecture JSON ({exc})") from None
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("network"), str)
        or not isinstance(doc.get("channels"), dict)
    ):
        raise UserError(f"{path} must hold an object with 'network' and 'channels'")
    return doc["network"], doc["channels"]


def resize_for_checkpoint(model, checkpoint: Path):
    """Resize ``model`` to the pruned architecture recorded beside ``checkpoint`` (no-op
    without one). Returns ``model``."""
    found = read_architecture(checkpoint)
    if found is None:
        return model
    network, channels = found
    return resize(model, chains_for(network), channels)
