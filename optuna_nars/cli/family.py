"""``optuna-nars family``: a model family from one search. The trained predictor of a study is
re-targeted to a ladder of budgets (:func:`optuna_nars.model_family.family`); ``--train`` trains the
members through the study, as ``search`` trains, and shows predicted against measured;
``--png`` draws the accuracy-vs-cost fronts, which are also saved for optuna-dashboard."""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import Mapping
from typing import Any

import optuna

from optuna_nars._keys import FAMILY_BUDGET_ATTR
from optuna_nars.cli._errors import EXIT_OK, CLIError, to_stderr
from optuna_nars.cli._format import format_interval, format_scaled, table
from optuna_nars.cli._parser import set_torch_threads
from optuna_nars.cli._run import WatchedObjective
from optuna_nars.cli._study import open_searched_study
from optuna_nars.cli.search import SEARCH_DEFAULTS, load_latency_table, training_parts
from optuna_nars.cost import UNITS, LatencyTable
from optuna_nars.dashboard import DashboardObjective
from optuna_nars.labels import trial_labels
from optuna_nars.model_family import family, pareto_points
from optuna_nars.samplers import NARSSampler
from optuna_nars.space import SearchSpace

__all__ = ["cmd_family", "family_table"]


def family_table(report: Mapping[str, Any]) -> str:
    """The members of a :func:`~optuna_nars.model_family.family` report, one row per budget."""
    metric = report["metric"]
    scale, unit = UNITS[metric]
    rows = []
    for m in report["members"]:
        measured = m.get("measured")
        rows.append([
            f"{m['budget'] / scale:.4g}",
            f"{m['predicted']:.4f} ± {m['predicted_std']:.4f}",
            format_interval(m.get("interval_95")),
            "-" if measured is None else f"{measured:.4f} (#{m['trial']})",
            format_scaled(m["flops"], 1e6, ".3f"),
            format_scaled(m["params"], 1e3, ".1f"),
            format_scaled(m.get("latency_ms"), 1.0, ".3f"),
            m["arch"] + (f"  (= budget {m['same_as'] / scale:.4g})" if m.get("same_as") else ""),
            m["recipe"],
        ])
    header = [f"budget ({unit})", "predicted ± std", "95% interval", "measured", "MFLOPs",
              "kparams", "latency ms", "arch", "recipe"]
    return table(rows, header)


def _train_member(storage: optuna.storages.BaseStorage, study_name: str, space: SearchSpace,
                  member: dict[str, Any], metric: str, settings: Mapping[str, Any],
                  table: LatencyTable | None, device: str | None) -> None:
    """Train one member through the study (its budget recorded as the trial's constraint) and
    fill in its ``trial`` and ``measured`` label."""
    budget = {metric: member["budget"]}
    try:
        sampler = NARSSampler(space, constraints=budget, latency_table=table,
                              seed=settings["seed"])
    except ValueError as err:  # e.g. a budget so tight that the sampler's pool misses it
        raise CLIError(f"cannot train the member for {metric} <= {member['budget']:g}: "
                       f"{err}") from None
    objective, pruner = training_parts(space, settings, download=False, device=device)
    study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler,
                              pruner=pruner)
    token = uuid.uuid4().hex
    study.enqueue_trial(member["optuna_params"],
                        user_attrs={FAMILY_BUDGET_ATTR: {**budget, "run": token}})
    watched = WatchedObjective(DashboardObjective(objective))
    study.optimize(watched, n_trials=1, catch=(RuntimeError,))
    if watched.errors:
        raise CLIError(watched.report())
    trial = next(t for t in study.get_trials(deepcopy=False)
                 if (t.user_attrs.get(FAMILY_BUDGET_ATTR) or {}).get("run") == token)
    member["trial"] = trial.number
    member["measured"] = trial_labels(study).get(trial.number)
    to_stderr(f"Trained the member for {metric} <= {member['budget']:g} as trial "
              f"#{trial.number} ({trial.state.name.lower()}).")


def _save_plots(study: optuna.Study, points: Mapping[str, Any], metric: str,
                png: str | None, dashboard: bool) -> None:
    from optuna_nars.dashboard.figures import FAMILY_PLOT_ID, family_figure, save_family_png

    if png is not None:
        try:
            save_family_png(points, metric, png)
        except OSError as err:
            raise CLIError(f"cannot write {png}: {err}") from None
        to_stderr(f"Wrote {png}.")
    if dashboard:
        try:
            import optuna_dashboard
            import plotly  # noqa: F401
        except ImportError:
            to_stderr("plotly or optuna-dashboard is not installed: no plot saved for "
                      "optuna-dashboard.")
            return

        optuna_dashboard.save_plotly_graph_object(study, family_figure(points, metric),
                                                  graph_object_id=FAMILY_PLOT_ID)


def cmd_family(args: argparse.Namespace) -> int:
    """Run ``optuna-nars family``."""
    set_torch_threads(args.threads)
    study, space, stored = open_searched_study(args)
    settings = {key: stored.get(key, default) for key, default in SEARCH_DEFAULTS.items()}
    table = load_latency_table(args.latency_table or settings["latency_table"], space)
    seed = args.seed if args.seed is not None else int(settings["seed"])
    try:
        report = family(study, space, args.budgets, args.metric, latency_table=table,
                        seed=seed)
    except ValueError as err:
        raise CLIError(str(err)) from None
    if args.train:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        for member in report["members"]:
            if member["trial"] is None:
                _train_member(study._storage, args.study_name, space, member, args.metric, settings,
                              table, args.device)
    if args.json:
        try:
            with open(args.json, "w") as f:
                f.write(json.dumps(report, indent=2) + "\n")
        except OSError as err:
            raise CLIError(f"cannot write {args.json}: {err}") from None
    if args.format == "json":
        print(json.dumps(report, indent=2))
    else:
        step = report["label_step"]
        print(f"A family of {len(report['members'])} from study {args.study_name!r} "
              f"({report['n_labels']} labelled trials); predicted accuracy "
              f"{'at epoch ' + str(step) if step is not None else 'after full training'}"
              f"{'' if args.train else ', no training done'}:")
        print(family_table(report))
    _save_plots(study, pareto_points(report, study, space, table), args.metric, args.png,
                args.dashboard)
    return EXIT_OK
