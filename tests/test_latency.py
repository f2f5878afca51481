"""Latency look-up tables: the blocks of a space, the table's sum, resuming, validation, the
latency budget in NARSSampler and the ``latency-table`` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from optuna_nars import Architecture, Candidate, SearchSpace, StageSpec
from optuna_nars.cli import main as cli_main
from optuna_nars.cost import LatencyTable, space_costs
from optuna_nars.cost.blocks import block_slots, enumerate_blocks
from optuna_nars.cost.measure import Timed, build_table
from optuna_nars.models import InvertedResidualNet, build_model
from optuna_nars.predictor import NARSPredictor
from optuna_nars.samplers import NARSSampler
from optuna_nars.space import IntRange

TINY = SearchSpace.tiny()


def flop_timer(module: nn.Module, x: torch.Tensor) -> Timed:
    """A fake timer that makes the table exact: a block "takes" its FLOPs in milliseconds."""
    with FlopCounterMode(display=False) as counter:
        module(x)
    seconds = counter.get_total_flops() / 1e3
    return Timed(seconds, 0.0, seconds, 1)


def model_flops(arch: Architecture, space: SearchSpace) -> int:
    model = build_model(arch, space.num_classes, space.in_channels).eval()
    x = torch.zeros(1, space.in_channels, arch.resolution, arch.resolution)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x)
    return counter.get_total_flops()


@pytest.fixture(scope="module")
def tiny_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("latency") / "tiny.json"
    build_table(TINY, path, timer=flop_timer, progress=False)
    return path


def test_every_block_a_candidate_has_is_enumerated() -> None:
    for space in (TINY, SearchSpace.cifar()):
        keys = {b.key for b in enumerate_blocks(space)}
        used = set()
        for slot in block_slots(space, space.sample_values(3000, seed=1)):
            used |= set(slot.keys)
        assert used <= keys
        assert len(used) > 0.9 * len(keys)  # nearly all reachable in a sample this size


def test_a_log_int_dimension_tabulates_every_value() -> None:
    # Its values were once read at the cells' centres on a linear scale: 72 was left out.
    space = TINY.replace(head_channels=IntRange(64, 80, log=True))
    heads = {b.values[1] for b in enumerate_blocks(space) if b.kind == "head"}
    assert heads == set(range(64, 81))


@pytest.mark.parametrize("arch", [
    "r24 c16:hs k5e3c16d2:hs k3e4c32d2s2se:hs k3e2c48d1s2:hs h128",
    "r16 c8:hs k3e1c8d1:hs k5e2c16d1s2:hs k3e4c24d2s2se:hs h64",
])
def test_table_sum_equals_a_direct_count_on_a_hand_built_model(tiny_table: Path,
                                                               arch: str) -> None:
    table = LatencyTable.load(tiny_table, space=TINY)
    architecture = Architecture.from_string(arch)
    values = TINY.to_values([Candidate(architecture, TINY.sample(1, seed=0)[0].recipe)])
    summed = table.latency_ms(TINY, values)[0]
    assert summed == pytest.approx(model_flops(architecture, TINY), rel=1e-12)
    costs = space_costs(TINY, values, latency_table=table)
    assert set(costs) == {"flops", "params", "latency_ms"}
    assert costs["latency_ms"][0] == summed


def test_interrupted_build_resumes_where_it_stopped(tmp_path: Path) -> None:
    space = SearchSpace(stages=(StageSpec((3, 5), (2, 4), IntRange(8, 16, 8), IntRange(1, 2),
                                          2),),
                        resolution=16, stem_channels=8, stem_stride=1, head_channels=32,
                        in_channels=1, num_classes=4)
    n_blocks = len(enumerate_blocks(space))
    calls: list[int] = []

    def interrupted(module: nn.Module, x: torch.Tensor) -> Timed:
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append(1)
        return flop_timer(module, x)

    path = tmp_path / "t.json"
    with pytest.raises(KeyboardInterrupt):
        build_table(space, path, timer=interrupted, progress=False)
    partial = LatencyTable.load(path, space=space)
    assert len(partial) == 5 and partial.info["complete"] is False
    values = space.sample_values(64, seed=0)
    with pytest.raises(ValueError, match=r"no entry for (stem|block|head)\(.*run the same"):
        partial.latency_ms(space, values)
    with pytest.raises(ValueError, match="incomplete"):
        NARSSampler(space, constraints={"latency_ms": 1e6}, latency_table=partial)
    counted: list[int] = []

    def counting(module: nn.Module, x: torch.Tensor) -> Timed:
        counted.append(1)
        return flop_timer(module, x)

    table = build_table(space, path, timer=counting, progress=False)
    assert len(counted) == 10 * n_blocks - 5 and len(table) == n_blocks  # 10 rounds
    assert LatencyTable.load(path).info["complete"] is True
    full = build_table(space, tmp_path / "full.json", timer=flop_timer, progress=False)
    assert table.entries == full.entries


def test_rounds_spread_each_blocks_runs_and_keep_the_fastest(tmp_path: Path) -> None:
    """A burst of slowness (here: the second round, 3x slower) lands in one round of every
    block, and the minimum (the default sum) ignores it; the median of rounds resists it."""
    space = SearchSpace(stages=(StageSpec(3, (2, 4), IntRange(8, 16, 8), IntRange(1, 2), 2),),
                        resolution=16, stem_channels=8, stem_stride=1, head_channels=32,
                        in_channels=1, num_classes=4)
    n_blocks = len(enumerate_blocks(space))
    order: list[int] = []

    def bursty(module: nn.Module, x: torch.Tensor) -> Timed:
        order.append(id(module))
        t = flop_timer(module, x)
        slow = 3.0 if n_blocks <= len(order) < 2 * n_blocks else 1.0
        return Timed(t.median * slow, 0.0, t.minimum * slow, 1)

    table = build_table(space, tmp_path / "t.json", timer=bursty, progress=False, passes=3)
    steady = build_table(space, tmp_path / "s.json", timer=flop_timer, progress=False, passes=1)
    assert len(order) == 3 * n_blocks and table.info["passes"] == 3
    assert table.statistic == "min_ms"
    for key, entry in table.entries.items():
        assert entry["passes"] == 3 and entry["runs"] == 3
        assert entry["min_ms"] == pytest.approx(steady.entries[key]["min_ms"])
        assert entry["median_ms"] == pytest.approx(steady.entries[key]["median_ms"])
        assert max(entry["pass_medians_ms"]) == pytest.approx(3 * entry["median_ms"])
    with pytest.raises(ValueError, match="passes"):
        build_table(space, tmp_path / "x.json", timer=flop_timer, progress=False, passes=0)


@pytest.mark.parametrize("scale", [1.0, 1.2])
def test_calibration_fits_the_networks_cost_beyond_their_blocks(tmp_path: Path,
                                                               scale: float) -> None:
    def timer(module: nn.Module, x: torch.Tensor) -> Timed:
        t = flop_timer(module, x)
        if isinstance(module, InvertedResidualNet):  # 5 ms per network, x scale
            return Timed(scale * t.median + 0.005, 0.0, scale * t.minimum + 0.005, 1)
        return t

    space = SearchSpace(stages=(StageSpec(3, (2, 4), IntRange(8, 16, 8), IntRange(1, 2), 2),),
                        resolution=16, stem_channels=8, stem_stride=1, head_channels=32,
                        in_channels=1, num_classes=4)
    table = build_table(space, tmp_path / "t.json", timer=timer, progress=False, calibrate=8)
    assert table.overhead_ms == pytest.approx(5.0) and table.scale == pytest.approx(scale)
    loaded = LatencyTable.load(tmp_path / "t.json")
    assert loaded.info["calibration"]["networks"] == 8 and loaded.scale == pytest.approx(scale)
    values = space.sample_values(8, seed=3)
    arch = space.decode(values[:1])[0].architecture
    assert loaded.latency_ms(space, values[:1])[0] == pytest.approx(
        scale * model_flops(arch, space) + 5)


def test_load_errors_name_the_problem_and_the_fix(tiny_table: Path, tmp_path: Path) -> None:
    data = json.loads(tiny_table.read_text())
    bad = tmp_path / "bad.json"

    def load_with(changed: dict) -> None:
        bad.write_text(json.dumps({**data, **changed}))
        LatencyTable.load(bad, space=TINY)

    with pytest.raises(ValueError, match="does not exist.*optuna-nars latency-table"):
        LatencyTable.load(tmp_path / "none.json")
    bad.write_text("{")
    with pytest.raises(ValueError, match="cannot be read as JSON"):
        LatencyTable.load(bad)
    with pytest.raises(ValueError, match="not an optuna-nars latency table"):
        load_with({"format": "something"})
    with pytest.raises(ValueError, match="version 99.*upgrade optuna-nars"):
        load_with({"version": 99})
    with pytest.raises(ValueError, match="'threads' must be a int"):
        load_with({"threads": "one"})
    key = next(iter(data["entries"]))
    assert data["statistic"] == "min_ms"  # the default sum
    with pytest.raises(ValueError, match=r"entry .*\(.*no valid min_ms"):
        load_with({"entries": {**data["entries"], key: {"min_ms": -1}}})
    with pytest.raises(ValueError, match="statistic must be one of"):
        load_with({"statistic": "mean_ms"})
    with pytest.raises(ValueError, match="'scale' must be a positive number.*damaged"):
        load_with({"scale": 0})
    with pytest.raises(ValueError, match="'overhead_ms' must be a number.*damaged"):
        load_with({"overhead_ms": "fast"})
    halved = {k: {**e, "min_ms": e["median_ms"] / 2} for k, e in data["entries"].items()}
    by_min = LatencyTable.from_dict({**data, "entries": halved, "statistic": "min_ms"})
    by_median = LatencyTable.from_dict({**data, "statistic": "median_ms"})
    values = TINY.sample_values(50, seed=0)
    assert np.allclose(by_min.latency_ms(TINY, values), by_median.latency_ms(TINY, values) / 2)
    with pytest.raises(ValueError, match="another search space.*for this space"):
        LatencyTable.load(tiny_table, space=SearchSpace.tiny(num_classes=3))
    # The recipe does not change a block's latency: the same table serves.
    LatencyTable.load(tiny_table, space=TINY.replace(recipe={"optimizer": "sgd"}))


def test_latency_budget_needs_a_table_and_a_search_space(tiny_table: Path) -> None:
    table = LatencyTable.load(tiny_table)
    with pytest.raises(ValueError, match="latency_ms budget needs latency_table"):
        NARSSampler(TINY, constraints={"latency_ms": 4.0})
    with pytest.raises(ValueError, match="another search space"):
        NARSSampler(SearchSpace.cifar(), latency_table=table)
    with pytest.raises(ValueError, match="needs a SearchSpace"):
        NARSSampler({"x": optuna.distributions.FloatDistribution(0, 1)}, latency_table=table)


def test_latency_budget_holds_on_every_proposal(tiny_table: Path) -> None:
    table = LatencyTable.load(tiny_table, space=TINY)
    latency = table.latency_ms(TINY, TINY.sample_values(2000, seed=0))
    budget = float(np.quantile(latency, 0.3))
    sampler = NARSSampler(TINY, constraints={"latency_ms": budget}, latency_table=table, seed=0,
                          n_startup_trials=4, batch_size=4, n_rounds=1, pool_size=512,
                          n_pretrain=128,
                          predictor=NARSPredictor(n_members=2, frozen_epochs=5,
                                                  finetune_epochs=5, pretrain_epochs=5))
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        c = TINY.suggest(trial)
        return float(np.log(sum(s.channels * s.depth for s in c.architecture.stages)))

    study.optimize(objective, n_trials=10)
    assert {t.user_attrs.get("nars:stage") for t in study.trials} >= {"qmc", "evolution"}
    for t in study.trials:
        violation = t.constraints["latency_ms"]
        measured = table.latency_ms(TINY, TINY.params_to_values([t.params]))[0]
        assert violation == pytest.approx(measured - budget) and measured <= budget


def test_latency_table_command_round_trip(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    space = SearchSpace(stages=(StageSpec(3, (2, 4), IntRange(8, 16, 8), 1, 2),),
                        resolution=16, stem_channels=8, stem_stride=1, head_channels=32,
                        in_channels=1, num_classes=4)
    spec = tmp_path / "space.json"
    spec.write_text(space.to_json())
    out = tmp_path / "table.json"
    argv = ["latency-table", "--space", str(spec), "--repeats", "3", "--warmup", "1",
            "--run-ms", "0.5", "--calibrate", "0", "-o", str(out), "--no-progress"]
    assert cli_main(argv) == 0
    table = LatencyTable.load(out, space=space)
    assert len(table) == len(enumerate_blocks(space)) and table.threads == 1
    assert table.device == "cpu" and table.torch == torch.__version__
    assert all(e["min_ms"] > 0 and e["runs"] == 10 * 3 and e["passes"] == 10  # 10 rounds
               for e in table.entries.values())
    assert "blocks on cpu" in capsys.readouterr().err
    assert cli_main(argv) == 0  # complete: nothing left to measure
    assert cli_main([*argv, "--calibrate", "2"]) == 0  # then calibrated, blocks kept
    calibrated = LatencyTable.load(out)
    assert calibrated.info["calibration"]["networks"] == 2
    assert calibrated.entries == table.entries
    assert table.scale == 1.0 and table.overhead_ms == 0.0 and calibrated.scale > 0
    default = tmp_path / "default.json"
    assert cli_main([*argv[:-5], "-o", str(default), "--no-progress"]) == 0
    assert LatencyTable.load(default).info["calibration"]["networks"] == 50  # by default
    assert cli_main([*argv[:-3], "--threads", "2", "-o", str(out)]) == 1  # other settings
    assert cli_main(["latency-table", "--space", "nowhere.json", "-o", str(out)]) == 2


def test_search_command_under_a_latency_budget(tiny_table: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    table = LatencyTable.load(tiny_table)
    budget = float(np.quantile(table.latency_ms(TINY, TINY.sample_values(500, seed=0)), 0.3))
    storage = f"sqlite:///{tmp_path / 's.db'}"
    base = ["search", "--storage", storage, "--epochs", "1", "--max-train-samples", "200",
            "--calibration-trials", "3", "--threads", "1", "--no-dashboard", "--no-progress"]
    assert cli_main([*base, "--max-latency-ms", "4"]) == 2  # no table
    other = tmp_path / "other.json"
    other.write_text(tiny_table.read_text().replace(table.space_fingerprint, "0" * 16))
    assert cli_main([*base, "--latency-table", str(other), "--max-latency-ms", "4"]) == 1
    assert "another search space" in capsys.readouterr().err
    argv = [*base, "--latency-table", str(tiny_table), "--max-latency-ms", f"{budget:.6g}",
            "--n-trials", "2"]
    assert cli_main(argv) == 0
    study = optuna.load_study(study_name="nars", storage=storage)
    assert len(study.trials) == 2
    for t in study.trials:
        assert t.constraints["latency_ms"] <= 0
        assert table.latency_ms(TINY, TINY.params_to_values([t.params]))[0] <= budget
