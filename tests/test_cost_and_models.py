from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from optuna_nars import Architecture, Candidate, SearchSpace
from optuna_nars.cost import (
    constraint_violations,
    count_flops,
    count_params,
    make_divisible,
    space_costs,
)
from optuna_nars.models import build_model

# The released FBNetV3 models (facebookresearch/mobile-vision, fbnet_modeldef_cls_fbnetv3.py)
# as arch strings, with the zoo's MFLOPs and parameters (M).
RELEASED = {
    "A": ("r224 c16s2:hs k3e1c16d2:hs k5e4c24d1s2:hs k5e2c24d3:hs k5e5c40d1s2se:hs "
          "k5e3c40d4se:hs k5e5c72d1s2t:hs k3e3c72d4:hs k3e5c120d1se:hs k5e3c120d5se:hs "
          "k3e6c184d1s2tse:hs k5e4c184d5se:hs k5e6c224d1se:hs h1344f1984", 356.6, 8.54),
    "B": ("r248 c16s2:hs k3e1c16d2:hs k5e4c24d1s2:hs k5e2c24d3:hs k5e5c40d1s2se:hs "
          "k5e3c40d4se:hs k5e5c72d1s2t:hs k3e3c72d4:hs k3e5c120d1se:hs k5e3c120d5se:hs "
          "k3e6c184d1s2tse:hs k5e4c184d5se:hs k5e6c224d1se:hs h1344f1984", 461.6, 8.54),
    "C": ("r248 c16s2:hs k3e1c16d2:hs k5e5c24d1s2:hs k3e3c24d4:hs k5e5c48d1s2se:hs "
          "k5e2c48d4se:hs k5e4c88d1s2t:hs k3e3c88d4:hs k3e4c120d1se:hs k5e3c120d5se:hs "
          "k5e5c216d1s2tse:hs k5e5c216d5se:hs k5e6c216d1se:hs h1296f1984", 557.0, 9.91),
    "D": ("r248 c24s2:hs k3e1c16d2:hs k3e5c24d1s2:hs k3e2c24d5:hs k5e4c40d1s2se:hs "
          "k3e3c40d4se:hs k3e5c72d1s2:hs k3e3c72d4:hs k3e5c128d1se:hs k5e3c128d6se:hs "
          "k3e6c208d1s2se:hs k5e5c208d5se:hs k5e6c240d1se:hs h1440f1984", 644.4, 10.24),
    "E": ("r264 c24s2:hs k3e1c16d3:hs k5e4c24d1s2:hs k5e2c24d4:hs k5e4c48d1s2se:hs "
          "k5e3c48d4se:hs k5e5c80d1s2t:hs k3e3c80d4:hs k3e5c128d1se:hs k5e3c128d7se:hs "
          "k3e6c216d1s2se:hs k5e5c216d5se:hs k5e6c240d1se:hs h1440f1984", 762.0, 10.70),
}


# The cost model against the zoo's figures, worst relative error over A..E (measured; the zoo
# rounds to 0.1 MFLOPs and 0.01 M parameters): FLOPs 0.31% (B: 460.15 against 461.6), parameters
# 0.71% (A and B: 8.6004 M against 8.54 M; C..E 0.66-0.70%).
FLOPS_TOLERANCE = 0.0032
PARAMS_TOLERANCE = 0.0071


def _measured(arch: Architecture, in_channels: int, num_classes: int) -> tuple[float, int]:
    # Built on the meta device and given uninitialised memory: the weight initialisation of an
    # ImageNet-size network costs more than its forward pass, and counting needs neither.
    with torch.device("meta"):
        model = build_model(arch, num_classes, in_channels).eval()
    model = model.to_empty(device="cpu")
    x = torch.zeros(1, in_channels, arch.resolution, arch.resolution)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x)
    return counter.get_total_flops() / 2, sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("space", "n"),
    # Counting a built network costs ~0.1 s (cifar) to ~0.5 s (ImageNet size) here, so the
    # larger spaces take fewer: benchmarks/cost_model.py checks more; the released A..E below.
    [(SearchSpace.tiny(), 300), (SearchSpace.cifar(), 150), (SearchSpace.fbnetv3(), 50)],
    ids=["tiny", "cifar", "fbnetv3"],
)
def test_cost_model_agrees_with_built_model(space: SearchSpace, n: int) -> None:
    values = space.sample_values(n, seed=11, method="random")
    vectorised = space_costs(space, values)
    worst = 0.0
    for i, candidate in enumerate(space.decode(values)):
        arch = candidate.architecture
        flops, params = _measured(arch, space.in_channels, space.num_classes)
        assert count_params(arch, space.in_channels, space.num_classes) == params
        analytic = count_flops(arch, space.in_channels, space.num_classes)
        assert vectorised["flops"][i] == analytic and vectorised["params"][i] == params
        worst = max(worst, abs(analytic - flops) / flops)
    assert worst < 0.01


@pytest.mark.parametrize("name", list(RELEASED))
def test_released_fbnetv3_models_are_in_the_space_and_match_published_costs(name: str) -> None:
    text, mflops, mparams = RELEASED[name]
    arch = Architecture.from_string(text)
    assert str(arch) == text
    space = SearchSpace.fbnetv3()
    candidate = Candidate(arch)
    assert space.contains(candidate)
    rebuilt = space.from_params(space.to_params(candidate)).architecture
    assert rebuilt == arch
    assert count_flops(rebuilt) / 1e6 == pytest.approx(mflops, rel=FLOPS_TOLERANCE)
    assert count_params(rebuilt) / 1e6 == pytest.approx(mparams, rel=PARAMS_TOLERANCE)


def test_fbnetv3_a_built_module_matches_published_figures() -> None:
    arch = Architecture.from_string(RELEASED["A"][0])
    flops, params = _measured(arch, 3, 1000)
    assert flops / 1e6 == pytest.approx(356.6, rel=FLOPS_TOLERANCE)
    assert params / 1e6 == pytest.approx(8.54, rel=PARAMS_TOLERANCE)


def test_make_divisible_matches_torchvision() -> None:
    from torchvision.models._utils import _make_divisible

    for v in [3.0, 7.9, 12.0, 15.99, 16.0, 23.0, 100.4, 333.3, 1000.0]:
        assert int(make_divisible(v)) == _make_divisible(v, 8)


def test_constraint_violations_follow_optuna_convention() -> None:
    space = SearchSpace.tiny()
    values = space.sample_values(100, seed=0)
    flops = space_costs(space, values)["flops"]
    budget = float(np.median(flops))
    v = constraint_violations(space, values, {"flops": budget})["flops"]
    np.testing.assert_array_equal(v <= 0, flops <= budget)
    with pytest.raises(ValueError, match="Unknown resource constraint"):
        constraint_violations(space, values, {"latency": 1.0})


def test_forward_backward_and_residual_stochastic_depth() -> None:
    space = SearchSpace.tiny()
    arch = space.sample(1, seed=2)[0].architecture
    model = build_model(arch, 10, 1, dropout=0.2, stochastic_depth=0.2)
    x = torch.randn(4, 1, arch.resolution, arch.resolution)
    out = model(x)
    assert out.shape == (4, 10)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert str(model) == f"InvertedResidualNet({arch})"
    blocks = [m for m in model.modules() if m.__class__.__name__ == "InvertedResidual"]
    assert blocks[-1].stochastic_depth.p > blocks[0].stochastic_depth.p >= 0.0


def test_build_model_rejects_bad_arguments() -> None:
    arch = SearchSpace.tiny().sample(1, seed=0)[0].architecture
    with pytest.raises(ValueError, match="dropout"):
        build_model(arch, 10, 1, dropout=1.5)
    with pytest.raises(ValueError, match="num_classes"):
        build_model(arch, 0, 1)
