"""Generate the exhaustive width5x8 table: every 5-layer MLP whose hidden widths come from 8
options, trained on scikit-learn's digits, in the spirit of NATS-Bench's size-search space.

NATS-Bench's size space (Dong et al. 2021) is a 5-layer CNN whose layers each take one of 8
channel counts {8, 16, ..., 64}; LayerNAS's paper searches it for the best model under 50% of
the largest model's FLOPs. Its table is not available offline, so this script builds a table of
the same shape from real training: all 8^5 = 32,768 MLPs ``64 -> w1 -> ... -> w5 -> 10`` (ReLU)
with ``w_i`` in {4, 8, ..., 32} (half NATS-Bench's widths, to keep generation to minutes),
each trained with a fixed recipe under ``--seeds`` training seeds, recording the validation
accuracy of each run and the exact FLOPs and parameter counts.

Many models train at once: a chunk of models is one batched network of the largest width whose
weights are ``(models, in, out)`` tensors (``torch.baddbmm``), with a 0/1 mask per model and
layer that zeroes the units a model does not have. A masked unit's output is zero, so it neither
feeds the next layer nor receives a gradient: each model computes exactly what the narrow
network would, and Adam (elementwise) keeps the models independent. Initialisation uses each
model's own fan-in.

Usage (from the repository root; about 10 minutes on two cores)::

    python -m benchmarks.width_table                 # writes benchmarks/data/width5x8/
    python -m benchmarks.width_table --limit 512 --output /tmp/w.npz   # a quick try

The output is deterministic for a given torch version and ``--threads``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmarks._common import ROOT, git_state, machine_info, utc_now

WIDTHS = (4, 8, 12, 16, 20, 24, 28, 32)
N_LAYERS = 5
IN_FEATURES, N_CLASSES = 64, 10
DEFAULT_OUTPUT = ROOT / "benchmarks" / "data" / "width5x8" / "width5x8_digits.npz"


def all_configs() -> np.ndarray:
    """Every width-index tuple, ``(8**5, 5)`` int8, in lexicographic order (row = base-8 code)."""
    return np.array(list(itertools.product(range(len(WIDTHS)), repeat=N_LAYERS)), dtype=np.int8)


def layer_sizes(widths: np.ndarray) -> np.ndarray:
    """``(n, 7)`` sizes input, w1..w5, classes of each configuration's linear layers."""
    n = len(widths)
    return np.concatenate(
        [np.full((n, 1), IN_FEATURES), widths, np.full((n, 1), N_CLASSES)], axis=1
    ).astype(np.int64)


def flops_and_params(widths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact forward FLOPs of one input (2 per multiply-accumulate, as
    ``torch.utils.flop_counter`` counts a matmul; bias and ReLU not counted) and parameter
    counts (weights and biases) of each configuration, ``widths`` in units (not indices)."""
    sizes = layer_sizes(widths)
    macs = np.sum(sizes[:, :-1] * sizes[:, 1:], axis=1)
    params = macs + np.sum(sizes[:, 1:], axis=1)
    return 2 * macs, params


def build_mlp(widths: tuple[int, ...]) -> nn.Sequential:
    """The configuration as a plain torch module (to check the cost columns against)."""
    sizes = [IN_FEATURES, *widths, N_CLASSES]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def digits_split(seed: int = 0) -> tuple[torch.Tensor, ...]:
    """scikit-learn's digits (1,797 8x8 images, bundled), standardised with the training
    statistics; a fixed stratified split into 1,297 training and 500 validation images."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=500, stratify=y, random_state=seed)
    mean, std = x_tr.mean(axis=0), x_tr.std(axis=0) + 1e-6
    to_x = lambda a: torch.tensor((a - mean) / std, dtype=torch.float32)  # noqa: E731
    return to_x(x_tr), torch.tensor(y_tr), to_x(x_va), torch.tensor(y_va)


def train_chunk(
    widths: np.ndarray, data: tuple[torch.Tensor, ...], seed: int, steps: int, batch: int,
    lr: float,
) -> np.ndarray:
    """Train ``len(widths)`` models at once; their validation accuracies."""
    x_tr, y_tr, x_va, y_va = data
    gen = torch.Generator().manual_seed(seed)
    sizes = torch.tensor(layer_sizes(widths))
    m = len(widths)
    # Padded to the widest model of the chunk only: lexicographic chunks of 512 share w1 and w2.
    dims = [IN_FEATURES, *(int(w) for w in widths.max(axis=0)), N_CLASSES]
    weights, biases, masks = [], [], []
    for i, (a, b) in enumerate(itertools.pairwise(dims)):
        # He initialisation with each model's own fan-in, biases zero (as a narrow model's).
        std = torch.sqrt(2.0 / sizes[:, i].float()).view(m, 1, 1)
        weights.append((torch.randn(m, a, b, generator=gen) * std).requires_grad_())
        biases.append(torch.zeros(m, 1, b, requires_grad=True))
        if i < N_LAYERS:
            masks.append((torch.arange(b).view(1, 1, b) < sizes[:, i + 1].view(m, 1, 1)).float())
    opt = torch.optim.Adam([*weights, *biases], lr=lr)

    def forward(x: torch.Tensor) -> torch.Tensor:
        h = x.expand(m, *x.shape)
        for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
            h = torch.baddbmm(b, h, w)
            if i < N_LAYERS:
                h = torch.relu(h) * masks[i]
        return h

    for _ in range(steps):
        idx = torch.randint(len(x_tr), (batch,), generator=gen)
        logits = forward(x_tr[idx])
        # Summed over models: each model's gradient is that of its own mean loss.
        loss = nn.functional.cross_entropy(
            logits.reshape(-1, N_CLASSES), y_tr[idx].repeat(m), reduction="sum"
        ) / batch
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = forward(x_va).argmax(dim=-1)
    return (pred == y_va).float().mean(dim=1).numpy()


def generate(args: argparse.Namespace) -> dict[str, np.ndarray]:
    configs = all_configs()[: args.limit]
    widths = np.asarray(WIDTHS)[configs]
    data = digits_split()
    acc = np.empty((len(configs), args.seeds), dtype=np.float32)
    start = time.perf_counter()
    for s in range(args.seeds):
        for lo in range(0, len(configs), args.chunk):
            hi = min(lo + args.chunk, len(configs))
            # One generator per (seed, chunk): any chunk can be recomputed on its own.
            acc[lo:hi, s] = train_chunk(widths[lo:hi], data, seed=1000 * s + lo // args.chunk,
                                        steps=args.steps, batch=args.batch, lr=args.lr)
            print(f"seed {s} models {hi}/{len(configs)} "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
    flops, params = flops_and_params(widths)
    return {"configs": configs, "widths": np.asarray(WIDTHS, dtype=np.int16),
            "val_acc": acc, "flops": flops, "params": params}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=2, help="training seeds per configuration")
    parser.add_argument("--steps", type=int, default=150, help="Adam steps per model")
    parser.add_argument("--batch", type=int, default=32, help="minibatch size")
    parser.add_argument("--lr", type=float, default=5e-3, help="Adam learning rate")
    parser.add_argument("--chunk", type=int, default=512, help="models trained at once")
    parser.add_argument("--limit", type=int, default=None, help="only the first N configs")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    table = generate(args)
    meta = {
        "command": " ".join(["python -m benchmarks.width_table",
                             *(sys.argv[1:] if argv is None else argv)]),
        "date": utc_now(), "git": git_state(), "machine": machine_info(args.threads),
        "wall_s": round(time.perf_counter() - start, 1),
        "recipe": {"steps": args.steps, "batch": args.batch, "lr": args.lr,
                   "optimizer": "Adam", "seeds": args.seeds, "chunk": args.chunk},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.output, **table, meta=np.array(json.dumps(meta)))
    acc = table["val_acc"]
    print(f"wrote {args.output}: {len(acc)} configs x {acc.shape[1]} seeds, val acc "
          f"min {acc.min():.3f} median {np.median(acc):.3f} max {acc.max():.3f}, "
          f"{meta['wall_s']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
