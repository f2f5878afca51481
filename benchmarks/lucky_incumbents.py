"""How much of a sampler's best observed value on a noisy table is luck, and why.

A table problem returns one of a configuration's recorded runs per evaluation, so the best
observed value of a study is the best of noisy draws: it sits above the incumbent's true
(mean-over-runs) value by what this calls its luck. A sampler that measures a configuration
more than once draws more often near its best, and its best observed value gains luck without
its incumbent gaining truth. And a configuration better than the incumbent can be measured
and not become the incumbent, when its draw falls below the incumbent's lucky one.

This prints, per problem and sampler at each budget: the distinct configurations measured,
the mean best observed value, the mean true value of that incumbent, the luck between them
(best observed minus true, signed so that positive flatters the sampler), and the best true
value among the configurations measured: what the search found, whatever became the
incumbent. The runs are those of ``python -m benchmarks ablation``: NARS variants from DIRs
(directories of one name pool into one variant), Optuna's samplers from the ``--baseline``
grids, pooled.

Run from the repository root::

    python benchmarks/lucky_incumbents.py DIR [DIR ...] --baseline DIR [DIR ...] \
        [--samplers tpe gp cmaes] [--trials 100 140 200]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import fmt, markdown_table  # noqa: E402
from benchmarks.suite.ablation import BASELINES, pooled_runs, variant_runs  # noqa: E402
from benchmarks.suite.report import ProblemRuns  # noqa: E402


def _best_measured(pr: ProblemRuns, sampler: str, t: int) -> str:
    """The mean over seeds of the best true value among the first ``t`` trials' feasible
    configurations (what the search found, whatever the incumbent), where the runs record
    each trial's true value."""
    runs = pr.runs[sampler]
    if not all("true" in r and "feasible" in r for r in runs):
        return "-"
    sign = pr.sign()
    found = [max(sign * v for v, ok in zip(r["true"][:t], r["feasible"][:t], strict=True)
                 if ok and v is not None) for r in runs]
    return f"{sign * float(np.mean(found)):.5g}"


def luck_rows(runs: list[dict], samplers: list[str], budgets: list[int]) -> list[list[str]]:
    """One row per problem, sampler and budget: seeds, distinct configurations (where the
    runs record them), best observed, the incumbent's true value, the luck, and the best
    true value measured (:func:`_best_measured`), as means."""
    rows = []
    for problem in sorted({r["problem"] for r in runs}):
        pr = ProblemRuns(problem, [r for r in runs if r["problem"] == problem])
        for sampler in [s for s in samplers if s in pr.samplers]:
            for t in [t for t in budgets if pr.n_trials(sampler) >= t]:
                best = pr.matrix(sampler, "best")[:, t - 1]
                true = pr.matrix(sampler, "incumbent_true")[:, t - 1]
                distinct = [r["distinct"][t - 1] for r in pr.runs[sampler] if "distinct" in r]
                rows.append([problem, sampler, t, len(best),
                             fmt(float(np.mean(distinct)), ".0f") if distinct else "-",
                             f"{best.mean():.5g}", f"{true.mean():.5g}",
                             f"{pr.sign() * (best - true).mean():.3g}",
                             _best_measured(pr, sampler, t)])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", type=Path, nargs="+", help="grids of NARS variants")
    parser.add_argument("--baseline", type=Path, nargs="+", required=True,
                        help="grids of Optuna's samplers, of different seeds (pooled)")
    parser.add_argument("--samplers", nargs="+", default=["tpe", "gp", "cmaes"],
                        choices=BASELINES, help="Optuna's samplers to list")
    parser.add_argument("--trials", type=int, nargs="+", default=[100, 140, 200])
    args = parser.parse_args()
    if min(args.trials) < 1:
        parser.error("--trials must be at least 1.")
    missing = [d for d in [*args.dirs, *args.baseline] if not d.is_dir()]
    if missing:
        parser.error(f"not a results directory: {', '.join(map(str, missing))}")
    try:
        baseline = [r for r in pooled_runs(args.baseline) if r["sampler"] in args.samplers]
    except ValueError as e:
        parser.error(str(e))
    variants = variant_runs(args.dirs)
    runs = [{**r, "sampler": label} for label, rs in variants.items() for r in rs]
    print(markdown_table(["problem", "sampler", "trials", "seeds", "distinct measured",
                          "best observed", "incumbent's true value", "luck",
                          "best true value measured"],
                         luck_rows([*runs, *baseline], [*variants, *args.samplers],
                                   sorted(args.trials))))


if __name__ == "__main__":
    main()
