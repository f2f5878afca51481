"""Ablations: NARS variants recorded in their own directories, ranked against the committed grid.

Each variant (a ``python -m benchmarks run --samplers "nars[...]" --out DIR`` grid, usually a
few seeds and a short budget) is ranked in NARS's place against Optuna's five samplers of the
committed grid (``benchmarks/results/suite``), on the seeds both hold: the same harness, the
same seeds, so a variant's mean rank is comparable with the committed NARS's on those seeds,
which is listed alongside as the reference. Also: how often a proposal's measured value fell
within its recorded prediction interval (``predicted +- k * predicted_std``), against what a
Gaussian interval claims, and within its recorded 95% interval (``interval_95``, in runs that
carry one).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import norm

from benchmarks._common import fmt, markdown_table
from benchmarks.suite.report import CHECKPOINTS, SAMPLER_ORDER, ProblemRuns, ranks_at
from benchmarks.suite.runner import load_runs

BASELINES = tuple(s for s in SAMPLER_ORDER if s != "nars")
REFERENCE = "nars (committed)"
# Interval half-widths in predicted standard deviations, and the coverage a Gaussian claims.
INTERVALS = (1.0, 2.0)
TPE_BUDGET = 200  # trials_to_tpe: the TPE result a variant is timed against
# Issue 12: TPE's 200-trial result within 0.5x the trials on NAS tables, 0.7x on the others.
NAS_TABLES = frozenset({"macro", "macro-flops-q25", "nasbench201-cifar10", "width5x8-flops-half"})
TARGET_FRACTION = {True: 0.5, False: 0.7}


def _label(directory: Path, sampler: str) -> str:
    return directory.name if sampler == "nars" else f"{directory.name}: {sampler}"


def variant_runs(directories: Sequence[Path]) -> dict[str, list[dict[str, Any]]]:
    """Every NARS-like run of ``directories``, by variant label (directory, and the sampler
    spec when it is not plain ``nars``)."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for directory in directories:
        for run in load_runs(directory):
            if run["sampler"] in BASELINES:
                continue
            out[_label(directory, run["sampler"])].append(run)
    return dict(out)


def rank_table(
    baseline: Sequence[dict[str, Any]],
    variants: dict[str, list[dict[str, Any]]],
    checkpoints: Sequence[int] = CHECKPOINTS,
) -> dict[str, Any]:
    """Per variant (and the committed NARS on each variant's seeds), the mean rank in NARS's
    place at each checkpoint, overall and per problem."""
    by_problem: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in baseline:
        if run["sampler"] in BASELINES:
            by_problem[run["problem"]].append(run)
    reference = [r for r in baseline if r["sampler"] == "nars"]
    table: dict[str, Any] = {}
    for label, runs in variants.items():
        seeds = {r["seed"] for r in runs}
        per_problem: dict[str, dict[int, dict[str, float]]] = defaultdict(dict)
        others: dict[str, dict[int, dict[str, float]]] = defaultdict(dict)
        for problem in sorted({r["problem"] for r in runs}):
            mine = [{**r, "sampler": label} for r in runs if r["problem"] == problem]
            ref = [{**r, "sampler": REFERENCE} for r in reference
                   if r["problem"] == problem and r["seed"] in seeds]
            # Only seeds the variant ran: the baselines' other seeds would not change a rank.
            base = [r for r in by_problem[problem] if r["seed"] in seeds]
            pr = ProblemRuns(problem, [*mine, *ref, *base])
            for c in checkpoints:
                for who in (label, REFERENCE):
                    if who in pr.samplers and pr.n_trials(who) >= c:
                        ranks = ranks_at(pr, c, [who, *BASELINES])
                        if who in ranks:
                            per_problem[problem].setdefault(c, {})[who] = ranks[who]
                            if who == label:  # the baselines' ranks beside the variant
                                for b in BASELINES:
                                    if b in ranks:
                                        others[problem].setdefault(c, {})[b] = ranks[b]
        overall: dict[int, dict[str, Any]] = {}
        for c in checkpoints:
            for who in (label, REFERENCE):  # only over every problem the variant ran
                ranks = [v[c][who] for v in per_problem.values() if who in v.get(c, {})]
                if ranks and len(ranks) == len(per_problem):
                    overall.setdefault(c, {})[who] = float(np.mean(ranks))
            if c in overall and label in overall[c]:
                per_baseline = {b: [v[c][b] for v in others.values() if b in v.get(c, {})]
                                for b in BASELINES}
                means = {b: float(np.mean(r)) for b, r in per_baseline.items() if r}
                best = min(means, key=lambda b: means[b])
                overall[c]["best baseline"] = f"{best} {means[best]:.2f}"
        table[label] = {"seeds": sorted(seeds), "overall": overall,
                        "problems": {p: dict(v) for p, v in per_problem.items()}}
    return table


def _against_tpe(
    baseline: Sequence[dict[str, Any]], label: str, runs: Sequence[dict[str, Any]], budget: int,
) -> Iterator[tuple[str, ProblemRuns]]:
    """Per problem of ``runs`` with TPE runs of ``budget`` trials on all of their seeds: TPE's,
    the committed NARS's on those seeds (as :data:`REFERENCE`) and the variant's runs."""
    seeds = {r["seed"] for r in runs}
    for problem in sorted({r["problem"] for r in runs}):
        tpe = [r for r in baseline if r["problem"] == problem and r["sampler"] == "tpe"
               and r["seed"] in seeds and r["n_trials"] >= budget]
        if {r["seed"] for r in tpe} != seeds:
            continue
        ref = [{**r, "sampler": REFERENCE} for r in baseline
               if r["problem"] == problem and r["sampler"] == "nars" and r["seed"] in seeds]
        mine = [{**r, "sampler": label} for r in runs if r["problem"] == problem]
        yield problem, ProblemRuns(problem, [*tpe, *ref, *mine])


def trials_to_tpe(
    baseline: Sequence[dict[str, Any]], variants: dict[str, list[dict[str, Any]]],
    budget: int = TPE_BUDGET,
) -> dict[str, dict[str, dict[str, tuple[int | None, int | None]]]]:
    """Per variant (and the committed NARS on its seeds) and problem: the trials it needs to
    reach TPE's ``budget``-trial result on the same seeds, as ``(best observed, true
    regret)`` (:meth:`ProblemRuns.trials_to_reach`, :meth:`ProblemRuns.trials_to_regret`;
    ``None``: not within its run). Problems without TPE runs of ``budget`` trials on those
    seeds are left out."""
    out: dict[str, dict[str, dict[str, tuple[int | None, int | None]]]] = {}
    for label, runs in variants.items():
        rows: dict[str, dict[str, tuple[int | None, int | None]]] = {label: {}, REFERENCE: {}}
        for problem, pr in _against_tpe(baseline, label, runs, budget):
            best = pr.matrix("tpe", "best")[:, budget - 1].mean()
            regret = pr.matrix("tpe", "regret")[:, budget - 1]
            for who in (label, REFERENCE):
                if who in pr.samplers:
                    rows[who][problem] = (
                        pr.trials_to_reach(who, best),
                        None if np.isnan(regret).any() else pr.trials_to_regret(
                            who, float(regret.mean())))
        out[label] = rows
    return out


def target_trials(problem: str) -> int:
    """Issue 12's budget for reaching TPE's 200-trial result: half of it on the NAS tables,
    0.7 of it on the others."""
    return round(TARGET_FRACTION[problem in NAS_TABLES] * TPE_BUDGET)


def regret_gap(
    baseline: Sequence[dict[str, Any]], variants: dict[str, list[dict[str, Any]]],
    n_resamples: int = 2000, seed: int = 0,
) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """Per variant (and the committed NARS on its seeds) and problem: its mean true regret at
    :func:`target_trials` minus TPE's at :data:`TPE_BUDGET` (negative: ahead), that
    difference's standard error, and the share of resamples of both seed sets (bootstrap) in
    which it is level or ahead. Where a mean regret curve flattens near TPE's result, the
    trial at which it crosses is a coin toss; this says how far from it a variant is, and how
    sure that is."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for label, runs in variants.items():
        out[label] = {label: {}, REFERENCE: {}}
        for problem, pr in _against_tpe(baseline, label, runs, TPE_BUDGET):
            n = target_trials(problem)
            tpe = pr.matrix("tpe", "regret")[:, TPE_BUDGET - 1]
            if np.isnan(tpe).any():
                continue
            for who in (label, REFERENCE):
                if who not in pr.samplers or pr.n_trials(who) < n:
                    continue
                mine = pr.matrix(who, "regret")[:, n - 1]
                if np.isnan(mine).any():
                    continue
                boot = [rng.choice(x, (n_resamples, len(x))).mean(axis=1) for x in (mine, tpe)]
                out[label][who][problem] = {
                    "trials": n, "gap": float(mine.mean() - tpe.mean()),
                    "se": float(np.sqrt(mine.var(ddof=1) / len(mine)
                                        + tpe.var(ddof=1) / len(tpe))),
                    "level": float(np.mean(boot[0] <= boot[1] + 1e-12))}
    return out


def calibration(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """How often the measured value lies within ``predicted +- k * predicted_std`` for the
    proposals that carry a prediction (runs recorded with ``predicted_std``)."""
    inside = {k: 0 for k in INTERVALS}
    n = 0
    ratios = []  # |error| / predicted std, for the width a calibrated 1-std interval needs
    within_95: list[bool] = []
    for run in runs:
        nars = run.get("nars", {})
        pred, spread = nars.get("predicted") or [], nars.get("predicted_std") or []
        intervals = nars.get("interval_95") or [None] * len(pred)
        for value, p, s, interval in zip(run["value"], pred, spread, intervals, strict=False):
            if value is None or p is None or s is None or not math.isfinite(value):
                continue
            n += 1
            ratios.append(abs(value - p) / s if s > 0 else math.inf)
            for k in INTERVALS:
                inside[k] += abs(value - p) <= k * s
            if interval is not None:
                within_95.append(interval[0] <= value <= interval[1])
    claimed = {k: float(2 * norm.cdf(k) - 1) for k in INTERVALS}
    return {"n": n, "coverage": {k: inside[k] / n if n else None for k in INTERVALS},
            "claimed": claimed,
            "needed": float(np.quantile(ratios, claimed[1.0])) if ratios else None,
            "n_95": len(within_95),
            "within_95": float(np.mean(within_95)) if within_95 else None}


def _trials_markdown(
    trials: dict[str, dict[str, dict[str, tuple[int | None, int | None]]]],
) -> list[str]:
    problems = sorted({p for rows in trials.values() for r in rows.values() for p in r})
    if not problems:
        return []
    rows = [[who if who == label else f"{REFERENCE} ({label})",
             *(" / ".join("> run" if n is None else str(n) for n in r[p]) if p in r else "-"
               for p in problems)]
            for label, by_who in trials.items() for who, r in by_who.items()]
    return [f"Trials to reach TPE's {TPE_BUDGET}-trial result on the same seeds (mean best "
            "observed / mean true regret, kept to the end of the run):\n",
            markdown_table(["variant", *problems], rows), ""]


def _gap_markdown(gaps: dict[str, dict[str, dict[str, dict[str, float]]]]) -> list[str]:
    problems = sorted({p for by_who in gaps.values() for r in by_who.values() for p in r})
    if not problems:
        return []
    rows = [[who if who == label else f"{REFERENCE} ({label})",
             *(f"@{g['trials']}: {g['gap']:+.3g} ± {g['se']:.2g} ({g['level']:.2f})"
               if (g := r.get(p)) else "-" for p in problems)]
            for label, by_who in gaps.items() for who, r in by_who.items()]
    return [f"Mean true regret at half of TPE's {TPE_BUDGET} trials (NAS tables) or 0.7 of them "
            f"(the others), minus TPE's at {TPE_BUDGET}, ± its standard error (negative: "
            "ahead; in brackets, the share of bootstrap resamples of the seeds in which it is "
            "level or ahead):\n",
            markdown_table(["variant", *problems], rows), ""]


def markdown(table: dict[str, Any], calibrations: dict[str, dict[str, Any]],
             checkpoints: Sequence[int] = CHECKPOINTS,
             trials: dict[str, dict[str, dict[str, tuple[int | None, int | None]]]] | None = None,
             gaps: dict[str, dict[str, dict[str, dict[str, float]]]] | None = None,
             ) -> str:
    """The overall table (variant against the committed NARS on the same seeds), then the
    per-problem ranks, the trials to TPE's result (``trials``: :func:`trials_to_tpe`), the
    regret against it at issue 12's budgets (``gaps``: :func:`regret_gap`) and the interval
    calibration."""
    cps = [c for c in checkpoints if any(c in t["overall"] for t in table.values())]
    rows = []
    for label, t in table.items():
        seeds = t["seeds"]
        spec = f"{min(seeds)}-{max(seeds)}" if seeds == list(range(min(seeds), max(seeds) + 1)) \
            else ",".join(map(str, seeds))
        rows.append([label, spec, *(fmt(t["overall"].get(c, {}).get(label), ".2f")
                                    for c in cps)])
        rows.append(["best baseline beside it", spec,
                     *(t["overall"].get(c, {}).get("best baseline", "-") for c in cps)])
        rows.append([f"{REFERENCE}, same seeds", spec,
                     *(fmt(t["overall"].get(c, {}).get(REFERENCE), ".2f") for c in cps)])
    parts = ["Mean rank in NARS's place among TPE, CMA-ES, GP, random and QMC (1 = best of 6):\n",
             markdown_table(["variant", "seeds", *(f"rank @ {c}" for c in cps)], rows), ""]
    problems = sorted({p for t in table.values() for p in t["problems"]})
    prow = []
    for label, t in table.items():
        for who in (label, REFERENCE):
            cells = []
            for p in problems:
                ranks = t["problems"].get(p, {})
                cells.append("/".join(fmt(ranks.get(c, {}).get(who), ".1f") for c in cps))
            prow.append([who if who == label else f"{REFERENCE} ({label})", *cells])
    parts += [f"Per problem (rank at {' / '.join(map(str, cps))} trials):\n",
              markdown_table(["variant", *problems], prow), ""]
    parts += _trials_markdown(trials or {})
    parts += _gap_markdown(gaps or {})
    crow = [[label, c["n"], *(f"{fmt(c['coverage'][k], '.2f')} (claims {c['claimed'][k]:.2f})"
                              for k in INTERVALS),
             f"{fmt(c['within_95'], '.2f')} (claims 0.95)" if c["n_95"] else "-",
             fmt(c["needed"], ".1f")]
            for label, c in calibrations.items() if c["n"]]
    if crow:
        parts += ["Prediction-interval calibration (measured value within predicted +- k std, "
                  "and within the recorded 95% interval; the last column: the multiple of the "
                  "std that would cover 68%):\n",
                  markdown_table(["variant", "proposals",
                                  *(f"within {k:g} std" for k in INTERVALS),
                                  "within the 95% interval", "68% needs"], crow), ""]
    return "\n".join(parts)


def pooled_runs(directories: Sequence[Path]) -> list[dict[str, Any]]:
    """The runs of several grids as one, for a baseline recorded seed set by seed set (seeds
    0-9 in one directory, 10-19 in another). A run recorded twice, the same problem, sampler
    and seed in two directories, is an error: which one counts would be a guess."""
    runs: list[dict[str, Any]] = []
    where: dict[tuple[str, str, int], Path] = {}
    for directory in directories:
        for run in load_runs(directory):
            key = (run["problem"], run["sampler"], run["seed"])
            if key in where:
                raise ValueError(
                    f"{key[1]} on {key[0]}, seed {key[2]}, is recorded in both {where[key]} and "
                    f"{directory}; pool baseline grids of different seeds only.")
            where[key] = directory
            runs.append(run)
    return runs


def ablation(directories: Sequence[Path], baseline_dirs: Sequence[Path]) -> str:
    """The markdown of :func:`rank_table` and :func:`calibration` for ``directories``, against
    the baseline grids ``baseline_dirs`` pooled (:func:`pooled_runs`). Variant directories
    of the same name pool too: ``seeds-0-9/before`` and ``seeds-10-19/before`` are one
    variant, ``before``, on 20 seeds."""
    variants = variant_runs(directories)
    if not variants:
        raise ValueError(f"No NARS runs in {', '.join(map(str, directories))}; record some "
                         "with `python -m benchmarks run --samplers nars --out DIR` first.")
    baseline = pooled_runs(baseline_dirs)
    return markdown(rank_table(baseline, variants),
                    {label: calibration(runs) for label, runs in variants.items()},
                    trials=trials_to_tpe(baseline, variants),
                    gaps=regret_gap(baseline, variants))
