"""Experiments of the same structure as one `jax.vmap`ped batch.

Two experiments have the same *structure* when everything that shapes the traced
program agrees: the observables, noise models, event-time observations, doses and
overrides (the functions and names, the shapes of the arrays), but not the values —
data, observation times (padded to a common length with a mask), initial states,
overridden values, dose times and amounts, crossing levels. An override that reads
another parameter (`{"k": "k_patient2"}`) is a reference into the params dict: the
batch carries, per experiment, the index of the parameter it reads. Experiments of
different structure fall back to one batch per structure; a batch of one is not
vmapped (the same program as a single experiment)."""

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, final

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, Int

from .._observations import Experiment
from .._observations._experiment import replace


def _is_array_like(x) -> bool:
    return isinstance(x, jax.Array | np.ndarray | np.generic | float | int | bool)


def _blank(experiment: Experiment) -> Experiment:
    """The experiment without what may differ inside a batch: its name, the sources of
    its named overrides (batched as indices) and its number of times."""
    n = experiment.n_observables
    return replace(
        experiment,
        name="",
        override_names=(),
        times=np.zeros((0,)),
        data=np.zeros((0, n)),
        mask=np.zeros((0, n), dtype=bool),
    )


def structure(experiment: Experiment, params: Mapping) -> Hashable:
    """What must agree for experiments to share a batch (hashable)."""
    leaves, treedef = jtu.tree_flatten(_blank(experiment))
    if not all(_is_array_like(x) for x in leaves):
        return ("alone", id(experiment))
    shapes = tuple((np.shape(x), jnp.result_type(x)) for x in leaves)
    named = tuple(
        (key, np.shape(params[source]), jnp.result_type(params[source]))
        for key, source in experiment.override_names
    )
    key = (treedef, shapes, experiment.times.shape[0] > 0, named)
    try:
        hash(key)
    except TypeError:  # an unhashable static field: no batching for it
        return ("alone", id(experiment))
    return key


@final
class Batch(eqx.Module):
    """Experiments of one structure, stacked.

    - `experiments`: one [`odeinfer.Experiment`][] whose arrays have a leading axis
        (one row per experiment; times padded, name blank, named overrides removed).
    - `sources`: per experiment, per named override, the index into `candidates` of
        the parameter it reads.
    - `candidates`: per named override, `(key, names of the parameters read)`.
    - `positions`: where the experiments are in the problem's list.
    """

    experiments: Experiment
    sources: Int[Array, "n n_named"]
    candidates: tuple[tuple[str, tuple[str, ...]], ...] = eqx.field(static=True)
    positions: tuple[int, ...] = eqx.field(static=True)

    def parameters_for(self, experiment: Experiment, sources, params: Mapping) -> dict:
        """One experiment's parameters (inside `jax.vmap`: `experiment` and `sources`
        are its rows)."""
        p = experiment.parameters_for(params)
        for (key, names), index in zip(self.candidates, sources, strict=True):
            if len(names) == 1:
                p[key] = params[names[0]]
            else:
                p[key] = jnp.stack([jnp.asarray(params[n]) for n in names])[index]
        return p


def _stack(experiments: Sequence[Experiment], positions: tuple[int, ...]) -> Batch:
    members = [experiments[i] for i in positions]
    n_times = max(e.times.shape[0] for e in members)
    rows = [replace(e.padded(n_times), name="", override_names=()) for e in members]
    leaves = [jtu.tree_leaves(row) for row in rows]
    stacked = [
        jnp.stack([jnp.asarray(x) for x in column])
        for column in zip(*leaves, strict=True)
    ]
    template = jtu.tree_unflatten(jtu.tree_structure(rows[0]), stacked)
    candidates, sources = [], []
    for j, (key, _) in enumerate(members[0].override_names):
        names = tuple(dict.fromkeys(e.override_names[j][1] for e in members))
        candidates.append((key, names))
        sources.append([names.index(e.override_names[j][1]) for e in members])
    sources = np.asarray(sources, dtype=np.int32).T.reshape(len(members), -1)
    return Batch(
        experiments=template,
        sources=jnp.asarray(sources),
        candidates=tuple(candidates),
        positions=positions,
    )


def map_experiments(
    fn: Callable[[Experiment, dict], object],
    experiments: Sequence[Experiment],
    params: Mapping,
) -> list:
    """`[fn(e, e.parameters_for(params)) for e in experiments]`, with each group of
    experiments of the same structure as one vmapped call of `fn`. An output of a
    batched experiment keeps the padded length of its batch (`fn` of its padded
    copy): trim what depends on the number of times."""
    groups: dict[Hashable, list[int]] = {}
    for i, experiment in enumerate(experiments):
        groups.setdefault(structure(experiment, params), []).append(i)
    out: list[Any] = [None] * len(experiments)
    for positions in groups.values():
        if len(positions) == 1:
            (i,) = positions
            out[i] = fn(experiments[i], experiments[i].parameters_for(params))
            continue
        batch = _stack(experiments, tuple(positions))

        def one(experiment, sources, batch=batch):
            return fn(experiment, batch.parameters_for(experiment, sources, params))

        stacked = jax.vmap(one)(batch.experiments, batch.sources)
        for k, i in enumerate(batch.positions):
            out[i] = jtu.tree_map(lambda x, k=k: x[k], stacked)
    return out
