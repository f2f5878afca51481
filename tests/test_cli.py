"""The ``optuna-nars`` command line (search, retarget, export, space), the export helpers and
the examples built on them, on one small real search on digits."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import optuna
import pytest
import torch

from optuna_nars import Candidate, SearchSpace
from optuna_nars.cli import main as cli_main
from optuna_nars.cli.family import family_table
from optuna_nars.cli.retarget import retarget_table
from optuna_nars.cost import count_flops
from optuna_nars.dashboard import LABEL_STEP_ATTR, NOTE_BEGIN, PLOT_IDS
from optuna_nars.data import load_dataset
from optuna_nars.export import (
    SETTINGS_KEY,
    build_from_export,
    load_candidate,
    load_export,
    load_search_settings,
    load_study_space,
    save_study_space,
)
from optuna_nars.predictor import NARSPredictor
from optuna_nars.pruner import trial_labels
from optuna_nars.samplers import NARSSampler
from optuna_nars.training import train_candidate

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
COMMANDS = ("search", "retarget", "export", "space")
# Small but real: four full-length trials of two epochs on 800 digits take ~15 s on one core.
SEARCH = ["search", "--epochs", "2", "--max-train-samples", "800", "--calibration-trials", "3",
          "--max-flops", "2e6", "--threads", "1", "--plot-every", "2"]


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A study made by ``optuna-nars search`` (3 trials, then resumed for 1 more)."""
    db = tmp_path_factory.mktemp("cli") / "cli.db"
    storage = f"sqlite:///{db}"
    base = [*SEARCH, "--storage", storage, "--study-name", "cli"]
    with pytest.MonkeyPatch.context() as mp:
        out, err = _run(mp, [*base, "--n-trials", "3"])
        # Resuming inherits the stored settings: no --epochs / --max-flops needed.
        out2, err2 = _run(mp, ["search", "--storage", storage, "--study-name", "cli",
                               "--n-trials", "1", "--threads", "1"])
    return {"storage": storage, "db": db, "out": out, "err": err, "out2": out2, "err2": err2}


def _run(mp: pytest.MonkeyPatch, argv: list[str]) -> tuple[str, str]:
    import io

    out, err = io.StringIO(), io.StringIO()
    mp.setattr(sys, "stdout", out)
    mp.setattr(sys, "stderr", err)
    try:
        code = cli_main(argv)
    finally:
        mp.undo()
    assert code == 0, err.getvalue()
    return out.getvalue(), err.getvalue()


def _load(searched: dict) -> optuna.Study:
    return optuna.load_study(study_name="cli", storage=searched["storage"])


# ---- help, version, bad arguments ------------------------------------------------------------


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_on_every_command(command: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--help"] if command is None else [command, "--help"]
    with pytest.raises(SystemExit) as exc:
        cli_main(argv)
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: optuna-nars" + ("" if command is None else f" {command}"))
    if command is None:
        assert all(c in out for c in COMMANDS) and "Exit codes" in out
    else:
        assert "--storage" in out or command == "space"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli_main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("optuna-nars ")


@pytest.mark.parametrize("argv", [
    [],
    ["train"],
    ["search", "--n-trials", "0"],
    ["search", "--epochs", "two"],
    ["search", "--max-flops", "-5"],
    ["search", "--threshold", "1.5"],
    ["retarget", "--top", "0"],
    ["retarget", "--format", "xml"],
    ["retarget", "--max-params", "nan"],
    ["export", "--trial", "-1"],
    ["space", "--samples", "0"],
])
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli_main(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


# ---- search ------------------------------------------------------------------------------------


def test_search_output_and_study(searched: dict) -> None:
    out, err = searched["out"], searched["err"]
    storage = searched["storage"]
    # Progress: one line per trial on stderr, and the dashboard command up front.
    assert f"Watch it live: optuna-dashboard {storage}" in err
    assert "[1/3] trial 0" in err and "[3/3] trial 2" in err and "best " in err
    # The summary on stdout: a table of the best trials and the exact commands.
    assert "accuracy" in out and "MFLOPs" in out and "arch" in out
    assert f"View it:          optuna-dashboard {storage}" in out
    assert f"optuna-nars export --storage {storage} --study-name cli -o best.json" in out
    # Resumed with the stored settings.
    assert "Resuming study 'cli'" in searched["err2"] and "2 epochs" in searched["err2"]
    assert "[1/1] trial 3" in searched["err2"]

    study = _load(searched)
    assert len(study.trials) == 4
    assert study.metric_names == ["accuracy"]
    space = load_study_space(study)
    assert space == SearchSpace.tiny(in_channels=1, num_classes=10)
    settings = load_search_settings(study)
    assert settings["epochs"] == 2 and settings["max_flops"] == 2e6
    assert settings["dataset"] == "digits" and settings["seed"] == 0
    for t in study.trials:
        attrs = t.user_attrs
        assert {"flops", "params", "arch", "recipe", "nars:stage", LABEL_STEP_ATTR} <= set(attrs)
        assert attrs["flops"] <= 2e6
        assert attrs[LABEL_STEP_ATTR] in ("pending", 1, 2)
    assert study.trials[-1].user_attrs[LABEL_STEP_ATTR] in (1, 2)  # calibrated by then

    import optuna_dashboard

    note = optuna_dashboard.get_note(study)
    assert note.startswith(NOTE_BEGIN)
    for text in ("## optuna-nars: cli", "### Search stages", "### Accuracy predictor",
                 "### Early stopping", "Label step: **epoch", "### Best architecture-recipe",
                 "flops ≤ 2 MFLOPs", "optuna-nars retarget --storage"):
        assert text in note, text
    attrs = study._storage.get_study_system_attrs(study._study_id)
    assert isinstance(attrs[SETTINGS_KEY], dict)
    for plot_id in PLOT_IDS.values():
        assert f"dashboard:plot_data:{plot_id}:0" in attrs


def test_search_refuses_mismatches_and_reports_errors(
    searched: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = searched["storage"]
    # Another space or dataset for an existing study.
    assert cli_main(["search", "--storage", storage, "--study-name", "cli", "--space", "cifar",
                     "--n-trials", "1"]) == 1
    assert "differs from the space" in capsys.readouterr().err
    assert cli_main(["search", "--storage", storage, "--study-name", "cli", "--dataset", "mnist",
                     "--n-trials", "1"]) == 1
    assert "was searched on dataset 'digits'" in capsys.readouterr().err
    # A study that optuna-nars did not make.
    optuna.create_study(study_name="foreign", storage=storage).optimize(
        lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert cli_main(["search", "--storage", storage, "--study-name", "foreign",
                     "--n-trials", "1"]) == 1
    assert "not a single-objective maximisation study" in capsys.readouterr().err

    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert cli_main(["search", "--dataset", "imagenet-22k", "--storage", fresh]) == 2
    assert "imagenet-22k" in capsys.readouterr().err
    assert cli_main(["search", "--max-flops", "10", "--storage", fresh]) == 1
    assert "the cheapest candidate needs" in capsys.readouterr().err
    assert cli_main(["search", "--storage", "postgresql://nobody@127.0.0.1:1/none",
                     "--n-trials", "1"]) == 1
    assert "cannot open storage" in capsys.readouterr().err
    assert cli_main(["search", "--storage", f"sqlite:///{tmp_path}/no/such/dir/x.db"]) == 1
    assert "cannot open storage" in capsys.readouterr().err


# ---- retarget ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A study with a known accuracy function (no training), saved like ``search`` saves."""
    storage = f"sqlite:///{tmp_path_factory.mktemp('synthetic') / 'syn.db'}"
    space = SearchSpace.tiny()
    sampler = NARSSampler(space, n_startup_trials=12, pool_size=1024, n_pretrain=256, seed=0,
                          predictor=NARSPredictor(n_members=2, frozen_epochs=10,
                                                  finetune_epochs=10, pretrain_epochs=10))
    study = optuna.create_study(study_name="syn", storage=storage, direction="maximize",
                                sampler=sampler)
    save_study_space(study, space)

    def objective(trial: optuna.Trial) -> float:
        c = space.suggest(trial)
        flops = count_flops(c.architecture, 1, 10)
        trial.set_user_attr("flops", flops)
        return 0.5 + 0.03 * math.log(flops) - 0.05 * (math.log10(c.recipe.lr) + 1.5) ** 2

    study.optimize(objective, n_trials=12)
    return storage


def test_retarget_and_family_tables_show_the_95_percent_interval() -> None:
    row = {"rank": 1, "predicted": 0.7, "predicted_std": 0.05, "interval_95": [0.5, 0.9],
           "flops": 5e5, "params": 1e4, "trial": None, "measured": None, "arch": "a",
           "recipe": "r"}
    table = retarget_table({"proposals": [row, {**row, "rank": 2, "interval_95": None}]})
    header, _, first, second = table.splitlines()[:4]
    assert "95% interval" in header
    assert "0.5000 to 0.9000" in first and "0.5000 to" not in second
    member = {**row, "budget": 1e6, "same_as": None}
    out = family_table({"metric": "flops", "members": [member]})
    assert "95% interval" in out and "0.5000 to 0.9000" in out


def test_retarget_table_and_json(synthetic: str, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "proposals.json"
    assert cli_main(["retarget", "--storage", synthetic, "--study-name", "syn",
                     "--max-flops", "6e5", "--top", "3", "--json", str(path)]) == 0
    captured = capsys.readouterr()
    assert "Top 3 predicted pairs for flops <= 0.6 MFLOPs" in captured.out
    assert "predicted" in captured.out and "arch" in captured.out
    assert "95% interval" in captured.out
    report = json.loads(path.read_text())
    assert report["study"] == "syn" and report["constraints"] == {"flops": 6e5}
    rows = report["proposals"]
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert all(r["flops"] <= 6e5 for r in rows)
    assert len({r["arch"] for r in rows}) == 3  # one recipe per architecture by default
    assert [r["predicted"] for r in rows] == sorted((r["predicted"] for r in rows), reverse=True)
    space = SearchSpace.tiny()
    for r in rows:
        candidate = Candidate.from_dict(r["candidate"])
        assert str(candidate.architecture) == r["arch"]
        assert count_flops(candidate.architecture, 1, 10) == r["flops"]
        assert space.from_params(r["optuna_params"]) == candidate
        assert r["interval_95"] is None  # 12 trials: too few measured proposals for one

    # JSON on stdout, nothing else there.
    assert cli_main(["retarget", "--storage", synthetic, "--study-name", "syn",
                     "--max-params", "1.5e4", "--top", "2", "--distinct", "pair",
                     "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["proposals"]) == 2
    assert all(r["params"] <= 1.5e4 for r in report["proposals"])


def test_retarget_errors(synthetic: str, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    base = ["retarget", "--storage", synthetic]
    assert cli_main([*base, "--study-name", "syn", "--max-flops", "10"]) == 1
    assert "the cheapest candidate needs" in capsys.readouterr().err
    assert cli_main([*base, "--study-name", "nope"]) == 1
    err = capsys.readouterr().err
    assert "no study 'nope'" in err and "'syn'" in err  # names the studies there
    missing = tmp_path / "missing.db"
    assert cli_main(["retarget", "--storage", f"sqlite:///{missing}"]) == 1
    assert "no such database file" in capsys.readouterr().err
    assert not missing.exists()  # a typo does not leave an empty database behind
    # A maximisation study without a stored space: not made by optuna-nars.
    optuna.create_study(study_name="plain", storage=synthetic, direction="maximize")
    assert cli_main([*base, "--study-name", "plain"]) == 1
    assert "not made by `optuna-nars search`" in capsys.readouterr().err


# ---- export ------------------------------------------------------------------------------------


def test_export_round_trip_and_training(searched: dict, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    storage = searched["storage"]
    path = tmp_path / "best.json"
    assert cli_main(["export", "--storage", storage, "--study-name", "cli",
                     "-o", str(path)]) == 0
    assert "Exported trial" in capsys.readouterr().err

    study = _load(searched)
    labels = trial_labels(study)
    candidate, meta = load_export(path)
    best = meta["trial"]
    assert labels[best] == max(labels.values()) == meta["accuracy"]
    trial = study.trials[best]
    assert meta["arch"] == trial.user_attrs["arch"] == str(candidate.architecture)
    assert meta["recipe"] == trial.user_attrs["recipe"]
    assert meta["flops"] == trial.user_attrs["flops"]
    assert meta["params"] == trial.user_attrs["params"]
    assert (meta["in_channels"], meta["num_classes"], meta["dataset"]) == (1, 10, "digits")
    # The file is Candidate JSON as it is; load_candidate and the space agree.
    assert Candidate.from_json(path.read_text()) == candidate == load_candidate(path)
    assert load_study_space(study).from_params(trial.params) == candidate

    model = build_from_export(path)
    x = torch.randn(2, 1, candidate.architecture.resolution, candidate.architecture.resolution)
    assert model.eval()(x).shape == (2, 10)
    assert sum(p.numel() for p in model.parameters()) == meta["params"]
    # Train it with its own recipe.
    result = train_candidate(load_candidate(path), load_dataset("digits", max_train_samples=400),
                             epochs=1, seed=0)
    assert len(result.accuracies) == 1 and 0.0 <= result.accuracies[0] <= 1.0
    assert result.flops == meta["flops"]

    # A chosen trial, to stdout.
    assert cli_main(["export", "--storage", storage, "--study-name", "cli", "--trial", "0"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["metadata"]["trial"] == 0
    assert cli_main(["export", "--storage", storage, "--study-name", "cli", "--trial", "99"]) == 1
    assert "no trial 99" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="not an optuna-nars export"):
        load_candidate(bad)


# ---- space ---------------------------------------------------------------------------------------


def test_space(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["space", "--space", "cifar", "--max-flops", "5e6", "--samples", "500"]) == 0
    out = capsys.readouterr().out
    assert "stage2.kernel" in out and "Within {'flops': 5000000.0}" in out
    assert "times the optimizer's base learning rate: adamw 0.003906, rmsprop 0.007812, sgd 0.125" \
        in out
    assert "flops: min" in out and "params: min" in out
    # JSON out, and back in as --space.
    assert cli_main(["space", "--space", "tiny", "--json"]) == 0
    text = capsys.readouterr().out
    assert SearchSpace.from_json(text) == SearchSpace.tiny()
    path = tmp_path / "space.json"
    path.write_text(text)
    assert cli_main(["space", "--space", str(path), "--samples", "200"]) == 0
    assert "searched parameters" in capsys.readouterr().out
    # Errors: a budget nothing meets, a file that is not a space, a missing file.
    assert cli_main(["space", "--max-params", "10", "--samples", "200"]) == 1
    assert "no sampled candidate meets" in capsys.readouterr().err
    path.write_text('{"stages": [], "bogus": 1}')
    assert cli_main(["space", "--space", str(path)]) == 2  # a bad argument
    assert "Unknown search-space fields" in capsys.readouterr().err
    assert cli_main(["space", "--space", "nowhere.json"]) == 2
    assert "neither a preset" in capsys.readouterr().err


# ---- examples ----------------------------------------------------------------------------------


def _import_example(name: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    sys.modules.pop(name, None)
    return __import__(name)


def test_example_custom_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    module = _import_example("custom_space", monkeypatch)
    study = module.main(["--n-trials", "3", "--epochs", "1", "--max-train-samples", "400"])
    assert len(study.trials) == 3
    assert SearchSpace.from_json((tmp_path / "custom_space.json").read_text()) == \
        module.digits_space()
    assert load_study_space(study) == module.digits_space()
    assert all(t.user_attrs["flops"] <= 1e6 for t in study.trials)
    sys.modules.pop("custom_space", None)


def test_example_retarget(searched: dict, monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    module = _import_example("retarget", monkeypatch)
    results = module.main(["--storage", searched["storage"], "--study-name", "cli",
                           "--top", "2"])
    assert len(results) == 3
    assert sorted(results) == list(results)  # three increasing budgets
    for budget, proposals in results.items():
        assert len(proposals) == 2
        assert all(p.costs["flops"] <= budget for p in proposals)
    assert capsys.readouterr().out.count("FLOPs <= ") == 3
    sys.modules.pop("retarget", None)
