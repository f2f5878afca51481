"""optuna-nars: FBNetV3's Neural Architecture-Recipe Search (NARS) for Optuna."""

from optuna_nars.candidate import Architecture, Candidate, Recipe, StageArch
from optuna_nars.space import Choice, FloatRange, IntRange, RecipeSpec, SearchSpace, StageSpec

__all__ = [
    "Architecture",
    "Candidate",
    "Choice",
    "FloatRange",
    "IntRange",
    "Recipe",
    "RecipeSpec",
    "SearchSpace",
    "StageArch",
    "StageSpec",
]
__version__ = "0.1.0"
