"""Every candidate of a small network's search space, scored on the whole search split and the
holdout: the true frontier, and which confirmation margin a search could choose without the
holdout (issue 9, LeNet-300-100).

    python bench/bench_exhaustive.py [--network lenet300_fashionmnist] [--dataset_scale 0.1] \
        [--seed 0 | --seeds 0,1,2] [--k-grid 2,3,4,...] [--threads 1] \
        [--out runs/exhaustive] \
        [--zs 0,0.5,1,1.5,2,2.5,3] \
        [--halvings 200] [--halving-seed 0] [--level 0.9] [--mark 14.30,13.17,12.98,11.79] \
        [--plot docs/img/exhaustive_lenet300_fashionmnist.png]

The space is the exploration's own for nsga2 / tpe (``whole_grids``): per layer fp32 or a k of
the default grid (2..256, 15 values), all combinations (16^3 = 4,096 on LeNet-300-100). Each
candidate is scored by the exploration's :class:`~weightshare.dse.evaluator.Evaluator` (the same
k-means, ``--seed``, and sizes: ``size_bytes`` is the model file's bytes, the coded ratio is
``compression_ratio_coded`` of results.json) on the whole search split (``search_full``, 5,000
images; its first ``--dataset_scale`` fraction is the search images the exploration starts on)
and on the holdout (5,000). The per-image correctness and top-1-changed-vs-fp32 vectors are
saved as packed bits in ``OUT/NETWORK@SCALE+seedS.npz`` (``...+kK1-K2-...`` with another
``--k-grid``); a rerun reads that map back. The map records what it was built from (network,
scale, seed, k grid, the checkpoint's sha256, the model file's manifest coding and
:data:`MAP_VERSION`); a map built from anything else is refused in one line naming the first
difference (delete it to rebuild, or use another ``--out``).

Printed: the frontier (the largest coded ratio passing the holdout target, 0.99 x fp32 there;
the largest passing the whole-search-split target), how many search-passing candidates fail
the holdout by search margin in standard errors (``se`` as ``dse/confidence.py`` bounds it,
``sqrt(flip / n)``); per Z the largest-ratio candidate with ``accuracy - Z * se >= target`` on
the whole search split and its holdout verdict; a margin chosen without the holdout (the search
split halved ``--halvings`` times, seeded: pick on one half with each Z, check the plain target
on the other; the smallest Z whose pick passes in at least ``--level`` of the halvings) and its
pick on the whole search split; and where the ``--mark`` ratios sit. ``--seeds`` prints instead
a summary over several k-means seeds' maps: per seed the holdout frontier, each Z's pick and
its verdict, the halving rule's Z and pick; the median per Z; and, for each number of seeds
whose pick passes the holdout, the largest median ratio one Z (chosen with hindsight) reaches.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.cli_edge import one_line_errors  # noqa: E402
from weightshare.dse import confidence  # noqa: E402
from weightshare.dse.space import DEFAULT_K_GRID, parse_k_grid  # noqa: E402
from weightshare.errors import UserError  # noqa: E402

# Bump when build_map scores, sizes or stores candidates differently: older maps are refused.
MAP_VERSION = 1
ACCURACY_RATIO = 0.99  # the heavy target, as the exploration's default
BANDS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, np.inf)  # search margin bands, in se


# --- pure functions (tests/bench/test_bench_exhaustive.py) -------------------------------------


def se(flips: np.ndarray, n: int) -> np.ndarray:
    """``confidence.se_bound`` of each candidate: ``flips`` (C,) counts of images whose top-1
    changed vs fp32 among ``n``; returns (C,) float64, fractions of the split."""
    return np.array([confidence.se_bound(f / n, n) for f in np.asarray(flips)], dtype=np.float64)


def margins(correct: np.ndarray, flips: np.ndarray, n: int, target: float) -> np.ndarray:
    """Each candidate's ``(accuracy - target) / se`` (C,), with ``correct`` and ``flips`` (C,)
    counts over ``n`` images and ``target`` a fraction. A candidate with no flip (se 0) has the
    fp32 model's decisions: +inf if it meets the target, -inf if not."""
    excess = np.asarray(correct, np.float64) / n - target
    s = se(flips, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = excess / s
    return np.where(s > 0, out, np.where(excess >= 0, np.inf, -np.inf))


def pick(
    ratios: np.ndarray, correct: np.ndarray, flips: np.ndarray, n: int, target: float, z: float
) -> int | None:
    """Index of the largest-ratio candidate that passes ``accuracy - z * se >= target``
    (:func:`weightshare.dse.confidence.passes`), ties to the lowest index; None if none passes.

    Args:
        ratios: (C,) coded compression ratios; correct, flips: (C,) counts over ``n`` images.
    """
    ok = [
        confidence.passes(c / n, target, f / n, n, z)
        for c, f in zip(np.asarray(correct), np.asarray(flips), strict=True)
    ]
    ok = np.asarray(ok, bool)
    if not ok.any():
        return None
    masked = np.where(ok, np.asarray(ratios, np.float64), -np.inf)
    return int(np.argmax(masked))


def halves(n: int, rounds: int, seed: int) -> np.ndarray:
    """(rounds, n) bool masks, each True on a seeded random half (``n // 2`` images) of the
    split: the half a pick is made on; the other half checks it."""
    rng = np.random.default_rng(seed)
    out = np.zeros((rounds, n), bool)
    for r in range(rounds):
        out[r, rng.permutation(n)[: n // 2]] = True
    return out


def halving_pass_rates(
    ratios: np.ndarray,
    correct: np.ndarray,
    flipped: np.ndarray,
    fp32_correct: np.ndarray,
    zs: Sequence[float],
    masks: np.ndarray,
    accuracy_ratio: float = ACCURACY_RATIO,
) -> np.ndarray:
    """Per Z, the share of the halvings in which the pick on one half passes the other.

    For each mask (one half ``A``, its complement ``B``): the target on a half is
    ``accuracy_ratio`` x the fp32 accuracy there; the pick on ``A`` is :func:`pick` with Z
    (its se from the flips on ``A``); it passes when its plain accuracy on ``B`` meets ``B``'s
    target.

    Args:
        ratios: (C,) coded ratios.
        correct, flipped: (C, N) bool per image (candidate right; top-1 differs from fp32).
        fp32_correct: (N,) bool, the fp32 model right.
        zs: margins to try.
        masks: (R, N) bool halves (:func:`halves`).

    Returns:
        (len(zs),) float shares in [0, 1].
    """
    correct = np.asarray(correct, np.float32)
    flipped = np.asarray(flipped, np.float32)
    wins = np.zeros(len(zs))
    for mask in np.asarray(masks, bool):
        a, b = mask.astype(np.float32), (~mask).astype(np.float32)
        n_a, n_b = int(a.sum()), int(b.sum())
        target_a = accuracy_ratio * float(fp32_correct[mask].mean())
        target_b = accuracy_ratio * float(fp32_correct[~mask].mean())
        right_a, flips_a, right_b = correct @ a, flipped @ a, correct @ b
        for i, z in enumerate(zs):
            chosen = pick(ratios, right_a, flips_a, n_a, target_a, z)
            wins[i] += chosen is not None and right_b[chosen] / n_b >= target_b
    return wins / len(masks)


def smallest_z(zs: Sequence[float], rates: Sequence[float], level: float) -> float | None:
    """The smallest Z whose pass rate is at least ``level``, or None."""
    ok = [z for z, rate in zip(zs, rates, strict=True) if rate >= level]
    return min(ok) if ok else None


def staircase(ratios: np.ndarray, margin: np.ndarray) -> list[tuple[int, float, float]]:
    """Every pick a margin rule can make: (index, lowest Z, highest Z) for each candidate that
    is the largest-ratio one with ``margin >= Z`` for Z in ``(lowest, highest]`` (the first
    step from ``-inf``), in increasing Z. Ties in ratio go to the lowest index, as in
    :func:`pick`.

    Args:
        ratios, margin: (C,) coded ratios and search margins in se (:func:`margins`).
    """
    order = sorted(range(len(ratios)), key=lambda i: (-ratios[i], i))
    steps, best = [], -np.inf
    for i in order:
        if margin[i] > best:
            steps.append((i, best, float(margin[i])))
            best = float(margin[i])
    return steps


def common_steps(
    stairs: Sequence[list[tuple[int, float, float]]],
) -> list[tuple[float, float, tuple[int, ...]]]:
    """Several maps' :func:`staircase` on one Z axis: (low, high, the pick of each map) for
    every interval ``(low, high]`` of Z on which no map's pick changes, in increasing Z (the
    first from ``-inf``)."""
    bounds = sorted({high for steps in stairs for _, _, high in steps})
    out, low = [], -np.inf
    for high in bounds:
        picks = tuple(next(i for i, lo, hi in steps if lo < high <= hi) for steps in stairs)
        out.append((low, high, picks))
        low = high
    return out


def band_counts(
    search_margin: np.ndarray, holdout_pass: np.ndarray, edges: Sequence[float] = BANDS
) -> list[tuple[float, float, int, int]]:
    """Candidates by search margin band: (low, high, candidates, of them failing the
    holdout) per band ``[low, high)`` of consecutive ``edges`` (in se); a last band up to
    ``inf`` includes ``inf`` (a candidate with the fp32 model's decisions)."""
    search_margin, holdout_pass = np.asarray(search_margin), np.asarray(holdout_pass, bool)
    out = []
    for low, high in itertools.pairwise(edges):
        inside = (search_margin >= low) & ((search_margin < high) | (high == np.inf))
        out.append((low, high, int(inside.sum()), int((inside & ~holdout_pass).sum())))
    return out


def pack(rows: np.ndarray) -> np.ndarray:
    """(C, N) bool -> (C, ceil(N / 8)) uint8, big-endian bits (``np.packbits`` on axis 1)."""
    return np.packbits(np.asarray(rows, bool), axis=1)


def unpack(packed: np.ndarray, n: int) -> np.ndarray:
    """Inverse of :func:`pack`: (C, ceil(n / 8)) uint8 -> (C, n) bool."""
    return np.unpackbits(packed, axis=1, count=n).astype(bool)


# --- the map ----------------------------------------------------------------------------------


class LogitTap:
    """A backend that keeps the logits its ``predict`` / ``predict_after`` return (in call
    order), so the evaluator's own scoring yields per-image figures; all else is forwarded."""

    def __init__(self, backend) -> None:
        self._backend = backend
        self.logits: list[np.ndarray] = []

    def __getattr__(self, name: str):
        return getattr(self._backend, name)

    def predict(self, split) -> np.ndarray:
        out = self._backend.predict(split)
        self.logits.append(out)
        return out

    def predict_after(self, split, layer: str) -> np.ndarray | None:
        out = self._backend.predict_after(split, layer)
        if out is not None:
            self.logits.append(out)
        return out

    def take(self) -> np.ndarray | None:
        """The logits kept since the last call, concatenated (N, classes), or None."""
        out = np.concatenate(self.logits) if self.logits else None
        self.logits = []
        return out


def candidates(grids: dict[str, Sequence[int]]) -> list:
    """Every combination of the layers' choices (:class:`Candidate`), in grid order."""
    from weightshare.dse.space import Candidate

    names = list(grids)
    return [
        Candidate.of(dict(zip(names, ks, strict=True)))
        for ks in itertools.product(*(grids[n] for n in names))
    ]


def build_map(
    network: str, scale: float, seed: int, threads: int, grid: Sequence[int] = DEFAULT_K_GRID
) -> dict[str, np.ndarray]:
    """Score every candidate of the exploration's space (per layer fp32 or a k of ``grid``)
    on ``search_full`` and ``holdout``: the arrays :func:`load_map` reads, bit rows packed."""
    from tqdm import tqdm

    from weightshare.dse.damage import per_image
    from weightshare.dse.objective import ModelLayout
    from weightshare.dse.space import FP32, layer_choices
    from weightshare.modes.loading import EvaluatorFactory
    from weightshare.networks.checkpoints import BASELINE_DIR

    factory = EvaluatorFactory(
        network, str(BASELINE_DIR / f"{network}.pt"), None, scale, threads, seed=seed
    )
    evaluator = factory()
    info = evaluator.describe()
    layout = ModelLayout(info.n_weights, info.n_unclustered)
    grids = {n: [FP32, *layer_choices(grid, (), w)] for n, w in info.n_weights.items()}
    splits = ("search_full", "holdout")
    labels = {s: np.asarray(evaluator.splits[s].labels, np.int64) for s in splits}
    first = len(evaluator.splits["search"])
    if not np.array_equal(labels["search_full"][:first], evaluator.splits["search"].labels):
        raise UserError("the search images are not the whole search split's first ones")
    reference = {s: evaluator.reference(s) for s in splits}
    tap = LogitTap(evaluator.backend)
    evaluator.backend = tap
    space = candidates(grids)
    out: dict[str, list] = {"keys": [], "ratio_coded": [], "ratio_fixed": [], "size_bytes": []}
    rows: dict[str, list] = {f"{w}_{s}": [] for w in ("correct", "flip") for s in splits}
    for cand in tqdm(space, desc="candidates", mininterval=5):
        for s in splits:
            result = evaluator.evaluate(cand, s)
            logits = tap.take()
            logits = reference[s] if logits is None else logits
            _, flip, _ = per_image(reference[s], logits, labels[s])
            right = logits.argmax(axis=1) == labels[s]
            if int(right.sum()) != result.correct or int(flip.sum()) != round(
                result.flip * len(flip)
            ):
                raise UserError(
                    f"{cand.key()} on {s}: per-image figures disagree with the evaluator's"
                )
            rows[f"correct_{s}"].append(right)
            rows[f"flip_{s}"].append(flip)
        out["keys"].append(cand.key())
        out["ratio_coded"].append(layout.ratio_layers(result.bits_coded))
        out["ratio_fixed"].append(layout.ratio_layers(result.bits_fixed))
        out["size_bytes"].append(result.file_bytes)
    fp32 = {f"fp32_{s}": reference[s].argmax(axis=1) == labels[s] for s in splits}
    return {
        **{k: np.asarray(v) for k, v in out.items()},
        **{k: pack(np.asarray(v)) for k, v in rows.items()},
        **{k: pack(v[None])[0] for k, v in fp32.items()},
        "n": np.array([len(labels[s]) for s in splits]),
        "n_search": np.array(first),
        "provenance": np.array(json.dumps(provenance(network, scale, seed, grid))),
    }


def provenance(
    network: str, scale: float, seed: int, grid: Sequence[int] = DEFAULT_K_GRID
) -> dict[str, object]:
    """What a map is built from: the settings, the baseline checkpoint's sha256, the model
    file's manifest coding (``size_bytes``) and :data:`MAP_VERSION`; JSON-ready."""
    from weightshare.codecs.container import MANIFEST_CODINGS
    from weightshare.modes.train import sha256
    from weightshare.networks.checkpoints import BASELINE_DIR

    return {
        "map_version": MAP_VERSION,
        "network": network,
        "dataset_scale": float(scale),
        "seed": int(seed),
        "k_grid": [int(k) for k in grid],
        "checkpoint_sha256": sha256(BASELINE_DIR / f"{network}.pt"),
        "manifest_coding": max(MANIFEST_CODINGS),
    }


def check_provenance(path: Path, recorded: dict | None, expected: dict) -> None:
    """UserError (one line, the first differing entry) unless the map at ``path`` was built
    from ``expected`` (:func:`provenance`); ``recorded`` is None for a map without a record."""
    advice = f": delete {path} to rebuild it, or use another --out"
    if recorded is None:
        raise UserError(f"{path} records no provenance (built before map version 1){advice}")
    differ = [k for k in expected if recorded.get(k) != expected[k]]
    if differ:
        k = differ[0]
        was = f"{k}={recorded[k]!r}" if k in recorded else f"{k} not set"
        raise UserError(
            f"{path} was built with {was} but this run has {k}={expected[k]!r}"
            + (f" (and {len(differ) - 1} more differ)" if len(differ) > 1 else "")
            + advice
        )


def load_map(path: Path, expected: dict | None = None) -> dict[str, np.ndarray]:
    """The saved map with its bit rows unpacked to bool (C, N); with ``expected``
    (:func:`provenance`), a map built from anything else is refused (:func:`check_provenance`).
    """
    with np.load(path) as saved:
        data = dict(saved)
    recorded = json.loads(str(data.pop("provenance"))) if "provenance" in data else None
    if expected is not None:
        check_provenance(path, recorded, expected)
    n = dict(zip(("search_full", "holdout"), data["n"].tolist(), strict=True))
    for s, size in n.items():
        for what in ("correct", "flip"):
            data[f"{what}_{s}"] = unpack(data[f"{what}_{s}"], size)
        data[f"fp32_{s}"] = unpack(data[f"fp32_{s}"][None], size)[0]
    return data


# --- the report ---------------------------------------------------------------------------------


HEAD = (
    "k | coded / fixed ratio | size_bytes | first {first} % | whole search % | se (points) | "
    "search margin (se) | holdout % | passes holdout |"
)
RULE = "--- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"


class Map:
    """The saved map's figures per candidate, against the 0.99 x fp32 targets."""

    def __init__(self, data: dict) -> None:
        self.data = data
        self.ratios = data["ratio_coded"]
        cs, ch = data["correct_search_full"], data["correct_holdout"]
        self.n = cs.shape[1]
        self.first = int(data["n_search"])
        self.right = cs.sum(axis=1)
        self.flips = data["flip_search_full"].sum(axis=1)
        self.target = ACCURACY_RATIO * data["fp32_search_full"].mean()
        self.holdout_target = ACCURACY_RATIO * data["fp32_holdout"].mean()
        self.first_target = ACCURACY_RATIO * data["fp32_search_full"][: self.first].mean()
        self.first_acc = cs[:, : self.first].mean(axis=1)
        self.holdout_acc = ch.mean(axis=1)
        self.passes = self.right / self.n >= self.target
        self.passes_holdout = self.holdout_acc >= self.holdout_target
        self.margin = margins(self.right, self.flips, self.n, self.target)
        self.se = se(self.flips, self.n)

    def row(self, i: int) -> str:
        """Candidate ``i`` as the cells of :data:`HEAD` (without the outer bars)."""
        d = self.data
        return (
            f"{d['keys'][i]} | {self.ratios[i]:.2f} / {d['ratio_fixed'][i]:.2f} | "
            f"{int(d['size_bytes'][i]):,} | {100 * self.first_acc[i]:.2f} | "
            f"{100 * self.right[i] / self.n:.2f} | {100 * self.se[i]:.2f} | "
            f"{self.margin[i]:+.2f} | {100 * self.holdout_acc[i]:.2f} | {self.passes_holdout[i]}"
        )

    def pick(self, z: float) -> int | None:
        """:func:`pick` on the whole search split with margin ``z``."""
        return pick(self.ratios, self.right, self.flips, self.n, self.target, z)


def report(data: dict, args) -> None:
    """Print one map's analysis (the module docstring's list) and write ``--plot``."""
    m = Map(data)
    head, rule = HEAD.format(first=m.first), RULE
    print(
        f"{len(m.ratios):,} candidates; fp32 {100 * data['fp32_search_full'].mean():.2f} % on "
        f"the whole search split ({m.n:,}), {100 * data['fp32_holdout'].mean():.2f} % on the "
        f"holdout ({data['correct_holdout'].shape[1]:,}); targets {100 * m.target:.2f} / "
        f"{100 * m.holdout_target:.2f} %; the first {m.first} search images: fp32 "
        f"{100 * data['fp32_search_full'][: m.first].mean():.2f} %, target "
        f"{100 * m.first_target:.2f} %"
    )
    best_h = int(np.argmax(np.where(m.passes_holdout, m.ratios, -np.inf)))
    best_s = int(np.argmax(np.where(m.passes, m.ratios, -np.inf)))
    print("\nFrontier (largest coded ratio passing each target):\n")
    print(f"| frontier | {head}\n| --- | {rule}")
    print(f"| holdout | {m.row(best_h)} |")
    print(f"| whole search split | {m.row(best_s)} |")
    above = m.passes & (m.ratios > m.ratios[best_h])
    print(
        f"\n{int(m.passes.sum())} candidates pass the whole search split, "
        f"{int((m.passes & ~m.passes_holdout).sum())} of them fail the holdout; "
        f"{int(above.sum())} pass it with a ratio above the holdout frontier "
        f"({m.ratios[best_h]:.2f}x), all failing the holdout by definition.\n"
    )
    print("| search margin (se) | candidates passing the search split | of them fail holdout |")
    print("| --- | ---: | ---: |")
    for low, high, count, fail in band_counts(m.margin[m.passes], m.passes_holdout[m.passes]):
        print(f"| [{low:g}, {high:g}) | {count} | {fail} |")
    print("\nLargest coded ratio with accuracy - Z * se >= target on the whole search split:\n")
    print(f"| Z | {head}\n| --- | {rule}")
    for z in args.zs:
        print(f"| {z:g} | {m.row(m.pick(z))} |")
    top = max(args.zs)
    print(f"\nEvery pick of such a rule for Z in [0, {top:g}] (the Z range that picks it):\n")
    print(f"| Z in | {head}\n| --- | {rule}")
    for i, low, high in staircase(m.ratios, m.margin):
        if high >= 0 and low < top:
            print(f"| ({max(low, 0):.3f}, {high:.3f}] | {m.row(i)} |")
    masks = halves(m.n, args.halvings, args.halving_seed)
    rates = halving_pass_rates(
        m.ratios,
        data["correct_search_full"],
        data["flip_search_full"],
        data["fp32_search_full"],
        args.zs,
        masks,
    )
    print(
        f"\nMargin chosen without the holdout: {args.halvings} seeded halvings of the whole "
        f"search split ({m.n // 2:,} / {m.n - m.n // 2:,} images), pick on one half, check the "
        "plain target on the other:\n"
    )
    print("| Z | " + " | ".join(f"{z:g}" for z in args.zs) + " |")
    print("| --- |" + " ---: |" * len(args.zs))
    print("| pick passes the other half | " + " | ".join(f"{r:.1%}" for r in rates) + " |")
    chosen = smallest_z(args.zs, rates, args.level)
    if chosen is None:
        print(f"\nNo Z reaches {args.level:.0%}.")
    else:
        print(
            f"\nSmallest Z passing in >= {args.level:.0%}: **Z = {chosen:g}**; its pick on the "
            f"whole search split:\n\n| {head}\n| {rule}\n| {m.row(m.pick(chosen))} |"
        )
    if args.mark:
        print("\nWhere the marked ratios sit (every candidate of that ratio, 2 decimals):\n")
        print(f"| {head}\n| {rule}")
        for value in args.mark:
            for i in np.flatnonzero(np.round(m.ratios, 2) == value):
                print(f"| {m.row(int(i))} |")
    if args.plot:
        plot(m.ratios, m.margin, m.passes_holdout, args)
        print(f"\nwrote {args.plot}")


def summary(maps: dict[int, Map], args) -> None:
    """Per seed and over the seeds: the frontiers, the pick of each Z and its holdout verdict,
    the halving rule's Z and pick, and the best median ratio a single Z reaches."""
    seeds = list(maps)

    def cell(m: Map, i: int) -> str:
        return f"{m.ratios[i]:.2f} {'pass' if m.passes_holdout[i] else 'FAIL'}"

    columns = " | ".join(f"Z = {z:g}" for z in args.zs)
    print(
        f"| k-means seed | holdout frontier (margin se) | {columns} | "
        f"halving Z ({args.level:.0%}) | its pick |"
    )
    print("| --- | --- |" + " --- |" * len(args.zs) + " ---: | --- |")
    chosen_picks = []
    for seed, m in maps.items():
        best_h = int(np.argmax(np.where(m.passes_holdout, m.ratios, -np.inf)))
        picks = " | ".join(cell(m, m.pick(z)) for z in args.zs)
        masks = halves(m.n, args.halvings, args.halving_seed)
        rates = halving_pass_rates(
            m.ratios,
            m.data["correct_search_full"],
            m.data["flip_search_full"],
            m.data["fp32_search_full"],
            args.zs,
            masks,
        )
        z = smallest_z(args.zs, rates, args.level)
        pick_z = "none" if z is None else cell(m, m.pick(z))
        chosen_picks.append(None if z is None else m.pick(z))
        print(
            f"| {seed} | {m.ratios[best_h]:.2f} ({m.margin[best_h]:+.2f}) | {picks} | "
            f"{'none' if z is None else f'{z:g}'} | {pick_z} |"
        )
    medians = []
    for z in args.zs:
        ratios = [m.ratios[m.pick(z)] for m in maps.values()]
        passed = sum(bool(m.passes_holdout[m.pick(z)]) for m in maps.values())
        medians.append(f"{np.median(ratios):.2f} ({passed} of {len(seeds)} pass)")
    print(f"| **median** | | {' | '.join(medians)} | | |")
    stairs = [staircase(m.ratios, m.margin) for m in maps.values()]
    best: dict[int, tuple] = {}
    for low, high, picks in common_steps(stairs):
        if high < 0:
            continue
        ratios = [m.ratios[i] for m, i in zip(maps.values(), picks, strict=True)]
        passed = sum(bool(m.passes_holdout[i]) for m, i in zip(maps.values(), picks, strict=True))
        med = float(np.median(ratios))
        if passed not in best or med > best[passed][0]:
            best[passed] = (med, max(low, 0.0), high, ratios)
    print(
        "\nOne Z for every seed, Z >= 0 (found by looking at the holdout): the largest median "
        "coded ratio with n seeds' picks passing the holdout:\n"
    )
    print("| seeds passing | largest median coded ratio | at Z in | per seed |")
    print("| ---: | ---: | --- | --- |")
    for passed in sorted(best, reverse=True):
        med, low, high, ratios = best[passed]
        print(
            f"| {passed} of {len(seeds)} | {med:.2f} | ({low:.3f}, {high:.3f}] | "
            f"{' / '.join(f'{r:.2f}' for r in ratios)} |"
        )


def plot(ratios: np.ndarray, m: np.ndarray, passes_h: np.ndarray, args) -> None:
    """Coded ratio vs whole-search-split margin in se, coloured by holdout verdict: every
    candidate (left) and the edge (right, with the pick of each Z as a black staircase and the
    ``--mark`` ratios as lines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    views = ((axes[0], (-6.0, 10.0), None), (axes[1], (-1.0, max(args.zs) + 1), (9.0, 15.0)))
    for ax, (lo, hi), ylim in views:
        near = np.isfinite(m) & (m >= lo) & (m <= hi)
        if ylim is not None:
            near &= (ratios >= ylim[0]) & (ratios <= ylim[1])
        for ok, color, label in ((True, "C2", "passes holdout"), (False, "C3", "fails holdout")):
            sel = near & (passes_h == ok)
            ax.scatter(m[sel], ratios[sel], s=7, c=color, alpha=0.6, label=label, lw=0)
        for z in args.zs:
            ax.axvline(z, color="0.5", lw=0.6, ls=":")
        ax.set_xlabel("whole-search-split margin: (accuracy - target) / se")
        ax.set_ylabel("coded compression ratio")
        ax.grid(alpha=0.3)
    zoom = axes[1]
    xs, ys = [], []
    for i, low, high in staircase(ratios, m):
        if high >= 0 and low < max(args.zs) + 1:
            xs += [max(low, 0.0), min(high, max(args.zs) + 1)]
            ys += [ratios[i], ratios[i]]
    zoom.plot(xs, ys, color="k", lw=1, label="pick with margin Z (x = Z)")
    for value in args.mark:
        zoom.axhline(value, color="C0", lw=0.6, alpha=0.6)
        zoom.annotate(f"{value:.2f}x", (-1.0, value), fontsize=7, color="C0", va="bottom")
    zoom.set_ylim(*views[1][2])
    zoom.legend(fontsize=7, loc="lower left")
    axes[0].legend(fontsize=8)
    axes[0].set_title(f"{args.network} @ {args.dataset_scale:g}: every candidate", fontsize=9)
    zoom.set_title("the edge; dotted: the Z values; blue: --mark ratios", fontsize=9)
    fig.tight_layout()
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.plot, dpi=100)


def floats(text: str) -> list[float]:
    """``"0,0.5,1"`` -> [0.0, 0.5, 1.0] (``--zs``, ``--mark``)."""
    return [float(v) for v in text.split(",") if v.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--network", default="lenet300_fashionmnist")
    parser.add_argument("--dataset_scale", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0, help="the exploration's --seed (k-means)")
    parser.add_argument(
        "--seeds",
        type=lambda text: [int(v) for v in text.split(",")],
        help="several --seed maps: print only the summary over them (e.g. 0,1,2)",
    )
    parser.add_argument("--halving-seed", type=int, default=0)
    parser.add_argument(
        "--k-grid",
        default=",".join(map(str, DEFAULT_K_GRID)),
        help="k values per layer besides fp32 (default: the exploration's, 2..256)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "exhaustive")
    parser.add_argument(
        "--zs", type=floats, default=[0, 0.5, 1, 1.5, 2, 2.5, 3], help="margins Z in se"
    )
    parser.add_argument("--halvings", type=int, default=200, help="random halvings per map")
    parser.add_argument(
        "--level", type=float, default=0.9, help="share of halvings the chosen Z must pass"
    )
    parser.add_argument(
        "--mark",
        type=floats,
        default=[14.30, 13.17, 12.98, 11.79],
        help="coded ratios to locate in the map (2 decimals)",
    )
    parser.add_argument("--plot", type=Path, help="PNG of ratio vs search margin (default: none)")
    args = parser.parse_args()
    grid = parse_k_grid(args.k_grid)
    tail = "" if grid == DEFAULT_K_GRID else "+k" + "-".join(map(str, grid))

    def loaded(seed: int) -> dict:
        path = args.out / f"{args.network}@{args.dataset_scale:g}+seed{seed}{tail}.npz"
        if not path.exists():
            data = build_map(args.network, args.dataset_scale, seed, args.threads, grid)
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(path, **data)
            print(f"wrote {path}", file=sys.stderr)
        return load_map(path, provenance(args.network, args.dataset_scale, seed, grid))

    if args.seeds:
        summary({seed: Map(loaded(seed)) for seed in args.seeds}, args)
    else:
        report(loaded(args.seed), args)


if __name__ == "__main__":
    raise SystemExit(one_line_errors(main))
