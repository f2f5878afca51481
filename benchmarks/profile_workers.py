"""Where the sampler's time goes with many workers: ``multi_worker.py`` under a sampling profiler.

Runs ``benchmarks/multi_worker.py`` (its options after ``--``) under ``py-spy record
--subprocesses`` (``pip install py-spy``; not a dependency of the package), or reads a raw
profile recorded before (``--raw``), and attributes the samples of the W-worker processes taken
inside the sampler (below ``TimedSampler``, i.e. what ``multi_worker.py`` counts as sampler
time) to what they were doing:

- ``torch_import``: importing modules (in practice ``torch._dynamo``, which torch imports on a
  process's first use of ``torch.optim``, i.e. its first refit or pretraining);
- ``refit``: the predictor's fit, pool prediction and ranking quality (``fit_predictor``);
- ``genetic_search``: the adaptive genetic algorithm over the predictor;
- ``storage``: database calls (SQLAlchemy), per calling function of ours;
- ``other``: the rest (reading rows, claims, rankings).

py-spy leaves out threads it sees idle (sleeping, and mostly waiting for the database), so the
shares are of the sampler's *busy* samples, and the profiler itself slows the workers: compare
shares, not the run's own throughput, with ``multi_worker.py`` alone.

Run from the repository root (the database server of ``multi_worker.py`` is needed)::

    python benchmarks/profile_workers.py                     # multi_worker.py's full run
    python benchmarks/profile_workers.py -- --quick          # its quick run
    python benchmarks/profile_workers.py --raw profile.txt   # summarise a recorded profile

Results go to ``benchmarks/results/multi_worker_profile.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR, command_line, git_state, markdown_table, utc_now  # noqa: E402

RESULTS = RESULTS_DIR / "multi_worker_profile.json"
HERE = Path(__file__).resolve().parent
_LINE = re.compile(r":\d+\)$")


def frames_of(line: str) -> tuple[str, list[str], int] | None:
    """``(process, frames outermost first, samples)`` of one line of py-spy's raw output."""
    stack, _, count = line.rstrip("\n").rpartition(" ")
    if not stack or not count.isdigit():
        return None
    parts = stack.split(";")
    processes = [p for p in parts if p.startswith("process ")]
    frames = [_LINE.sub(")", p) for p in parts if not p.startswith(("process ", "thread "))]
    return (processes[-1] if processes else ""), frames, int(count)


def category(frames: list[str]) -> tuple[str, str | None]:
    """What a sampler sample was doing, and for storage the function of ours that called it."""
    text = ";".join(frames)
    if "importlib" in text:
        return "torch_import", None
    if "fit_predictor (" in text:
        return "refit", None
    if "._evolve (" in text:
        return "genetic_search", None
    if "sqlalchemy/" in text or "/redis/" in text or "journal" in text:
        ours = [f for f in frames if "optuna_nars/" in f]
        return "storage", (ours[-1].split(" (")[0] if ours else "optuna")
    return "other", None


def summarise(lines: Iterable[str], workers: int) -> dict[str, Any]:
    """Samples of the ``workers``-worker configuration's processes: in all, inside the
    sampler, and the sampler's by :func:`category` (and storage by caller)."""
    marker = f"multi-worker-{workers}-"
    total = in_sampler = 0
    by_category: Counter[str] = Counter()
    storage_callers: Counter[str] = Counter()
    for line in lines:
        parsed = frames_of(line)
        if parsed is None or marker not in parsed[0]:
            continue
        _, frames, count = parsed
        total += count
        inside = [i for i, f in enumerate(frames) if f.startswith("TimedSampler._timed")]
        if not inside:
            continue
        in_sampler += count
        kind, caller = category(frames[inside[0]:])
        by_category[kind] += count
        if caller:
            storage_callers[caller] += count
    share = {k: v / max(1, in_sampler) for k, v in by_category.most_common()}
    callers = {k: v / max(1, in_sampler) for k, v in storage_callers.most_common(10)}
    return {"workers": workers, "samples": total, "sampler_samples": in_sampler,
            "sampler_share_by_category": share, "storage_share_by_caller": callers}


def record(extra: Sequence[str], rate: int, raw: Path, run_output: Path) -> None:
    """``multi_worker.py`` with ``extra`` options under py-spy, its raw profile to ``raw``."""
    if shutil.which("py-spy") is None:
        raise SystemExit("py-spy is not installed: `pip install py-spy`, or pass --raw FILE.")
    cmd = ["py-spy", "record", "--subprocesses", "-r", str(rate), "-f", "raw", "-o", str(raw),
           "--", sys.executable, str(HERE / "multi_worker.py"), "--label", "profiled",
           "--output", str(run_output), *extra]
    subprocess.run(cmd, check=True)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raw", type=Path, help="summarise this py-spy raw profile instead")
    parser.add_argument("--workers", type=int, default=8,
                        help="the worker count of the profiled configuration (default 8)")
    parser.add_argument("--rate", type=int, default=20, help="samples per second (default 20)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON output path")
    args = parser.parse_args(own)
    run: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory() as tmp:
        raw = args.raw
        if raw is None:
            raw, run_output = Path(tmp) / "profile.txt", Path(tmp) / "multi_worker.json"
            record([*extra, "--workers", str(args.workers)], args.rate, raw, run_output)
            run = json.loads(run_output.read_text())["runs"]
            run = next(iter(run.values()))
        with open(raw) as lines:
            summary = summarise(lines, args.workers)
    rows = [[k, f"{100 * v:.0f}%"] for k, v in summary["sampler_share_by_category"].items()]
    print(markdown_table(["in the sampler (busy samples)", "share"], rows))
    rows = [[k, f"{100 * v:.1f}%"] for k, v in summary["storage_share_by_caller"].items()]
    print(markdown_table(["storage, called from", "share of the sampler"], rows))
    out = {"benchmark": "multi_worker_profile", "command": command_line(), "date": utc_now(),
           "git": git_state(), "summary": summary,
           "multi_worker": None if run is None else {"settings": run["settings"],
                                                     "configs": run["configs"]}}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    print(f"Wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
