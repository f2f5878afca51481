"""CPU training throughput of ``build_model`` against torchvision's ``mobilenet_v2``.

torchvision's MobileNetV2 is expressed as an :class:`~optuna_nars.candidate.Architecture`
(stem 32 s2; stages t,c,n,s = (1,16,1,1), (6,24,2,2), (6,32,3,2), (6,64,4,2), (6,96,3,1),
(6,160,3,2), (6,320,1,1); head 1280; ReLU6; no SE; no pooled feature layer; channels scaled with
torchvision's ``_make_divisible(c * width, 8)``), built with ``optuna_nars.models.build_model``,
and checked to have exactly torchvision's parameter count. Then both networks train on the same
random batch (forward, cross-entropy, backward, SGD step with momentum) in the same memory format
(channels-last by default, as ``train_candidate`` uses on the CPU), with repetitions interleaved
ours / torchvision / ours / torchvision ..., so that load from other processes hits both alike.
The table reports the median images/s of each and the ratio ours / torchvision (target >= 0.9).

``--profile`` adds a ``torch.profiler`` breakdown (self CPU time by operator) of one training step
of each network at the first setting.

Run from the repository root::

    python benchmarks/throughput.py --quick   # width 0.5 and 1.0 at 96 px, about a minute
    python benchmarks/throughput.py           # widths 0.5 / 1.0 x inputs 96 / 128 / 160 / 224

Results go to ``benchmarks/results/throughput.json``.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models import mobilenet_v2
from torchvision.models._utils import _make_divisible

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import RESULTS_DIR, benchmark_parser, markdown_table, parse_run_args, save_results  # noqa: E402

from optuna_nars.candidate import Architecture, StageArch  # noqa: E402
from optuna_nars.cost import count_flops, count_params  # noqa: E402
from optuna_nars.models import build_model  # noqa: E402

RESULTS = RESULTS_DIR / "throughput.json"
MV2_STAGES = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)
NUM_CLASSES = 1000
DROPOUT = 0.2  # torchvision's MobileNetV2 classifier dropout


def mobilenet_v2_arch(width: float, resolution: int) -> Architecture:
    """torchvision's ``mobilenet_v2(width_mult=width)`` as an Architecture."""
    stages = tuple(
        StageArch(kernel=3, expansion=float(t), channels=_make_divisible(c * width, 8), depth=n,
                  stride=s, se=False, activation="relu6")
        for t, c, n, s in MV2_STAGES
    )
    return Architecture(
        resolution=resolution,
        stem_channels=_make_divisible(32 * width, 8),
        stem_stride=2,
        activation="relu6",
        stages=stages,
        head_channels=_make_divisible(1280 * max(1.0, width), 8),
        feature_channels=None,
    )


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def make_models(width: float, resolution: int, channels_last: bool) -> dict[str, nn.Module]:
    torch.manual_seed(0)
    models = {
        "ours": build_model(mobilenet_v2_arch(width, resolution), NUM_CLASSES, 3,
                            dropout=DROPOUT),
        "torchvision": mobilenet_v2(width_mult=width, num_classes=NUM_CLASSES),
    }
    for model in models.values():
        model.train()
        if channels_last:
            model.to(memory_format=torch.channels_last)
    return models


class Stepper:
    """One network's training step on a fixed batch."""

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        self.model, self.x, self.y = model, x, y
        self.optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        self.criterion = nn.CrossEntropyLoss()

    def step(self) -> None:
        loss = self.criterion(self.model(self.x), self.y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def timed(self, steps: int) -> float:
        """Images per second over ``steps`` training steps."""
        start = time.perf_counter()
        for _ in range(steps):
            self.step()
        return steps * len(self.y) / (time.perf_counter() - start)


def profile_step(stepper: Stepper, top: int) -> list[dict[str, Any]]:
    from torch.profiler import ProfilerActivity, profile

    stepper.step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        stepper.step()
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    return [
        {"op": e.key, "calls": e.count, "self_cpu_ms": e.self_cpu_time_total / 1e3}
        for e in rows[:top]
    ]


def module_counts(model: nn.Module) -> dict[str, int]:
    return dict(Counter(type(m).__name__ for m in model.modules()))


def run_setting(
    width: float, resolution: int, *, batch: int, reps: int, steps: int, warmup: int,
    channels_last: bool,
) -> dict[str, Any]:
    models = make_models(width, resolution, channels_last)
    arch = mobilenet_v2_arch(width, resolution)
    params = {name: n_params(m) for name, m in models.items()}
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, resolution, resolution, generator=generator)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, NUM_CLASSES, (batch,), generator=generator)
    steppers = {name: Stepper(m, x, y) for name, m in models.items()}
    for stepper in steppers.values():
        for _ in range(warmup):
            stepper.step()
    measured: dict[str, list[float]] = {name: [] for name in steppers}
    for rep in range(reps):
        # ABAB, and the first of each pair alternates (ABBA over two reps) to cancel drift.
        order = list(steppers) if rep % 2 == 0 else list(reversed(steppers))
        for name in order:
            measured[name].append(steppers[name].timed(steps))
    ours = statistics.median(measured["ours"])
    tv = statistics.median(measured["torchvision"])
    return {
        "width": width,
        "resolution": resolution,
        "arch": str(arch),
        "params_ours": params["ours"],
        "params_torchvision": params["torchvision"],
        "params_cost_model": count_params(arch, 3, NUM_CLASSES),
        "params_match": params["ours"] == params["torchvision"],
        "mflops": count_flops(arch, 3, NUM_CLASSES) / 1e6,
        "images_per_s": measured,
        "median_ours": ours,
        "median_torchvision": tv,
        "ratio": ours / tv,
    }


def profile_networks(
    width: float, resolution: int, batch: int, channels_last: bool
) -> dict[str, Any]:
    """Profile one training step of each network at one setting, and print the breakdown."""
    models = make_models(width, resolution, channels_last)
    x = torch.randn(batch, 3, resolution, resolution)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, NUM_CLASSES, (batch,))
    profile: dict[str, Any] = {"width": width, "resolution": resolution, "ops": {},
                               "modules": {}}
    for name, model in models.items():
        profile["ops"][name] = profile_step(Stepper(model, x, y), top=15)
        profile["modules"][name] = module_counts(model)
        print(f"\nProfile of one training step, {name} (width {width}, input {resolution}):\n")
        print(markdown_table(
            ["op", "calls", "self CPU (ms)"],
            [[e["op"], e["calls"], f"{e['self_cpu_ms']:.1f}"]
             for e in profile["ops"][name]],
        ))
    print("\nModule counts:\n")
    kinds = sorted(set(profile["modules"]["ours"]) | set(profile["modules"]["torchvision"]))
    print(markdown_table(
        ["module", "ours", "torchvision"],
        [[k, profile["modules"]["ours"].get(k, 0), profile["modules"]["torchvision"].get(k, 0)]
         for k in kinds],
    ))
    return profile


def main(argv: Sequence[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, "two small settings (~1 min)")
    parser.add_argument("--widths", type=float, nargs="+", default=None)
    parser.add_argument("--resolutions", type=int, nargs="+", default=None)
    parser.add_argument("--batch", type=int, default=32, help="training batch size")
    parser.add_argument("--reps", type=int, default=None, help="interleaved repetitions")
    parser.add_argument("--steps", type=int, default=3, help="training steps per repetition")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per network")
    parser.add_argument("--memory-format", choices=("channels_last", "contiguous"),
                        default="channels_last", help="the same for both networks")
    parser.add_argument("--profile", action="store_true",
                        help="torch.profiler breakdown of one step of each at the first setting")
    args = parse_run_args(parser, argv, output=RESULTS, seed=False)

    quick = args.quick
    widths = args.widths or [0.5, 1.0]
    resolutions = args.resolutions or ([96] if quick else [96, 128, 160, 224])
    reps = args.reps or (5 if quick else 7)
    channels_last = args.memory_format == "channels_last"
    started = time.perf_counter()
    results = []
    for width in widths:
        for resolution in resolutions:
            print(f"width {width}, input {resolution}: {reps} x {args.steps} steps each ...",
                  flush=True)
            results.append(run_setting(
                width, resolution, batch=args.batch, reps=reps, steps=args.steps,
                warmup=args.warmup, channels_last=channels_last,
            ))

    print(f"\nTraining throughput, batch {args.batch}, {args.memory_format}, "
          f"{args.threads} thread(s), median of {reps} interleaved repetitions of "
          f"{args.steps} steps:\n")
    print(markdown_table(
        ["width", "input", "MFLOPs", "params ours", "params torchvision", "ours (img/s)",
         "torchvision (img/s)", "ours / torchvision"],
        [[r["width"], r["resolution"], f"{r['mflops']:.0f}", f"{r['params_ours']:,}",
          f"{r['params_torchvision']:,}", f"{r['median_ours']:.1f}",
          f"{r['median_torchvision']:.1f}", f"{r['ratio']:.3f}"] for r in results],
    ))
    ratios = [r["ratio"] for r in results]
    print(f"\nRatio ours / torchvision: median {statistics.median(ratios):.3f}, "
          f"min {min(ratios):.3f} (target >= 0.9).")
    if not all(r["params_match"] for r in results):
        print("WARNING: parameter counts differ; the architectures do not match.")

    profile = (profile_networks(widths[0], resolutions[0], args.batch, channels_last)
               if args.profile else None)

    record = {
        "settings": {"batch": args.batch, "reps": reps, "steps": args.steps,
                     "warmup": args.warmup, "memory_format": args.memory_format,
                     "optimizer": "SGD(lr=0.01, momentum=0.9)", "num_classes": NUM_CLASSES},
        "wall_s": time.perf_counter() - started,
        "results": results,
        "profile": profile,
    }
    save_results(args.output, "throughput", args, record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
