import pytest

from dst.errors import UsageError
from dst.sim.scenario import FAULT_CLASSES, OP_KINDS, available, load, parse
from dst.rng import Rng


def test_required_scenarios_exist_and_load():
    names = available()
    for n in ("default", "crud", "search-heavy", "ties", "crash", "partial-writes", "hostile-ids"):
        assert n in names
        sc = load(n)
        assert sc.name == n


def test_default_exercises_everything():
    sc = load("default")
    assert sc.swarm
    assert all(sc.op_weights[k] > 0 for k in OP_KINDS)
    assert all(sc.fault_ppm[k] > 0 for k in FAULT_CLASSES)
    assert sc.hostile_share_ppm > 0 and sc.invalid_ppm > 0
    assert set(sc.vector_kinds) == {"gaussian", "clustered", "duplicates", "near-duplicates"}
    assert min(sc.dims) == 2 and max(sc.dims) == 1536


def test_crud_has_no_search():
    assert load("crud").op_weights["search"] == 0


@pytest.mark.parametrize("raw, message", [
    ({"clinets": 4}, r"unknown key clinets$"),
    ({"faults": {"crsh": 0.1}}, r"unknown key faults\.crsh$"),
    ({"ids": {"hot": 0}}, r"key ids\.hot must be an integer from 1 to 1000000, got 0$"),
    ({"faults": {"crash": 1.5}}, r"key faults\.crash must be a number from 0\.0 to 1\.0, got 1\.5$"),
    ({"dims": []}, r"key dims must be a non-empty list"),
    ({"vector_kinds": ["sparkly"]}, r"key vector_kinds must be a non-empty list from"),
    ({"swarm": "yes"}, r"key swarm must be true or false"),
    ({"ops": {"store": 0, "get": 1}}, r"ops\.store must be positive"),
    ({"batch": {"min": 5, "max": 2}}, r"batch\.min \(5\) is above batch\.max \(2\)"),
])
def test_bad_scenarios_are_rejected_naming_the_key(raw, message):
    with pytest.raises(UsageError, match=message):
        parse(raw, source="x.toml")


def test_unknown_scenario_lists_the_known_ones():
    with pytest.raises(UsageError, match=r"unknown scenario 'nope' \(available: ann, ann-churn, crash, crud, default"):
        load("nope")


def test_toml_syntax_error_is_a_usage_error(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("clients = = 3\n")
    with pytest.raises(UsageError, match="is not valid TOML"):
        load(str(p))


def test_swarm_varies_the_mix_per_seed():
    sc = load("default")
    mixes = {tuple(sorted(sc.for_seed(Rng(s)).fault_ppm.items())) for s in range(30)}
    assert len(mixes) > 5
    for s in range(30):
        assert sc.for_seed(Rng(s)).op_weights["store"] > 0
