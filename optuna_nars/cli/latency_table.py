"""``optuna-nars latency-table``: measure every distinct block of a search space on this
device and write the table (:func:`optuna_nars.cost.measure.build_table` does the work)."""

from __future__ import annotations

import argparse

from optuna_nars.cli._errors import EXIT_OK, CLIError, to_stderr
from optuna_nars.cli._study import load_space
from optuna_nars.cli.search import check_device

__all__ = ["cmd_latency_table"]


def cmd_latency_table(args: argparse.Namespace) -> int:
    """Run ``optuna-nars latency-table``."""
    from optuna_nars.cost.measure import build_table, time_module

    check_device(args.device)
    space = load_space(args.space, args.in_channels, args.num_classes)
    timer = time_module(args.threads, repeats=args.repeats, warmup=args.warmup,
                        run_ms=args.run_ms)
    try:
        table = build_table(space, args.output, device=args.device, threads=args.threads,
                            batch_size=args.batch_size, timer=timer, passes=args.passes,
                            progress=args.progress,
                            statistic=f"{args.statistic}_ms", calibrate=args.calibrate,
                            info={"space": args.space, "repeats": args.repeats,
                                  "warmup": args.warmup, "run_ms": args.run_ms})
    except (ValueError, OSError) as err:
        raise CLIError(str(err)) from None
    ms = sorted(e[table.statistic] for e in table.entries.values())
    to_stderr(f"Wrote {args.output}: {len(table)} blocks on {args.device} "
              f"({args.threads} thread{'s' if args.threads != 1 else ''}, batch "
              f"{args.batch_size}), {ms[0]:.4f}-{ms[-1]:.4f} ms per block"
              + (f", calibrated: {table.scale:.3f} x sum {table.overhead_ms:+.4f} ms"
                 if args.calibrate
                 else "") + ".")
    return EXIT_OK
