"""The layer-wise problems' measures, after LayerNAS's paper: how many distinct candidates a
sampler trains against the size of the space, and how many it trains until the best model under
the budget (the table's true optimum) is first evaluated.

LayerNAS claims to find that model with an order of magnitude fewer candidates than random
search, regularized evolution and PPO (on NATS-Bench's size space); the suite's REINFORCE
stands in for PPO. A candidate is a distinct parameter set (the runner's ``distinct``): a
repeated proposal costs no new training. The optimum is found when a feasible trial's true value
equals it (ties: any configuration sharing the best mean counts).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks._common import markdown_table

# The strategies the paper compares LayerNAS with, as the suite names them (PPO -> REINFORCE).
PAPER_BASELINES = ("random", "regularized_evolution", "reinforce")


# "Near the optimum": within this fraction of its value (a softer target than the one best
# configuration, whose lead over the next may be its runs' noise).
NEAR = 0.02


def first_optimum(run: dict[str, Any], within: float = 0.0) -> int | None:
    """0-based index of the run's first feasible trial whose true value is at the optimum (or
    within ``within`` times its magnitude of it), or ``None``."""
    optimum = run["optimum"]
    sign = 1.0 if run["direction"] == "maximize" else -1.0
    # True values are recorded to 6 significant digits.
    tol = within * abs(optimum) + 1e-5 * max(abs(optimum), 1.0)
    for i, (true, feasible) in enumerate(zip(run["true"], run["feasible"], strict=True)):
        if feasible and true is not None and sign * (optimum - true) <= tol:
            return i
    return None


def _median(values: Sequence[float]) -> float | None:
    """Median with ``inf`` for seeds that never found it; ``None`` when that is most of them."""
    m = float(np.median(values))
    return None if math.isinf(m) else m


def random_law(space_size: int, n_optimal: int, n_trials: int) -> dict[str, float]:
    """RandomSampler's exact law (uniform draws with replacement over the whole space, ``k`` of
    ``N`` configurations optimal): P(found within n trials) = 1 - (1 - k/N)^n; distinct
    candidates until found: the first-appearance order is a uniform random permutation, so
    P(not among the first m) = prod_{j<m} (N - k - j) / (N - j); its median."""
    n, k = space_size, n_optimal
    p_not = np.cumprod((n - k - np.arange(n - k + 1)) / (n - np.arange(n - k + 1)))
    return {"p_found": 1.0 - (1.0 - k / n) ** n_trials,
            "median_candidates": float(np.argmax(p_not <= 0.5) + 1)}


def stage_summary(runs: Sequence[dict[str, Any]], n: int) -> dict[str, dict[str, float]]:
    """Per stage a sampler records (e.g. LayerNAS's ``layer`` then ``random``): mean trials in
    it and the mean over seeds of the best true value of its feasible trials."""
    out: dict[str, dict[str, float]] = {}
    if not all("stage" in r for r in runs):
        return out
    for stage in sorted({x for r in runs for x in r["stage"][:n] if x is not None}):
        counts, bests = [], []
        for r in runs:
            values = [t for x, t, f in zip(r["stage"][:n], r["true"][:n], r["feasible"][:n],
                                           strict=True) if x == stage and f and t is not None]
            counts.append(sum(x == stage for x in r["stage"][:n]))
            if values:
                bests.append(max(values) if r["direction"] == "maximize" else min(values))
        out[stage] = {"trials": float(np.mean(counts)),
                      "best_true": float(np.mean(bests)) if bests else math.nan}
    return out


def layerwise_summary(runs: dict[str, list[dict[str, Any]]], n_trials: dict[str, int],
                      checkpoints: Sequence[int]) -> dict[str, Any]:
    """Per sampler (runs by seed, their common trial count): mean distinct candidates at the
    checkpoints, and candidates / trials until the optimum (median over seeds, fraction found)."""
    any_run = next(r for rs in runs.values() for r in rs)
    out: dict[str, Any] = {"space_size": any_run.get("space_size"),
                           "n_optimal": any_run.get("n_optimal"), "samplers": {}}
    for s, rs in runs.items():
        n = n_trials[s]
        if not all("distinct" in r and "true" in r for r in rs):
            out["samplers"][s] = {"recorded": False, "n_trials": n}
            continue
        cut = [{**r, "true": r["true"][:n], "feasible": r["feasible"][:n]} for r in rs]
        hits = [first_optimum(r) for r in cut]
        near = [first_optimum(r, NEAR) for r in cut]
        out["samplers"][s] = {
            "recorded": True,
            "n_trials": n,
            "seeds": len(rs),
            "distinct": {c: float(np.mean([r["distinct"][c - 1] for r in rs]))
                         for c in sorted({*checkpoints, n}) if c <= n},
            "found": sum(h is not None for h in hits) / len(rs),
            "candidates_to_optimum": _median(
                [math.inf if h is None else r["distinct"][h] for r, h in zip(rs, hits,
                                                                            strict=True)]),
            "trials_to_optimum": _median([math.inf if h is None else h + 1 for h in hits]),
            "found_near": sum(h is not None for h in near) / len(rs),
            "candidates_to_near": _median(
                [math.inf if h is None else r["distinct"][h] for r, h in zip(rs, near,
                                                                            strict=True)]),
        }
        out["samplers"][s]["stages"] = stage_summary(rs, n)
    if out["space_size"] and out["n_optimal"] and "random" in runs:
        out["random_law"] = random_law(out["space_size"], out["n_optimal"], n_trials["random"])
    return out


def layerwise_markdown(name: str, lw: dict[str, Any]) -> str:
    size = lw["space_size"]
    if not any(r["recorded"] for r in lw["samplers"].values()):
        return (f"{name}: layer-wise, but its runs predate the runner's candidate counts "
                "(`distinct`, `true`), so LayerNAS's measures are not available for it.\n")
    lines = [f"#### {name}: candidates trained (LayerNAS's measures)\n",
             f"Space: {size or '?'} configurations, {lw['n_optimal'] or '?'} at the optimum. "
             "Distinct candidates: mean over seeds of the parameter sets evaluated (a repeat "
             "trains nothing new on a table). To the optimum: distinct candidates (and trials) "
             "until a feasible trial at the table's best true value, median over seeds "
             "(\"not found\" when most seeds miss it), and the fraction of seeds that find it; "
             f"the same for a feasible trial within {100 * NEAR:g}% of the optimum's value. "
             "REINFORCE stands in for the paper's PPO.\n"]
    cps = sorted({c for r in lw["samplers"].values() for c in r.get("distinct", {})})
    rows = []
    for s, r in lw["samplers"].items():
        if not r["recorded"]:
            rows.append([s, r["n_trials"], *(["not recorded"] * (len(cps) + 5))])
            continue
        ratio = f" ({100 * r['distinct'][cps[-1]] / size:.1f}%)" if size and cps[-1] in r[
            "distinct"] else ""
        rows.append([
            s, r["n_trials"],
            *(f"{r['distinct'][c]:.0f}" + (ratio if c == cps[-1] else "")
              if c in r["distinct"] else "-" for c in cps),
            "not found" if r["candidates_to_optimum"] is None
            else f"{r['candidates_to_optimum']:.0f}",
            "not found" if r["trials_to_optimum"] is None else f"{r['trials_to_optimum']:.0f}",
            f"{r['found']:.2f}",
            "not found" if r["candidates_to_near"] is None
            else f"{r['candidates_to_near']:.0f}",
            f"{r['found_near']:.2f}",
        ])
    pct = f"{100 * NEAR:g}%"
    lines.append(markdown_table(
        ["sampler", "trials", *(f"distinct @ {c}" for c in cps), "candidates to optimum",
         "trials to optimum", "found", f"candidates to within {pct}", f"found within {pct}"],
        rows))
    staged = [f"{s}: " + ", ".join(f"{k} {v['trials']:.0f} trials (best true {v['best_true']:.4g})"
                                   for k, v in r["stages"].items())
              for s, r in lw["samplers"].items() if r.get("stages")]
    if staged:
        lines.append("\nStages (mean trials per stage over seeds, and the mean best true value of "
                     "each stage's feasible trials): " + "; ".join(staged) + ".")
    law = lw.get("random_law")
    if law:
        lines.append(f"\nRandomSampler's exact law on this space: P(found within "
                     f"{lw['samplers']['random']['n_trials']} trials) = {law['p_found']:.3f}; "
                     f"median distinct candidates until found {law['median_candidates']:.0f}.")
    return "\n".join(lines) + "\n"
