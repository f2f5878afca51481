"""The argument parser: one function per command's options, the options several commands share
and the argparse value types.

Nothing here imports torch, NumPy or Optuna, so that ``optuna-nars --help`` and
``optuna-nars COMMAND --help`` answer at once; the commands import what they need when they run.
"""

from __future__ import annotations

import argparse
import datetime
import math
import re
from collections.abc import Callable
from typing import TypeVar

from optuna_nars import __version__

__all__ = [
    "DEFAULT_N_TRIALS",
    "DEFAULT_STORAGE",
    "DEFAULT_STUDY",
    "PRESETS",
    "budget_from_args",
    "at_least_2",
    "at_least_3",
    "budget_list",
    "build_parser",
    "duration",
    "non_negative_int",
    "positive_float",
    "positive_int",
    "seed",
    "set_torch_threads",
    "threshold",
]

PRESETS = ("tiny", "cifar", "fbnetv3")
DEFAULT_STORAGE = "sqlite:///optuna-nars.db"
DEFAULT_STUDY = "nars"
DEFAULT_N_TRIALS = 20

_T = TypeVar("_T", int, float)


# ---- value types --------------------------------------------------------------------------------


def _checked(convert: Callable[[str], _T], is_valid: Callable[[_T], bool], requirement: str,
             name: str) -> Callable[[str], _T]:
    """An argparse type converting the text and insisting on ``is_valid``; both failures say
    ``must be <requirement>, got <text>``."""

    def parse(text: str) -> _T:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {text!r}") from None
        if not is_valid(value):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {text}")
        return value

    parse.__name__ = parse.__qualname__ = name
    return parse


positive_int = _checked(int, lambda v: v >= 1, "an integer >= 1", "positive_int")
non_negative_int = _checked(int, lambda v: v >= 0, "an integer >= 0", "non_negative_int")
seed = _checked(int, lambda v: 0 <= v < 2**32, "an integer in [0, 2**32)", "seed")
# What the library requires: a split needs two samples, a rank correlation three trials.
at_least_2 = _checked(int, lambda v: v >= 2, "an integer >= 2", "at_least_2")
at_least_3 = _checked(int, lambda v: v >= 3, "an integer >= 3", "at_least_3")
positive_float = _checked(float, lambda v: math.isfinite(v) and v > 0, "a positive number",
                          "positive_float")


def budget_list(text: str) -> list[float]:
    """Comma-separated positive numbers, such as ``5e5,1e6,2e6``."""
    parts = [p for p in text.replace(" ", "").split(",") if p]
    if not parts:
        raise argparse.ArgumentTypeError(f"must be comma-separated numbers, got {text!r}")
    return [positive_float(p) for p in parts]


def threshold(text: str) -> float:
    """A rank correlation in (0, 1]."""
    value = positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must lie in (0, 1], got {text}")
    return value


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> datetime.timedelta:
    """A duration such as ``90s``, ``10m``, ``2h``, ``1h30m`` or ``1.5d`` (a unit is required)."""
    parts = _DURATION.findall(text.strip().lower())
    if not parts or "".join(n + u for n, u in parts) != text.strip().lower():
        raise argparse.ArgumentTypeError(
            f"must be a duration with a unit, such as 90s, 10m, 2h or 1h30m, got {text!r}")
    return datetime.timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in parts))


def _dataset_names() -> list[str]:
    """The built-in dataset names, for ``--dataset``'s help (the catalog imports no torch)."""
    from optuna_nars.data.catalog import DATASETS

    return sorted(DATASETS)


# ---- options several commands share --------------------------------------------------------------


def _study_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--storage", default=DEFAULT_STORAGE,
                        help="a database URL (sqlite:///..., postgresql://..., mysql+pymysql://"
                        "...), redis://... or a JournalStorage file (an existing one, or a new "
                        f"*.log) (default: {DEFAULT_STORAGE})")
    parser.add_argument("--study-name", default=DEFAULT_STUDY,
                        help=f"study name (default: {DEFAULT_STUDY})")


def _budget_options(parser: argparse.ArgumentParser, *, described: bool = True,
                    default: str = "") -> None:
    """``--max-flops`` and ``--max-params``; ``default`` says what leaving them out means."""
    for flag, what in (("--max-flops", "multiply-adds per image"), ("--max-params", "parameters")):
        parser.add_argument(flag, type=positive_float, default=None,
                            help=f"budget: {what}{default}" if described else None)


def _latency_options(parser: argparse.ArgumentParser) -> None:
    """``--latency-table`` and ``--max-latency-ms`` (which needs the table)."""
    parser.add_argument("--latency-table", metavar="PATH", default=None,
                        help="a latency table of the space (from `optuna-nars latency-table`): "
                        "makes latency_ms a cost")
    parser.add_argument("--max-latency-ms", type=positive_float, default=None,
                        help="budget: milliseconds per batch, summed from --latency-table")


def _predictor_options(parser: argparse.ArgumentParser, what: str) -> None:
    """The options of the commands that refit a study's predictor (``retarget``, ``family``);
    ``what`` names what ``--json`` writes."""
    parser.add_argument("--json", metavar="PATH", default=None,
                        help=f"also write {what} as JSON to PATH")
    parser.add_argument("--format", choices=("table", "json"), default="table",
                        help="stdout format (default: table)")
    parser.add_argument("--space", default=None,
                        help="the space, for studies made in Python without one stored")
    parser.add_argument("--seed", type=seed, default=None,
                        help="predictor seed (default: the study's)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="CPU threads for torch (default: torch's)")


def budget_from_args(args: argparse.Namespace) -> dict[str, float]:
    """The budget flags given, as ``{"flops": ..., "params": ..., "latency_ms": ...}`` (an
    empty dict for none)."""
    flags = (("flops", args.max_flops), ("params", args.max_params),
             ("latency_ms", getattr(args, "max_latency_ms", None)))
    return {name: value for name, value in flags if value is not None}


def set_torch_threads(threads: int | None) -> None:
    """Apply ``--threads`` (torch is imported only when it is given)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


# ---- one function per command ------------------------------------------------------------------


def _search_arguments(search: argparse.ArgumentParser) -> None:
    search.add_argument("--space", default=None,
                        help=f"a preset {PRESETS} or a SearchSpace JSON file (default: the "
                        "resumed study's, else tiny)")
    search.add_argument("--dataset", default=None,
                        help=f"one of {_dataset_names()} or folder:<path> (default: digits)")
    search.add_argument("--data-dir", default=None, help="where the dataset lives")
    search.add_argument("--download", action="store_true",
                        help="download the dataset if missing (needs a network)")
    search.add_argument("--epochs", type=positive_int, default=None,
                        help="epochs per full-length trial (default: 4)")
    search.add_argument("--batch-size", type=positive_int, default=None, help="(default: 64)")
    search.add_argument("--max-train-samples", type=at_least_2, default=None,
                        help="cap the training pool (for quick runs on large datasets)")
    how_many = search.add_mutually_exclusive_group()
    how_many.add_argument("--n-trials", type=positive_int, default=None,
                          help=f"trials to run now (default: {DEFAULT_N_TRIALS})")
    how_many.add_argument("--total-trials", type=positive_int, default=None, metavar="N",
                          help="run until the study has N finished trials (trials failed by an "
                          "interruption not counted: their candidates run again); the same "
                          "command resumes an interrupted search")
    _budget_options(search)
    _latency_options(search)
    _study_options(search)
    search.add_argument("--n-jobs", type=positive_int, default=1,
                        help="trials in parallel threads (default: 1)")
    search.add_argument("--seed", type=seed, default=None, help="(default: 0)")
    search.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: auto)")
    search.add_argument("--threads", type=positive_int, default=None,
                        help="CPU threads for torch (default: torch's; 1 is best on a busy "
                        "machine)")
    search.add_argument("--calibration-trials", type=at_least_3, default=None,
                        help="full-length trials before early stopping (default: 6)")
    search.add_argument("--threshold", type=threshold, default=None,
                        help="rank correlation that fixes the label step (default: 0.9)")
    search.add_argument("--top", type=positive_int, default=5,
                        help="best trials to list at the end and in the note (default: 5)")
    search.add_argument("--plot-every", type=non_negative_int, default=5,
                        help="save the dashboard plots every N trials, 0 for never "
                        "(default: 5; always at the end)")
    search.add_argument("--no-dashboard", dest="dashboard", action="store_false",
                        help="keep no note or plots for optuna-dashboard")
    search.add_argument("--no-progress", dest="progress", action="store_false",
                        help="print no line per trial")
    search.add_argument("--verbose", action="store_true", help="also log Optuna's messages")


def _retarget_arguments(retarget: argparse.ArgumentParser) -> None:
    _study_options(retarget)
    _budget_options(retarget, default=" (default: the study's budget)")
    _latency_options(retarget)
    retarget.add_argument("--top", type=positive_int, default=5,
                          help="pairs to list (default: 5)")
    retarget.add_argument("--distinct", choices=("arch", "pair"), default="arch",
                          help="arch: one (the best) recipe per architecture; pair: every pair "
                          "(default: arch)")
    _predictor_options(retarget, "the proposals")


def _export_arguments(export: argparse.ArgumentParser) -> None:
    _study_options(export)
    export.add_argument("--trial", type=non_negative_int, default=None,
                        help="trial number (default: the best)")
    export.add_argument("-o", "--output", default="-",
                        help="file to write, - for stdout (default: -)")
    export.add_argument("--space", default=None,
                        help="the space, for studies made in Python without one stored")


def _space_arguments(space: argparse.ArgumentParser) -> None:
    space.add_argument("--space", default="tiny",
                       help=f"a preset {PRESETS} or a JSON file (default: tiny)")
    space.add_argument("--in-channels", type=positive_int, default=None)
    space.add_argument("--num-classes", type=positive_int, default=None)
    _budget_options(space, described=False)
    space.add_argument("--samples", type=positive_int, default=20_000,
                       help="Sobol samples for the cost ranges (default: 20000)")
    space.add_argument("--json", action="store_true",
                       help="print the space as JSON (a start for a custom --space file)")


def _fail_stale_arguments(fail_stale: argparse.ArgumentParser) -> None:
    _study_options(fail_stale)
    fail_stale.add_argument("--older-than", type=duration, required=True, metavar="DURATION",
                            help="fail the trials RUNNING for longer than this, e.g. 90s, 10m, "
                            "2h; make it longer than your longest trial (a live worker whose "
                            "trial was failed stops with an error)")
    fail_stale.add_argument("--dry-run", action="store_true",
                            help="list the trials that would be failed; change nothing")


def _family_arguments(family: argparse.ArgumentParser) -> None:
    _study_options(family)
    family.add_argument("--budgets", type=budget_list, required=True, metavar="B1,B2,...",
                        help="the ladder of budgets of --metric, e.g. 5e5,1e6,2e6")
    family.add_argument("--metric", choices=("flops", "params", "latency_ms"), default="flops",
                        help="the cost the budgets limit (default: flops; latency_ms needs a "
                        "latency table)")
    family.add_argument("--latency-table", metavar="PATH", default=None,
                        help="a latency table of the space (default: the study's, if it was "
                        "searched with one)")
    family.add_argument("--train", action="store_true",
                        help="train the members through the study (recorded as trials, with "
                        "their budgets as constraints) and show predicted against measured")
    family.add_argument("--device", default=None,
                        help="for --train: cpu, cuda, ... (default: auto)")
    family.add_argument("--png", metavar="PATH", default=None,
                        help="draw the accuracy-vs-cost fronts (family and measured trials) "
                        "to a PNG")
    family.add_argument("--no-dashboard", dest="dashboard", action="store_false",
                        help="do not save the fronts' plot to the study for optuna-dashboard")
    _predictor_options(family, "the family")


def _latency_table_arguments(latency: argparse.ArgumentParser) -> None:
    latency.add_argument("--space", default="tiny",
                         help=f"a preset {PRESETS} or a SearchSpace JSON file (default: tiny)")
    latency.add_argument("--in-channels", type=positive_int, default=None,
                         help="input channels of the task (default: the space's)")
    latency.add_argument("--num-classes", type=positive_int, default=None,
                         help="classes of the task (default: the space's)")
    latency.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (default: cpu)")
    latency.add_argument("--threads", type=positive_int, default=1,
                         help="CPU threads while timing (default: 1)")
    latency.add_argument("--batch-size", type=positive_int, default=1,
                         help="images per timed forward pass (default: 1)")
    latency.add_argument("--passes", type=positive_int, default=10,
                         help="rounds over all blocks, each timing every block once, so that "
                         "a block's runs lie seconds apart (default: 10)")
    latency.add_argument("--repeats", type=positive_int, default=10,
                         help="timed runs per block and round (default: 10)")
    latency.add_argument("--warmup", type=positive_int, default=10,
                         help="untimed calls per block and round first (default: 10)")
    latency.add_argument("--run-ms", type=positive_float, default=5.0,
                         help="about how long one timed run lasts (default: 5)")
    latency.add_argument("--statistic", choices=("min", "median"), default="min",
                         help="what a candidate's latency sums of its blocks' runs: the minimum "
                         "(steady: other work only ever adds time), or the median of the "
                         "rounds' medians; both are kept (default: min)")
    latency.add_argument("--calibrate", type=non_negative_int, default=50, metavar="N",
                         help="then time N random networks whole and fit measured = scale x "
                         "summed + overhead to them: a network's cost beyond its blocks timed "
                         "alone (default: 50; 0: none)")
    latency.add_argument("-o", "--output", required=True, metavar="PATH",
                         help="the table's JSON file; a partial one there is continued")
    latency.add_argument("--no-progress", dest="progress", action="store_false",
                         help="show no progress bar")


# Each command: its name, the function adding its options, its line in ``optuna-nars --help``
# and the description its own ``--help`` starts with.
_COMMANDS: tuple[tuple[str, Callable[[argparse.ArgumentParser], None], str, str], ...] = (
    ("search", _search_arguments,
     "run a study: NARSSampler, the early-stopping pruner and the provided objective",
     "Search an architecture and its training recipe under a budget, keeping an optuna-dashboard "
     "note and plots current. An existing study is resumed with the settings it was searched "
     "with, unless options override them."),
    ("retarget", _retarget_arguments,
     "the best predicted pairs of a finished study for a new budget, without training",
     "Refit the study's accuracy predictor and search it for the top architecture-recipe pairs "
     "under a new FLOPs / parameter budget. No training: seconds on a CPU."),
    ("family", _family_arguments,
     "a model family: the study's predictor re-targeted to a ladder of budgets",
     "Re-target the study's accuracy predictor to each budget of a ladder (FLOPs, parameters "
     "or latency) and list the best predicted architecture-recipe pair of each, with its "
     "predicted accuracy and cost; --train trains them through the study; --png draws the "
     "accuracy-vs-cost fronts."),
    ("export", _export_arguments,
     "write a trial's architecture and recipe as JSON",
     "Write a trial's architecture-recipe pair (default: the best by accuracy at the label step) "
     "as JSON: Candidate.to_json() plus metadata. Load it with "
     "optuna_nars.export.load_candidate / build_from_export."),
    ("space", _space_arguments,
     "describe a search space",
     "Parameters, size, FLOPs and parameter ranges of a space, and how much of it fits a budget "
     "(exit code 1 if nothing does)."),
    ("latency-table", _latency_table_arguments,
     "measure every block of a space on this device: a latency look-up table",
     "Time every distinct block (stem, each stage's blocks at their input sizes and widths, "
     "head) of a search space on this machine with torch.utils.benchmark, and write a "
     "versioned JSON table for `search --latency-table` and `family --metric latency_ms`. "
     "An interrupted run continues from the partial file."),
    ("fail-stale", _fail_stale_arguments,
     "fail the trials of killed workers, so that their candidates run again",
     "Mark FAIL the trials RUNNING for longer than --older-than, recording why (the trial "
     "attribute nars:interrupted), so that the sampler proposes their candidates again. For "
     "storages without a heartbeat (JournalStorage files, Redis), where a killed worker's trial "
     "stays RUNNING forever. Safe to run while workers run, and from two places at once."),
)


def build_parser() -> argparse.ArgumentParser:
    """The ``optuna-nars`` parser; the chosen command's name is ``args.command``."""
    parser = argparse.ArgumentParser(
        prog="optuna-nars",
        description="FBNetV3's neural architecture-recipe search (NARS) on Optuna. "
        "Exit codes: 0 ok, 1 run-time error, 2 bad arguments, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, add_arguments, summary, description in _COMMANDS:
        add_arguments(sub.add_parser(name, help=summary, description=description))
    return parser
