"""Real training as a suite problem: Fashion-MNIST with the library's own objective.

Joint architecture-recipe search (``fashion-mnist``) and architecture-only search with the
default recipe (``fashion-mnist-arch``), under the same FLOPs budget.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import optuna

from benchmarks.suite.problems import Problem
from optuna_nars import Recipe, SearchSpace
from optuna_nars.cost import count_flops, space_costs
from optuna_nars.space import RecipeSpec
from optuna_nars.training import ClassificationObjective


class FashionMNISTProblem(Problem):
    """Real training with the provided objective: :meth:`SearchSpace.tiny` (1-channel, 10
    classes, 16 / 24 px) on ``max_train_samples`` Fashion-MNIST images from the Debian package,
    ``epochs`` epochs, under a FLOPs budget at ``flops_quantile`` of the space's FLOPs. The
    optimum is unknown. NARS gets the SearchSpace (its cost model) and the budget. With
    ``fixed_recipe``, every candidate trains with the default :class:`~optuna_nars.Recipe`:
    architecture-only search, to measure what searching the recipe jointly is worth."""

    direction = "maximize"
    worst = 0.0

    def __init__(
        self,
        *,
        epochs: int = 2,
        max_train_samples: int = 2000,
        flops_quantile: float = 0.5,
        name: str = "fashion-mnist",
        fixed_recipe: bool = False,
    ) -> None:
        self.name = name
        joint = SearchSpace.tiny()
        values = joint.param_space.sample_values(20_000, seed=0, method="random")
        flops = space_costs(joint, values)["flops"]  # the same budget either way
        self.space = (dataclasses.replace(joint, recipe=RecipeSpec(**dataclasses.asdict(Recipe())))
                      if fixed_recipe else joint)
        self.distributions = self.space.distributions()
        self.budgets = {"flops": float(np.quantile(flops, flops_quantile))}
        self.epochs = epochs
        self.max_train_samples = max_train_samples
        self._objective: ClassificationObjective | None = None

    def objective(self) -> ClassificationObjective:
        if self._objective is None:
            self._objective = ClassificationObjective(
                self.space, dataset="fashion-mnist", epochs=self.epochs, batch_size=64,
                device="cpu", seed=0, max_train_samples=self.max_train_samples,
            )
            self._objective.data  # noqa: B018  (the same split for every run: seed 0)
        return self._objective

    def evaluate(self, trial: optuna.Trial, rng: np.random.Generator) -> float:
        objective = self.objective()
        # The training seed is the noise, drawn like a table's run.
        objective.seed = int(rng.integers(2**20))
        return objective(trial)

    def proxy_metrics(self, params: Mapping[str, Any]) -> dict[str, float]:
        arch = self.space.from_params(dict(params)).architecture
        return {"flops": float(count_flops(arch, 1, 10))}

    def nars_kwargs(self) -> dict[str, Any]:
        return {"search_space": self.space, "constraints": dict(self.budgets)}

    def layernas_kwargs(self) -> dict[str, Any]:
        # The SearchSpace's stages are the layers, then the rest (stem, head, recipe).
        return self.nars_kwargs()
