"""Training-free scores against measured accuracy on the real-training problem (issue 12).

Issue 12 lists, as a lever, richer free labels for pretraining: scores computed on the built
network at initialisation. Before relying on one, this measures how well each ranks the
Fashion-MNIST suite problem's candidates (``SearchSpace.tiny()``, 2,000 images, 2 epochs, the
suite's objective and FLOPs budget): Kendall's tau between the score and the trained
validation accuracy, beside the free labels NARS already pretrains on (log FLOPs and log
parameters of the cost model).

Candidates are drawn at random from the space and kept when they fit the FLOPs budget (the
only ones NARS ranks). Two samples: architecture only (every candidate trains with the default
recipe, the suite's ``fashion-mnist-arch``), and joint (the recipe drawn too, ``fashion-mnist``).

Scores, each on one batch of 64 training images at the candidate's resolution and one
initialisation (no maintained PyPI implementation exists; these follow the papers):

- ``naswot``: Mellor et al. (2021), log-determinant of the Hamming-similarity kernel of the
  batch's binary activation codes (the sign of every activation's input, so that h-swish counts
  like ReLU).
- ``synflow``: Tanaka et al. (2020) as scored by Abdelfattah et al. (2021): sum of
  |theta * dR/dtheta| for R the output of the network with |theta| on an all-ones input, batch
  norm at its initial statistics (eval mode); its log.
- ``grad_norm``: the L2 norm of the cross-entropy loss's gradient over all weights.
- ``snip``: Lee et al. (2019): sum of |theta * dL/dtheta| for the cross-entropy loss.

Run from the repository root::

    python benchmarks/zero_cost.py            # 48 candidates per sample
    python benchmarks/zero_cost.py --quick    # 10 per sample

Results go to ``benchmarks/results/zero_cost.json``.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import (  # noqa: E402
    RESULTS_DIR,
    benchmark_parser,
    fmt,
    markdown_table,
    parse_run_args,
    save_results,
)
from benchmarks.suite.fashion_mnist import FashionMNISTProblem  # noqa: E402
from optuna_nars.cost import space_costs  # noqa: E402

SAMPLES = {"architecture": True, "joint": False}  # name -> fixed_recipe
SCORES = ("log_flops", "log_params", "naswot", "log_synflow", "grad_norm", "log_snip")


def _activations() -> tuple[type, ...]:
    from torch import nn

    return (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.SiLU, nn.GELU, nn.Hardsigmoid, nn.Sigmoid)


def naswot(model: Any, x: Any) -> float:
    """Log-determinant of the batch's activation-code kernel (Mellor et al., 2021)."""
    import torch

    n = x.shape[0]
    kernel = torch.zeros(n, n, dtype=torch.float64)

    def hook(_module: Any, inputs: tuple[Any, ...], _output: Any) -> None:
        codes = (inputs[0].detach().flatten(1) > 0).double()
        kernel.add_(codes @ codes.T + (1 - codes) @ (1 - codes).T)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, _activations()) and m is not model]
    try:
        with torch.no_grad():
            model.eval()
            model(x)
    finally:
        for h in handles:
            h.remove()
    return float(torch.linalg.slogdet(kernel)[1])


def synflow(model: Any, x: Any) -> float:
    """Log of sum |theta * dR/dtheta| with |theta| and an all-ones input (Tanaka et al., 2020)."""
    import torch

    model = model.double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    model.zero_grad()
    model(torch.ones_like(x[:1], dtype=torch.float64)).sum().backward()
    total = sum(float((p * p.grad).detach().abs().sum())
                for p in model.parameters() if p.grad is not None)
    return math.log(total) if total > 0 else float("-inf")


def _loss_grads(model: Any, x: Any, y: Any) -> list[tuple[Any, Any]]:
    import torch.nn.functional as F

    model.train()
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [(p, p.grad) for p in model.parameters() if p.grad is not None]


def grad_norm(model: Any, x: Any, y: Any) -> float:
    """The L2 norm of the loss's gradient over all weights."""
    return math.sqrt(sum(float((g * g).sum()) for _, g in _loss_grads(model, x, y)))


def snip(model: Any, x: Any, y: Any) -> float:
    """Log of sum |theta * dL/dtheta| (Lee et al., 2019)."""
    total = sum(float((p * g).detach().abs().sum()) for p, g in _loss_grads(model, x, y))
    return math.log(total) if total > 0 else float("-inf")


def training_free(arch: Any, images: Any, labels: Any, seed: int) -> dict[str, float]:
    """The four training-free scores of one architecture, each on its own initialisation from
    ``seed``, on ``images`` resized to the architecture's resolution."""
    import torch
    import torch.nn.functional as F

    from optuna_nars.models import build_model

    x = F.interpolate(images, size=(arch.resolution, arch.resolution), mode="bilinear",
                      align_corners=False, antialias=images.shape[-1] > arch.resolution)
    fns: dict[str, Callable[[Any], float]] = {
        "naswot": lambda m: naswot(m, x), "log_synflow": lambda m: synflow(m, x),
        "grad_norm": lambda m: grad_norm(m, x, labels), "log_snip": lambda m: snip(m, x, labels),
    }
    out = {}
    for name, fn in fns.items():
        torch.manual_seed(seed)
        out[name] = fn(build_model(arch, 10, 1))
    return out


def scores(problem: FashionMNISTProblem, values: np.ndarray, seed: int) -> list[dict[str, float]]:
    """Every score of each candidate (rows of ``values``), and the seconds the training-free
    ones took; on the problem's first 64 training images."""
    import torch

    data = problem.objective().data
    images = torch.stack([data.train[i][0] for i in range(64)])
    labels = torch.tensor([int(data.train[i][1]) for i in range(64)])
    costs = space_costs(problem.space, values)  # the cost model NARS pretrains on
    out = []
    for i, candidate in enumerate(problem.space.decode(values)):
        start = time.perf_counter()
        row = training_free(candidate.architecture, images, labels, seed)
        out.append({"log_flops": math.log(costs["flops"][i]),
                    "log_params": math.log(costs["params"][i]),
                    **row, "score_s": time.perf_counter() - start})
    return out


def run_sample(name: str, n: int, seed: int, threads: int) -> list[dict[str, Any]]:
    """Train ``n`` random feasible candidates of one sample; each one's parameters, scores and
    accuracy."""
    import optuna
    import torch

    torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    problem = FashionMNISTProblem(fixed_recipe=SAMPLES[name])
    rng = np.random.default_rng(seed)  # the training seeds, drawn as the suite draws them
    draws = problem.space.sample_values(50 * n, seed=seed, method="random")
    feasible = space_costs(problem.space, draws)["flops"] <= problem.budgets["flops"]
    draws = draws[feasible][:n]
    rows: list[dict[str, Any]] = []
    for params, row in zip(problem.space.values_to_params(draws), scores(problem, draws, seed),
                           strict=True):
        study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
        study.enqueue_trial(params)
        study.optimize(lambda t: problem.evaluate(t, rng), n_trials=1)
        rows.append({"params": params, **row, "accuracy": study.trials[0].value})
    return rows


def score_pool(n: int, seed: int, threads: int) -> dict[str, list[Any]]:
    """``n`` random architectures of the space (the predictor's pretraining sample): values
    and every score."""
    import torch

    torch.set_num_threads(threads)
    problem = FashionMNISTProblem()
    values = problem.space.sample_values(n, seed=seed + 1, method="random")
    return {"values": values.tolist(), "scores": scores(problem, values, seed)}


def kendall(rows: Sequence[dict[str, Any]], score: str) -> tuple[float, float]:
    """Kendall's tau (tau-b) of a score with accuracy, and its two-sided p-value."""
    from scipy.stats import kendalltau

    result = kendalltau([r[score] for r in rows], [r["accuracy"] for r in rows])
    return float(result.statistic), float(result.pvalue)


def predictor_taus(
    rows: Sequence[dict[str, Any]], pool: dict[str, list[Any]], proxies: Sequence[str],
    name: str, n_labels: int, splits: int,
) -> list[float]:
    """Held-out Kendall tau of the NARS predictor fitted on ``n_labels`` random rows, per split;
    its encoder pretrained on the pool's ``proxies`` (none: not pretrained)."""
    from scipy.stats import kendalltau

    from optuna_nars.predictor import NARSPredictor
    from optuna_nars.predictor.pretraining import encode_split

    space = FashionMNISTProblem(fixed_recipe=SAMPLES[name]).space.param_space
    template = NARSPredictor(seed=0)
    if proxies:
        pool_values = np.asarray(pool["values"])
        joint = FashionMNISTProblem().space.param_space
        proxy_y = np.array([[r[p] for p in proxies] for r in pool["scores"]])
        template = template.pretrain(joint.encode(pool_values, "architecture"), proxy_y)
    values = space.params_to_values([r["params"] for r in rows])
    y = np.array([r["accuracy"] for r in rows])
    taus = []
    for split in range(splits):
        order = np.random.default_rng(split).permutation(len(y))
        fit, test = order[:n_labels], order[n_labels:]
        predictor = template.clone(seed=split).fit(*encode_split(space, values[fit]), y[fit])
        mean, _ = predictor.predict(*encode_split(space, values[test]))
        taus.append(float(kendalltau(mean, y[test]).statistic))
    return taus


PRETRAINING = {
    "none": (),
    "cost model": ("log_flops", "log_params"),
    "cost model + training-free": SCORES,
}


def _score_table(runs: dict[str, list[dict[str, Any]]]) -> tuple[str, dict[str, Any]]:
    from scipy.stats import kendalltau

    table, summary = [], {}
    for name, rows in runs.items():
        summary[name] = {}
        for score in SCORES:
            tau, p = kendall(rows, score)
            size = float(kendalltau([r[score] for r in rows],
                                    [r["log_flops"] for r in rows]).statistic)
            summary[name][score] = {"tau": tau, "p": p, "tau_with_log_flops": size}
            table.append([name, score, fmt(tau, ".2f"), fmt(p, ".3f"), fmt(size, ".2f"),
                          len(rows)])
    headers = ["sample", "score", "Kendall tau with accuracy", "p", "tau with log FLOPs",
               "candidates"]
    return markdown_table(headers, table), summary


def _predictor_table(
    runs: dict[str, list[dict[str, Any]]], pool: dict[str, list[Any]], n_labels: int,
    splits: int,
) -> tuple[str, dict[str, Any]]:
    def mean_se(x: np.ndarray) -> str:
        return f"{np.mean(x):+.3f} ± {np.std(x, ddof=1) / math.sqrt(len(x)):.3f}"

    table, summary = [], {}
    for name, rows in runs.items():
        summary[name] = {label: np.array(predictor_taus(rows, pool, proxies, name, n_labels,
                                                        splits))
                         for label, proxies in PRETRAINING.items()}
        base = summary[name]["cost model"]
        for label, taus in summary[name].items():
            table.append([name, label, mean_se(taus), mean_se(taus - base),
                          int(np.sum(taus > base))])
        summary[name] = {label: taus.tolist() for label, taus in summary[name].items()}
    headers = ["sample", "encoder pretrained on",
               f"held-out Kendall tau after {n_labels} labels (mean ± s.e., {splits} splits)",
               "paired difference against the cost model's", "splits where higher"]
    return markdown_table(headers, table), summary


def main(argv: Sequence[str] | None = None) -> None:
    parser = benchmark_parser(__doc__, quick_help="10 candidates per sample, a pool of 64")
    parser.add_argument("--n", type=int, default=60, help="candidates per sample")
    parser.add_argument("--pool", type=int, default=512, help="pretraining architectures")
    parser.add_argument("--labels", type=int, default=20, help="labels the predictor fits")
    parser.add_argument("--splits", type=int, default=20, help="random label sets")
    args = parse_run_args(parser, argv, output=RESULTS_DIR / "zero_cost.json", quiet_optuna=True)
    n, pool_n, n_labels = (10, 64, 5) if args.quick else (args.n, args.pool, args.labels)
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=2) as workers:
        futures = {name: workers.submit(run_sample, name, n, args.seed, args.threads)
                   for name in SAMPLES}
        pool_future = workers.submit(score_pool, pool_n, args.seed, args.threads)
        runs = {name: future.result() for name, future in futures.items()}
        pool = pool_future.result()
    scores_md, tau = _score_table(runs)
    print(scores_md)
    seconds = [r["score_s"] for r in pool["scores"]]
    print(f"\nThe four training-free scores took {np.median(seconds):.3f} s per architecture "
          f"(median over the pool of {pool_n}).\n")
    predictor_md, predictor = _predictor_table(runs, pool, n_labels, args.splits)
    print(predictor_md)
    save_results(args.output, "zero_cost", args, {
        "wall_s": time.perf_counter() - start, "n": n, "pool": pool_n, "labels": n_labels,
        "splits": args.splits, "seed": args.seed, "tau": tau, "predictor_tau": predictor,
        "score_s_median": float(np.median(seconds)), "rows": runs, "pool_scores": pool,
    })


if __name__ == "__main__":
    main()
