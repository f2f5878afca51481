"""GPPredictor: the Gaussian process NARS fits where nothing is pretrained."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy.stats import kendalltau
from sklearn.gaussian_process import GaussianProcessRegressor
from threadpoolctl import ThreadpoolController

from optuna_nars.predictor import encode_split
from optuna_nars.predictor.gp import GPPredictor
from tests.test_predictor import PS, SPACE, _task


def test_gp_predictor_ranks_held_out_rows_and_clones() -> None:
    values = SPACE.sample_values(80, seed=0)
    ax, rx = encode_split(PS, values)
    gp = GPPredictor(seed=3).fit(ax, rx, _task(values, np.random.default_rng(1)))
    held_out = SPACE.sample_values(300, seed=2)
    mean, std = gp.predict(*encode_split(PS, held_out))
    assert mean.shape == std.shape == (300,) and np.all(std > 0)
    tau = kendalltau(mean, _task(held_out, np.random.default_rng(2))).statistic
    assert tau > 0.5
    # Far from the data the process is less sure than at the data.
    assert gp.predict(ax, rx)[1].mean() < std.mean()
    again = pickle.loads(pickle.dumps(gp))
    np.testing.assert_array_equal(again.predict(ax, rx)[0], gp.predict(ax, rx)[0])
    twin = gp.clone()
    assert not twin.is_fitted and twin.get_params() == {"n_restarts": 2, "seed": 3}
    np.testing.assert_allclose(twin.fit(ax, rx, _task(values, np.random.default_rng(1)))
                               .predict(ax, rx)[0], gp.predict(ax, rx)[0])
    assert np.isfinite(gp.kendall_tau_cv(ax, rx, _task(values, np.random.default_rng(1)), k=4))
    with pytest.raises(RuntimeError, match="call fit"):
        GPPredictor().predict(ax, rx)
    with pytest.raises(ValueError, match="NaN"):
        GPPredictor().fit(ax, rx, np.full(80, np.nan))
    with pytest.raises(ValueError, match="encoded columns"):
        gp.predict(ax[:, :-1], rx)
    with pytest.raises(ValueError, match="n_restarts must be an integer >= 0"):
        GPPredictor(n_restarts=-1)
    with pytest.raises(ValueError, match="seed must be an integer"):
        GPPredictor(seed="0")


def test_gp_predictor_runs_blas_on_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fits and predictions run BLAS on one thread (a busy second core slowed multithreaded
    fits threefold), and the process's own setting is back afterwards."""
    controller = ThreadpoolController()
    blas = controller.select(user_api="blas")
    if not blas.lib_controllers:
        pytest.skip("no BLAS library that threadpoolctl can see")  # pragma: no cover
    seen: list[tuple[str, int]] = []

    def spy(name: str):  # noqa: ANN202
        original = getattr(GaussianProcessRegressor, name)

        def wrapped(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            seen.extend((name, lib.num_threads)
                        for lib in ThreadpoolController().select(user_api="blas").lib_controllers)
            return original(self, *args, **kwargs)
        return wrapped

    monkeypatch.setattr(GaussianProcessRegressor, "fit", spy("fit"))
    monkeypatch.setattr(GaussianProcessRegressor, "predict", spy("predict"))
    values = SPACE.sample_values(30, seed=0)
    ax, rx = encode_split(PS, values)
    with controller.limit(limits=2, user_api="blas"):
        GPPredictor().fit(ax, rx, _task(values, np.random.default_rng(1))).predict(ax, rx)
        after = {lib.num_threads for lib in controller.select(user_api="blas").lib_controllers}
    assert {name for name, _ in seen} == {"fit", "predict"}
    assert {threads for _, threads in seen} == {1}
    assert after == {2}


@pytest.mark.parametrize(("n", "seed"), [(12, 0), (60, 1)])
def test_likelihood_matches_scikit_learns(n: int, seed: int) -> None:
    """The fast likelihood is scikit-learn's, value and gradient, duplicate rows included."""
    from optuna_nars.predictor.gp_likelihood import kernel, neg_log_marginal_likelihood

    rng = np.random.default_rng(seed)
    ax, rx = encode_split(PS, SPACE.sample_values(n, seed=seed))
    x = np.vstack([np.hstack([ax, rx]), np.hstack([ax, rx])[:3]])  # three rows twice
    y = np.sin(x @ rng.normal(size=x.shape[1])) + rng.normal(0.0, 0.1, len(x))
    reference = GaussianProcessRegressor(kernel(x.shape[1]), normalize_y=True,
                                         optimizer=None).fit(x, y)
    standardised = (y - y.mean()) / y.std()
    bounds = reference.kernel.bounds
    random_thetas = rng.uniform(bounds[:, 0], bounds[:, 1], (4, len(bounds)))
    for theta in [reference.kernel.theta, *random_thetas]:
        lml, grad = reference.log_marginal_likelihood(theta, eval_gradient=True)
        value, gradient = neg_log_marginal_likelihood(theta, x, standardised)
        np.testing.assert_allclose(-value, lml, rtol=1e-9)
        np.testing.assert_allclose(-gradient, grad, rtol=1e-7, atol=1e-9 * np.abs(grad).max())


# scikit-learn's own fit warns of length scales at their bounds; GPPredictor silences that.
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_fit_finds_scikit_learns_optimum() -> None:
    """Fitted with the fast likelihood, the process lands where scikit-learn's own optimiser
    does, from the same starting points."""
    from optuna_nars.predictor.gp_likelihood import kernel

    values = SPACE.sample_values(40, seed=4)
    ax, rx = encode_split(PS, values)
    y = _task(values, np.random.default_rng(4))
    ours = GPPredictor(seed=5).fit(ax, rx, y).model_
    theirs = GaussianProcessRegressor(kernel(ax.shape[1] + rx.shape[1]), normalize_y=True,
                                      n_restarts_optimizer=2, random_state=5)
    theirs.fit(np.hstack([ax, rx]), y)
    np.testing.assert_allclose(ours.log_marginal_likelihood_value_,
                               theirs.log_marginal_likelihood_value_, rtol=1e-6)
    np.testing.assert_allclose(ours.kernel_.theta, theirs.kernel_.theta, atol=1e-3)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_fits_a_handful_of_labels(n: int) -> None:
    """One label has no pairs of rows: the likelihood still fits and predicts."""
    values = SPACE.sample_values(n, seed=n)
    ax, rx = encode_split(PS, values)
    gp = GPPredictor(seed=n).fit(ax, rx, _task(values, np.random.default_rng(n)))
    mean, std = gp.predict(*encode_split(PS, SPACE.sample_values(4, seed=9)))
    assert mean.shape == (4,) and np.all(np.isfinite(mean)) and np.all(std > 0)
