"""Accuracy per bit without retraining: the ``--clustering`` / ``--correct`` options.

* ``--clustering weighted``: each weight's importance is its diagonal Fisher information on the
  calibration images (SqueezeLLM); :class:`~weightshare.dse.clustering.ClusterCache` then runs
  sensitivity-weighted k-means.
* ``--correct bias``: after sharing, each output channel gets the mean difference between the
  fp32 and the shared layer's outputs, both computed from the fp32 layer inputs (DFQ, Nagel et
  al. 2019). The layer is linear, so that difference is ``(W - W_shared) @ mean input patch``;
  the mean patches are measured once per model (:meth:`Backend.input_means`).
* ``--correct bn``: every BatchNorm's running statistics are re-estimated on the calibration
  images with the shared weights in place.

The backend holds the result until its ``restore()``. A backend without the calibration methods
(ONNX Runtime, TF-Keras) refuses the options with one line naming the way out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from weightshare.errors import UserError
from weightshare.validation import check_choice, check_int

CLUSTERINGS = ("kmeans", "weighted")
CORRECTIONS = ("bias", "bn")
_NEEDS = {"weighted": "fisher", "bias": "input_means", "bn": "reestimate_bn"}
# What every correction needs besides: the tensors it changed, for the model file's size.
_CORRECTED = "changed_state"


@dataclass(frozen=True)
class PerBitOptions:
    """What ``--clustering``, ``--correct`` and ``--calibration-images`` asked for.

    Attributes:
        clustering: ``kmeans`` (plain) or ``weighted`` (Fisher-weighted).
        correct: the corrections, a sorted tuple of ``CORRECTIONS`` entries (may be empty).
        calibration_images: training images used for calibration (> 0).
    """

    clustering: str = "kmeans"
    correct: tuple[str, ...] = ()
    calibration_images: int = 1024

    def __post_init__(self) -> None:
        check_choice("--clustering", self.clustering, CLUSTERINGS)
        if not isinstance(self.correct, tuple) or any(c not in CORRECTIONS for c in self.correct):
            raise UserError(
                f"--correct must hold entries of {', '.join(CORRECTIONS)}; got {self.correct!r}"
            )
        check_int("--calibration-images", self.calibration_images, 1)

    @property
    def needs_calibration(self) -> bool:
        """Whether any option reads the calibration images."""
        return self.clustering == "weighted" or bool(self.correct)

    def as_dict(self) -> dict:
        """The JSON form results, study identity and model files record."""
        return {
            "clustering": self.clustering,
            "correct": list(self.correct),
            "calibration_images": self.calibration_images if self.needs_calibration else 0,
        }


def parse_correct(text: str | None) -> tuple[str, ...]:
    """``--correct`` (``none``, ``bias``, ``bn``, ``bias,bn``) -> a sorted tuple."""
    if text is None or text == "none":
        return ()
    parts = [p.strip() for p in text.split(",")]
    bad = [p for p in parts if p not in CORRECTIONS]
    if bad or not parts:
        raise UserError(
            f"--correct must be none or a comma list of {', '.join(CORRECTIONS)}; got {text!r}"
        )
    return tuple(sorted(set(parts)))


def check_backend(backend, options: PerBitOptions) -> None:
    """Refuse options the backend cannot serve (no gradients / activations), in one line."""
    asked = ([options.clustering] if options.clustering == "weighted" else []) + list(
        options.correct
    )
    for option in asked:
        needs = [_NEEDS[option]] + ([_CORRECTED] if option in CORRECTIONS else [])
        if not all(hasattr(backend, method) for method in needs):
            flag = "--clustering weighted" if option == "weighted" else f"--correct {option}"
            raise UserError(
                f"{flag} needs gradients and activations, which the {backend.name} backend "
                "does not give; use --backend pytorch (or drop the option)"
            )


def bias_shift(mean_patch: np.ndarray, pristine: np.ndarray, shared: np.ndarray) -> np.ndarray:
    """Per-output-channel mean of ``fp32 output - shared output`` for the same inputs.

    Args:
        mean_patch: mean input patch, shape ``(groups, fan_in)`` (:meth:`input_means`).
        pristine, shared: the fp32 and shared weights, canonical layout, output channels on
            axis 0, ``prod(shape[1:]) == fan_in``.

    Returns:
        float64 array, shape ``(out,)``.
    """
    groups = mean_patch.shape[0]
    delta = pristine.astype(np.float64).reshape(pristine.shape[0], -1) - shared.astype(
        np.float64
    ).reshape(shared.shape[0], -1)
    per_group = delta.reshape(groups, -1, delta.shape[1])  # (groups, out/groups, fan_in)
    return np.einsum("gof,gf->go", per_group, mean_patch).reshape(-1)


class Calibrator:
    """The per-model state the options need, measured once on the pristine model.

    Args:
        backend: a loaded backend holding its pristine weights.
        options: the options.
        calibration: the calibration split (None when no option needs one).

    Raises:
        UserError: the backend cannot serve an option.
    """

    def __init__(self, backend, options: PerBitOptions, calibration=None) -> None:
        check_backend(backend, options)
        self.options = options
        self.calibration = calibration
        self.importance: dict[str, np.ndarray] | None = None
        self._means: dict[str, np.ndarray] | None = None
        if options.clustering == "weighted":
            self.importance = backend.fisher(calibration)
        if "bias" in options.correct:
            self._means = backend.input_means(calibration)

    @property
    def corrects(self) -> bool:
        """Whether :meth:`apply` changes tensors other than the shared layers' weights
        (``--correct``: biases, BatchNorm statistics). ``--clustering weighted`` alone only
        changes how each shared layer is clustered (its codebook and indices), so a candidate
        still differs from the fp32 model in its shared layers only."""
        return bool(self.options.correct)

    def narrowed(self, options: PerBitOptions) -> Calibrator:
        """This calibrator with fewer options (the state is shared, nothing is measured again).

        Raises:
            UserError: ``options`` asks for something this calibrator did not measure.
        """
        extra = set(options.correct) - set(self.options.correct)
        if extra or (options.clustering == "weighted" and self.importance is None):
            raise UserError(f"narrowed options {options} need more than {self.options}")
        narrow = object.__new__(Calibrator)
        narrow.options, narrow.calibration = options, self.calibration
        narrow.importance = self.importance if options.clustering == "weighted" else None
        narrow._means = self._means if "bias" in options.correct else None
        return narrow

    def apply(self, backend, dense: Mapping[str, np.ndarray]) -> dict:
        """Correct ``backend`` after ``set_weights(dense)``; undone by ``backend.restore()``.

        Returns what was done: ``{"bias_skipped": [...], "bn_layers": n}`` (the keys of the
        options asked for).
        """
        done = {}
        if self._means is not None:
            shifts = {
                name: bias_shift(self._means[name], backend.get_weights(name), value)
                for name, value in dense.items()
            }
            done["bias_skipped"] = backend.shift_biases(shifts)
        if "bn" in self.options.correct:
            done["bn_layers"] = backend.reestimate_bn(self.calibration)
        return done

    def corrected_tensors(self, backend) -> dict[str, np.ndarray]:
        """The state tensors :meth:`apply` changed (state-dict name -> array, as the model
        file stores them), read before ``restore()``; empty without ``--correct``."""
        return getattr(backend, _CORRECTED)() if self.options.correct else {}
