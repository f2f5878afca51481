from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau

from optuna_nars import SearchSpace
from optuna_nars.cost import space_costs
from optuna_nars.predictor import (
    AccuracyPredictor,
    NARSPredictor,
    clear_pretrain_cache,
    encode_split,
    kendall_tau_cv,
    prequential_kendall_tau,
    pretrained_state,
    pretraining_data,
    proxy_targets,
)
from optuna_nars.predictor.estimator import PREDICT_CHUNK

SPACE = SearchSpace.tiny()
PS = SPACE.param_space
# Small and quick: the tests check behaviour, not the last bit of accuracy.
FAST = dict(n_members=3, pretrain_epochs=20, frozen_epochs=30, finetune_epochs=30)


@pytest.fixture(scope="module")
def pretraining() -> tuple[np.ndarray, np.ndarray]:
    return pretraining_data(SPACE, 2048, seed=0)


@pytest.fixture(scope="module")
def pretrained(pretraining: tuple[np.ndarray, np.ndarray]) -> NARSPredictor:
    return NARSPredictor(seed=0, **FAST).pretrain(*pretraining)


def _task(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Accuracy as a known smooth function of architecture (log FLOPs) and recipe (lr)."""
    log_flops = np.log(space_costs(SPACE, values)["flops"])
    z = (log_flops - 13.9) / 0.6
    log_lr = np.log10(SPACE.column(values, "recipe.lr").astype(float))
    return np.tanh(z) - 0.5 * (log_lr + 1.5) ** 2 + rng.normal(0.0, 0.05, len(values))


def test_proxy_targets_are_log_costs() -> None:
    values = SPACE.sample_values(16, seed=1)
    y = proxy_targets(SPACE, values)
    costs = space_costs(SPACE, values)
    np.testing.assert_allclose(np.exp(y[:, 0]), costs["flops"], rtol=1e-9)
    np.testing.assert_allclose(np.exp(y[:, 1]), costs["params"], rtol=1e-9)
    arch_x, proxy_y = pretraining_data(SPACE, 32, seed=2)
    assert arch_x.shape == (32, PS.encode(values[:1], "architecture").shape[1])
    assert proxy_y.shape == (32, 2)


def test_pretraining_is_deterministic_and_cached(
    pretraining: tuple[np.ndarray, np.ndarray],
) -> None:
    arch_x, proxy_y = pretraining[0][:512], pretraining[1][:512]
    values = SPACE.sample_values(40, seed=3)
    ax, rx = encode_split(PS, values)
    y = _task(values, np.random.default_rng(0))
    clear_pretrain_cache()
    state = torch.get_rng_state()
    a = NARSPredictor(seed=5, **FAST).pretrain(arch_x, proxy_y)
    assert not a.pretrain_cached_
    torch.testing.assert_close(torch.get_rng_state(), state)  # the global RNG is untouched
    clear_pretrain_cache()
    b = NARSPredictor(seed=5, **FAST).pretrain(arch_x, proxy_y)
    assert not b.pretrain_cached_
    for k, v in a.pretrained_.state.items():
        torch.testing.assert_close(v, b.pretrained_.state[k], rtol=0, atol=0)
    pa = a.fit(ax, rx, y).predict(ax, rx)
    pb = b.fit(ax, rx, y).predict(ax, rx)
    np.testing.assert_array_equal(pa[0], pb[0])
    np.testing.assert_array_equal(pa[1], pb[1])
    # Same data and arguments: served from the cache, the very same object.
    c = NARSPredictor(seed=5, **FAST).pretrain(arch_x, proxy_y)
    assert c.pretrain_cached_ and c.pretrained_ is b.pretrained_
    # Another seed is another encoder.
    d = NARSPredictor(seed=6, **FAST).pretrain(arch_x, proxy_y)
    assert not d.pretrain_cached_
    assert not np.array_equal(d.fit(ax, rx, y).predict(ax, rx)[0], pa[0])


def test_pretraining_reduces_proxy_loss(
    pretrained: NARSPredictor, pretraining: tuple[np.ndarray, np.ndarray]
) -> None:
    losses = pretrained.pretrained_.losses
    assert len(losses) == FAST["pretrain_epochs"] + 1
    assert losses[-1] < 0.1 * losses[0]
    # Held out: fresh architectures, standardised MSE far below the variance (1.0).
    arch_x, proxy_y = pretraining_data(SPACE, 512, seed=99)
    assert pretrained.proxy_loss(arch_x, proxy_y) < 0.1


def test_pretrained_state_cache_computes_once() -> None:
    calls = []

    def compute() -> int:
        calls.append(1)
        return 42

    key = ("test-key", 1)
    assert pretrained_state(key, compute) == 42
    assert pretrained_state(key, compute) == 42
    assert len(calls) == 1


def test_fitted_predictor_ranks_held_out_rows(pretrained: NARSPredictor) -> None:
    rng = np.random.default_rng(0)
    values = SPACE.sample_values(560, seed=7, method="random")
    y = _task(values, rng)
    ax, rx = encode_split(PS, values)
    model = pretrained.clone().fit(ax[:60], rx[:60], y[:60])
    mean, std = model.predict(ax[60:], rx[60:])
    assert mean.shape == std.shape == (500,)
    tau = kendalltau(mean, y[60:]).statistic
    assert tau > 0.5, tau
    assert np.all(std >= 0) and std.mean() > 0  # the members disagree somewhat
    members = model.predict_members(ax[60:], rx[60:])
    assert members.shape == (FAST["n_members"], 500)
    np.testing.assert_allclose(members.mean(axis=0), mean)
    # Predictions are on the scale of y.
    assert abs(mean.mean() - y[60:].mean()) < y.std()


def test_kendall_tau_cv(pretrained: NARSPredictor) -> None:
    values = SPACE.sample_values(40, seed=11, method="random")
    y = _task(values, np.random.default_rng(1))
    ax, rx = encode_split(PS, values)
    tau = kendall_tau_cv(pretrained, ax, rx, y, k=3, seed=0)
    assert 0.2 < tau <= 1.0
    assert pretrained.kendall_tau_cv(ax, rx, y, k=3, seed=0) == pytest.approx(tau)
    assert not pretrained.is_fitted  # CV fits clones only
    assert np.isnan(kendall_tau_cv(pretrained, ax[:3], rx[:3], y[:3]))
    assert np.isnan(kendall_tau_cv(pretrained, ax[:8], rx[:8], np.ones(8)))


def test_prequential_kendall_tau_counts_the_recorded_pairs_only() -> None:
    # One swapped pair of 10: (45 - 2 * 1) / 45. The NaN predictions (proposals made without
    # one) and the NaN measurement are left out, whatever values sit beside them.
    predicted = np.array([np.nan, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, np.nan, 10])
    measured = np.array([9.0, 0, 1, 2, 3, 4, 5, 6, 7, 9, 8, -5.0, np.nan])
    assert prequential_kendall_tau(predicted, measured) == pytest.approx(43 / 45)
    assert prequential_kendall_tau(-predicted, measured) == pytest.approx(-43 / 45)
    assert np.isnan(prequential_kendall_tau(predicted[:2], measured[:2]))  # one pair
    assert np.isnan(prequential_kendall_tau(np.ones(5), np.arange(5.0)))  # constant
    with pytest.raises(ValueError, match="one prediction per measured value"):
        prequential_kendall_tau(predicted, measured[:-1])


@pytest.mark.parametrize("n", [1, 2, 5])
def test_works_with_very_few_samples(pretrained: NARSPredictor, n: int) -> None:
    values = SPACE.sample_values(n, seed=13, method="random")
    y = np.arange(n, dtype=float) * 0.1 + 0.5
    ax, rx = encode_split(PS, values)
    model = pretrained.clone().fit(ax, rx, y)
    many = SPACE.sample_values(64, seed=14)
    mean, std = model.predict(*encode_split(PS, many))
    assert mean.shape == (64,) and np.all(np.isfinite(mean)) and np.all(np.isfinite(std))
    # Sensible: within a few spreads of the observations.
    assert np.all(np.abs(mean - y.mean()) < 1.0 + 5 * y.std())
    if n > 1:
        assert model.predict(ax, rx)[0].argmax() == n - 1  # fits its few samples' order


def test_no_recipe_columns() -> None:
    space = SearchSpace.tiny().replace(recipe=_fixed_recipe())
    assert len(space.part_columns("recipe")) == 0
    values = space.sample_values(30, seed=0)
    ax, rx = encode_split(space.param_space, values)
    assert rx.shape == (30, 0)
    pre = NARSPredictor(seed=0, **FAST).pretrain(*pretraining_data(space, 512, seed=0))
    y = np.log(space_costs(space, values)["params"])
    for recipe_x in (rx, None):
        model = pre.clone().fit(ax, recipe_x, y)
        mean, std = model.predict(ax, recipe_x)
        assert mean.shape == (30,)
        assert kendalltau(mean, y).statistic > 0.5


def _fixed_recipe() -> dict[str, object]:
    return {
        "optimizer": "sgd", "lr": 0.1, "weight_decay": 1e-4, "mixup_alpha": 0.0,
        "dropout": 0.1, "stochastic_depth": 0.0, "ema": False, "label_smoothing": 0.1,
    }


def test_without_pretraining_and_without_proxy_targets() -> None:
    values = SPACE.sample_values(30, seed=0)
    ax, rx = encode_split(PS, values)
    y = _task(values, np.random.default_rng(2))
    model = NARSPredictor(seed=0, **FAST).fit(ax, rx, y)
    assert not model.is_pretrained and model.is_fitted
    assert model.predict(ax, rx)[0].shape == (30,)
    # The module alone: no proxy head, no recipe, or no architecture.
    net = AccuracyPredictor(ax.shape[1], rx.shape[1], 0, n_members=2)
    assert net.proxy_head is None
    out = net(torch.as_tensor(ax, dtype=torch.float32), torch.as_tensor(rx, dtype=torch.float32))
    assert out.shape == (2, 30)
    with pytest.raises(RuntimeError, match="no proxy head"):
        net.proxy(torch.as_tensor(ax, dtype=torch.float32))
    assert AccuracyPredictor(0, 5)(torch.zeros(4, 0), torch.zeros(4, 5)).shape == (1, 4)
    assert AccuracyPredictor(5, 0, 3).proxy(torch.zeros(4, 5)).shape == (1, 4, 3)
    with pytest.raises(ValueError, match="proxy_y has no columns"):
        NARSPredictor().pretrain(ax, np.zeros((30, 0)))


def test_members_are_independent_of_ensemble_size(pretrained: NARSPredictor) -> None:
    # Member i's initialisation depends on seed + i only, not on how many members there are.
    a = AccuracyPredictor(6, 2, 1, n_members=3, seed=4)
    b = AccuracyPredictor(6, 2, 1, n_members=1, seed=5)
    torch.testing.assert_close(a.accuracy_head[0].weight[1], b.accuracy_head[0].weight[0])


def test_pickle_round_trip(pretrained: NARSPredictor) -> None:
    values = SPACE.sample_values(20, seed=0)
    ax, rx = encode_split(PS, values)
    model = pretrained.clone().fit(ax, rx, _task(values, np.random.default_rng(3)))
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict(ax, rx)[0], model.predict(ax, rx)[0])
    assert again.get_params() == model.get_params()


def test_a_large_pool_is_predicted_as_one_forward_pass_would(pretrained: NARSPredictor) -> None:
    # predict runs the pool in chunks of PREDICT_CHUNK rows (the cache); the values must be
    # those of one pass over every row, whatever else is predicted with a row.
    values = SPACE.sample_values(40, seed=0)
    ax, rx = encode_split(PS, values)
    model = pretrained.clone().fit(ax, rx, _task(values, np.random.default_rng(4)))
    n = 2 * PREDICT_CHUNK + 37  # a ragged last chunk
    pool_ax, pool_rx = encode_split(PS, SPACE.sample_values(n, seed=1, method="random"))
    mean, std = model.predict(pool_ax, pool_rx)
    assert mean.shape == std.shape == (n,)
    with torch.inference_mode():
        members = model.model_(torch.as_tensor(pool_ax, dtype=torch.float32),
                               torch.as_tensor(pool_rx, dtype=torch.float32)).double().numpy()
    members = members * model.y_std_ + model.y_mean_
    np.testing.assert_allclose(mean, members.mean(axis=0), rtol=0, atol=1e-6)
    np.testing.assert_allclose(std, members.std(axis=0), rtol=0, atol=1e-6)
    rows = slice(PREDICT_CHUNK - 5, PREDICT_CHUNK + 5)  # across a chunk boundary
    np.testing.assert_allclose(model.predict(pool_ax[rows], pool_rx[rows])[0], mean[rows],
                               rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_members": 0}, "n_members must be an integer >= 1.*n_members=4"),
        ({"hidden": 2.5}, "hidden must be an integer"),
        ({"embedding_dim": -1}, "embedding_dim"),
        ({"pretrain_epochs": 0}, "pretrain_epochs"),
        ({"frozen_epochs": -1}, "frozen_epochs"),
        ({"frozen_epochs": 0, "finetune_epochs": 0}, "frozen_epochs \\+ finetune_epochs"),
        ({"lr": 0}, "lr must be a finite number > 0.*lr=0.003"),
        ({"lr": float("nan")}, "lr"),
        ({"weight_decay": -1.0}, "weight_decay must be a finite number >= 0"),
        ({"huber_delta": 0.0}, "huber_delta"),
        ({"batch_size": 0}, "batch_size"),
        ({"max_batches_per_epoch": 0}, "max_batches_per_epoch must be an integer >= 1"),
        ({"seed": "x"}, "seed must be an integer"),
        ({"n_threads": 0}, "n_threads"),
        ({"n_members": True}, "n_members"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        NARSPredictor(**kwargs)


def test_bad_inputs(pretrained: NARSPredictor) -> None:
    values = SPACE.sample_values(8, seed=0)
    ax, rx = encode_split(PS, values)
    y = np.linspace(0, 1, 8)
    with pytest.raises(ValueError, match="rows, expected 8"):
        pretrained.clone().fit(ax, rx[:5], y)
    with pytest.raises(ValueError, match="NaN"):
        pretrained.clone().fit(ax, rx, np.where(y > 0.5, np.nan, y))
    with pytest.raises(ValueError, match="pretrained on"):
        pretrained.clone().fit(ax[:, :-1], rx, y)
    with pytest.raises(RuntimeError, match="call fit"):
        pretrained.clone().predict(ax, rx)
    model = pretrained.clone().fit(ax, rx, y)
    with pytest.raises(ValueError, match="recipe columns"):
        model.predict(ax, rx[:, :-1])


def test_predict_values_encodes_for_the_caller(pretrained: NARSPredictor) -> None:
    values = SPACE.sample_values(12, seed=0)
    ax, rx = encode_split(PS, values)
    model = pretrained.clone().fit(ax, rx, _task(values, np.random.default_rng(5)))
    np.testing.assert_array_equal(model.predict_values(PS, values)[0], model.predict(ax, rx)[0])


def test_fine_tuning_steps_match_torch_adamw() -> None:
    # FusedAdamW is torch's own AdamW update without torch.optim.Optimizer: bit for bit the same.
    from optuna_nars.predictor._plumbing import FusedAdamW

    def train(make_optimizer: object) -> list[torch.Tensor]:
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.GELU(), torch.nn.Linear(7, 1))
        frozen = net[2].bias  # never gets a gradient: skipped, as torch.optim skips it
        frozen.requires_grad_(False)
        params = [p for p in net.parameters() if p is not frozen] + [frozen]
        opt = make_optimizer(params)  # type: ignore[operator]
        x, y = torch.randn(50, 5), torch.randn(50, 1)
        for _ in range(25):
            loss = ((net(x) - y) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return [p.detach().clone() for p in net.parameters()]

    ours = train(lambda p: FusedAdamW(p, 3e-3, 1e-4))
    theirs = train(lambda p: torch.optim.AdamW(p, lr=3e-3, weight_decay=1e-4, fused=True))
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_pretraining_and_fitting_do_not_import_torch_dynamo() -> None:
    # Constructing a torch.optim.Optimizer imports torch._dynamo (about a second of CPU per
    # process); a worker whose objective does not use torch.optim must not pay it.
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from optuna_nars.predictor import NARSPredictor\n"
        "rng = np.random.default_rng(0)\n"
        "x, r = rng.random((40, 6)), rng.random((40, 2))\n"
        "p = NARSPredictor(n_members=2, pretrain_epochs=2, frozen_epochs=2, finetune_epochs=2)\n"
        "p.pretrain(x, np.column_stack([x.sum(1), x.max(1)])).fit(x, r, x.sum(1))\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("steps", [1, 2, 7, 250])
def test_cosine_lrs_are_torchs_cosine_schedule(steps: int) -> None:
    from optuna_nars.predictor._plumbing import cosine_lrs

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=3e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    expected = []
    for _ in range(steps):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    assert cosine_lrs(3e-3, steps) == expected  # exactly


def test_batches_per_epoch_cap_bounds_the_steps(
    pretrained: NARSPredictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    from optuna_nars.predictor import _plumbing

    values = SPACE.sample_values(300, seed=0)
    ax, rx = encode_split(PS, values)
    y = _task(values, np.random.default_rng(6))
    steps: list[int] = []
    original = _plumbing.FusedAdamW.step

    def counting_step(self: object) -> None:
        steps.append(1)
        original(self)  # type: ignore[arg-type]

    monkeypatch.setattr(_plumbing.FusedAdamW, "step", counting_step)
    epochs = FAST["frozen_epochs"] + FAST["finetune_epochs"]
    pretrained.clone().fit(ax, rx, y)  # 300 labels, batches of 64: 5 a epoch
    assert len(steps) == epochs * 5
    steps.clear()
    capped = pretrained.clone(max_batches_per_epoch=2).fit(ax, rx, y)  # batches of 150
    assert len(steps) == epochs * 2
    assert capped.get_params()["max_batches_per_epoch"] == 2
    held_out = SPACE.sample_values(200, seed=1)
    tau = kendalltau(capped.predict_values(PS, held_out)[0],
                     _task(held_out, np.random.default_rng(7))).statistic
    assert tau > 0.5

