"""turn a model file back into a runnable model: a state dict (.pt) or an ONNX graph (.onnx)

``python main.py --mode decode FILE --out model.pt`` writes the complete state dict (load it
with ``torch.load(path, weights_only=True)``); ``--out model.onnx`` builds the registry network
the file names, loads the decoded weights and exports it with ``torch.onnx.export`` (input
``images`` (N, C, S, S) float32, C = 1 for Fashion-MNIST networks and 3 for the ImageNet zoo;
output ``logits``; the batch axis is dynamic). Keras networks are refused for ``.onnx`` in one
line (Keras -> ONNX needs tf2onnx, which the stack does not install): ``.pt`` works for them.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from weightshare.errors import UserError
from weightshare.modes.input_files import read_input
from weightshare.validation import check_int

OUTPUT_SUFFIXES = (".pt", ".onnx")


@dataclass(frozen=True)
class DecodeConfig:
    """Settings of ``--mode decode``.

    Attributes:
        model_file: the model file to read.
        out: ``.pt`` (state dict) or ``.onnx`` output path.
        threads: torch threads.
    """

    model_file: Path
    out: Path
    threads: int = 2

    def __post_init__(self) -> None:
        check_int("--threads", self.threads, 1)


def read_model_file(path: Path):
    """Read and decode a model file; UserError when it is missing, unreadable or corrupt."""
    from weightshare.codecs import decode_model

    path = Path(path)
    data = read_input(path, "model file")
    try:
        return decode_model(data)
    except UserError as exc:
        raise type(exc)(f"{path}: {exc}") from None


def onnx_network(decoded, path: Path):
    """The registry spec of ``decoded`` if ``--out .onnx`` can be written for it.

    Raises:
        UserError: unknown network, or one that is not a PyTorch module (the ONNX file is
            written by ``torch.onnx``; Keras -> ONNX would need tf2onnx, not in the stack).
    """
    from weightshare.networks import get_network

    spec = get_network(decoded.network)
    if spec.framework != "pytorch":
        raise UserError(
            f"{path} holds {spec.name}, a {spec.framework} (Keras) network: --out .onnx is "
            "written for PyTorch networks only (Keras -> ONNX needs tf2onnx, not installed); "
            "use --out FILE.pt for its decoded tensors"
        )
    return spec


def input_channels(spec) -> int:
    """Channels of the network's input: its pretrained weights' transform, else 1 (grayscale)."""
    return spec.weights[0].transform.channels if spec.weights else 1


def build_model(decoded):
    """The registry network of ``decoded`` with its weights loaded (eval mode), and its spec.

    Raises:
        UserError: unknown network, or tensors that do not fit it.
    """
    import torch

    from weightshare.networks import get_network
    from weightshare.networks.shrink import resize_to_state

    spec = get_network(decoded.network)
    # an FPGM-pruned network: its channel counts follow from the stored shapes
    shapes = {name: value.shape for name, value in decoded.state.items()}
    model = resize_to_state(spec.build(), spec.name, shapes)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(decoded.state))
    unexpected = sorted(set(decoded.state) - set(expected))
    shapes = [
        k for k in expected if k in decoded.state and decoded.state[k].shape != expected[k].shape
    ]
    if missing or unexpected or shapes:
        raise UserError(
            f"the file's tensors do not fit {spec.name}: missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}, shape mismatch in {shapes[:3]}"
        )
    model.load_state_dict({k: torch.from_numpy(v) for k, v in decoded.state.items()})
    return model.eval(), spec


def export_onnx(model, input_size: int, out: Path, channels: int = 1) -> None:
    """Export ``model`` (input (N, C, S, S) float32) to ONNX with a dynamic batch axis."""
    import warnings

    import torch

    example = torch.zeros(2, channels, input_size, input_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(out),
            input_names=["images"],
            output_names=["logits"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            external_data=False,
            dynamo=True,
            verbose=False,
        )


def run(config: DecodeConfig) -> dict:
    """Decode ``config.model_file`` into ``config.out``; print a summary, return it as a dict."""
    import torch

    from weightshare.modes.encode import file_summary, print_summary
    from weightshare.networks.checkpoints import save_state_dict
    from weightshare.outputs import atomic_path, check_output_file

    suffix = check_output_file("--out", config.out, OUTPUT_SUFFIXES).suffix.lower()
    decoded = read_model_file(config.model_file)
    if suffix == ".onnx":
        onnx_network(decoded, config.model_file)
    if suffix == ".pt":
        save_state_dict({k: torch.from_numpy(v) for k, v in decoded.state.items()}, config.out)
    else:
        torch.set_num_threads(config.threads)
        model, spec = build_model(decoded)
        with atomic_path(config.out) as tmp:
            export_onnx(model, spec.input_size, tmp, input_channels(spec))
    summary = file_summary(decoded.manifest)
    meta = decoded.manifest.meta
    print_summary(
        summary,
        f"{decoded.network}: {config.model_file} ({meta.get('coder', '?')}, "
        f"{meta.get('codebook_dtype', '?')} codebooks)",
    )
    print(f"wrote {config.out} ({len(decoded.state)} tensors)")
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``decode`` input: ``--in FILE`` or a positional FILE (``--out`` is shared)."""
    group = parser.add_argument_group("decode (--out FILE.pt or FILE.onnx)")
    group.add_argument(
        "--in",
        dest="in_file",
        type=Path,
        default=None,
        metavar="FILE",
        help="model file to decode (also accepted as a positional argument)",
    )
    parser.add_argument(
        "model_file",
        nargs="?",
        type=Path,
        default=None,
        metavar="FILE",
        help="--mode decode: the model file to decode (same as --in FILE)",
    )


def main(args: argparse.Namespace) -> int:
    """``--mode decode`` from parsed flags."""
    given = [p for p in (args.model_file, args.in_file) if p is not None]
    if not given:
        raise UserError("--mode decode needs the model file: --mode decode FILE --out OUT")
    if len(given) == 2 and given[0] != given[1]:
        raise UserError(f"two model files given ({given[1]} and {given[0]}); give one")
    if args.out is None:
        raise UserError("--mode decode needs --out FILE.pt (state dict) or FILE.onnx")
    run(DecodeConfig(model_file=given[0], out=args.out, threads=args.threads))
    return 0
