"""PyTorch -> ONNX, with the weights kept as they are (names and values), cached by checksum.

``torch.onnx.export`` (the dynamo exporter) is called with ``optimize=False``: its default
optimiser folds BatchNorm into the preceding convolution *under the convolution's name*, which
would make the ONNX graph cluster different weights than PyTorch. Every clusterable weight of
the export is then checked against the module's (same name, bit-identical values). The batch
dimension is dynamic.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from pathlib import Path

import numpy as np

from weightshare.errors import UserError, first_line


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(2**20), b""):
            h.update(block)
    return h.hexdigest()


def export_onnx(module, example, path: Path) -> Path:
    """Write ``module`` (eval mode) as ONNX to ``path`` atomically and check its weights.

    Args:
        module: a ``torch.nn.Module`` (not TorchScript).
        example: float32 tensor (N, C, H, W) of the input shape; N is made dynamic.
        path: destination ``.onnx`` file (its directory is created).

    Raises:
        UserError: the exporter fails, or an exported weight differs from the module's.
    """
    import torch

    from weightshare.outputs import as_disk_full, atomic_path

    path = Path(path)
    module = module.eval()
    with atomic_path(path) as tmp:
        try:
            with contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
                torch.onnx.export(
                    module,
                    (example,),
                    str(tmp),
                    dynamo=True,
                    optimize=False,
                    external_data=False,
                    input_names=["input"],
                    output_names=["logits"],
                    dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
                    verbose=False,
                )
        except Exception as exc:  # the exporter raises many types; report one line
            if as_disk_full(exc, path) is not None:
                raise
            raise UserError(
                f"ONNX export of {type(module).__name__} failed ({first_line(exc)})"
            ) from None
        _check_weights(module, tmp)
    return path


def _check_weights(module, onnx_path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    from weightshare.backends.ort import find_layers

    proto = onnx.load(str(onnx_path))
    inits = {t.name: t for t in proto.graph.initializer}
    state = module.state_dict()
    for canonical, init_name, _, transposed in find_layers(proto):
        key = f"{canonical}.weight"
        if key not in state:
            continue
        exported = numpy_helper.to_array(inits[init_name])
        exported = exported.T if transposed else exported
        if not np.array_equal(exported, state[key].detach().cpu().numpy()):
            raise UserError(
                f"ONNX export changed the weights of {canonical!r} (an exporter fusion?): "
                "refusing to cluster a different tensor than PyTorch's"
            )


def cached_onnx(module, example, cache_dir: Path, name: str, weights_file: Path) -> Path:
    """The ONNX form of ``module`` loaded from ``weights_file``, exported once and cached.

    The file is ``<cache_dir>/onnx/<name>-<sha256 of weights_file, 16 hex>.onnx``; a later call
    with the same weights reuses it.
    """
    digest = sha256_file(Path(weights_file))[:16]
    path = Path(cache_dir) / "onnx" / f"{name}-{digest}.onnx"
    if path.is_file():
        return path
    return export_onnx(module, example, path)
