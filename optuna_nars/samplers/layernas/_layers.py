"""How a search space is cut into ordered layers, each with a finite set of options.

LayerNAS searches layer by layer, so the space must come as an ordered list of layers, each a
group of parameters (columns of the values matrix) with a finite set of *options* (rows over
those columns):

* a :class:`~optuna_nars.SearchSpace`: one layer per stage (its ``stage{i}.*`` parameters), in
  stage order, then one last layer holding every other parameter (resolution, stem, head and
  the training recipe), so that the recipe is tuned for the architecture the stages found;
* an explicit ``layers`` list (groups of parameter names, in order): those groups, then one last
  layer of the parameters no group names;
* otherwise (a dict of distributions or an inferred space, no ``layers``): one layer per
  parameter, in the column order (sorted names).

A layer's options are the product of its parameters' values when it holds at most
``max_options`` of them (continuous parameters have no product); otherwise the centre of the
layer's box followed by a seeded scrambled-Sobol sample, so that every process derives the same
options from the seed.

Layers not yet searched hold their *default* (the root row's value): the cheapest option, chosen
greedily layer by layer under the cost, as the paper's construction assumes (the model built so
far, completed as cheaply as possible).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from optuna_nars.space import ParamSpace, SearchSpace
from optuna_nars.space.param_space import unique_rows

__all__ = ["CostFunction", "Layers", "build_layers", "layer_groups", "most_expensive", "with_root"]

CostFunction = Callable[[np.ndarray], np.ndarray]  # values matrix (n, d) -> costs (n,)


@dataclass
class Layers:
    """The ordered layers of a values matrix, their options and the root (default) row."""

    names: list[tuple[str, ...]]  # the parameters of each layer
    columns: list[np.ndarray]  # the values-matrix columns of each layer
    options: list[np.ndarray]  # (n_options, len(columns)) raw values of each layer
    root: np.ndarray  # every layer at its default

    def __len__(self) -> int:
        return len(self.columns)

    def depth(self, values: np.ndarray) -> np.ndarray:
        """The last layer at which each row leaves the root (``-1``: the root itself)."""
        values = np.atleast_2d(values)
        out = np.full(len(values), -1, dtype=int)
        for i, cols in enumerate(self.columns):
            changed = np.any(values[:, cols] != self.root[cols], axis=1)
            out[changed] = i
        return out

    def children(self, parents: np.ndarray, layer: int) -> np.ndarray:
        """Every parent with layer ``layer`` set to each of its options, parent by parent."""
        opts = self.options[layer]
        out = np.repeat(np.atleast_2d(parents), len(opts), axis=0)
        out[:, self.columns[layer]] = np.tile(opts, (len(parents), 1))
        return out


def layer_groups(
    param_space: ParamSpace,
    space: SearchSpace | None,
    layers: Sequence[Sequence[str]] | None,
) -> list[tuple[str, ...]]:
    """The parameter groups of each layer, in order (see the module docstring); groups naming
    no parameter of ``param_space`` (e.g. of an inferred space still growing) are dropped."""
    names = param_space.names
    if layers is not None:
        groups = [tuple(n for n in group if n in names) for group in layers]
    elif space is not None:
        groups = [
            tuple(n for n in names if n.startswith(f"stage{i}."))
            for i in range(1, len(space.stages) + 1)
        ]
    else:
        groups = [(n,) for n in names]
    groups = [g for g in groups if g]
    named = {n for g in groups for n in g}
    rest = tuple(n for n in names if n not in named)
    return groups + [rest] if rest else groups


def _options(
    param_space: ParamSpace, columns: np.ndarray, max_options: int, seed: int
) -> np.ndarray:
    """The options of the layer of ``columns``: the product of their values, or the centre of
    the box and a Sobol sample when the product is larger than ``max_options`` (or infinite)."""
    sub = ParamSpace([param_space.params[c] for c in columns])
    if sub.size <= max_options:
        return sub.grid()
    sample = sub.sample_values(max_options - 1, seed=seed)
    centre = sub.from_unit(np.full((1, len(columns)), 0.5))
    return unique_rows(np.vstack([centre, sample]))


def build_layers(
    param_space: ParamSpace,
    groups: list[tuple[str, ...]],
    max_options: int,
    seed: int,
    cost: CostFunction | None,
) -> Layers:
    """The layers of ``groups``, their options and the cheapest root under ``cost`` (the first
    option of every layer without one)."""
    columns = [np.array([param_space.index(n) for n in g], dtype=int) for g in groups]
    options = [
        _options(param_space, cols, max_options, seed + i) for i, cols in enumerate(columns)
    ]
    root = np.empty(len(param_space))
    for cols, opts in zip(columns, options, strict=True):
        root[cols] = opts[0]
    layers = Layers(list(groups), columns, options, root)
    if cost is not None:
        # One greedy pass: each layer takes its cheapest option given the earlier choices and
        # the first options after it (ties keep the earlier option).
        for i in range(len(layers)):
            costs = cost(layers.children(root[None], i))
            root = layers.children(root[None], i)[int(np.argmin(costs))]
        layers.root = root
    return layers


def with_root(layers: Layers, root: np.ndarray) -> Layers:
    """``layers`` with another root, its values added to the options where missing."""
    options = []
    for cols, opts in zip(layers.columns, layers.options, strict=True):
        seg = root[cols]
        present = np.any(np.all(opts == seg, axis=1))
        options.append(opts if present else np.vstack([seg[None], opts]))
    return Layers(layers.names, layers.columns, options, np.array(root, dtype=float))


def most_expensive(layers: Layers, cost: CostFunction) -> float:
    """The cost of the greedy most expensive row: the top of the cost buckets' range."""
    row = layers.root
    for i in range(len(layers)):
        kids = layers.children(row[None], i)
        row = kids[int(np.argmax(cost(kids)))]
    return float(cost(row[None])[0])
