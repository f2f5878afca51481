"""The joint architecture-recipe search space, declared once.

A :class:`SearchSpace` maps to Optuna distributions with stable, readable names
(``stage2.kernel``, ``recipe.lr``), suggests typed :class:`~optuna_nars.candidate.Candidate`
objects, and converts many candidates at once to and from a *values* matrix: one row per
candidate, one column per free parameter, holding the choice index for categorical parameters and
the value itself for ranges. Samplers, the cost model and the predictor all work on that matrix.

The package, from the ground up:

* :mod:`~optuna_nars.space.dimensions`: the :class:`Dimension` protocol (value, raw column
  entry, unit-interval point) and its three kinds, :class:`Choice`, :class:`IntRange` and
  :class:`FloatRange`;
* :mod:`~optuna_nars.space.param_space`: :class:`ParamSpace`, the values matrix of any named
  dimensions, also of plain Optuna distributions;
* :mod:`~optuna_nars.space.specs`: :class:`StageSpec` and :class:`RecipeSpec`, the choices of
  one stage and of the training recipe;
* :mod:`~optuna_nars.space.search_space`: :class:`SearchSpace`, the joint space (the parameter
  names of a candidate's fields live in the private ``_naming`` module);
* :mod:`~optuna_nars.space.presets`: the preset spaces as data (``SearchSpace.fbnetv3()``,
  ``.cifar()``, ``.tiny()``).
"""

from optuna_nars.space.dimensions import Choice, Dimension, FloatRange, IntRange
from optuna_nars.space.param_space import ParamSpace
from optuna_nars.space.search_space import SearchSpace
from optuna_nars.space.specs import RecipeSpec, StageSpec

__all__ = [
    "Choice",
    "IntRange",
    "FloatRange",
    "StageSpec",
    "RecipeSpec",
    "ParamSpace",
    "SearchSpace",
    "Dimension",
]
