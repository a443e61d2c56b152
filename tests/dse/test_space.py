import pytest

from weightshare.dse.space import (
    DEFAULT_K_GRID,
    Candidate,
    choice,
    k_grid,
    layer_choices,
    layer_grid,
    parse_choice,
    parse_k_grid,
    parse_prune_grid,
    select_layers,
)
from weightshare.errors import UserError


def test_candidate_key_round_trips_and_drops_fp32_layers():
    cand = Candidate.of({"fc1": 16, "conv1": 4, "fc2": 0})
    assert cand.key() == "conv1=4,fc1=16"
    assert Candidate.parse(cand.key()) == cand
    assert Candidate.parse("fp32") == Candidate(()) and Candidate(()).key() == "fp32"
    assert Candidate.parse("layer1.0.conv1=8").as_dict() == {"layer1.0.conv1": 8}
    # trials.csv's k cell: the same pairs joined by ";"
    assert cand.csv_cell() == "conv1=4;fc1=16" and Candidate.parse("conv1=4;fc1=16") == cand
    assert Candidate(()).csv_cell() == "fp32"


def test_parse_refuses_a_key_joined_by_both_separators():
    with pytest.raises(UserError) as err:
        Candidate.parse("conv1=4,fc1=16;fc2=8")
    assert str(err.value) == (
        "a candidate joins its layers with ',' (a key) or ';' (a CSV cell), not both; "
        "got 'conv1=4,fc1=16;fc2=8'"
    )


def test_default_grid_is_powers_of_two_and_halfway_values():
    assert DEFAULT_K_GRID == (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
    assert k_grid(4, 32) == (4, 6, 8, 12, 16, 24, 32)
    assert k_grid(2, 256, (5, 300, 2)) == (5, 2)


@pytest.mark.parametrize(
    "k_min, k_max, message",
    [
        (1, 8, r"--k-min must be an int in \[2, 65536\]; got 1"),
        (8, 4, "must not exceed"),
        (5, 5, "no k of the grid"),
    ],
)
def test_bad_grid_bounds(k_min, k_max, message):
    with pytest.raises(UserError, match=message):
        k_grid(k_min, k_max)


def test_parse_k_grid():
    assert parse_k_grid("16, 4,4,8") == (4, 8, 16)
    for text in ("4,x", "", "1,4", "4,70000"):
        with pytest.raises(UserError, match="--k-grid"):
            parse_k_grid(text)


def test_select_layers_and_layer_grid():
    names = ["conv1", "conv2", "fc1", "fc3"]
    assert select_layers(names, None) == names
    assert select_layers(names, "^conv") == ["fc1", "fc3"]
    with pytest.raises(UserError, match="skips every layer"):
        select_layers(names, ".")
    with pytest.raises(UserError, match="not a valid regular expression"):
        select_layers(names, "(")
    assert layer_grid((2, 4, 8, 16), 10) == (2, 4, 8)


def test_a_pruned_choice_is_k_at_sparsity_and_round_trips():
    assert choice(16) == 16 and choice(16, 0.0) == 16 and choice(16, 0.5) == "16@0.5"
    assert parse_choice("16@0.5") == (16, 0.5) and parse_choice(16) == (16, 0.0)
    cand = Candidate.of({"fc1": "16@0.5", "conv1": 4, "fc2": 0})
    assert cand.key() == "conv1=4,fc1=16@0.5"
    assert Candidate.parse(cand.key()) == cand
    assert cand.csv_cell() == "conv1=4;fc1=16@0.5" and Candidate.parse(cand.csv_cell()) == cand
    assert cand.settings() == {"conv1": (4, 0.0), "fc1": (16, 0.5)}
    assert Candidate.parse("fc1=16@0.0") == Candidate.of({"fc1": 16})  # unpruned: a plain int


@pytest.mark.parametrize(
    "value", ["16@1.0", "16@-0.1", "16@", "0", "x@0.5", "16@y", True, 2.5, None]
)
def test_a_bad_choice_names_the_accepted_forms(value):
    with pytest.raises(UserError, match="choice"):
        parse_choice(value)


def test_parse_prune_grid():
    assert parse_prune_grid("0.9, 0,0.5,0.5") == (0.0, 0.5, 0.9)
    for text in ("", "1", "-0.1", "0.5,a", ","):
        with pytest.raises(UserError, match=r"--prune-grid must be comma-separated sparsities"):
            parse_prune_grid(text)


def test_layer_choices_pair_every_k_with_every_sparsity_within_the_survivors():
    assert layer_choices((2, 4, 16), (), 10) == (2, 4)  # no prune grid: the k grid as today
    # 10 weights: 0.5 keeps 5 (k <= 5), 0.9 keeps 1 (the smallest k only)
    assert layer_choices((2, 4, 16), (0.0, 0.5, 0.9), 10) == (2, 4, "2@0.5", "4@0.5", "2@0.9")
    assert layer_choices((2, 4), (0.95,), 10) == ()  # round(9.5) = 10 removes every weight


def test_a_candidate_spells_each_choice_one_way():
    # equal settings give equal candidates and keys, whatever spelling they came in
    assert Candidate.of({"fc1": "16@0.50", "fc2": "4@0.0", "fc3": "8"}) == Candidate.of(
        {"fc1": "16@0.5", "fc2": 4, "fc3": 8}
    )
    assert Candidate.of({"fc1": "16@0.50"}).key() == "fc1=16@0.5"
    cand = Candidate.of({"fc1": "16@0.50"})
    assert Candidate.parse(cand.key()) == cand
    with pytest.raises(UserError, match="choice"):
        Candidate.of({"fc1": "16@"})  # no sparsity after the mark
