from __future__ import annotations

import optuna
import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _quiet_and_small() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Small tensors on a shared 2-core machine: one thread avoids oversubscription stalls.
    torch.set_num_threads(1)


@pytest.fixture
def gp_fits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The label counts of every GPPredictor fit made during the test, in order."""
    from optuna_nars.predictor.gp import GPPredictor

    fitted: list[int] = []
    original = GPPredictor.fit

    def counting_fit(self: GPPredictor, arch_x, recipe_x, y):  # noqa: ANN001, ANN202
        fitted.append(len(y))
        return original(self, arch_x, recipe_x, y)

    monkeypatch.setattr(GPPredictor, "fit", counting_fit)
    return fitted
