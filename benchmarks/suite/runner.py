"""Runs one (problem, sampler, seed) study with ask-and-tell, and grids of them across processes.

Per trial it records the observed value, the best feasible value so far, the true (noise-free)
value of that incumbent and its regret where the optimum is known, feasibility, and the
sampler's own time (``ask`` with all suggestions, plus ``tell`` and constraint bookkeeping)
apart from the evaluation's; the trial's own true value (``true``) and the number of distinct
parameter sets evaluated so far (``distinct``: the candidates trained, a repeated proposal costs
no new training on a table). For the optuna-nars samplers it records what produced each proposal
(``stage``, and ``layer`` for LayerNASSampler); for NARSSampler also the predicted value of each
proposal and the predictor's cross-validated Kendall tau after each trial.

A grid appends one JSON line per finished run to ``<out>/<problem>.jsonl`` (written by the
parent process only), so an interrupted grid resumes where it stopped.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.samplers import (
    BaseSampler,
    CmaEsSampler,
    GPSampler,
    QMCSampler,
    RandomSampler,
    TPESampler,
)
from optuna.trial import TrialState

from benchmarks.suite.problems import Problem, TabularProblem, get_problem
from optuna_nars.predictor import NARSPredictor
from optuna_nars.samplers import (
    INTERVAL_95_KEY,
    PREDICTED_KEY,
    PREDICTED_STD_KEY,
    PREDICTOR_QUALITY_KEY,
    STAGE_KEY,
    LayerNASSampler,
    NARSSampler,
    PARSECSampler,
    RegularizedEvolutionSampler,
    REINFORCESampler,
)
from optuna_nars.samplers.layernas import LAYER_ATTR

# Each sampler: its class and the constructor arguments the suite gives it for a problem (the
# seed and any command-line overrides come on top).
SAMPLERS: dict[str, tuple[type[BaseSampler], Callable[[Problem], dict[str, Any]]]] = {
    "nars": (NARSSampler, lambda p: {**p.nars_kwargs(), "warn_independent_sampling": False}),
    "layernas": (LayerNASSampler,
                 lambda p: {**p.layernas_kwargs(), "warn_independent_sampling": False}),
    # PARSEC; the FP-NAS variant is "parsec[fpnas=true]".
    "parsec": (PARSECSampler, lambda p: {**p.nars_kwargs(), "warn_independent_sampling": False}),
    "tpe": (TPESampler, lambda p: {}),
    "cmaes": (CmaEsSampler, lambda p: {"warn_independent_sampling": False}),
    "gp": (GPSampler, lambda p: {}),
    "random": (RandomSampler, lambda p: {}),
    # Scrambled, so that seeds differ (Optuna's default is one unscrambled sequence).
    "qmc": (QMCSampler, lambda p: {"scramble": True, "warn_independent_sampling": False}),
    # The NAS-Bench-201 baselines, told what NARS is told (the space and the budgets).
    "regularized_evolution": (
        RegularizedEvolutionSampler,
        lambda p: {**p.nars_kwargs(), "warn_independent_sampling": False},
    ),
    "reinforce": (
        REINFORCESampler,
        lambda p: {**p.nars_kwargs(), "warn_independent_sampling": False},
    ),
}


@dataclass(frozen=True)
class Task:
    problem: str
    sampler: str
    seed: int
    n_trials: int

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.problem, self.sampler, self.seed)


def parse_sampler(name: str) -> tuple[str, dict[str, Any]]:
    """``"nars"`` or a variant with constructor overrides, ``"nars[trust_region=0]"``."""
    match = re.fullmatch(r"(\w+)(?:\[(.*)\])?", name)
    if match is None or match.group(1) not in SAMPLERS:
        raise ValueError(f"Unknown sampler {name!r}; known: {', '.join(SAMPLERS)}, optionally "
                         "with overrides like nars[trust_region=0,exploration=1].")
    kwargs: dict[str, Any] = {}
    for item in filter(None, (match.group(2) or "").split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ValueError(f"Bad override {item!r} in {name!r}: expected key=value.")
        kwargs[key.strip()] = json.loads(value)
    return match.group(1), kwargs


def make_sampler(name: str, problem: Problem, seed: int) -> BaseSampler:
    base, overrides = parse_sampler(name)
    cls, defaults = SAMPLERS[base]
    if isinstance(overrides.get("predictor"), dict):  # nars[predictor={"bootstrap":true}]
        overrides["predictor"] = NARSPredictor(**overrides["predictor"])
    return cls(**{**defaults(problem), "seed": seed, **overrides})


def quiet() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)


def run_study(
    problem: Problem,
    sampler: BaseSampler,
    n_trials: int,
    seed: int,
    study: optuna.Study | None = None,
) -> dict[str, Any]:
    """Run ``n_trials`` trials of ``problem`` with ``sampler`` (in a new in-memory study unless
    one is given); per-trial records as lists."""
    # No pruner: the suite compares samplers, and Optuna's default MedianPruner would stop a
    # real-training problem's trials (which report every epoch) and lose their labels.
    study = study or optuna.create_study(direction=problem.direction, sampler=sampler,
                                         pruner=optuna.pruners.NopPruner())
    storage = study._storage
    rng = np.random.default_rng([seed, 20_261_130])  # the evaluation noise, apart from samplers
    rec: dict[str, list[Any]] = {k: [] for k in (
        "value", "feasible", "best", "incumbent_true", "regret", "sampler_s", "eval_s", "state")}
    rec.update(true=[], distinct=[], stage=[], layer=[])
    nars: dict[str, list[Any]] = {
        "stage": [], "predicted": [], "predicted_std": [], "interval_95": [], "kendall_tau": []}
    seen: set[tuple[tuple[str, Any], ...]] = set()
    best = math.nan
    best_true: float | None = None
    for _ in range(n_trials):
        t0 = time.perf_counter()
        trial = study.ask(problem.distributions)
        t1 = time.perf_counter()
        try:
            value = float(problem.evaluate(trial, rng))
            state = TrialState.COMPLETE if math.isfinite(value) else TrialState.FAIL
        except Exception as e:  # a failing trial never ends the run
            value, state = math.nan, TrialState.FAIL
            warnings.warn(f"trial {trial.number} failed: {e!r}", stacklevel=1)
        t2 = time.perf_counter()
        violations = problem.violations(trial.params)
        already = storage.get_trial_system_attrs(trial._trial_id)
        for name, v in violations.items():
            if f"constraints:{name}" not in already:  # NARS records its own budgets
                trial.set_constraint(name, v)
        study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
        t3 = time.perf_counter()

        feasible = all(v <= 0 for v in violations.values())
        if state == TrialState.COMPLETE and feasible and (
            math.isnan(best) or problem.better(value, best)
        ):
            best, best_true = value, problem.true_value(trial.params)
        rec["value"].append(value)
        rec["feasible"].append(feasible)
        rec["best"].append(problem.worst if math.isnan(best) else best)
        rec["incumbent_true"].append(best_true)
        regret = None
        if problem.optimum is not None:  # before a feasible trial: as far as the worst value
            regret = abs(problem.optimum - (problem.worst if best_true is None else best_true))
        rec["regret"].append(regret)
        rec["sampler_s"].append((t1 - t0) + (t3 - t2))
        rec["eval_s"].append(t2 - t1)
        rec["state"].append(state.name)
        seen.add(tuple(sorted(trial.params.items())))
        rec["distinct"].append(len(seen))
        rec["true"].append(problem.true_value(trial.params))
        attrs = storage.get_trial(trial._trial_id).user_attrs
        rec["stage"].append(attrs.get(STAGE_KEY))
        rec["layer"].append(attrs.get(LAYER_ATTR))
        if isinstance(sampler, NARSSampler):
            nars["stage"].append(attrs.get(STAGE_KEY))
            nars["predicted"].append(attrs.get(PREDICTED_KEY))
            nars["predicted_std"].append(attrs.get(PREDICTED_STD_KEY))
            interval = attrs.get(INTERVAL_95_KEY)
            nars["interval_95"].append(None if interval is None else _rounded(interval))
            quality = storage.get_study_system_attrs(study._study_id).get(PREDICTOR_QUALITY_KEY)
            nars["kendall_tau"].append((quality or {}).get("kendall_tau"))
    # What a sampler or problem does not expose (Optuna's samplers have no stage, real training
    # no true value) is left out of the run.
    optional = ("true", "stage", "layer")
    out: dict[str, Any] = {k: _rounded(v) for k, v in rec.items()
                           if k not in optional or any(x is not None for x in v)}
    if isinstance(sampler, NARSSampler):
        out["nars"] = {k: _rounded(v) for k, v in nars.items()}
    return out


def _rounded(values: list[Any]) -> list[Any]:
    return [float(f"{v:.6g}") if isinstance(v, float) and math.isfinite(v) else
            (None if isinstance(v, float) else v) for v in values]


def run_task(task: Task) -> dict[str, Any]:
    """Worker entry point: one run, its records and its metadata."""
    import torch

    torch.set_num_threads(1)
    quiet()
    problem = get_problem(task.problem)
    sampler = make_sampler(task.sampler, problem, task.seed)
    start = time.perf_counter()
    records = run_study(problem, sampler, task.n_trials, task.seed)
    return {
        "problem": task.problem,
        "sampler": task.sampler,
        "seed": task.seed,
        "n_trials": task.n_trials,
        "direction": problem.direction,
        "optimum": problem.optimum,
        "wall_s": round(time.perf_counter() - start, 3),
        **space_facts(problem),
        **records,
    }


def space_facts(problem: Problem) -> dict[str, Any]:
    """What the report needs to read a run against its space: whether the problem is
    layer-wise, and for a table its size and how many configurations are optimal (feasible,
    true value equal to the optimum: ties share the best mean)."""
    facts: dict[str, Any] = {"layerwise": problem.layers is not None}
    if isinstance(problem, TabularProblem):
        optimal = problem.feasible_rows() & np.isclose(problem.truth, problem.optimum)
        facts.update(space_size=len(problem.runs), n_optimal=int(optimal.sum()))
    return facts


def load_runs(out_dir: Path) -> list[dict[str, Any]]:
    runs = []
    for path in sorted(out_dir.glob("*.jsonl")):
        with open(path) as f:
            runs.extend(json.loads(line) for line in f if line.strip())
    return runs


def pending(tasks: Iterable[Task], out_dir: Path) -> list[Task]:
    """Tasks without a recorded run of at least as many trials."""
    done: dict[tuple[str, str, int], int] = {}
    for run in load_runs(out_dir):
        key = (run["problem"], run["sampler"], run["seed"])
        done[key] = max(done.get(key, 0), run["n_trials"])
    return [t for t in tasks if done.get(t.key, 0) < t.n_trials]


# Longest first keeps both workers busy to the end.
_COST_ORDER = {"gp": 0, "nars": 1, "tpe": 2, "cmaes": 3, "qmc": 4, "random": 5}


def _cost_rank(task: Task) -> tuple[int, bool]:
    real_training = task.problem.startswith("fashion-mnist")
    return (_COST_ORDER.get(parse_sampler(task.sampler)[0], 9), real_training)


def run_grid(
    tasks: Sequence[Task],
    out_dir: Path,
    *,
    jobs: int = 2,
    extra: dict[str, Any] | None = None,
    progress: bool = True,
) -> tuple[int, int]:
    """Run the tasks not yet recorded in ``out_dir``; returns (recorded, failed)."""
    from tqdm.auto import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    todo = sorted(pending(tasks, out_dir), key=_cost_rank)
    bar = tqdm(total=len(todo), disable=not progress, unit="run", dynamic_ncols=True)

    def record(run: dict[str, Any]) -> None:
        run.update(extra or {})
        with open(out_dir / f"{run['problem']}.jsonl", "a") as f:
            f.write(json.dumps(run) + "\n")
        bar.set_postfix_str(f"{run['problem']}/{run['sampler']}/{run['seed']}")
        bar.update()

    failed: list[str] = []
    if jobs <= 1:
        for task in todo:
            try:
                record(run_task(task))
            except Exception as e:
                failed.append(f"{task}: {e!r}")
                bar.update()
    else:
        ctx = get_context("forkserver" if os.name == "posix" else "spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            futures = {pool.submit(run_task, t): t for t in todo}
            remaining: set[Future[dict[str, Any]]] = set(futures)
            while remaining:
                finished, remaining = wait(remaining, return_when=FIRST_COMPLETED)
                for fut in finished:
                    try:
                        record(fut.result())
                    except Exception as e:  # one broken run must not lose the others
                        failed.append(f"{futures[fut]}: {e!r}")
                        bar.update()
    bar.close()
    for line in failed:
        print(f"FAILED {line}", file=sys.stderr)
    return len(todo) - len(failed), len(failed)
