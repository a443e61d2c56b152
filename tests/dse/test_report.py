"""The exploration's outputs checked for content, on the numpy backend: the plots are PNG images
of the size their figures state, and every number of ``results.json`` is the one ``trials.csv``
holds for the same trial."""

import csv
import json

import pytest

from tests.conftest import png_size
from tests.dse.fake_backend import NAME, FakeFactory
from weightshare.dse import report
from weightshare.dse.driver import Driver, ExploreConfig
from weightshare.dse.executor import LocalExecutor
from weightshare.dse.space import Candidate
from weightshare.dse.trials import TrialStore

CONFIG = ExploreConfig(k_grid=(4, 16, 64), n_trials=8, population_size=4, max_final=2)
DPI = 120  # report._plots saves every figure at 120 dpi
PNG_SIZES = {  # figsize (inches) x DPI; k_per_layer is max(6, 0.35 * layers) wide
    "pareto.png": (7 * DPI, 4.5 * DPI),
    "k_per_layer.png": (6 * DPI, 4 * DPI),
    "sensitivity.png": (8 * DPI, 4.5 * DPI),
}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    settings = {"network": NAME, **CONFIG.identity()}
    store = TrialStore(f"sqlite:///{out / 'study.db'}", settings)
    driver = Driver(CONFIG, store, LocalExecutor(FakeFactory(0.05)))
    outcome = driver.run()
    doc = report.results(
        driver, outcome, network=NAME, backend=NAME, settings=settings, wall_seconds=1.0
    )
    paths = report.write(out, doc, driver, outcome)
    return out, paths


def test_the_plots_are_pngs_of_the_stated_size(written):
    out, paths = written
    assert sorted(p.name for p in paths if p.suffix == ".png") == sorted(PNG_SIZES)
    for name, size in PNG_SIZES.items():
        assert png_size((out / name).read_bytes()) == size, name


def test_results_json_numbers_are_those_of_trials_csv(written):
    out, _ = written
    doc = json.loads((out / "results.json").read_text())
    with (out / "trials.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    search = {row["trial"]: row for row in rows if row["split"] == "search"}
    points = [doc["best"], *doc["pareto"]]
    assert doc["best"] is not None and doc["best"] in doc["pareto"]
    for point in points:
        row = search[str(point["trial"])]
        k = Candidate.of(point["k_per_layer"]).csv_cell()
        # the pareto.csv spelling: layers joined by ";", an unquoted cell
        assert row["k"] == k == ";".join(f"{n}={v}" for n, v in point["k_per_layer"].items())
        assert Candidate.parse(row["k"]) == Candidate.of(point["k_per_layer"])
        assert row["phase"] == point["phase"]
        assert float(row["accuracy"]) == point["accuracy_search"]
        assert float(row["size_bytes"]) == point["size_bytes"]
        assert float(row["compression_ratio_fixed"]) == point["compression_ratio_fixed"]
        assert float(row["compression_ratio_coded"]) == point["compression_ratio_coded"]
        assert row["feasible"] == "True"
        for split in ("search_full", "holdout"):
            (final,) = (r for r in rows if r["k"] == k and r["split"] == split)
            assert float(final["accuracy"]) == point[f"accuracy_{split}"]
    base = {r["split"]: float(r["accuracy"]) for r in rows if r["phase"] == "baseline"}
    assert base == {split.removeprefix("accuracy_"): acc for split, acc in doc["baseline"].items()}
    with (out / "pareto.csv").open() as fh:
        pareto = list(csv.DictReader(fh))
    assert [(int(r["trial"]), float(r["size_bytes"]), r["k"]) for r in pareto] == [
        (p["trial"], p["size_bytes"], search[str(p["trial"])]["k"]) for p in doc["pareto"]
    ]
    # no k cell needed quoting: a multi-layer k is one field of a plain comma split
    lines = (out / "trials.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert all(len(line.split(",")) == len(header) for line in lines)
    assert any(";" in line.split(",")[header.index("k")] for line in lines[1:])


def test_csv_k_cells_are_the_candidates_csv_cells():
    rows = [
        {"trial": 1, "k_per_layer": {}},
        {"trial": 2, "k_per_layer": {"fc1": 4, "conv1": 2}, "sparsity_per_layer": {"fc1": 0.5}},
    ]
    assert report._csv(rows).decode() == (
        "trial,k,sparsity\r\n1,fp32,\r\n2,conv1=2;fc1=4,fc1=0.5\r\n"
    )
