"""The distinct blocks of a search space: what a latency table measures, and which of them
each candidate is made of.

A network of :func:`~optuna_nars.models.build_model` is a stem, per stage a first block (which
carries the stride and the change of width) and ``depth - 1`` repeated blocks, and a head.
A block's run time depends on its configuration and its input (channels and size), so a
:class:`Block` names both; the set of blocks of a space is every configuration a candidate
can contain (:func:`enumerate_blocks`), and :func:`block_slots` gives, for a values matrix,
which block fills each slot of each row (vectorised: a Python loop runs over the distinct
blocks only).

The spatial size entering a stage depends only on the resolution, the stem's stride and the
earlier stages' strides and paddings, never on channels or kernels, so the reachable
(size, input channels, options) combinations of a stage are the full product of their sets.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from optuna_nars.cost.analytic import _conv_out
from optuna_nars.space.dimensions import IntRange

if TYPE_CHECKING:
    from optuna_nars.space import SearchSpace

__all__ = ["Block", "BlockSlot", "block_slots", "enumerate_blocks", "space_fingerprint"]

# The fields of each kind of block, in key order.
FIELDS: dict[str, tuple[str, ...]] = {
    "stem": ("in_channels", "channels", "stride", "activation", "size"),
    "block": ("c_in", "c_out", "kernel", "expansion", "stride", "se", "activation", "padding",
              "size"),
    "head": ("c_in", "channels", "features", "classes", "activation", "size"),
}
# A dimension with more values than this cannot be tabulated block by block.
_MAX_VALUES = 4096


def _text(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return format(float(value), "g")
    return str(value)


@dataclass(frozen=True)
class Block:
    """One distinct block: its kind (``stem``, ``block`` or ``head``) and field values (the
    input's channels and spatial ``size`` included). ``key`` is how a table names it."""

    kind: str
    values: tuple[Any, ...]

    @property
    def fields(self) -> dict[str, Any]:
        return dict(zip(FIELDS[self.kind], self.values, strict=True))

    @property
    def key(self) -> str:
        inner = ",".join(f"{n}={_text(v)}" for n, v in zip(FIELDS[self.kind], self.values,
                                                          strict=True))
        return f"{self.kind}({inner})"


@dataclass(frozen=True)
class BlockSlot:
    """One place in the networks of a values matrix: the block each row has there (``keys``,
    indexed by ``index``, one per row) and how many times it repeats (``count``, per row)."""

    keys: list[str]
    index: np.ndarray
    count: np.ndarray


def space_fingerprint(space: SearchSpace) -> str:
    """A digest of everything in ``space`` a block's latency depends on: the architecture
    dimensions and the task's channels and classes (the training recipe is left out, so that
    one table serves spaces differing only in their recipes)."""
    data = space.to_dict()
    data.pop("recipe", None)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _values(space: SearchSpace, name: str) -> list[Any]:
    """Every value dimension ``name`` of ``space`` can take."""
    dim = space.dimension(name)
    if dim.size > _MAX_VALUES:
        raise ValueError(
            f"{name} takes {dim.size:g} values: a latency table measures every block, so each "
            f"architecture dimension must be a choice or a range of at most {_MAX_VALUES} "
            "values (give the range a step, or make it a Choice)."
        )
    values = dim.actual(dim.grid()).tolist()
    if isinstance(dim, IntRange):
        values = [int(v) for v in values]
    return sorted(set(values), key=lambda v: (v is None, str(type(v)), v or 0))


def _stage_options(space: SearchSpace, i: int) -> dict[str, list[Any]]:
    return {f: _values(space, f"stage{i}.{f}")
            for f in ("kernel", "expansion", "channels", "depth", "stride", "se", "activation",
                      "padding")}


def enumerate_blocks(space: SearchSpace) -> list[Block]:
    """Every distinct block a candidate of ``space`` can contain (stem, each stage's first and
    repeated blocks at each input size and width they can meet, head), without repeats.

    Raises:
        ValueError: If an architecture dimension is continuous or too long to tabulate.
    """
    act = _values(space, "activation")
    widths = _values(space, "stem.channels")
    stem_sizes = {(r, s) for r in _values(space, "resolution")
                  for s in _values(space, "stem.stride")}
    blocks = [Block("stem", (space.in_channels, c, s, a, r))
              for (r, s), c, a in itertools.product(sorted(stem_sizes), widths, act)]
    sizes = {int(_conv_out(np.int64(r), np.int64(s))) for r, s in stem_sizes}
    for i in range(1, len(space.stages) + 1):
        o = _stage_options(space, i)
        firsts = itertools.product(sorted(sizes), widths, o["channels"], o["kernel"],
                                   o["expansion"], o["stride"], o["se"], o["activation"],
                                   o["padding"])
        out_sizes = set()
        for size, c_in, c_out, k, e, s, se, a, p in firsts:
            blocks.append(Block("block", (c_in, c_out, k, e, s, se, a, p, size)))
            out_sizes.add(int(_conv_out(np.int64(size), np.int64(s), k, int(p == "tight"))))
        if max(o["depth"]) > 1:
            repeats = itertools.product(sorted(out_sizes), o["channels"], o["kernel"],
                                        o["expansion"], o["se"], o["activation"])
            blocks += [Block("block", (c, c, k, e, 1, se, a, "same", size))
                       for size, c, k, e, se, a in repeats]
        sizes, widths = out_sizes, o["channels"]
    features = [0 if f is None else f for f in _values(space, "head.features")]
    heads = itertools.product(sorted(sizes), widths, _values(space, "head.channels"), features,
                              act)
    blocks += [Block("head", (c_in, h, f, space.num_classes, a, size))
               for size, c_in, h, f, a in heads]
    return list(dict.fromkeys(blocks))


Coded = tuple[list[Any], np.ndarray]  # the distinct values of a column, each row's index


def _codes(column: np.ndarray | Coded) -> Coded:
    """The distinct values of a numeric column and each row's index into them."""
    if isinstance(column, tuple):
        return column
    distinct, inverse = np.unique(np.asarray(column), return_inverse=True)
    return distinct.tolist(), inverse.reshape(-1)


def _choice_codes(space: SearchSpace, values: np.ndarray, name: str) -> Coded:
    """:func:`_codes` of a choice parameter (an activation, a padding) from its raw column:
    vectorised, where the values themselves are Python strings."""
    dim = space.dimension(name)
    if name not in space.names:  # fixed
        return [space.column(values[:1], name)[0]], np.zeros(len(values), dtype=np.int64)
    raw, inverse = np.unique(values[:, space.names.index(name)], return_inverse=True)
    return [dim.from_raw(r) for r in raw.tolist()], inverse.reshape(-1)


def _slot(kind: str, columns: Sequence[np.ndarray | Coded], count: np.ndarray) -> BlockSlot:
    """The block of every row, from one array per field of ``kind`` (vectorised: the rows'
    field codes are combined into one integer, and keys are formatted once per distinct
    block)."""
    code = np.zeros(len(count), dtype=np.int64)
    uniques, radix = [], []
    for column in columns:
        distinct, inverse = _codes(column)
        uniques.append(distinct)
        radix.append(len(distinct))
        code = code * len(distinct) + inverse
    distinct_codes, index = np.unique(code, return_inverse=True)
    keys = []
    for c in distinct_codes.tolist():
        digits = []
        for r in reversed(radix):
            c, d = divmod(c, r)
            digits.append(d)
        keys.append(Block(kind, tuple(u[d] for u, d in zip(uniques, reversed(digits),
                                                            strict=True))).key)
    return BlockSlot(keys, index.reshape(-1), count)


def block_slots(space: SearchSpace, values: np.ndarray) -> Iterator[BlockSlot]:
    """Which block each row of a values matrix of ``space`` has in each slot of its network:
    the stem, per stage the first block and the repeated one (``depth - 1`` times), the head."""
    values = np.atleast_2d(values)
    n = len(values)

    def col(name: str, kind: type = int) -> np.ndarray:
        return space.column(values, name).astype(kind)

    one = np.ones(n, dtype=np.int64)
    act = _choice_codes(space, values, "activation")
    resolution, stride = col("resolution"), col("stem.stride")
    c = col("stem.channels")
    yield _slot("stem", [np.full(n, space.in_channels), c, stride, act, resolution], one)
    size = _conv_out(resolution, stride)
    for i in range(1, len(space.stages) + 1):
        k, e = col(f"stage{i}.kernel"), col(f"stage{i}.expansion", float)
        c_out, s = col(f"stage{i}.channels"), col(f"stage{i}.stride")
        se = col(f"stage{i}.se", bool).astype(int)
        a = _choice_codes(space, values, f"stage{i}.activation")
        p = _choice_codes(space, values, f"stage{i}.padding")
        tight = np.array([v == "tight" for v in p[0]], dtype=np.int64)[p[1]]
        yield _slot("block", [c, c_out, k, e, s, se, a, p, size], one)
        size = _conv_out(size, s, k, tight)
        repeats = col(f"stage{i}.depth") - 1
        if repeats.any():
            same = (["same"], np.zeros(n, dtype=np.int64))
            yield _slot("block", [c_out, c_out, k, e, one, se, a, same, size], repeats)
        c = c_out
    features = np.array([0 if f is None else f for f in space.column(values, "head.features")],
                        dtype=np.int64)
    yield _slot("head", [c, col("head.channels"), features, np.full(n, space.num_classes), act,
                         size], one)
