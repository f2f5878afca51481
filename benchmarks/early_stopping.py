"""What FBNetV3's early-stopping heuristic (``EarlyStoppingPruner``) saves on a real search.

N candidates from the search space (``optuna.samplers.QMCSampler``, or NARSSampler's QMC warm
start with ``--sampler nars``) are trained with ``ClassificationObjective`` for the full E epochs
with a report after every epoch, in a study with ``optuna.pruners.NopPruner``. Then:

(a) **Offline replay.** The first ``n_calibration_trials`` trials form the calibration set, the
    rest are held out. The label step is computed by the pruner itself: the calibration trials
    are copied into a fresh study (``optuna.trial.create_trial`` / ``study.add_trial``), then
    ``EarlyStoppingPruner.calibrate(study)`` and ``get_label_step(study)``. Reported: the label
    step, the share of epochs saved against training everything to the end (held-out trials
    trained to the label step instead of E: ``1 - (calib * E + heldout * label_step) / (N * E)``),
    and the rank correlation (Kendall tau and Spearman, ``scipy.stats``) between the label-step
    accuracy and the final accuracy on the held-out trials, at the label step and every other
    epoch, plus the selection regret (final accuracy of the best held-out trial minus that of the
    held-out trial ranked first at the label step).
(b) **Online run.** A second study with ``EarlyStoppingPruner`` (same settings) trains the same
    candidates (``study.enqueue_trial`` with the same params, same trial numbers and therefore the
    same training seeds). Reported: the epochs actually trained and the wall time against the
    NopPruner study. The two studies advance one trial at a time in turn (full, early-stopped,
    full, ...) so that load from other processes hits both alike.

Run from the repository root::

    python benchmarks/early_stopping.py --quick                    # digits (800 images), 12 x 4
    python benchmarks/early_stopping.py                            # digits, 40 trials x 8 epochs
    python benchmarks/early_stopping.py --dataset fashion-mnist    # SearchSpace.cifar(1, 10)

Fashion-MNIST is read from ``/usr/share/datasets/fashion-mnist`` (Debian package
``dataset-fashion-mnist``) and capped with ``--max-train-samples`` (default 5000, 20% of which
is the validation split). Results go to ``benchmarks/results/early_stopping.json`` (or
``early_stopping_<dataset>.json`` for datasets other than digits).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import scipy.stats
from optuna.trial import FrozenTrial, TrialState

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import (  # noqa: E402
    RESULTS_DIR,
    benchmark_parser,
    fmt,
    markdown_table,
    parse_run_args,
    save_results,
)

from optuna_nars.pruner import (  # noqa: E402
    LABEL_CORRELATION_KEY,
    EarlyStoppingPruner,
    get_label_step,
)
from optuna_nars.samplers import NARSSampler  # noqa: E402
from optuna_nars.space import SearchSpace  # noqa: E402
from optuna_nars.training import ClassificationObjective  # noqa: E402


def rank_correlations(x: Sequence[float], y: Sequence[float]) -> dict[str, float | None]:
    """Kendall tau-b and Spearman rho of paired values (NaN pairs dropped)."""
    a, b = np.asarray(x, float), np.asarray(y, float)
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return {"kendall": None, "spearman": None, "n": int(len(a))}
    return {
        "kendall": float(scipy.stats.kendalltau(a, b).statistic),
        "spearman": float(scipy.stats.spearmanr(a, b).statistic),
        "n": int(len(a)),
    }


def value_at(trial: FrozenTrial, step: int) -> float:
    return float(trial.intermediate_values.get(step, math.nan))


def offline_replay(
    trials: list[FrozenTrial], n_cal: int, epochs: int, pruner_kwargs: dict[str, Any]
) -> dict[str, Any]:
    """Calibrate a fresh pruner on the first ``n_cal`` trials; judge it on the rest."""
    calibration, heldout = trials[:n_cal], trials[n_cal:]
    study = optuna.create_study(direction="maximize")
    for t in calibration:
        study.add_trial(optuna.trial.create_trial(
            params=t.params, distributions=t.distributions, value=t.value,
            intermediate_values=dict(t.intermediate_values), user_attrs=dict(t.user_attrs),
            state=TrialState.COMPLETE,
        ))
    pruner = EarlyStoppingPruner(n_calibration_trials=n_cal, **pruner_kwargs)
    returned = pruner.calibrate(study)
    label_step = get_label_step(study)
    assert label_step is not None and label_step == returned
    stored = study._storage.get_study_system_attrs(study._study_id)[LABEL_CORRELATION_KEY]
    calib_curve = {int(s): c for s, c in stored.items()}

    finals = [float(t.value) if t.value is not None else math.nan for t in heldout]
    curve = []
    for step in range(1, epochs + 1):
        corr = rank_correlations([value_at(t, step) for t in heldout], finals)
        curve.append({"step": step, "calibration": calib_curve.get(step), **corr})
    at_label = next(c for c in curve if c["step"] == label_step)
    n = len(trials)
    saved = 1 - (len(calibration) * epochs + len(heldout) * label_step) / (n * epochs)

    # Selection regret: pick the held-out trial ranked first at the label step.
    labels = np.array([value_at(t, label_step) for t in heldout])
    finals_arr = np.array(finals)
    regret = None
    if len(heldout) and not np.all(np.isnan(labels)):
        picked = int(np.nanargmax(labels))
        regret = float(np.nanmax(finals_arr) - finals_arr[picked])
    return {
        "n_calibration": len(calibration),
        "n_heldout": len(heldout),
        "label_step": label_step,
        "saved_fraction": saved,
        "heldout_kendall": at_label["kendall"],
        "heldout_spearman": at_label["spearman"],
        "selection_regret": regret,
        "curve": curve,
    }


def make_sampler(
    kind: str, space: SearchSpace, n_trials: int, seed: int
) -> optuna.samplers.BaseSampler:
    if kind == "nars":
        # The QMC warm start only: every trial is a Sobol candidate from the feasible pool.
        return NARSSampler(space, seed=seed, n_startup_trials=n_trials)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The options, with ``trials``, ``epochs`` and ``n_calibration`` resolved for the mode."""
    parser = benchmark_parser(__doc__, "digits, 12 trials x 4 epochs")
    parser.add_argument("--dataset", choices=("digits", "fashion-mnist"), default="digits")
    parser.add_argument("--trials", type=int, default=None, help="N (quick 12, full 40)")
    parser.add_argument("--epochs", type=int, default=None, help="E (quick 4, full 8)")
    parser.add_argument("--n-calibration", type=int, default=None,
                        help="n_calibration_trials (quick 6, full 8 = the pruner's default)")
    parser.add_argument("--threshold", type=float, default=0.9,
                        help="EarlyStoppingPruner threshold (its default 0.9)")
    parser.add_argument("--correlation", choices=("kendall", "spearman"), default="kendall")
    parser.add_argument("--sampler", choices=("qmc", "nars"), default="qmc",
                        help="optuna's QMCSampler or NARSSampler's QMC warm start")
    parser.add_argument("--max-train-samples", type=int, default=None,
                        help="cap on the training set before the validation split "
                             "(default: all of digits, 800 with --quick; 5000 for "
                             "fashion-mnist)")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parse_run_args(parser, argv, output=None, quiet_optuna=True)

    quick = args.quick
    args.trials = args.trials or (12 if quick else 40)
    args.epochs = args.epochs or (4 if quick else 8)
    args.n_calibration = args.n_calibration or (6 if quick else 8)
    if not 3 <= args.n_calibration < args.trials:
        parser.error(f"--n-calibration must lie in [3, trials), got {args.n_calibration}.")
    return args


def run_interleaved(
    objective: ClassificationObjective, full_study: optuna.Study, es_study: optuna.Study,
    n_trials: int,
) -> tuple[list[float], list[float]]:
    """Seconds per trial of each study: a full trial, then the same candidate online, ..."""
    full_s: list[float] = []
    es_s: list[float] = []
    for i in range(n_trials):  # interleaved: a full trial, then the same candidate online
        start = time.perf_counter()
        full_study.optimize(objective, n_trials=1)
        full_s.append(time.perf_counter() - start)
        es_study.enqueue_trial(full_study.trials[-1].params)
        start = time.perf_counter()
        es_study.optimize(objective, n_trials=1)
        es_s.append(time.perf_counter() - start)
        t_full, t_es = full_study.trials[-1], es_study.trials[-1]
        print(f"trial {i:3d}: full {t_full.value:.4f} ({len(t_full.intermediate_values)} ep, "
              f"{full_s[-1]:.1f} s) | online {t_es.state.name.lower()} at epoch "
              f"{len(t_es.intermediate_values)} ({es_s[-1]:.1f} s)", flush=True)
    return full_s, es_s


def online_summary(
    full_trials: list[FrozenTrial], es_study: optuna.Study, full_s: list[float],
    es_s: list[float], epochs: int,
) -> dict[str, Any]:
    """What the early-stopped study trained and took, against the full study."""
    es_trials = es_study.trials
    n_trials = len(full_trials)
    epochs_full = sum(len(t.intermediate_values) for t in full_trials)
    epochs_es = sum(len(t.intermediate_values) for t in es_trials)
    same_curves = sum(
        all(t_es.intermediate_values[s] == t_full.intermediate_values.get(s)
            for s in t_es.intermediate_values)
        for t_full, t_es in zip(full_trials, es_trials, strict=True)
    )
    return {
        "label_step": get_label_step(es_study),
        "epochs_trained": epochs_es,
        "epochs_trained_full_study": epochs_full,
        "saved_fraction": 1 - epochs_es / (n_trials * epochs),
        "n_pruned": sum(t.state == TrialState.PRUNED for t in es_trials),
        "wall_s": sum(es_s),
        "wall_s_full_study": sum(full_s),
        "wall_ratio": sum(es_s) / sum(full_s),
        "median_trial_s": statistics.median(es_s),
        "median_trial_s_full_study": statistics.median(full_s),
        "identical_curves": same_curves,
    }


def print_report(args: argparse.Namespace, offline: dict[str, Any], online: dict[str, Any]
                 ) -> None:
    """The savings table, the wall times and the correlation curve, in markdown."""
    n_trials, epochs, n_cal = args.trials, args.epochs, args.n_calibration
    print(f"\n{args.dataset}, {n_trials} trials x {epochs} epochs, calibration on the first "
          f"{n_cal} ({args.correlation} >= {args.threshold}):\n")
    print(markdown_table(
        ["", "label step", "epochs trained", "epochs saved", "held-out Kendall @label",
         "held-out Spearman @label", "selection regret"],
        [
            ["offline replay", offline["label_step"],
             f"{n_cal * epochs + (n_trials - n_cal) * offline['label_step']} / "
             f"{n_trials * epochs}", f"{100 * offline['saved_fraction']:.1f}%",
             fmt(offline["heldout_kendall"]), fmt(offline["heldout_spearman"]),
             fmt(offline["selection_regret"], ".4f")],
            ["online (EarlyStoppingPruner)", online["label_step"],
             f"{online['epochs_trained']} / {n_trials * epochs}",
             f"{100 * online['saved_fraction']:.1f}%", "", "", ""],
        ],
    ))
    print(f"\nWall time: online {online['wall_s']:.0f} s vs {online['wall_s_full_study']:.0f} s "
          f"for the NopPruner study (ratio {online['wall_ratio']:.2f}); "
          f"{online['n_pruned']} trials stopped early; {online['identical_curves']}/{n_trials} "
          "online curves identical to the full runs' up to where they stopped.")
    print(f"\nRank correlation with the final accuracy at every epoch "
          f"(calibration: the pruner's {args.correlation} curve on {n_cal} trials; held-out: "
          f"{n_trials - n_cal} trials):\n")
    print(markdown_table(
        ["epoch", f"calibration {args.correlation}", "held-out Kendall", "held-out Spearman"],
        [[c["step"], fmt(c["calibration"]), fmt(c["kendall"]), fmt(c["spearman"])]
         for c in offline["curve"]],
    ))


def trial_records(
    full_trials: list[FrozenTrial], es_trials: list[FrozenTrial], full_s: list[float],
    es_s: list[float], epochs: int,
) -> list[dict[str, Any]]:
    """One entry per candidate: its full curve and how the online study treated it."""
    return [
        {
            "number": t.number, "params": t.params, "value": t.value,
            "curve": [t.intermediate_values.get(s) for s in range(1, epochs + 1)],
            "arch": t.user_attrs.get("arch"), "recipe": t.user_attrs.get("recipe"),
            "flops": t.user_attrs.get("flops"), "seconds_full": full_s[t.number],
            "online_state": es_trials[t.number].state.name,
            "online_epochs": len(es_trials[t.number].intermediate_values),
            "seconds_online": es_s[t.number],
        }
        for t in full_trials
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    n_trials, epochs, n_cal = args.trials, args.epochs, args.n_calibration
    if args.dataset == "digits":
        space = SearchSpace.tiny()
        # Quick mode: a stratified 800 of digits' 1797 images (640 train / 160 val).
        max_train = args.max_train_samples or (800 if args.quick else None)
    else:
        space = SearchSpace.cifar(in_channels=1, num_classes=10)
        max_train = args.max_train_samples or 5000
    objective = ClassificationObjective(
        space, dataset=args.dataset, epochs=epochs, batch_size=args.batch_size, seed=args.seed,
        max_train_samples=max_train, device="cpu",
    )
    pruner_kwargs = {"threshold": args.threshold, "correlation": args.correlation}
    full_study = optuna.create_study(
        direction="maximize", sampler=make_sampler(args.sampler, space, n_trials, args.seed),
        pruner=optuna.pruners.NopPruner(),
    )
    es_study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.RandomSampler(seed=args.seed),
        pruner=EarlyStoppingPruner(n_calibration_trials=n_cal, **pruner_kwargs),
    )
    data = objective.data
    print(f"{args.dataset}: {len(data.train)} train / {len(data.val)} val images; "
          f"{n_trials} trials x {epochs} epochs, {n_cal} calibration trials", flush=True)

    started = time.perf_counter()
    full_s, es_s = run_interleaved(objective, full_study, es_study, n_trials)
    full_trials = full_study.trials
    offline = offline_replay(full_trials, n_cal, epochs, pruner_kwargs)
    online = online_summary(full_trials, es_study, full_s, es_s, epochs)
    print_report(args, offline, online)

    record = {
        "settings": {
            "dataset": args.dataset, "space": "tiny" if args.dataset == "digits" else
            "cifar(in_channels=1, num_classes=10)", "n_trials": n_trials, "epochs": epochs,
            "n_calibration_trials": n_cal, "threshold": args.threshold,
            "correlation": args.correlation, "sampler": args.sampler,
            "max_train_samples": max_train, "train_images": len(data.train),
            "val_images": len(data.val), "batch_size": args.batch_size, "seed": args.seed,
        },
        "wall_s": time.perf_counter() - started,
        "offline": offline,
        "online": online,
        "trials": trial_records(full_trials, es_study.trials, full_s, es_s, epochs),
    }
    suffix = "" if args.dataset == "digits" else f"_{args.dataset.replace('-', '_')}"
    output = args.output or RESULTS_DIR / f"early_stopping{suffix}.json"
    save_results(output, "early_stopping", args, record, git=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
