"""How much of a sampler's best observed value on a noisy table is luck, and why.

A table problem returns one of a configuration's recorded runs per evaluation, so the best
observed value of a study is the best of noisy draws: it sits above the incumbent's true
(mean-over-runs) value by what this calls its luck. A sampler that measures a configuration
more than once draws more often near its best, and its best observed value gains luck without
its incumbent gaining truth. This prints, per problem and sampler at each budget: the distinct
configurations measured, the mean best observed value, the mean true value of that incumbent,
and the luck between them (best observed minus true, signed so that positive flatters the
sampler). The runs are those of ``python -m benchmarks ablation``: NARS variants from DIRs
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


def luck_rows(runs: list[dict], samplers: list[str], budgets: list[int]) -> list[list[str]]:
    """One row per problem, sampler and budget: seeds, distinct configurations (where the
    runs record them), best observed, the incumbent's true value and the luck, as means."""
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
                             f"{pr.sign() * (best - true).mean():.3g}"])
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
                          "best observed", "incumbent's true value", "luck"],
                         luck_rows([*runs, *baseline], [*variants, *args.samplers],
                                   sorted(args.trials))))


if __name__ == "__main__":
    main()
