"""``optuna-nars retarget``: the best predicted architecture-recipe pairs of a finished study for
a new budget, without training. The work is :func:`optuna_nars.retarget.retarget`; this command
picks the budget and the seed, and prints or writes the report."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from optuna_nars.cli._errors import EXIT_OK, CLIError, to_stderr
from optuna_nars.cli._format import budget_text, format_interval, format_scaled, table
from optuna_nars.cli._parser import budget_from_args, set_torch_threads
from optuna_nars.cli._study import open_searched_study
from optuna_nars.cli.search import load_latency_table
from optuna_nars.cost import LATENCY, METRICS
from optuna_nars.retarget import retarget

__all__ = ["cmd_retarget", "retarget_table"]


def retarget_table(report: Mapping[str, Any]) -> str:
    """The proposals of a :func:`~optuna_nars.retarget.retarget` report as a table."""
    rows = [[
        str(r["rank"]),
        f"{r['predicted']:.4f} ± {r['predicted_std']:.4f}",
        format_interval(r.get("interval_95")),
        format_scaled(r["flops"], 1e6, ".3f"),
        format_scaled(r["params"], 1e3, ".1f"),
        "-" if r["trial"] is None else f"#{r['trial']}: {r['measured']:.4f}",
        r["arch"],
        r["recipe"],
    ] for r in report["proposals"]]
    header = ["rank", "predicted ± std", "95% interval", "MFLOPs", "kparams", "trained", "arch",
              "recipe"]
    if any(r.get("latency_ms") is not None for r in report["proposals"]):
        header.insert(5, "latency ms")
        for row, r in zip(rows, report["proposals"], strict=True):
            row.insert(5, format_scaled(r.get("latency_ms"), 1.0, ".3f"))
    return table(rows, header) if rows else "(no candidate)"


def _write_report(path: str, report: Mapping[str, Any]) -> None:
    try:
        Path(path).write_text(json.dumps(report, indent=2) + "\n")
    except OSError as err:
        raise CLIError(f"cannot write {path}: {err}") from None
    to_stderr(f"Wrote {len(report['proposals'])} proposals to {path}.")


def _print_report(report: Mapping[str, Any], budget: Mapping[str, float],
                  study_name: str) -> None:
    step = report["label_step"]
    quality = report["predictor"] or {}
    tau = (f", predictor Kendall tau {quality['kendall_tau']:.3f}"
           if quality.get("kendall_tau") is not None else "")
    print(f"Top {len(report['proposals'])} predicted pairs for {budget_text(budget)} from study "
          f"{study_name!r} ({report['n_labels']} labelled trials{tau}); predicted accuracy "
          f"{'at epoch ' + str(step) if step is not None else 'after full training'}, "
          "no training done:")
    print(retarget_table(report))


def cmd_retarget(args: argparse.Namespace) -> int:
    """Run ``optuna-nars retarget``; without budget flags, the study's own budget is used."""
    set_torch_threads(args.threads)
    study, space, settings = open_searched_study(args)
    table = load_latency_table(args.latency_table or settings.get("latency_table"), space)
    budget = budget_from_args(args)
    if not budget:
        budget = {m: settings[f"max_{m}"] for m in (*METRICS, LATENCY)
                  if settings.get(f"max_{m}") is not None}
        to_stderr(f"No --max-flops/--max-params/--max-latency-ms given: using the study's "
                  f"budget ({budget_text(budget)}).")
    seed = args.seed if args.seed is not None else int(settings.get("seed", 0))
    try:
        report = retarget(study, space, budget, top=args.top, distinct=args.distinct, seed=seed,
                          latency_table=table)
    except ValueError as err:
        raise CLIError(str(err)) from None
    if report["n_labels"] < 10:
        to_stderr(f"Note: the predictor learnt from only {report['n_labels']} labelled trials; "
                  "expect rough predictions (run more trials for better ones).")
    if args.json:
        _write_report(args.json, report)
    if args.format == "json":
        print(json.dumps(report, indent=2))
    else:
        _print_report(report, budget, study.study_name)
    return EXIT_OK
