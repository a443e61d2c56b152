"""rebuild checkpoint B from checkpoint A and a residual file (writes a state dict .pt)

``python main.py --mode residual_decode --pre-epoch A FILE --out B.pt`` (or ``--in FILE``): A is
the checkpoint the file was coded against (a file, or an epoch number as in ``--mode
residual``); for a lossy chain, the decoded previous epoch. The file records A's sha256
fingerprint, so a wrong A is refused. ``Float16`` files need no A.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path

from weightshare.errors import UserError


@dataclass(frozen=True)
class ResidualDecodeConfig:
    """Settings of ``--mode residual_decode``.

    Attributes:
        file: the residual file.
        out: the state dict to write (``.pt``).
        pre: checkpoint A the file was coded against (None: only for ``Float16`` files).
    """

    file: Path
    out: Path | None
    pre: Path | None = None

    def __post_init__(self) -> None:
        if self.out is None or self.out.suffix.lower() != ".pt":
            raise UserError(f"--mode residual_decode needs --out FILE.pt; got {self.out}")


def run(config: ResidualDecodeConfig) -> dict:
    """Decode the residual file against the checkpoint ``pre`` into ``out``; returns a summary
    dict."""
    from weightshare.codecs.residual import METHODS, decode_residual
    from weightshare.codecs.residual.methods import read_residual_manifest
    from weightshare.modes.input_files import read_input
    from weightshare.modes.residual import load_numpy_state, save_numpy_state

    file, out, pre = config.file, config.out, config.pre
    data = read_input(file, "residual file")
    try:
        _, _, info = read_residual_manifest(data)
    except UserError as exc:
        raise type(exc)(f"{file}: {exc}") from None
    needs = METHODS[info["method"]].needs_reference
    if needs and pre is None:
        raise UserError(
            f"{file} is a {info['method']} residual: pass --pre-epoch A (its reference)"
        )
    prev = load_numpy_state(pre) if needs else None
    try:
        decoded = decode_residual(data, prev)
    except UserError as exc:
        raise type(exc)(f"{file}: {exc}") from None
    save_numpy_state(decoded.state, out)
    summary = {
        "file": str(file),
        "method": info["method"],
        "lossless": METHODS[info["method"]].lossless,
        "reference": str(pre) if needs else None,
        "tensors": len(decoded.state),
        "out": str(out),
    }
    print(
        f"{file}: {info['method']} residual of {len(decoded.state)} tensors"
        + (f" against {pre}" if needs else "")
        + f" -> wrote {out}"
    )
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No flags of its own: ``--pre-epoch`` (residual), ``--in``/FILE (decode), ``--out``."""


def main(args: argparse.Namespace) -> int:
    """``--mode residual_decode`` from parsed flags."""
    from weightshare.modes.residual import checkpoint_source, resolve

    given = [p for p in (args.model_file, args.in_file) if p is not None]
    if not given:
        raise UserError(
            "--mode residual_decode needs the residual file: --pre-epoch A FILE --out B.pt"
        )
    if len(given) == 2 and given[0] != given[1]:
        raise UserError(f"two residual files given ({given[1]} and {given[0]}); give one")
    config = ResidualDecodeConfig(given[0], args.out)
    from weightshare.outputs import check_output_file

    check_output_file("--out", config.out, (".pt",))
    if args.pre_epoch is not None:
        pre = resolve(args.pre_epoch, "--pre-epoch", checkpoint_source(args))
        config = replace(config, pre=pre)
    run(config)
    return 0
