"""Find and load trained weights safely (``torch.load(..., weights_only=True)``, never pickle).

Where a network's weights come from, first match wins:

1. ``--checkpoint PATH`` when given;
2. the committed baseline ``baselines/<network>.pt`` of this repository;
3. the newest ``EPOCH_LR.pt`` that ``--mode train`` wrote under ``<cache>/checkpoints/<network>/``.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path

from weightshare.errors import UserError, first_line

BASELINE_DIR = Path(__file__).resolve().parents[2] / "baselines"
_CHECKPOINT_RE = re.compile(r"^(\d+)_([0-9.eE+-]+)\.pt$")


def default_cache_dir() -> Path:
    """``$WEIGHTSHARE_CACHE``, else ``$XDG_CACHE_HOME/weightshare``, else ``~/.cache/...``."""
    if os.environ.get("WEIGHTSHARE_CACHE"):
        return Path(os.environ["WEIGHTSHARE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "weightshare"


def checkpoint_dir(cache_dir: Path, network: str) -> Path:
    """Where ``--mode train`` writes the per-epoch checkpoints of ``network``."""
    return Path(cache_dir) / "checkpoints" / network


def latest_checkpoint(directory: Path) -> Path | None:
    """The ``EPOCH_LR.pt`` with the highest epoch in ``directory``, or None."""
    found = []
    if directory.is_dir():
        for path in directory.iterdir():
            match = _CHECKPOINT_RE.match(path.name)
            if match:
                found.append((int(match.group(1)), path))
    return max(found)[1] if found else None


def find_checkpoint(
    network: str, checkpoint: str | os.PathLike | None, cache_dir: Path
) -> Path | None:
    """The weights file for ``network`` (see the module docstring); None if there is none."""
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.is_file():
            raise UserError(f"--checkpoint {path} does not exist")
        return path
    committed = BASELINE_DIR / f"{network}.pt"
    if committed.is_file():
        return committed
    return latest_checkpoint(checkpoint_dir(cache_dir, network))


def load_state_dict(path: Path) -> dict:
    """Load a state dict (name -> tensor) without unpickling arbitrary objects.

    Raises:
        UserError: unreadable file, a file that is not a torch checkpoint, or one that holds
            something other than a flat mapping of names to tensors.
    """
    import torch  # here, not at module level: --help and the path helpers stay light

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"checkpoint {path} does not exist") from None
    except pickle.UnpicklingError as exc:
        # torch's own hint (retry with weights_only=False) would run the file's code: point to
        # the safe conversion instead.
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f"a {found.group(1)} object" if found else "pickled Python objects"
        raise UserError(
            f"{path} is not a loadable state dict: it holds {what}, and pickled objects are "
            "never loaded (they can run code); from code you trust, save the weights alone "
            "with torch.save(model.state_dict(), path) and pass that file"
        ) from None
    except (zipfile.BadZipFile, RuntimeError, EOFError, ValueError) as exc:
        raise UserError(f"{path} is not a loadable state dict ({first_line(exc)})") from None
    if (
        not isinstance(state, dict)
        or not state
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())
    ):
        raise UserError(f"{path} is not a state dict (a mapping of parameter names to tensors)")
    return state


def load_into(model, path: Path):
    """Load ``path`` into ``model`` strictly; a UserError names missing/unexpected/bad keys.

    A structurally pruned checkpoint (``--mode prune --method fpgm``) has its channel counts
    in ``<path>.arch.json``; ``model`` is first resized to them (``networks.shrink``).
    """
    from weightshare.networks.shrink import resize_for_checkpoint

    state = load_state_dict(path)
    model = resize_for_checkpoint(model, path)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {missing[:3]}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:3]}")
        if shapes:
            parts.append(f"shape mismatch in {shapes[:3]}")
        raise UserError(f"{path} does not fit the network: {'; '.join(parts)}")
    model.load_state_dict(state)
    return model


def model_state(model) -> dict:
    """A PyTorch module's whole state dict as numpy arrays (name -> array, in state-dict
    order): what a model file stores."""
    return {key: value.detach().cpu().numpy() for key, value in model.state_dict().items()}


def save_state_dict(state, path: str | os.PathLike) -> Path:
    """Write ``state`` (name -> tensor) with ``torch.save`` to ``path`` atomically.

    Serialised in memory first (torch's own writer reports a full disk without an errno), then
    replaced in one step (:func:`weightshare.outputs.write_bytes_atomic`): the file is whole or
    absent, loadable with ``torch.load(path, weights_only=True)``.
    """
    import io

    import torch

    from weightshare.outputs import write_bytes_atomic

    buffer = io.BytesIO()
    torch.save(state, buffer)
    return write_bytes_atomic(path, buffer.getvalue())
