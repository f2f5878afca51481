"""NARSSampler(model_choice=True): the MLP ensemble or a GP, by their out-of-fold Kendall tau."""

from __future__ import annotations

import functools

import numpy as np
import optuna
import pytest

from optuna_nars import SearchSpace
from optuna_nars.cost import space_costs
from optuna_nars.predictor import NARSPredictor, encode_split
from optuna_nars.predictor.gp import GPPredictor
from optuna_nars.predictor.metrics import out_of_fold, ranking_tau
from optuna_nars.samplers import NARSSampler
from optuna_nars.samplers.nars._model import (
    CHOICE_LABELS,
    CHOICE_UNTIL,
    choose_model,
    fit_predictor,
    normal_scores,
    pretrain_predictor,
)
from tests.test_sampler import FAST, fast_sampler, synthetic_objective


class _Linear:
    """A stand-in model predicting ``sign * x[:, 0]``: with ``sign=1`` it ranks the labels
    below exactly, with ``-1`` backwards, with ``0`` not at all."""

    def __init__(self, sign: float, seed: int = 0) -> None:
        self.sign, self.seed = sign, seed

    def clone(self, **changes: int) -> _Linear:
        return _Linear(self.sign, changes.get("seed", self.seed))

    def fit(self, arch_x: np.ndarray, recipe_x: np.ndarray, y: np.ndarray) -> _Linear:
        return self

    def predict(self, arch_x: np.ndarray, recipe_x: np.ndarray) -> tuple[np.ndarray, ...]:
        return self.sign * arch_x[:, 0], np.ones(len(arch_x))


def test_choose_model_takes_the_better_ranking_and_the_first_on_ties() -> None:
    rng = np.random.default_rng(0)
    arch_x, recipe_x = rng.random((20, 3)), rng.random((20, 0))
    z = normal_scores(arch_x[:, 0])
    good, bad, flat = _Linear(1.0), _Linear(-1.0), _Linear(0.0)
    for candidates in ([good, bad], [bad, good], [flat, good]):
        chosen, oof = choose_model(candidates, arch_x, recipe_x, z, seed=3)  # type: ignore[arg-type]
        assert chosen is good
        assert oof is not None and ranking_tau(oof[0], z) == pytest.approx(1.0)
    twin = _Linear(1.0)
    assert choose_model([twin, good], arch_x, recipe_x, z, seed=3)[0] is twin  # type: ignore[list-item]
    # No candidate ranks (constant predictions): the first, with no predictions to reuse.
    assert choose_model([flat, _Linear(0.0)], arch_x, recipe_x, z, seed=3)[:2] == (flat, None)  # type: ignore[list-item]


def test_fit_predictor_reports_the_chosen_models_cross_validated_tau() -> None:
    space = SearchSpace.tiny()
    param_space = space.param_space
    metrics = functools.partial(space_costs, space)
    pool = param_space.sample_values(256, seed=0)
    x = param_space.sample_values(24, seed=1)
    # The recipe's learning rate decides the label: a GP on the encodings ranks it well.
    lr = space.column(x, "recipe.lr")
    y = -(np.log10(lr) + 2.0) ** 2
    pretrained, _ = pretrain_predictor(NARSPredictor(**FAST), param_space, metrics, 128, 0)
    plain = fit_predictor(pretrained, param_space, pool, x, y, seed=5, gp_labels=50)
    chosen = fit_predictor(pretrained, param_space, pool, x, y, seed=5, gp_labels=50,
                           model_choice=True)
    assert isinstance(plain.predictor, NARSPredictor)
    arch_x, recipe_x = encode_split(param_space, x)
    z = normal_scores(y)
    taus = {}
    for model in (pretrained.clone(seed=5), GPPredictor(seed=5)):
        oof = out_of_fold(model, arch_x, recipe_x, z, k=5, seed=5)
        assert oof is not None
        taus[type(model)] = ranking_tau(oof[0], z)
    best = max(taus, key=lambda k: (taus[k], k is NARSPredictor))
    assert best is GPPredictor  # here the GP ranks the learning rate, the ensemble does not
    assert isinstance(chosen.predictor, best) and chosen.model == "gp" and plain.model == "ensemble"
    # The reused out-of-fold predictions are the reported tau: no second cross-validation.
    assert chosen.tau_method == "cross-validated"
    assert chosen.kendall_tau == pytest.approx(taus[best])
    # From gp_labels labels on, and below CHOICE_LABELS, the ensemble whatever the evidence.
    late = fit_predictor(pretrained, param_space, pool, x, y, seed=5, gp_labels=20,
                         model_choice=True)
    early = fit_predictor(pretrained, param_space, pool, x[:CHOICE_LABELS - 1],
                          y[:CHOICE_LABELS - 1], seed=5, gp_labels=50, model_choice=True)
    assert late.model == early.model == "ensemble"
    # The choice ends at CHOICE_UNTIL labels however large gp_labels is.
    assert fit_predictor(pretrained, param_space, pool, x, y, seed=5, gp_labels=200,
                         model_choice=True).model == "gp"
    many = param_space.sample_values(CHOICE_UNTIL, seed=2)
    y_many = -(np.log10(space.column(many, "recipe.lr")) + 2.0) ** 2
    beyond = fit_predictor(pretrained, param_space, pool, many, y_many, seed=5, gp_labels=200,
                           model_choice=True)
    assert beyond.model == "ensemble" and beyond.tau_method == "cross-validated"


def test_sampler_compares_both_models_below_gp_labels_only(gp_fits: list[int]) -> None:
    fitted = gp_fits
    tiny = SearchSpace.tiny()
    for choice in (False, True):
        fitted.clear()
        sampler = fast_sampler(search_space=tiny, gp_labels=CHOICE_LABELS + 4,
                               model_choice=choice, n_rounds=10)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(synthetic_objective(tiny), n_trials=CHOICE_LABELS + 6)
        refits = [t.n_labels for t in sampler.timings if t.step == "refit"]
        assert {CHOICE_LABELS - 4, CHOICE_LABELS, CHOICE_LABELS + 4} <= set(refits)
        quality = study._storage.get_study_system_attrs(study._study_id)["nars:predictor"]
        assert quality["n_labels"] == CHOICE_LABELS + 4 and quality["model"] == "ensemble"
        # The GP's cross-validation folds (4 of 5 of the fit set of CHOICE_LABELS labels, and
        # the fit on all of them if it ranked better), only when asked for: below
        # CHOICE_LABELS and from gp_labels on, the ensemble alone.
        assert bool(fitted) == choice
        assert {n for n in fitted if n < CHOICE_LABELS} == ({CHOICE_LABELS * 4 // 5} if choice
                                                             else set())
        assert all(n <= CHOICE_LABELS for n in fitted)
    with pytest.raises(ValueError, match="model_choice"):
        NARSSampler(model_choice="yes")  # type: ignore[arg-type]
