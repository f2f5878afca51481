"""The sampler benchmark suite: NARSSampler against Optuna's samplers on third-party problems.

Usage (from the repository root)::

    python -m benchmarks run --quick          # a few minutes: 3 seeds x 50 trials, tabular
    python -m benchmarks run                  # the full tabular grid: 10 seeds x 200 trials
    python -m benchmarks run --problems fashion-mnist --seeds 3 --n-trials 30
    python -m benchmarks report               # RESULTS.md and plots from what is recorded
    python -m benchmarks list                 # problems and samplers

``run`` skips runs already recorded (so an interrupted grid resumes), then writes the report.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks._common import ROOT, command_line, git_state, machine_info, utc_now
from benchmarks.suite.problems import PROBLEMS, TABULAR, get_problem, problem_names
from benchmarks.suite.report import markdown, plot, summarize
from benchmarks.suite.runner import SAMPLERS, Task, load_runs, run_grid

FULL_DIR = ROOT / "benchmarks" / "results" / "suite"
QUICK_DIR = ROOT / "benchmarks" / "results" / "suite-quick"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a problem x sampler x seed grid, then report")
    run.add_argument("--quick", action="store_true",
                     help="3 seeds x 50 trials on the tabular problems, to suite-quick/")
    run.add_argument("--problems", nargs="+", default=None,
                     help="problem names, 'tabular' or 'all' (default: tabular)")
    run.add_argument("--samplers", nargs="+", default=None, choices=sorted(SAMPLERS),
                     help="default: all")
    run.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default 10)")
    run.add_argument("--n-trials", type=int, default=None, help="default 200")
    run.add_argument("--gp-trials", type=int, default=None,
                     help="trials for GPSampler, whose cost grows cubically (default: --n-trials)")
    run.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    run.add_argument("--out", type=Path, default=None, help="results directory")
    run.add_argument("--no-report", action="store_true")
    report = sub.add_parser("report", help="write the report from recorded runs")
    report.add_argument("--quick", action="store_true", help="report suite-quick/")
    report.add_argument("--out", type=Path, default=None, help="results directory")
    report.add_argument("--markdown", type=Path, default=None,
                        help="report file (default: benchmarks/RESULTS.md, or "
                             "<out>/RESULTS.md for --quick / --out)")
    sub.add_parser("list", help="list problems and samplers")
    return parser


def _run(args: argparse.Namespace) -> int:
    quick = args.quick
    names = problem_names(args.problems or ["tabular"])
    samplers = args.samplers or list(SAMPLERS)
    seeds = args.seeds if args.seeds is not None else (3 if quick else 10)
    n_trials = args.n_trials if args.n_trials is not None else (50 if quick else 200)
    gp_trials = args.gp_trials if args.gp_trials is not None else n_trials
    if min(seeds, n_trials, gp_trials, args.jobs) < 1:
        print("error: --seeds, --n-trials, --gp-trials and --jobs must be >= 1", file=sys.stderr)
        return 2
    out = args.out or (QUICK_DIR if quick else FULL_DIR)
    for name in names:
        get_problem(name)  # fail before any run on a missing table or dataset
    tasks = [
        Task(p, s, seed, min(n_trials, gp_trials) if s == "gp" else n_trials)
        for p in names for s in samplers for seed in range(seeds)
    ]
    start = time.perf_counter()
    ran, failed = run_grid(tasks, out, jobs=args.jobs,
                           extra={"commit": git_state()["commit"], "date": utc_now()})
    print(f"{ran} run(s) recorded, {failed} failed, in {time.perf_counter() - start:.0f} s; "
          f"{len(tasks) - ran - failed} were already recorded in {out}.")
    meta = {"command": command_line(), "date": utc_now(), "machine": machine_info(1),
            "git": git_state(), "grid_wall_s": round(time.perf_counter() - start, 1),
            "grid": {"problems": names, "samplers": samplers, "seeds": seeds,
                     "n_trials": n_trials, "gp_trials": gp_trials, "jobs": args.jobs}}
    (out / "last_command.json").write_text(json.dumps(meta, indent=2))
    if failed:
        return 1
    if not args.no_report:
        return _report(out, None if (quick or args.out) else ROOT / "benchmarks" / "RESULTS.md")
    return 0


def _report(out: Path, md_path: Path | None) -> int:
    runs = load_runs(out)
    if not runs:
        print(f"error: no recorded runs in {out}; run `python -m benchmarks run` first.",
              file=sys.stderr)
        return 1
    summary = summarize(runs)
    plots = plot(runs, out / "plots")
    md_path = md_path or out / "RESULTS.md"
    meta_path = out / "last_command.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    rel = Path("results") / out.name / "plots" if md_path.parent == ROOT / "benchmarks" \
        else Path("plots")
    body = markdown(summary, {k: str(rel / v) for k, v in plots.items()})
    machine = meta.get("machine", {})
    commits = sorted({r.get("commit", "")[:10] for r in runs})
    wall = sum(r["wall_s"] for r in runs)
    header = [
        "# Sampler benchmark results\n",
        f"Generated {utc_now()} by `python -m benchmarks report` from {len(runs)} recorded "
        f"runs in `{out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}` "
        f"(library commits {', '.join(commits)}).",
        f"Last grid command: `{meta.get('command', '?')}` ({meta.get('date', '?')}); "
        f"{wall / 3600:.2f} CPU-hours of runs.",
        f"Machine: {machine.get('platform', '?')}, {machine.get('cpu_count', '?')} CPUs, "
        f"Python {machine.get('python', '?')}, optuna {machine.get('optuna', '?')}, "
        f"torch {machine.get('torch', '?')}.\n",
    ]
    md_path.write_text("\n".join(header) + "\n" + body + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print(f"Wrote {md_path} and {len(plots)} plot(s) in {out / 'plots'}.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list":
        for name in PROBLEMS:
            print(f"{name}{'  (tabular)' if name in TABULAR else '  (real training)'}")
        print("samplers:", ", ".join(SAMPLERS))
        return 0
    if args.command == "run":
        return _run(args)
    out = args.out or (QUICK_DIR if args.quick else FULL_DIR)
    default_md = None if (args.quick or args.out) else ROOT / "benchmarks" / "RESULTS.md"
    return _report(out, args.markdown or default_md)


if __name__ == "__main__":
    raise SystemExit(main())
