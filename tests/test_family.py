"""A model family from one predictor: feasibility at every budget, the accuracy-vs-cost fronts,
the PNG and the ``family`` command (with ``--train``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from torch import nn

from optuna_nars import SearchSpace, family
from optuna_nars._keys import FAMILY_BUDGET_ATTR
from optuna_nars.cli import main as cli_main
from optuna_nars.cost import LatencyTable, count_flops, space_costs
from optuna_nars.cost.measure import Timed, build_table
from optuna_nars.dashboard.figures import family_figure, pareto_front, save_family_png
from optuna_nars.export import save_search_settings, save_study_space
from optuna_nars.model_family import pareto_points
from optuna_nars.predictor import NARSPredictor
from optuna_nars.samplers import NARSSampler

TINY = SearchSpace.tiny()
FAST = dict(pool_size=1024, n_pretrain=256, seed=0,
            predictor=NARSPredictor(n_members=2, frozen_epochs=10, finetune_epochs=10,
                                    pretrain_epochs=10))


def fast(table: LatencyTable | None = None) -> NARSSampler:
    return NARSSampler(TINY, latency_table=table, **FAST)


def params_timer(module: nn.Module, x: torch.Tensor) -> Timed:
    """A fake timer: a block "takes" one microsecond per parameter."""
    seconds = sum(p.numel() for p in module.parameters()) * 1e-6
    return Timed(seconds, 0.0, seconds, 1)


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('family') / 'f.db'}"


@pytest.fixture(scope="module")
def study(storage: str) -> optuna.Study:
    """A study with a known accuracy function (no training), stored like ``search`` stores."""
    sampler = NARSSampler(TINY, n_startup_trials=12, **FAST)
    study = optuna.create_study(study_name="fam", storage=storage, direction="maximize",
                                sampler=sampler)
    save_study_space(study, TINY)
    save_search_settings(study, {"dataset": "digits", "epochs": 1, "batch_size": 64,
                                 "max_train_samples": 200, "seed": 0, "calibration_trials": 3,
                                 "threshold": 0.9})

    def objective(trial: optuna.Trial) -> float:
        c = TINY.suggest(trial)
        flops = count_flops(c.architecture, 1, 10)
        return 0.5 + 0.03 * math.log(flops) - 0.05 * (math.log10(c.recipe.lr) + 1.5) ** 2

    study.optimize(objective, n_trials=12)
    return study


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LatencyTable]:
    path = tmp_path_factory.mktemp("family_table") / "tiny.json"
    return path, build_table(TINY, path, timer=params_timer, progress=False)


def test_every_member_is_feasible_at_its_budget(study: optuna.Study,
                                                table: tuple[Path, LatencyTable]) -> None:
    flops = space_costs(TINY, TINY.sample_values(2000, seed=0))["flops"]
    budgets = [float(np.quantile(flops, q)) for q in (0.6, 0.1, 0.3)]
    report = family(study, TINY, budgets, "flops", sampler=fast())
    assert report["budgets"] == sorted(budgets) and report["metric"] == "flops"
    predicted = [m["predicted"] for m in report["members"]]
    assert predicted == sorted(predicted)  # a larger budget is never predicted worse
    for m in report["members"]:
        assert m["flops"] <= m["budget"]
        arch = TINY.from_params(m["optuna_params"]).architecture
        assert count_flops(arch, 1, 10) == m["flops"]
        assert m["interval"] == [m["predicted"] - m["predicted_std"],
                                 m["predicted"] + m["predicted_std"]]
        assert m["interval_95"] is None  # 12 trials: too few measured proposals for one
    _, latency = table
    ms = latency.latency_ms(TINY, TINY.sample_values(2000, seed=0))
    ladder = [float(np.quantile(ms, q)) for q in (0.2, 0.5)]
    report = family(study, TINY, ladder, "latency_ms", latency_table=latency,
                    sampler=fast(latency))
    for m in report["members"]:
        row = TINY.params_to_values([m["optuna_params"]])
        assert m["latency_ms"] == pytest.approx(latency.latency_ms(TINY, row)[0])
        assert m["latency_ms"] <= m["budget"]


def test_family_validates_its_arguments(study: optuna.Study,
                                        table: tuple[Path, LatencyTable]) -> None:
    with pytest.raises(ValueError, match="latency_table"):
        family(study, TINY, [1.0], "latency_ms")
    with pytest.raises(ValueError, match="metric must be one of"):
        family(study, TINY, [1e6], "energy")
    with pytest.raises(ValueError, match="positive finite"):
        family(study, TINY, [], "flops")
    with pytest.raises(ValueError, match="positive finite"):
        family(study, TINY, [1e6, -1], "flops")
    with pytest.raises(ValueError, match="[Nn]o candidate"):
        family(study, TINY, [10.0], "flops", sampler=fast())
    with pytest.raises(ValueError, match="same latency_table"):
        family(study, TINY, [1e6], "flops", latency_table=None,
               sampler=NARSSampler(TINY, latency_table=table[1], **FAST))


def test_fronts_of_a_hand_made_set_and_the_png(tmp_path: Path) -> None:
    trials = [(3.0, 0.6, 0), (1.0, 0.5, 1), (2.0, 0.4, 2), (2.0, 0.7, 3), (4.0, 0.7, 4),
              (5.0, 0.9, 5)]
    # Dominated: 2 (cheaper 1 is better), 0 (3 is cheaper and better), 4 (3 as good, cheaper).
    assert pareto_front(trials) == [(1.0, 0.5, 1), (2.0, 0.7, 3), (5.0, 0.9, 5)]
    members = [(1e6, 0.55, 1e6), (1.8e6, 0.75, 2e6)]
    points = {"family": members, "trials": [(c * 1e6, a, n) for c, a, n in trials]}
    fig = family_figure(points, "flops")
    names = [t.name for t in fig.data]
    assert names == ["measured trials", "measured front", "family (predicted)",
                     "family members"]
    assert list(fig.data[1].x) == [1.0, 2.0, 5.0]  # MFLOPs
    png = tmp_path / "front.png"
    save_family_png(points, "flops", str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_pareto_points_of_a_study(study: optuna.Study) -> None:
    report = family(study, TINY, [2e6], "flops", sampler=fast())
    points = pareto_points(report, study, TINY)
    assert [(c, p) for c, p, _ in points["family"]] == [
        (report["members"][0]["flops"], report["members"][0]["predicted"])]
    assert len(points["trials"]) == 12
    for cost, label, number in points["trials"]:
        t = study.trials[number]
        assert label == t.value
        assert cost == count_flops(TINY.from_params(t.params).architecture, 1, 10)


def test_family_command_prints_writes_and_trains(study: optuna.Study, storage: str,
                                                 tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    flops = space_costs(TINY, TINY.sample_values(2000, seed=0))["flops"]
    ladder = ",".join(f"{q:.0f}" for q in np.quantile(flops, [0.2, 0.5]))
    base = ["family", "--storage", storage, "--study-name", "fam", "--budgets", ladder,
            "--threads", "1"]
    out_json, png = tmp_path / "family.json", tmp_path / "family.png"
    assert cli_main([*base, "--json", str(out_json), "--png", str(png)]) == 0
    out = capsys.readouterr().out
    assert "A family of 2" in out and "predicted ± std" in out and "95% interval" in out
    report = json.loads(out_json.read_text())
    assert [m["budget"] for m in report["members"]] == sorted(report["budgets"])
    assert png.stat().st_size > 5000
    n_before = len(study.trials)
    assert cli_main([*base, "--train", "--no-dashboard"]) == 0
    out = capsys.readouterr().out
    trained = [t for t in study.trials[n_before:] if FAMILY_BUDGET_ATTR in t.user_attrs]
    assert len(trained) == 2
    for t in trained:
        budget = t.user_attrs[FAMILY_BUDGET_ATTR]["flops"]
        assert t.constraints["flops"] <= 0
        assert count_flops(TINY.from_params(t.params).architecture, 1, 10) <= budget
        assert f"(#{t.number})" in out  # measured, shown beside the prediction
    assert cli_main([*base[:-4], "--budgets", "1e6", "--metric", "latency_ms"]) == 1
    with pytest.raises(SystemExit) as exit_info:
        cli_main([*base[:-4], "--budgets", "1e6,-2"])
    assert exit_info.value.code == 2


def test_retarget_command_under_a_latency_budget(study: optuna.Study, storage: str,
                                                 table: tuple[Path, LatencyTable],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path, latency = table
    budget = float(np.quantile(latency.latency_ms(TINY, TINY.sample_values(500, seed=0)), 0.4))
    base = ["retarget", "--storage", storage, "--study-name", "fam", "--top", "2",
            "--threads", "1", "--max-latency-ms", f"{budget:.6g}"]
    assert cli_main(base) == 1  # a latency budget needs the table
    assert "latency_table" in capsys.readouterr().err
    assert cli_main([*base, "--latency-table", str(path), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["proposals"]) == 2
    assert all(0 < p["latency_ms"] <= budget for p in report["proposals"])
