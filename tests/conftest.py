from __future__ import annotations

import optuna
import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _quiet_and_small() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Small tensors on a shared 2-core machine: one thread avoids oversubscription stalls.
    torch.set_num_threads(1)
