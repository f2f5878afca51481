"""What a fit produces, as data: the rankings NARSSampler proposes from, shareable as JSON.

A :class:`Ranked` holds, per trust-region weight, the pool's best candidates (pool indices),
in stage 3 the genetic search's best rows, and for the trust region's proposals the best
neighbours of the measured pairs (:mod:`._neighbours`), each with its prediction already on
the labels' scale, plus the predictor's Kendall tau (and how it was measured). It is all a
worker needs to propose: no predictor.
Rows of the fit set (evaluated trials, never proposed again) are left out, and only the top
rows are kept (:data:`POOL_TOP`, :data:`EVOLVED_TOP`); a part that was cut short says so
(``complete``), so that a worker that finds every kept row taken falls back to its own fit.

:func:`encode` / :func:`decode` turn it into text and back: JSON behind a checksum, validated
on reading (the pool size, the row width, the lengths), so that a torn or foreign text is
rejected rather than trusted.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optuna_nars.samplers._context import RowKey, row_key
from optuna_nars.samplers.nars._intervals import interval_95
from optuna_nars.samplers.nars._model import MODELS, Fit, Ranking

__all__ = ["EVOLVED_TOP", "FORMAT", "POOL_TOP", "Part", "Ranked", "decode", "encode", "rank_fit"]

FORMAT = 7  # bump when the text or its meaning changes: older texts are then ignored
# Rows kept per shared ranking: a few batches of proposals, about 50 kB of text in all.
POOL_TOP = 200
EVOLVED_TOP = 64


@dataclass(frozen=True)
class Part:
    """One ranking, best first: its rows, their predicted value and spread (labels' scale)."""

    values: np.ndarray  # (m, d) rows of the values matrix
    mean: np.ndarray
    std: np.ndarray
    complete: bool  # every candidate of the ranking outside the fit set is here
    index: np.ndarray | None = None  # the rows' pool indices, for a ranking of the pool

    def ranking(self) -> Ranking:
        return self.values, self.mean, self.std


@dataclass(frozen=True)
class Ranked:
    """The rankings of one fit (see the module docstring)."""

    digest: str  # of what the fit was fitted on (settings, pool, label set)
    base: str  # of the settings and the pool alone: whose rankings are interchangeable
    n_labels: int
    kendall_tau: float | None
    pool: dict[float, Part]  # per trust weight
    evolved: dict[float, Part]  # per trust weight; empty before stage 3
    tau_method: str | None = None  # "prequential" or "cross-validated" (_model.ranking_quality)
    # Per trust weight (the trust region's only): neighbours of the best measured pairs.
    near: dict[float, Part] = field(default_factory=dict)
    interval_scale: float = 1.0  # the spreads' multiple of the predictor's own (_intervals)
    model: str = "ensemble"  # what predicted: the MLP "ensemble" or a "gp" (_model.Fit.model)
    interval_scale_95: float = math.nan  # the 95% intervals' multiple of the same (NaN: none)

    def covers(self, evolve: bool) -> bool:
        """Whether it holds what a proposal of stage 3 (``evolve``) or 2 needs."""
        return bool(self.evolved) or not evolve

    def parts(self, trust: float, evolve: bool) -> list[Part]:
        """The rankings a proposal at ``trust`` walks, in order: the genetic search's in stage
        3 (``evolve``), else the neighbourhood's; then the pool's."""
        searched = self.evolved if evolve else self.near
        out = [searched[trust]] if trust in searched else []
        return out + ([self.pool[trust]] if trust in self.pool else [])

    def rankings(self, trust: float, evolve: bool) -> list[Ranking]:
        return [part.ranking() for part in self.parts(trust, evolve)]

    def exhausted(self, trust: float, evolve: bool, claimed: set[RowKey]) -> bool:
        """Whether a proposal needs more than these rankings hold: every row up to a ranking
        that was cut short, or every row of all of them, is ``claimed``. Then the complete
        rankings of a fit of one's own take over (the fit set included, as the fallbacks of an
        exhausted pool expect)."""
        for part in self.parts(trust, evolve):
            if any(row_key(row) not in claimed for row in part.values):
                return False
            if not part.complete:
                return True
        return True

    def to_value(self, mean: float, std: float) -> tuple[float, float]:
        """Predictions are stored on the labels' scale already (see
        :func:`~optuna_nars.samplers.nars._scale.scores_to_values`)."""
        return float(mean), float(std)

    def interval_95(self, predicted: float, spread: float) -> tuple[float, float] | None:
        """The 95% interval around ``predicted``, reported with ``spread`` (``None``: none)."""
        return interval_95(predicted, spread, self.interval_scale, self.interval_scale_95)

    @property
    def quality(self) -> dict[str, Any] | None:
        """``{"n_labels", "kendall_tau", "kendall_tau_method", "model"}`` to publish, when the
        fit's ranking quality was measured."""
        if self.kendall_tau is None:
            return None
        return {"n_labels": self.n_labels, "kendall_tau": self.kendall_tau,
                "kendall_tau_method": self.tau_method, "model": self.model}


def rank_fit(
    fit: Fit,
    pool_scores: Mapping[float, np.ndarray],
    evolved: Mapping[float, Ranking],
    pool: np.ndarray,
    x: np.ndarray,
    *,
    near: Mapping[float, Ranking],
    digest: str,
    base: str,
    shared: bool,
) -> Ranked:
    """The :class:`Ranked` of ``fit`` (fitted on rows ``x``): the pool ordered by its
    acquisition ``pool_scores`` per trust weight, the genetic search's ``evolved`` rankings and
    the neighbourhoods' ``near`` ones, each cut to :data:`POOL_TOP` (the pool) or
    :data:`EVOLVED_TOP` rows outside the fit set when ``shared``, complete otherwise."""
    fitted = {row_key(row) for row in x}

    def part(values: np.ndarray, mean: np.ndarray, std: np.ndarray,
             index: np.ndarray | None) -> Part:
        if not shared:
            keep, complete = list(range(len(values))), True
        else:
            top = POOL_TOP if index is not None else EVOLVED_TOP
            keep = []
            for i, row in enumerate(values):
                if len(keep) == top:
                    break
                if row_key(row) not in fitted:
                    keep.append(i)
            complete = len(keep) < top or keep[-1] == len(values) - 1
        value, spread = fit.to_values(mean[keep], std[keep])
        return Part(values[keep], value, spread, complete,
                    None if index is None else index[keep])

    pool_parts = {}
    for trust, scores in pool_scores.items():
        order = np.argsort(-scores, kind="stable")  # best acquisition first; ties in pool order
        pool_parts[trust] = part(pool[order], fit.pool_mean[order], fit.pool_std[order], order)
    evolved_parts = {trust: part(*ranking, None) for trust, ranking in evolved.items()}
    near_parts = {trust: part(*ranking, None) for trust, ranking in near.items()}
    return Ranked(digest, base, len(x), fit.kendall_tau, pool_parts, evolved_parts,
                  fit.tau_method, near_parts, fit.interval_scale, fit.model, fit.interval_scale_95)


# ---- text ---------------------------------------------------------------------------------------


def _checksum(payload: str) -> str:
    return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()


def encode(ranked: Ranked) -> str:
    """``ranked`` as text: a checksum, a space, and the JSON payload."""

    def part(p: Part) -> dict[str, Any]:
        rows = {"index": p.index.tolist()} if p.index is not None else {"rows": p.values.tolist()}
        return {**rows, "mean": p.mean.tolist(), "std": p.std.tolist(), "complete": p.complete}

    payload = json.dumps(
        {
            "format": FORMAT,
            "digest": ranked.digest,
            "base": ranked.base,
            "n_labels": ranked.n_labels,
            "kendall_tau": ranked.kendall_tau,
            "tau_method": ranked.tau_method,
            "interval_scale": ranked.interval_scale,
            "interval_scale_95": (None if math.isnan(ranked.interval_scale_95)
                                  else ranked.interval_scale_95),
            "model": ranked.model,
            # Trust weights as text keys (JSON objects have no float keys), exactly repr'd.
            "pool": {repr(t): part(p) for t, p in ranked.pool.items()},
            "evolved": {repr(t): part(p) for t, p in ranked.evolved.items()},
            "near": {repr(t): part(p) for t, p in ranked.near.items()},
        },
        separators=(",", ":"),
    )
    return f"{_checksum(payload)} {payload}"


def decode(text: str, pool: np.ndarray) -> Ranked:
    """The :class:`Ranked` in ``text``, its pool rows taken from ``pool``.

    Raises:
        ValueError: If the text is torn (checksum), of another format, or does not fit
            ``pool`` (indices out of range, rows of another width, lengths that differ).
    """
    check, _, payload = text.partition(" ")
    if check != _checksum(payload):
        raise ValueError("checksum mismatch (a torn or altered write)")
    data = json.loads(payload)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError("not a ranked fit of this format")
    tau = data["kendall_tau"]
    if tau is not None and not isinstance(tau, float):
        raise ValueError("kendall_tau is not a number")
    method = data["tau_method"]
    if method is not None and not isinstance(method, str):
        raise ValueError("tau_method is not a text")
    scale, scale_95 = data["interval_scale"], data["interval_scale_95"]
    if scale_95 is None:
        scale_95 = math.nan
    elif not isinstance(scale_95, float) or not math.isfinite(scale_95) or scale_95 < 0:
        raise ValueError("interval_scale_95 is not a finite number >= 0 or null")
    if not isinstance(scale, float) or not math.isfinite(scale) or scale < 0:
        raise ValueError("interval_scale is not a finite number >= 0")
    model = data["model"]
    if model not in MODELS:
        raise ValueError(f"model is not one of {', '.join(MODELS)}")

    def part(d: dict[str, Any]) -> Part:
        mean = np.asarray(d["mean"], dtype=float)
        std = np.asarray(d["std"], dtype=float)
        if "index" in d:
            index = np.asarray(d["index"], dtype=np.int64).reshape(-1)
            if index.size and (index.min() < 0 or index.max() >= len(pool)):
                raise ValueError("pool index out of range")
            values = pool[index]
        else:
            index = None
            values = np.asarray(d["rows"], dtype=float)
            if values.size == 0:
                values = values.reshape(0, pool.shape[1])
            if values.ndim != 2 or values.shape[1] != pool.shape[1]:
                raise ValueError("rows of another width than the pool's")
        if not (mean.shape == std.shape == (len(values),)):
            raise ValueError("rows, means and spreads differ in length")
        return Part(values, mean, std, bool(d["complete"]), index)

    return Ranked(
        str(data["digest"]), str(data["base"]), int(data["n_labels"]), tau,
        {float(t): part(p) for t, p in data["pool"].items()},
        {float(t): part(p) for t, p in data["evolved"].items()},
        method,
        {float(t): part(p) for t, p in data["near"].items()},
        scale,
        model,
        scale_95,
    )
