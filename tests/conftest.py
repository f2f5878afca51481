from __future__ import annotations

import optuna
import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _quiet_and_small() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Two cores here; more threads than cores only slows small tensors down.
    torch.set_num_threads(min(2, torch.get_num_threads()))
