"""Re-targeting: the top predicted pairs for a new budget, as :class:`Proposal` s, no training.

:func:`search` (:meth:`NARSSampler.search <optuna_nars.samplers.NARSSampler.search>`) refits
the predictor on a study's labelled trials, filters a fresh pool by the new budget, runs the
genetic search over the predictor, and ranks what it found together with the pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from optuna.study import Study

from optuna_nars._validation import check_int
from optuna_nars.candidate import Candidate
from optuna_nars.samplers._constraints import Constraints, check_constraints
from optuna_nars.samplers._context import (
    RowKey,
    SpaceContext,
    direction_sign,
    labelled_rows,
    read_rows,
    row_key,
)
from optuna_nars.samplers.nars._acquisition import Acquisition
from optuna_nars.samplers.nars._model import Fit, Ranking
from optuna_nars.samplers.nars._shared_fit import recorded_predictions

if TYPE_CHECKING:
    from optuna_nars.samplers._base import BaseNASSampler
    from optuna_nars.samplers.nars._fitting import Fitter
    from optuna_nars.samplers.nars._state import NARSContext

__all__ = ["Proposal", "search", "top_proposals"]


@dataclass(frozen=True)
class Proposal:
    """A re-targeting answer: an architecture-recipe pair with its predicted value (its spread
    covering about 68% of the recent errors, ``interval_95`` about 95%) and cost."""

    params: dict[str, Any]
    predicted: float
    predicted_std: float
    costs: dict[str, float]
    candidate: Candidate | None = None
    interval_95: tuple[float, float] | None = None  # (low, high)


def top_proposals(
    ctx: SpaceContext, pool: np.ndarray, fit: Fit, evolved: Ranking, sign: float, n: int
) -> list[Proposal]:
    """The ``n`` distinct rows of ``evolved`` and ``pool`` with the best predicted score, as
    proposals with their costs (``sign`` turns scores back to the study's direction)."""
    evolved_values, evolved_mean, evolved_std = evolved
    values = np.vstack([evolved_values, pool])
    mean = np.concatenate([evolved_mean, fit.pool_mean])
    std = np.concatenate([evolved_std, fit.pool_std])
    order = np.argsort(-mean, kind="stable")
    out: list[Proposal] = []
    seen: set[RowKey] = set()
    metrics = ctx.metrics
    for i in order:
        key = row_key(values[i])
        if key in seen:
            continue
        seen.add(key)
        params = ctx.param_space.values_to_params(values[i])[0]
        costs = {k: float(v[0]) for k, v in metrics(values[i][None]).items()} if metrics else {}
        candidate = ctx.space.from_params(params) if ctx.space is not None else None
        value, spread = fit.to_value(mean[i], std[i])
        out.append(Proposal(params, sign * value, spread, costs, candidate,
                            fit.interval_95(sign * value, spread)))
        if len(out) == n:
            break
    return out


def search(
    sampler: BaseNASSampler, fitter: Fitter, study: Study, constraints: Constraints | None,
    n: int,
) -> list[Proposal]:
    """:meth:`NARSSampler.search`: the predictor of ``sampler`` (whose fitting is ``fitter``),
    refit on every labelled trial of ``study``, searched under ``constraints`` (``None``: the
    sampler's own; ``{}``: none); its pretrained encoder is reused."""
    n = check_int("n", n, minimum=1)
    if constraints is None:
        constraints = sampler.constraints
    check_constraints(constraints, sampler._space, sampler._proxy_metrics,
                      sampler._latency_table)
    sampler._raise_error_if_multi_objective(study)
    search_space = sampler._relative_space(study)
    if not search_space:
        raise ValueError("The study has no search space yet; run some trials first.")
    base = cast("NARSContext", sampler._context(search_space))
    ctx = cast("NARSContext", sampler._make_context(search_space, constraints))
    ctx.pretrained = fitter.pretrained(base, study)
    rows = read_rows(study, ctx, exclude=None)
    numbers, x, y = labelled_rows(study, rows)
    if len(numbers) < 2 or np.ptp(y) == 0:
        raise ValueError(
            "Re-targeting needs at least two labelled trials with different values; "
            f"the study has {len(numbers)}."
        )
    # The study's measured proposals scale the reported spreads (_intervals).
    fit = fitter.fit(study, ctx, numbers, x, y, recorded_predictions(study, rows, numbers))
    # Re-targeting reports the best *predicted* pairs: the search climbs the prediction itself,
    # whatever acquisition the sampler explores with.
    evolved = fitter.evolve(ctx, Acquisition(fit, ctx.param_space, 0.0, 0.0), x, y)
    return top_proposals(ctx, ctx.pool, fit, evolved, direction_sign(study), n)
