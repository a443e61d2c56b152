"""Rounds on tiny real data: budgets, files, send-nothing, and a replay from the files alone."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from weightshare.codecs.residual import fingerprint
from weightshare.errors import UserError
from weightshare.networks import get_network
from weightshare.networks.datasets import Split
from weightshare.networks.registry import TrainRecipe
from weightshare.networks.tensors import images_to_tensor
from weightshare.networks.training import accuracy
from weightshare.updating.driver import (
    UpdateSettings,
    load_state,
    round_recipe,
    run_method,
    settings_json,
)
from weightshare.updating.replay import replay
from weightshare.updating.report import write_json
from weightshare.updating.schedule import RoundSchedule

SPEC = get_network("lenet300_fashionmnist")


@pytest.fixture(scope="module")
def tiny(search_split):
    train = Split("train@tiny", search_split.images[:600], search_split.labels[:600])
    search = Split("s", search_split.images[600:1000], search_split.labels[600:1000])
    holdout = Split("h", search_split.images[1000:1400], search_split.labels[1000:1400])
    return train, search, holdout


SETTINGS = UpdateSettings(
    ratio=0.01,
    lam=0.5,
    schedule=RoundSchedule(200, 200, 3, seed=0),
    recipe=TrainRecipe(epochs=1, batch_size=64, lr=0.05),
)


def _run(tmp_path: Path, tiny, methods, settings=SETTINGS):
    torch.set_num_threads(1)
    records = []
    for method in methods:
        records += run_method(SPEC, method, settings, *tiny, tmp_path, log=lambda _: None)
    header = {"network": SPEC.name, "settings": settings_json(settings)}
    write_json(tmp_path / "partial_update.json", header, records)
    return records


def test_rounds_respect_the_budget_and_replay_bit_for_bit(tmp_path, tiny):
    records = _run(tmp_path, tiny, ("dpu", "pruning"))
    assert [r.samples for r in records] == [200, 400, 600] * 2
    # 600 > 2 * 200: the re-init is tried in round 2 (the warm start is the fallback)
    assert [r.reinit_tried for r in records] == [False, False, True] * 2
    for r in records:
        assert r.dense_bytes == 266_610 * 4 and r.budget == 2662
        if r.skipped:
            assert r.bytes_sent == 0 and r.file is None and r.weights_changed == 0
        else:
            assert r.bytes_sent == (tmp_path / r.file).stat().st_size
        if r.round >= 1 or r.method == "pruning":
            assert r.weights_changed <= r.budget
    first = records[0]
    assert first.method == "dpu" and not first.skipped and first.weights_changed > 200_000
    assert {r.base for r in records if r.method == "pruning"} == {"zero"}
    devices = replay(tmp_path)
    _, _, holdout = tiny
    x, y = images_to_tensor(holdout.images, 28), torch.from_numpy(holdout.labels)
    model = SPEC.build()
    for r in records:
        state = devices[r.method][r.round]
        assert fingerprint(state) == r.device_sha256
        load_state(model, state)
        assert accuracy(model, x, y) == r.accuracy_holdout


def test_grid16_rounds_replay_exactly_and_cost_less(tmp_path, tiny):
    settings = replace(SETTINGS, coding="grid16")
    grid = _run(tmp_path / "g", tiny, ("dpu",), settings)
    exact = _run(tmp_path / "l", tiny, ("dpu",))
    assert len(replay(tmp_path / "g")["dpu"]) == 3
    assert grid[0].bytes_sent < exact[0].bytes_sent


def test_nothing_is_sent_when_the_update_does_not_help(tmp_path, tiny):
    frozen = replace(
        SETTINGS, recipe=TrainRecipe(epochs=1, batch_size=64, lr=1e-12, weight_decay=0.0)
    )
    records = _run(tmp_path, tiny, ("fu",), frozen)
    assert all(r.skipped and r.bytes_sent == 0 for r in records)
    assert len({r.device_sha256 for r in records}) == 1
    assert len(list(tmp_path.glob("updates/**/*.wsz"))) == 0


def test_replay_refuses_a_file_that_does_not_rebuild_the_record(tmp_path, tiny):
    records = _run(tmp_path, tiny, ("rpu",), replace(SETTINGS, reinit=False))
    document = json.loads((tmp_path / "partial_update.json").read_text())
    document["rounds"][1]["device_sha256"] = "0" * 64
    (tmp_path / "partial_update.json").write_text(json.dumps(document))
    with pytest.raises(UserError, match="rpu round 1: the device model rebuilt"):
        replay(tmp_path)
    assert not any(r.reinit_tried for r in records)


def test_round_recipe_is_the_networks_sgd_recipe_at_batch_64():
    # the mode's defaults train as the benchmark does: peak lr 0.05 (not 5e-3), wd 5e-4
    recipe = round_recipe(SPEC, 3, seed=7)
    assert recipe == TrainRecipe(epochs=3, batch_size=64, lr=0.05, weight_decay=5e-4, seed=7)
    assert round_recipe(SPEC, 1, lr=0.2).lr == 0.2
