"""Latency look-up tables: the run time of every distinct block of a search space, measured
on one device, summed per candidate like the analytic costs.

A table is data (versioned JSON, no pickle) so that every worker of a study loads the same
file: ``optuna-nars latency-table`` writes it (:func:`optuna_nars.cost.measure.build_table`),
:meth:`LatencyTable.load` reads and validates it, and
:func:`~optuna_nars.cost.space_costs` (``latency_table=``) and the samplers' ``latency_ms``
budgets sum it over the blocks of each candidate (:mod:`optuna_nars.cost.blocks`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from optuna_nars.cost.blocks import block_slots, enumerate_blocks, space_fingerprint

if TYPE_CHECKING:
    from optuna_nars.space import SearchSpace

__all__ = ["FORMAT", "LATENCY", "STATISTICS", "VERSION", "LatencyTable"]

FORMAT = "optuna-nars-latency-table"
VERSION = 1
#: The cost metric a latency table adds (milliseconds per batch).
LATENCY = "latency_ms"
STATISTICS = ("median_ms", "min_ms")
_HEADER = {"device": str, "torch": str, "threads": int, "batch_size": int,
           "space_fingerprint": str, "entries": dict}
_REBUILD = "measure it again with `optuna-nars latency-table --space SPACE -o PATH`"


class LatencyTable:
    """Measured milliseconds per block of one search space on one device.

    Args:
        entries: Block key (:attr:`~optuna_nars.cost.blocks.Block.key`) -> ``{"median_ms",
            "iqr_ms", "min_ms", "runs"}``.
        space_fingerprint: :func:`~optuna_nars.cost.blocks.space_fingerprint` of the space.
        device, torch, threads, batch_size: Where and how the blocks were timed.
        statistic: Which entry field a candidate's latency sums: ``"median_ms"`` (default)
            or ``"min_ms"`` (steadier on a machine shared with other work).
        overhead_ms: A constant added to every candidate's sum (the network's own cost
            outside its blocks; 0 unless calibrated).
        scale: What every candidate's sum is multiplied by before ``overhead_ms`` is added
            (a whole network runs slower than its blocks timed alone, probably because a lone
            block keeps its weights in cache between runs; 1 unless calibrated).
        info: Anything else worth keeping (the space's name, dates, timer settings).
        source: Where the table came from, for messages.
    """

    def __init__(self, entries: Mapping[str, Mapping[str, float]], *, space_fingerprint: str,
                 device: str, torch: str, threads: int, batch_size: int,
                 statistic: str = "median_ms", overhead_ms: float = 0.0, scale: float = 1.0,
                 info: Mapping[str, Any] | None = None,
                 source: str = "the latency table") -> None:
        self.entries = {k: dict(v) for k, v in entries.items()}
        self.space_fingerprint = space_fingerprint
        self.device, self.torch, self.threads = device, torch, threads
        self.batch_size = batch_size
        if statistic not in STATISTICS:
            raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}.")
        self.statistic = statistic
        self.overhead_ms = float(overhead_ms)
        if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a positive number, got {scale!r}.")
        self.scale = float(scale)
        self.info = dict(info or {})
        self.source = source

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return (f"LatencyTable({len(self)} blocks, device={self.device!r}, "
                f"threads={self.threads}, batch_size={self.batch_size}, "
                f"space={self.space_fingerprint})")

    # ---- JSON ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "device": self.device,
                "torch": self.torch, "threads": self.threads, "batch_size": self.batch_size,
                "statistic": self.statistic, "space_fingerprint": self.space_fingerprint,
                "overhead_ms": self.overhead_ms, "scale": self.scale,
                "info": self.info, "entries": dict(sorted(self.entries.items()))}

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the table as JSON, atomically (an interrupted write leaves the old file)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        os.replace(tmp, path)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "the latency table",
                  space: SearchSpace | None = None) -> LatencyTable:
        """The table of a :meth:`to_dict` dict, validated (and checked against ``space``)."""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise ValueError(f"{source} is not an optuna-nars latency table (no \"format\": "
                             f"\"{FORMAT}\"); {_REBUILD}.")
        version = data.get("version")
        if version != VERSION:
            hint = ("upgrade optuna-nars to read it" if isinstance(version, int)
                    and version > VERSION else _REBUILD)
            raise ValueError(f"{source} has format version {version!r}; this optuna-nars "
                             f"reads version {VERSION}: {hint}.")
        for key, kind in _HEADER.items():
            if not isinstance(data.get(key), kind):
                raise ValueError(f"{source}: field {key!r} must be a {kind.__name__}, got "
                                 f"{data.get(key)!r}; the file is damaged, {_REBUILD}.")
        statistic = data.get("statistic", "median_ms")
        if statistic not in STATISTICS:
            raise ValueError(f"{source}: statistic must be one of {STATISTICS}, got "
                             f"{statistic!r}; the file is damaged, {_REBUILD}.")
        for key, entry in data["entries"].items():
            ms = entry.get(statistic) if isinstance(entry, Mapping) else None
            if not isinstance(ms, (int, float)) or not math.isfinite(ms) or ms < 0:
                raise ValueError(f"{source}: entry {key} has no valid {statistic} ({entry!r}); "
                                 f"the file is damaged, {_REBUILD}.")
        for key in ("overhead_ms", "scale"):
            number = data.get(key, 0.0 if key == "overhead_ms" else 1.0)
            if (not isinstance(number, (int, float)) or isinstance(number, bool)
                    or not math.isfinite(number) or (key == "scale" and number <= 0)):
                raise ValueError(f"{source}: field {key!r} must be a "
                                 f"{'positive ' if key == 'scale' else ''}number, got "
                                 f"{number!r}; the file is damaged, {_REBUILD}.")
        table = cls(data["entries"], space_fingerprint=data["space_fingerprint"],
                    device=data["device"], torch=data["torch"], threads=data["threads"],
                    batch_size=data["batch_size"], statistic=statistic,
                    overhead_ms=data.get("overhead_ms", 0.0), scale=data.get("scale", 1.0),
                    info=data.get("info"), source=source)
        if space is not None:
            table.check_space(space)
        return table

    @classmethod
    def load(cls, path: str | os.PathLike[str], *,
             space: SearchSpace | None = None) -> LatencyTable:
        """Read and validate the table at ``path``; with ``space``, also check that it was
        measured for that space.

        Raises:
            ValueError: If the file is missing, not JSON, not a latency table, of another
                format version, damaged, or (with ``space``) measured for another space.
        """
        source = f"latency table {os.fspath(path)}"
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ValueError(f"{source} does not exist; {_REBUILD}.") from None
        except (OSError, ValueError) as err:
            raise ValueError(f"{source} cannot be read as JSON ({err}); {_REBUILD}.") from None
        return cls.from_dict(data, source=source, space=space)

    # ---- use -------------------------------------------------------------------------------

    def check_space(self, space: SearchSpace) -> None:
        """Raise ``ValueError`` if the table was measured for another space."""
        fingerprint = space_fingerprint(space)
        if fingerprint != self.space_fingerprint:
            raise ValueError(
                f"{self.source} was measured for another search space (fingerprint "
                f"{self.space_fingerprint}, this space's is {fingerprint}: architecture "
                f"dimensions, in_channels or num_classes differ); {_REBUILD} for this space."
            )

    def missing(self, space: SearchSpace) -> list[str]:
        """The keys of the blocks of ``space`` the table has no entry for (in measuring order)."""
        return [b.key for b in enumerate_blocks(space) if b.key not in self.entries]

    def latency_ms(self, space: SearchSpace, values: np.ndarray) -> np.ndarray:
        """The summed latency (ms per batch) of every row of a values matrix of ``space``.

        Raises:
            ValueError: If the table belongs to another space or lacks a block a row needs.
        """
        self.check_space(space)
        values = np.atleast_2d(values)
        total = np.zeros(len(values))
        for slot in block_slots(space, values):
            missing = [k for k in slot.keys if k not in self.entries]
            if missing:
                raise ValueError(
                    f"{self.source} has no entry for {missing[0]}"
                    f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}: it is "
                    "incomplete; run the same `optuna-nars latency-table` command again to "
                    "measure the missing blocks."
                )
            ms = np.array([self.entries[k][self.statistic] for k in slot.keys])
            total += slot.count * ms[slot.index]
        return self.scale * total + self.overhead_ms
