"""``benchmarks/zero_cost.py``'s training-free scores behave as their papers define them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from benchmarks.zero_cost import grad_norm, kendall, naswot, snip, synflow, training_free
from optuna_nars import SearchSpace
from optuna_nars.models import build_model


@pytest.fixture
def arch():  # noqa: ANN201
    return SearchSpace.tiny().sample(1, seed=3)[0].architecture


def _model(arch, seed: int = 0):  # noqa: ANN001, ANN202
    torch.manual_seed(seed)
    return build_model(arch, 10, 1)


def test_naswot_separates_distinct_inputs_from_repeated_ones(arch) -> None:  # noqa: ANN001
    torch.manual_seed(1)
    distinct = torch.randn(16, 1, arch.resolution, arch.resolution)
    repeated = distinct[:1].repeat(16, 1, 1, 1)
    # Identical inputs give identical activation codes: a rank-one kernel, no volume.
    assert naswot(_model(arch), distinct) > naswot(_model(arch), repeated)
    assert math.isfinite(naswot(_model(arch), distinct))


def test_synflow_ignores_the_data_and_counts_every_weight(arch) -> None:  # noqa: ANN001
    x = torch.randn(4, 1, arch.resolution, arch.resolution)
    score = synflow(_model(arch), x)
    assert math.isfinite(score)
    assert synflow(_model(arch), 5 * x) == pytest.approx(score)  # an all-ones input either way
    # Zeroing the classifier cuts every path from input to output.
    model = _model(arch)
    torch.nn.init.zeros_(model.classifier[-1].weight)
    assert synflow(model, x) == float("-inf")


def test_gradient_scores_are_positive_and_follow_the_loss(arch) -> None:  # noqa: ANN001
    torch.manual_seed(2)
    x = torch.randn(8, 1, arch.resolution, arch.resolution)
    y = torch.randint(0, 10, (8,))
    assert grad_norm(_model(arch), x, y) > 0 and math.isfinite(snip(_model(arch), x, y))
    # The same initialisation and batch give the same scores; another batch, others.
    assert grad_norm(_model(arch), x, y) == grad_norm(_model(arch), x, y)
    assert grad_norm(_model(arch), x, y) != grad_norm(_model(arch), x + 1, y)


def test_all_scores_of_one_architecture_and_their_rank_correlation(arch) -> None:  # noqa: ANN001
    images = torch.randn(8, 1, 28, 28)  # resized to the architecture's resolution
    labels = torch.randint(0, 10, (8,))
    scores = training_free(arch, images, labels, seed=0)
    assert set(scores) == {"naswot", "log_synflow", "grad_norm", "log_snip"}
    assert scores == training_free(arch, images, labels, seed=0)
    rows = [{"s": float(i), "accuracy": float(i)} for i in range(5)]
    assert kendall(rows, "s")[0] == pytest.approx(1.0)
    rows = [{"s": float(-i), "accuracy": float(i)} for i in range(5)]
    assert kendall(rows, "s")[0] == pytest.approx(-1.0)
    assert np.isfinite(kendall(rows, "s")[1])
