"""Turns recorded runs into the markdown report, a JSON summary and PNG plots."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import kendalltau, rankdata

from benchmarks._common import fmt, markdown_table
from benchmarks.suite.layerwise import layerwise_markdown, layerwise_summary

CHECKPOINTS = (25, 50, 100, 200)
SAMPLER_ORDER = ("nars", "tpe", "cmaes", "gp", "random", "qmc")


def _sampler_key(name: str) -> tuple[int, str]:
    base = name.split("[")[0]  # a variant such as nars[trust_region=0] sorts with nars
    return (SAMPLER_ORDER.index(base) if base in SAMPLER_ORDER else len(SAMPLER_ORDER), name)


class ProblemRuns:
    """All runs of one problem: per sampler, a (seeds, trials) matrix of each record."""

    def __init__(self, problem: str, runs: Sequence[dict[str, Any]]) -> None:
        self.problem = problem
        self.direction = runs[0]["direction"]
        self.optimum = runs[0]["optimum"]
        by_sampler: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
        for run in runs:  # the longest run per (sampler, seed) wins
            prev = by_sampler[run["sampler"]].get(run["seed"])
            if prev is None or prev["n_trials"] < run["n_trials"]:
                by_sampler[run["sampler"]][run["seed"]] = run
        self.samplers = sorted(by_sampler, key=_sampler_key)
        self.runs = {s: [by_sampler[s][k] for k in sorted(by_sampler[s])] for s in self.samplers}

    def n_trials(self, sampler: str) -> int:
        return min(r["n_trials"] for r in self.runs[sampler])

    def seeds(self, sampler: str) -> list[int]:
        return [r["seed"] for r in self.runs[sampler]]

    def matrix(self, sampler: str, key: str) -> np.ndarray:
        n = self.n_trials(sampler)
        return np.array(
            [[math.nan if v is None else v for v in r[key][:n]] for r in self.runs[sampler]],
            dtype=float,
        )

    def sign(self) -> float:
        return 1.0 if self.direction == "maximize" else -1.0

    def best_at(self, sampler: str, t: int) -> np.ndarray | None:
        if self.n_trials(sampler) < t:
            return None
        return self.matrix(sampler, "best")[:, t - 1]

    def trials_to_reach(self, sampler: str, target: float) -> int | None:
        mean = self.matrix(sampler, "best").mean(axis=0)
        hit = np.nonzero(self.sign() * (mean - target) >= -1e-12)[0]
        return int(hit[0]) + 1 if len(hit) else None

    def trials_to_regret(self, sampler: str, target: float) -> int | None:
        """The first trial from which the mean true regret of the incumbent stays at or under
        ``target`` to the end of the run. Kept, not first touched: the incumbent is the best
        *observed* trial, and on a noisy table a lucky evaluation can replace a better one."""
        above = np.nonzero(self.matrix(sampler, "regret").mean(axis=0) > target + 1e-12)[0]
        n = self.n_trials(sampler)
        first = int(above[-1]) + 2 if len(above) else 1
        return first if first <= n else None


def mean_se(x: np.ndarray) -> tuple[float, float]:
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return math.nan, math.nan
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else math.nan


def ranks_at(pr: ProblemRuns, t: int, among: Sequence[str] | None = None) -> dict[str, float]:
    """Mean rank (1 = best; ties averaged) per sampler at trial ``t``, over the seeds every
    sampler with ``t`` trials has. ``among``: the samplers to rank (default: the suite's own,
    ``SAMPLER_ORDER``, so that an extra NARS variant does not shift the others' ranks)."""
    among = SAMPLER_ORDER if among is None else among
    samplers = [s for s in pr.samplers if pr.n_trials(s) >= t and s in among]
    if len(samplers) < 2:
        return {}
    seeds = sorted(set.intersection(*(set(pr.seeds(s)) for s in samplers)))
    if not seeds:
        return {}
    scores = np.array([
        [pr.best_at(s, t)[pr.seeds(s).index(seed)] for s in samplers] for seed in seeds
    ])
    ranks = np.array([rankdata(-pr.sign() * row) for row in scores])
    return dict(zip(samplers, map(float, ranks.mean(axis=0)), strict=True))


def nars_diagnostics(pr: ProblemRuns, sampler: str = "nars") -> dict[str, Any]:
    """Predictor quality along the run: the sampler's own Kendall tau (its ``nars:predictor``
    attribute: cross-validated in runs recorded before the sampler switched to the prequential
    one, prequential over the fit set's latest 50 proposals after), and the
    prequential Kendall tau between each proposal's predicted value and its measured value."""
    runs = pr.runs.get(sampler)
    if not runs or "nars" not in runs[0]:
        return {}
    out: dict[str, Any] = {"cv_tau": {}, "prequential_tau": {}}
    for t in (20, 50, 100, 200):
        taus = [r["nars"]["kendall_tau"][t - 1] for r in runs if len(r["value"]) >= t]
        taus = [x for x in taus if x is not None]
        if taus:
            out["cv_tau"][t] = float(np.median(taus))
    # 11-20: the first predictor round, issue 12's checkpoint for real training.
    for lo, hi in ((10, 20), (10, 50), (50, 100), (100, 200)):
        taus = []
        for r in runs:
            pred = np.array([math.nan if p is None else p for p in r["nars"]["predicted"]][lo:hi],
                            dtype=float)
            val = np.array([math.nan if v is None else v for v in r["value"][lo:hi]], dtype=float)
            ok = ~np.isnan(pred) & ~np.isnan(val)
            if ok.sum() >= 5:
                tau = kendalltau(pred[ok], pr.sign() * val[ok]).statistic
                if not math.isnan(tau):
                    taus.append(tau)
        if taus:
            out["prequential_tau"][f"{lo + 1}-{hi}"] = float(np.median(taus))
    return out


def summarize(runs: Sequence[dict[str, Any]], checkpoints: Sequence[int] = CHECKPOINTS
              ) -> dict[str, Any]:
    by_problem: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        by_problem[run["problem"]].append(run)
    problems: dict[str, Any] = {}
    for name, pruns in by_problem.items():
        pr = ProblemRuns(name, pruns)
        longest = max(pr.n_trials(s) for s in pr.samplers)
        cps = [c for c in checkpoints if c <= longest]
        if longest not in cps and longest < max(checkpoints):
            cps.append(longest)  # a short problem (real training) ends between checkpoints
        tpe_n = pr.n_trials("tpe") if "tpe" in pr.samplers else None
        tpe_target = float(pr.best_at("tpe", tpe_n).mean()) if tpe_n else None
        tpe_regret = (float(pr.matrix("tpe", "regret")[:, tpe_n - 1].mean())
                      if tpe_n and pr.optimum is not None else None)
        per_sampler = {}
        for s in pr.samplers:
            best = {}
            for c in cps:
                b = pr.best_at(s, c)
                if b is not None:
                    best[c] = mean_se(b)
            regret = pr.matrix(s, "regret")[:, -1] if pr.optimum is not None else None
            feasible = pr.matrix(s, "feasible")
            per_sampler[s] = {
                "seeds": len(pr.runs[s]),
                "n_trials": pr.n_trials(s),
                "best": best,
                "final_regret": None if regret is None else mean_se(regret),
                "feasible_fraction": float(np.nanmean(feasible)),
                "to_reach_tpe": None if tpe_target is None else pr.trials_to_reach(s, tpe_target),
                "to_tpe_regret": (None if tpe_regret is None
                                  else pr.trials_to_regret(s, tpe_regret)),
                "median_overhead_ms": float(np.median(pr.matrix(s, "sampler_s")) * 1e3),
                "median_eval_ms": float(np.median(pr.matrix(s, "eval_s")) * 1e3),
                "wall_s": float(sum(r["wall_s"] for r in pr.runs[s])),
            }
        problems[name] = {
            "direction": pr.direction,
            "optimum": pr.optimum,
            "checkpoints": cps,
            "tpe_target": tpe_target,
            "tpe_regret": tpe_regret,
            "tpe_trials": tpe_n,
            "samplers": per_sampler,
            "ranks": {c: ranks_at(pr, c) for c in cps},
            # Any other sampler (a NARS variant, another strategy of the lineage) ranked in
            # NARS's place: against Optuna's five samplers, so every rank is out of six.
            "variant_ranks": {
                v: {c: ranks_at(pr, c, [v, *(s for s in SAMPLER_ORDER if s != "nars")]).get(v)
                    for c in cps}
                for v in pr.samplers if v not in SAMPLER_ORDER
            },
            "nars": {s: nars_diagnostics(pr, s) for s in pr.samplers if s.startswith("nars")},
        }
        # Layer-wise problems (runs before the flag was recorded: those LayerNAS ran on).
        if "layernas" in pr.samplers or any(r.get("layerwise") for r in pruns):
            problems[name]["layerwise"] = layerwise_summary(
                pr.runs, {s: pr.n_trials(s) for s in pr.samplers}, cps)
    overall: dict[int, dict[str, float]] = {}
    for c in checkpoints:
        collected: dict[str, list[float]] = defaultdict(list)
        for p in problems.values():
            for s, r in p["ranks"].get(c, {}).items():
                collected[s].append(r)
        n = max((len(v) for v in collected.values()), default=0)
        # Only samplers ranked on every problem; others are left out of the overall mean.
        overall[c] = {s: float(np.mean(v)) for s, v in collected.items() if len(v) == n and n}
        variants: dict[str, list[float]] = defaultdict(list)
        for p in problems.values():
            for v, by_c in p["variant_ranks"].items():
                if by_c.get(c) is not None:
                    variants[v].append(by_c[c])
        for v, values in variants.items():
            if len(values) == n and n:
                overall[c][f"{v} (in nars's place)"] = float(np.mean(values))
    return {"problems": problems, "overall_rank": overall}


def _mean_pm(ms: tuple[float, float] | None, spec: str) -> str:
    if ms is None:
        return "-"
    mean, se = ms
    return f"{fmt(mean, spec)} ± {fmt(se, spec)}"


def _spec(values: Sequence[float]) -> str:
    scale = max((abs(v) for v in values if math.isfinite(v)), default=1.0)
    return ".2f" if scale >= 10 else ".4f"


def _reached(trials: int | None, n_trials: int) -> str:
    return f"> {n_trials}" if trials is None else str(trials)


def check_markdown(rows: Sequence[dict[str, Any]]) -> str:
    n_seeds = sorted({r["seeds"] for r in rows})
    out = [
        "### Harness check: RandomSampler against the table's exact expectation\n",
        f"RandomSampler through the grid's own `run_study`, {'/'.join(map(str, n_seeds))} seeds. "
        "E[best of N] from P(max <= v) = F(v)^N, F the law of one evaluation of a uniformly "
        "random configuration; z = (measured - expected) / se.\n",
        markdown_table(
            ["problem", "N", "expected", "measured (mean ± se)", "z"],
            [[r["problem"], r["n"], f"{r['expected']:.5g}", f"{r['mean']:.5g} ± {r['se']:.2g}",
              f"{r['z']:+.2f}"] for r in rows],
        ),
        "",
    ]
    return "\n".join(out)


def markdown(summary: dict[str, Any], plots: dict[str, str],
             checks: Sequence[dict[str, Any]] = ()) -> str:
    out: list[str] = []
    problems = summary["problems"]
    all_samplers = sorted({s for p in problems.values() for s in p["samplers"]}, key=_sampler_key)
    out.append("### Mean rank over all problems (1 = best)\n")
    cps = [c for c in CHECKPOINTS if summary["overall_rank"].get(c)]
    names = [*all_samplers, *sorted({k for c in cps for k in summary["overall_rank"][c]}
                                    - set(all_samplers))]
    rows = [[s, *(fmt(summary["overall_rank"][c].get(s), ".2f") for c in cps)]
            for s in names if any(s in summary["overall_rank"][c] for c in cps)]
    out.append(markdown_table(["sampler", *(f"rank @ {c}" for c in cps)], rows))
    out.append("")
    longest = max((p["tpe_trials"] or 0 for p in problems.values()), default=0)
    for v in [s for s in all_samplers if s.startswith("nars")]:
        for key, what in (("to_reach_tpe", "mean best-so-far"),
                          ("to_tpe_regret", "mean true regret (and keeps it)")):
            reach = [p["samplers"][v].get(key) for p in problems.values()
                     if p["tpe_trials"] == longest and v in p["samplers"]
                     and (key == "to_reach_tpe" or p.get("tpe_regret") is not None)]
            if reach:
                halves = sum(r is not None and r <= longest / 2 for r in reach)
                out.append(f"`{v}` reaches TPE's {longest}-trial {what} within "
                           f"{longest // 2} trials on {halves} of {len(reach)} problems run "
                           f"for {longest} trials.\n")
    for name, p in problems.items():
        out.append(f"### {name}\n")
        opt = "" if p["optimum"] is None else f", optimum (best mean over runs) {p['optimum']:.6g}"
        out.append(f"{p['direction']}{opt}. Best-so-far is the best *observed* feasible value; "
                   "regret is that incumbent's true (mean-over-runs) distance to the optimum.\n")
        regret_column = p.get("tpe_regret") is not None
        values = [v[0] for s in p["samplers"].values() for v in s["best"].values()]
        spec = _spec(values)
        headers = ["sampler", "seeds", *(f"best @ {c}" for c in p["checkpoints"]),
                   f"trials to TPE@{p['tpe_trials']}",
                   *([f"trials to TPE@{p['tpe_trials']} regret"] if regret_column else []),
                   "final regret", "feasible",
                   "overhead ms/trial", *(f"rank @ {c}" for c in p["checkpoints"] if c >= 100)]
        rows = []
        for s, r in p["samplers"].items():
            reach = r["to_reach_tpe"]
            rows.append([
                s if r["n_trials"] >= max(p["checkpoints"]) else f"{s} ({r['n_trials']} trials)",
                r["seeds"],
                *(_mean_pm(r["best"].get(c), spec) for c in p["checkpoints"]),
                "-" if p["tpe_target"] is None else _reached(reach, r["n_trials"]),
                *([_reached(r.get("to_tpe_regret"), r["n_trials"])] if regret_column else []),
                _mean_pm(r["final_regret"], ".3g") if r["final_regret"] else "-",
                f"{r['feasible_fraction']:.2f}",
                f"{r['median_overhead_ms']:.1f}",
                *(fmt(p["ranks"][c].get(s, p["variant_ranks"].get(s, {}).get(c)), ".2f")
                  for c in p["checkpoints"] if c >= 100),
            ])
        out.append(markdown_table(headers, rows))
        out.append("")
        if p.get("layerwise"):
            out.append(layerwise_markdown(name, p["layerwise"]))
        if name in plots:
            out.append(f"![{name}]({plots[name]})\n")
        for s, d in p["nars"].items():
            if d:
                cv = ", ".join(f"{k}: {v:.2f}" for k, v in d["cv_tau"].items())
                pq = ", ".join(f"trials {k}: {v:.2f}" for k, v in d["prequential_tau"].items())
                out.append(f"{s} predictor, median over seeds: the sampler's Kendall tau after "
                           f"trial {cv}; prequential tau (predicted vs measured) {pq}.\n")
    if checks:
        out.append(check_markdown(checks))
    return "\n".join(out)


def plot(summary_runs: Sequence[dict[str, Any]], out_dir: Path) -> dict[str, str]:
    """One PNG per problem: regret (log) where the optimum is known, else best-so-far, mean
    over seeds with a +-1 standard-error band. Returns {problem: file name}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_problem: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in summary_runs:
        by_problem[run["problem"]].append(run)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, runs in by_problem.items():
        pr = ProblemRuns(name, runs)
        key = "regret" if pr.optimum is not None else "best"
        fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
        for s in pr.samplers:
            m = pr.matrix(s, key)
            mean = np.nanmean(m, axis=0)
            se = np.nanstd(m, axis=0, ddof=1) / math.sqrt(max(len(m), 1)) if len(m) > 1 else 0
            x = np.arange(1, len(mean) + 1)
            (line,) = ax.plot(x, mean, label=s, lw=1.6 if s.startswith("nars") else 1.0)
            ax.fill_between(x, mean - se, mean + se, color=line.get_color(), alpha=0.15)
        if key == "regret":
            ax.set_yscale("symlog", linthresh=_linthresh(pr))
            ax.set_ylabel("regret of the incumbent (true value)")
        else:
            ax.set_ylabel("best feasible value so far")
        ax.set_xlabel("trials")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        fig.savefig(path)
        plt.close(fig)
        files[name] = path.name
    return files


def _linthresh(pr: ProblemRuns) -> float:
    positive = [v for s in pr.samplers for v in pr.matrix(s, "regret").ravel()
                if math.isfinite(v) and v > 0]
    return float(np.percentile(positive, 5)) if positive else 1e-3
