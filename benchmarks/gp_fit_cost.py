"""What one Gaussian-process fit of NARSSampler costs, against scikit-learn's own evaluation.

The data: ``n`` random candidates of ``SearchSpace.tiny()``'s 24 distributions (37 encoded
columns, as NARS sees a space with no free metric), labelled by a smooth random function of the
encoding plus noise. Timed, in the same run:

- one likelihood evaluation with its gradient (``torch.utils.benchmark``, median, BLAS on one
  thread): ``GaussianProcessRegressor.log_marginal_likelihood(eval_gradient=True)`` against
  ``predictor.gp_likelihood.neg_log_marginal_likelihood`` as a fit calls it;
- one whole fit (three L-BFGS-B runs, the median of ``--repeats``): ``GPPredictor`` (its own
  likelihood, BLAS on one thread) against ``GaussianProcessRegressor`` with the same kernel,
  restarts and seed, on the process's BLAS threads and on one.

Both fits' log marginal likelihoods are reported: the same optimum, found faster. With
``--busy`` another process spins on a second core for the whole run, as a second worker or a
training run would: multithreaded BLAS then waits on itself.

Run from the repository root::

    python benchmarks/gp_fit_cost.py --quick        # 50 and 100 labels
    python benchmarks/gp_fit_cost.py [--busy]       # 50, 100 and 200 labels

Results go to ``benchmarks/results/gp_fit_cost.json`` (``--busy``: ``gp_fit_cost_busy.json``).
"""

from __future__ import annotations

import multiprocessing
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.gaussian_process import GaussianProcessRegressor
from threadpoolctl import ThreadpoolController
from torch.utils import benchmark

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import RESULTS_DIR, benchmark_parser, markdown_table, parse_run_args, save_results  # noqa: E402

from optuna_nars.predictor import encode_split  # noqa: E402
from optuna_nars.predictor.gp import GPPredictor  # noqa: E402
from optuna_nars.predictor.gp_likelihood import (  # noqa: E402
    kernel,
    neg_log_marginal_likelihood,
    squared_differences,
)
from optuna_nars.space import ParamSpace, SearchSpace  # noqa: E402


def spin(stop: Any) -> None:
    """Keep one core busy until ``stop`` is set."""
    x = 0
    while not stop.is_set():
        x = (x + 1) % 1_000_003


def data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` encoded random candidates and their labels."""
    space = ParamSpace.from_distributions(SearchSpace.tiny().distributions())
    x = np.hstack(encode_split(space, space.sample_values(n, seed=seed, method="random")))
    rng = np.random.default_rng(seed)
    return x, np.sin(x @ rng.normal(size=x.shape[1])) + rng.normal(0.0, 0.1, n)


def median_seconds(fit: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """The median wall time of ``repeats`` calls of ``fit``, and the last call's result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fit()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def measure(n: int, seed: int, repeats: int) -> dict[str, float]:
    x, y = data(n, seed)
    reference = GaussianProcessRegressor(kernel(x.shape[1]), normalize_y=True,
                                         optimizer=None).fit(x, y)
    theta, standardised = reference.kernel.theta, (y - y.mean()) / y.std()
    timers = {
        "sklearn_eval_ms": benchmark.Timer(
            "f(theta, eval_gradient=True)",
            globals={"f": reference.log_marginal_likelihood, "theta": theta}),
        # As a fit evaluates it: the pairs' squared differences computed once beforehand.
        "own_eval_ms": benchmark.Timer(
            "f(theta, x, y, pairs)",
            globals={"f": neg_log_marginal_likelihood, "theta": theta, "x": x,
                     "y": standardised, "pairs": squared_differences(x)}),
    }
    with ThreadpoolController().limit(limits=1, user_api="blas"):  # the evaluations alone
        out = {name: t.blocked_autorange(min_run_time=0.5).median * 1e3
               for name, t in timers.items()}

    def sklearn_fit() -> GaussianProcessRegressor:
        model = GaussianProcessRegressor(kernel(x.shape[1]), normalize_y=True,
                                         n_restarts_optimizer=2, random_state=seed)
        return model.fit(x, y)

    out["own_fit_s"], own = median_seconds(
        lambda: GPPredictor(seed=seed).fit(x, None, y).model_, repeats)
    out["sklearn_fit_s"], theirs = median_seconds(sklearn_fit, repeats)
    with ThreadpoolController().limit(limits=1, user_api="blas"):
        out["sklearn_fit_one_blas_thread_s"], _ = median_seconds(sklearn_fit, repeats)
    out["own_log_marginal_likelihood"] = float(own.log_marginal_likelihood_value_)
    out["sklearn_log_marginal_likelihood"] = float(theirs.log_marginal_likelihood_value_)
    out["eval_speedup"] = out["sklearn_eval_ms"] / out["own_eval_ms"]
    out["fit_speedup"] = out["sklearn_fit_s"] / out["own_fit_s"]
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = benchmark_parser(__doc__, "50 and 100 labels")
    parser.add_argument("--busy", action="store_true",
                        help="keep a second core busy with another process meanwhile")
    parser.add_argument("--repeats", type=int, default=3, help="fits timed per size")
    args = parse_run_args(parser, argv, output=None)
    args.output = args.output or RESULTS_DIR / (
        "gp_fit_cost_busy.json" if args.busy else "gp_fit_cost.json")
    warnings.simplefilter("ignore")  # length scales at their bounds: a fit, not an error
    sizes = (50, 100) if args.quick else (50, 100, 200)
    stop = multiprocessing.Event()
    spinner = multiprocessing.Process(target=spin, args=(stop,), daemon=True) if args.busy else None
    if spinner is not None:
        spinner.start()
    start = time.perf_counter()
    try:
        results = {str(n): measure(n, args.seed, args.repeats) for n in sizes}
    finally:
        stop.set()
        if spinner is not None:
            spinner.join()
    blas = [(lib.internal_api, lib.num_threads)
            for lib in ThreadpoolController().select(user_api="blas").lib_controllers]
    print(markdown_table(
        ["labels", "sklearn eval ms", "own eval ms", "sklearn fit s", "sklearn, 1 BLAS thread s",
         "own fit s", "fit speed-up", "log ML sklearn / own"],
        [[n, f"{r['sklearn_eval_ms']:.2f}", f"{r['own_eval_ms']:.2f}",
          f"{r['sklearn_fit_s']:.2f}", f"{r['sklearn_fit_one_blas_thread_s']:.2f}",
          f"{r['own_fit_s']:.2f}", f"{r['fit_speedup']:.1f}x",
          f"{r['sklearn_log_marginal_likelihood']:.3f} / {r['own_log_marginal_likelihood']:.3f}"]
         for n, r in results.items()]))
    save_results(args.output, "gp_fit_cost", args,
                 {"busy": args.busy, "blas_threads": blas, "repeats": args.repeats,
                  "results": results, "wall_s": time.perf_counter() - start}, git=True)


if __name__ == "__main__":
    main()
