"""Outputs of an exploration: ``results.json``, ``pareto.csv``, ``trials.csv`` and PNG plots.

Everything here reads the :class:`~weightshare.dse.driver.Outcome` and the trial store; nothing
is evaluated. Sizes are reported under both size models (``fixed``: the seed's fixed-length
indices + fp32 codebooks; ``coded``: entropy-coded indices + codebooks) and as the seed's
ratio over the clusterable layers and as a whole-model ratio.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np

from weightshare.dse.driver import Driver, Outcome
from weightshare.dse.space import FP32, Candidate, parse_choice
from weightshare.dse.trials import Record
from weightshare.outputs import write_files_atomic

POINT_FIELDS = (
    "trial",
    "phase",
    "accuracy_search",
    "size_bytes",
    "size_bytes_fixed",
    "size_bytes_coded",
    "compression_ratio_fixed",
    "compression_ratio_coded",
    "compression_ratio_model_fixed",
    "compression_ratio_model_coded",
)


def point(driver: Driver, outcome: Outcome, record: Record) -> dict:
    """One evaluated candidate as a JSON-able dict (sizes under both models, final scores)."""
    layout = driver.layout
    settings = record.candidate.settings()
    out = {
        "trial": record.trial_id,
        "phase": record.phase,
        "k_per_layer": {n: k for n, (k, _) in settings.items()},
        # with --prune-grid: each shared layer's magnitude-pruning sparsity (0.0: not pruned)
        **(
            {"sparsity_per_layer": {n: s for n, (_, s) in settings.items()}}
            if driver.config.prune_grid
            else {}
        ),
        "accuracy_search": record.accuracy,
        "size_bytes": driver.size_bytes(record),
        "size_bytes_fixed": layout.model_bits(record.bits_fixed) / 8,
        "size_bytes_coded": driver.coded_bytes(record),
        "compression_ratio_fixed": layout.ratio_layers(record.bits_fixed),
        "compression_ratio_coded": layout.ratio_layers(record.bits_coded),
        "compression_ratio_model_fixed": layout.ratio_model(record.bits_fixed),
        "compression_ratio_model_coded": layout.original_bits / 8 / driver.coded_bytes(record),
    }
    for split, rec in outcome.final.get(record.candidate.key(), {}).items():
        if split == "search":
            continue
        out[f"accuracy_{split}"] = rec.accuracy
        out[f"passes_{split}"] = passes(driver, outcome, rec)
    return out


def passes(driver: Driver, outcome: Outcome, record: Record) -> bool:
    """Whether ``record`` meets the target of its split: on the whole search split the bar the
    confirmation used (the target plus ``--confirm-margin`` standard errors,
    :meth:`Driver.meets_full_target`), elsewhere ``accuracy_ratio`` x the fp32 accuracy on the
    same split (the holdout never gets the margin)."""
    if record.split == driver.full_split:
        return driver.meets_full_target(record)
    target = driver.config.accuracy_ratio * outcome.baseline[record.split].accuracy
    return record.accuracy >= target


def results(
    driver: Driver,
    outcome: Outcome,
    *,
    network: str,
    backend: str,
    settings: dict,
    wall_seconds: float,
) -> dict:
    """The ``results.json`` document."""
    base = {f"accuracy_{split}": rec.accuracy for split, rec in outcome.baseline.items()}
    weight_names = {layer.name: layer.weight_name for layer in driver.info.layers}
    status = "interrupted" if outcome.interrupted else ("ok" if outcome.best else "infeasible")
    return {
        "network": network,
        "backend": backend,
        "optimization": driver.config.optimization,
        "status": status,
        "baseline": base,
        "accuracy_ratio": driver.config.accuracy_ratio,
        "accuracy_target": outcome.target,
        "size_model": driver.config.size_model,
        "original_bytes": driver.layout.original_bits / 8,
        "best": None if outcome.best is None else point(driver, outcome, outcome.best),
        "pareto": [point(driver, outcome, r) for r in outcome.pareto],
        "closest": [point(driver, outcome, r) for r in outcome.closest],
        "evaluations": outcome.evaluations,
        # images the evaluations scored, and what they would have scored without early stopping
        "images_scored": sum(r.images_scored for r in driver.store.records() if not r.reused),
        "images_without_early_stopping": sum(
            r.n_images for r in driver.store.records() if not r.reused
        ),
        "wall_seconds": wall_seconds,  # over every run of the study (resumes included)
        "surrogate": None
        if driver.surrogate is None
        else {
            "drop": "a * sum_kl ** b",
            "a": driver.surrogate.a,
            "b": driver.surrogate.b,
            "n_points": driver.surrogate.n_points,
        },
        "layers": [
            {
                "name": name,
                **({"weight_name": weight_names[name]} if weight_names.get(name) else {}),
                "n_weights": n,
                "explored": name in driver.grids,
                "options": [_option(driver, o) for o in outcome.options.get(name, [])],
            }
            for name, n in driver.layout.n_weights.items()
        ],
        "settings": settings,
    }


def _option(driver: Driver, option) -> dict:
    """One step-1 option of a layer: its k (0: fp32), its sparsity with ``--prune-grid``, its
    size in bits and its one-layer KL."""
    k, sparsity = (FP32, 0.0) if option.k == FP32 else parse_choice(option.k)
    pruned = {"sparsity": sparsity} if driver.config.prune_grid else {}
    return {"k": k, **pruned, "bits": option.bits, "kl": option.damage}


def write(directory: Path, doc: dict, driver: Driver, outcome: Outcome) -> list[Path]:
    """Write results.json, pareto.csv, trials.csv and the plots; return the paths written.

    All files are rendered first, then replaced together (:func:`write_files_atomic`): a full
    disk leaves the previous outputs as they were, never a part of a file or a mix of runs.
    """
    records = driver.store.records()
    files = {
        directory / "results.json": (json.dumps(doc, indent=2) + "\n").encode(),
        directory / "pareto.csv": _csv(doc["pareto"]),
        directory / "trials.csv": _csv([_trial_row(driver, outcome, r) for r in records]),
    }
    files |= _plots(directory, doc, driver, outcome, records)
    return write_files_atomic(files)


def _trial_row(driver: Driver, outcome: Outcome, r: Record) -> dict:
    """One row of trials.csv; ``feasible``: :func:`passes` on the row's split."""
    layout = driver.layout
    return {
        "trial": r.trial_id,
        "phase": r.phase,
        "number": r.number,
        "split": r.split,
        "accuracy": r.accuracy,
        "kl": r.kl,
        "flip": r.flip,
        "cross_entropy": r.cross_entropy,
        "n_images": r.n_images,
        "images_scored": r.images_scored,
        "feasible": passes(driver, outcome, r),
        "size_bytes": driver.size_bytes(r),
        "compression_ratio_fixed": layout.ratio_layers(r.bits_fixed),
        "compression_ratio_coded": layout.ratio_layers(r.bits_coded),
        "seconds": r.seconds,
        "reused": r.reused,
        "k": r.candidate.csv_cell(),
    }


def _csv(rows: list[dict]) -> bytes:
    """Rows as CSV bytes; a ``k_per_layer`` mapping becomes a ``k`` column
    (:meth:`Candidate.csv_cell`: ``name=k;name=k``, ``fp32`` when empty) and
    ``sparsity_per_layer`` a ``sparsity`` column ``name=s;name=s``."""
    flat = []
    for row in rows:
        row = dict(row)
        if "k_per_layer" in row:
            row["k"] = Candidate.of(row.pop("k_per_layer")).csv_cell()
        if "sparsity_per_layer" in row:
            row["sparsity"] = ";".join(f"{n}={s}" for n, s in row.pop("sparsity_per_layer").items())
        flat.append(row)
    fields = list(dict.fromkeys(key for row in flat for key in row)) or list(POINT_FIELDS)
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=fields)
    writer.writeheader()
    writer.writerows(flat)
    return text.getvalue().encode()


def _png(fig) -> bytes:
    """``fig`` as PNG bytes (120 dpi); the figure is closed."""
    from matplotlib import pyplot as plt

    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, dpi=120, format="png")
    finally:
        plt.close(fig)
    return buffer.getvalue()


def _plots(
    directory: Path, doc: dict, driver: Driver, outcome: Outcome, records
) -> dict[Path, bytes]:
    """The PNG plots, path -> bytes: pareto.png, k_per_layer.png (a best point), sensitivity.png
    (step 1 run)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    written: dict[Path, bytes] = {}
    search = [r for r in records if r.split == "search" and r.phase != "baseline"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter(
        [driver.size_bytes(r) / 1024 for r in search],
        [100 * r.accuracy for r in search],
        s=8,
        c="lightgray",
        label="evaluated",
    )
    front = outcome.pareto
    ax.plot(
        [driver.size_bytes(r) / 1024 for r in front],
        [100 * r.accuracy for r in front],
        "o-",
        c="tab:blue",
        ms=4,
        label="feasible Pareto front",
    )
    ax.axhline(
        100 * outcome.target,
        c="tab:red",
        ls="--",
        label=f"target {100 * driver.config.accuracy_ratio:g} % of fp32",
    )
    if outcome.best is not None:
        ax.plot(
            [driver.size_bytes(outcome.best) / 1024],
            [100 * outcome.best.accuracy],
            "*",
            c="tab:orange",
            ms=14,
            label="best",
        )
    if search:
        ax.set_xscale("log")
    ax.set_xlabel(f"model size, KiB ({driver.config.size_model} size model, log scale)")
    ax.set_ylabel("top-1 accuracy on the search images, %")
    ax.set_title(f"{doc['network']}: {doc['optimization']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    written[directory / "pareto.png"] = _png(fig)

    if outcome.best is not None:
        names = list(driver.layout.n_weights)
        settings = outcome.best.candidate.settings()
        k_map = outcome.best.candidate.as_dict()
        bits = [math.log2(settings[n][0]) if n in settings else 32 for n in names]
        fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(names)), 4))
        ax.bar(
            range(len(names)), bits, color=["tab:blue" if n in k_map else "tab:gray" for n in names]
        )
        for i, n in enumerate(names):
            ax.text(i, bits[i], str(k_map.get(n, "fp32")), ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(names)), names, rotation=70, ha="right", fontsize=7)
        ax.set_ylabel("log2 k (bits of a fixed-length index)")
        ax.set_title("best point: shared values per layer (gray: fp32)")
        fig.tight_layout()
        written[directory / "k_per_layer.png"] = _png(fig)

    one_layer = [r for r in records if r.phase == "sensitivity"]
    if one_layer:
        fig = _sensitivity_plot(one_layer, list(driver.layout.n_weights))
        written[directory / "sensitivity.png"] = _png(fig)
    return written


# Above this many layers the one-layer curves are drawn as a layers x k heatmap.
HEATMAP_LAYERS = 8


def _sensitivity_plot(one_layer: list[Record], order: list[str]):
    """Step 1's damage (mean KL from the fp32 outputs, nats) of each layer shared alone at
    each k: one line per layer, or a layers x k heatmap of log10 KL when there are many."""
    from matplotlib import pyplot as plt

    kl: dict[str, dict[int, float]] = {}  # one curve per layer (and sparsity, when pruned)
    for r in one_layer:
        ((layer, (k, sparsity)),) = r.candidate.settings().items()
        kl.setdefault(layer if sparsity == 0 else f"{layer} s={sparsity:g}", {})[k] = r.kl
    layers = sorted(kl, key=lambda n: (order.index(n.split(" ")[0]), n))
    ks = sorted({k for by_k in kl.values() for k in by_k})
    if len(layers) > HEATMAP_LAYERS:
        grid = np.full((len(layers), len(ks)), np.nan)
        for i, layer in enumerate(layers):
            for j, k in enumerate(ks):
                if k in kl[layer]:
                    grid[i, j] = np.log10(max(kl[layer][k], 1e-6))
        fig, ax = plt.subplots(
            figsize=(max(6, 0.45 * len(ks) + 3), max(4, 0.3 * len(layers) + 1.5))
        )
        image = ax.imshow(grid, aspect="auto", cmap="viridis_r", interpolation="nearest")
        ax.set_xticks(range(len(ks)), [str(k) for k in ks], fontsize=7)
        ax.set_yticks(range(len(layers)), layers, fontsize=7)
        ax.set_xlabel("k (shared values) of the one shared layer")
        fig.colorbar(image, ax=ax, label="log10 mean KL from fp32 outputs (nats)")
    else:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for layer in layers:
            pts = sorted(kl[layer].items())
            ax.plot(
                [p[0] for p in pts], [max(p[1], 1e-6) for p in pts], ".-", lw=1, ms=3, label=layer
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("k (shared values) of the one shared layer")
        ax.set_ylabel("mean KL from the fp32 outputs, nats")
        ax.legend(fontsize=7)
    ax.set_title("step 1: each layer shared alone (damage on the search images)")
    fig.tight_layout()
    return fig
