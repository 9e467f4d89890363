"""Loss-aware placement: the placement (and exit policy) whose predicted
end-to-end loss is least, or whose accuracy is best within a loss target.

The latency-only methods (Neurosurgeon, min-cut, the ILP's latency objective)
put every block where it runs fastest, so under load one device takes all the
work and its queue overflows. This method scores placements with the analytic
loss chain (:class:`edgeperf.queueing.DecompositionEvaluator` with
two-moment matched laws, whose arrival pmfs are closed forms) and confirms its best few with the
simulator.

Search (documented in ``docs/background/placement.md``):

* **exhaustive** when the valid placements number at most ``exhaustive_limit``;
* otherwise **ILP seeds, then local search**: the ILP's latency, bottleneck
  and mixed optima, the all-on-source placement and ``restarts`` random valid
  placements (seeded) each start a first-improvement hill climb over moves
  that shift a fragment boundary by one block, slide a fragment by one block
  (both its boundaries), move a fragment to an unused device, split a
  fragment onto an unused device, or merge two neighbouring fragments. Scores
  are memoised per placement.

Scores: without a loss target, the least loss wins and placements within
``loss_tolerance`` of it tie, broken by mean response time (so that at light
load, where every loss is negligible, the fastest placement wins). With a
loss target, placements that meet it compete on accuracy (when exit options
are given), then on mean response time.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _validation as v
from ..exceptions import InfeasibleError, UnsupportedModelError
from ..model import DNN, ExitTable, Metrics, System
from ._costs import Costs, fragments_of
from ._decision import PlacementDecision

__all__ = ["ExitOption", "exit_options", "loss_aware"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ExitOption:
    """An exit policy as static probabilities (exit block -> P(leave | reached))
    and the accuracy it gives."""

    probabilities: Mapping[str, float]
    accuracy: float
    label: str = ""

    def __post_init__(self) -> None:
        v.instance("ExitOption", "probabilities", self.probabilities, Mapping,
                   "a mapping exit block -> probability")
        if not all(isinstance(k, str) for k in self.probabilities):
            raise v.fail("ExitOption", "probabilities", "keyed by exit block names",
                         list(self.probabilities))
        for q in self.probabilities.values():
            v.probability("ExitOption", "probabilities", q)
        v.probability("ExitOption", "accuracy", self.accuracy)
        v.instance("ExitOption", "label", self.label, str, "a string")

    def apply(self, model: DNN) -> DNN:
        """``model`` with these exit probabilities on its exit blocks."""
        v.instance("ExitOption.apply", "model", model, DNN, "a DNN")
        exits = [b.name for b in model.blocks if b.exit_probability is not None]
        if sorted(self.probabilities) != sorted(exits):
            raise v.fail("ExitOption", "probabilities", f"keyed by the model's exits {exits}",
                         sorted(self.probabilities))
        return dataclasses.replace(model, blocks=tuple(
            dataclasses.replace(b, exit_probability=self.probabilities[b.name])
            if b.name in self.probabilities else b for b in model.blocks))


def exit_options(table: ExitTable, model: DNN,
                 thresholds: Sequence[Sequence[float]] | np.ndarray) -> list[ExitOption]:
    """One :class:`ExitOption` per threshold vector, exact on ``table``."""
    v.instance("exit_options", "table", table, ExitTable, "an ExitTable")
    v.instance("exit_options", "model", model, DNN, "a DNN")
    exits = [b.name for b in model.blocks if b.exit_probability is not None]
    if table.n_exits != len(exits) + 1:
        raise v.fail("exit_options", "table", f"{len(exits) + 1} exits, as the model has "
                     f"(exits after {exits} and the final one)", table.n_exits)
    rule = f"threshold vectors of {len(exits)} numbers (one per early exit), or one of them"
    try:
        vectors = np.atleast_2d(np.asarray(thresholds, dtype=float))
    except (TypeError, ValueError):  # ragged, or not numbers
        raise v.fail("exit_options", "thresholds", rule, v.brief(thresholds)) from None
    if vectors.ndim != 2:
        raise v.fail("exit_options", "thresholds", rule, f"shape {vectors.shape}")
    shares, accuracy = table.evaluate(vectors)
    out = []
    for row, acc, thr in zip(shares, accuracy, vectors):
        reach, probabilities = 1.0, {}
        for name, share in zip(exits, row):
            probabilities[name] = min(share / reach, 1.0) if reach > 0 else 0.0
            reach -= share
        out.append(ExitOption(probabilities=probabilities, accuracy=float(acc),
                              label=",".join(f"{t:g}" for t in np.ravel(thr))))
    return out


@dataclass(frozen=True, slots=True)
class _Scored:
    option: int
    assignment: tuple[int, ...]
    metrics: Metrics


def loss_aware(system: System, *, chain: str | None = None, loss_target: float | None = None,
               options: Sequence[ExitOption] | None = None, exhaustive_limit: int = 5000,
               loss_tolerance: float = 1e-4, restarts: int = 8, confirm: int = 3,
               jobs: int = 50_000,
               replications: int = 3, seed: int = 0,
               progress: Callable[[int], None] | None = None) -> PlacementDecision:
    """The loss-aware placement of ``chain`` (default: the only one).

    ``options`` are exit policies to choose among (default: the scenario's);
    ``confirm`` candidates, best by the analytic model, are simulated
    (``jobs`` x ``replications``, ``seed``) and the best simulated one wins
    (``confirm=0``: no simulation). ``progress`` is called with the number of
    placements scored so far.
    """
    owner = "loss_aware"
    v.instance(owner, "system", system, System, "a System")
    if progress is not None and not callable(progress):
        raise v.fail(owner, "progress", "None or a function of the placements scored",
                     v.brief(progress))
    if loss_target is not None:
        v.probability(owner, "loss_target", loss_target)
    v.integer(owner, "exhaustive_limit", exhaustive_limit, low=1)
    v.non_negative(owner, "loss_tolerance", loss_tolerance)
    v.integer(owner, "confirm", confirm, low=0)
    v.integer(owner, "restarts", restarts, low=0)
    v.seed(owner, "seed", seed)
    if options is not None:
        options = v.listed(owner, "options", options, "a list of ExitOption (from exit_options)",
                           lambda o: isinstance(o, ExitOption))
    if len(system.chains) > 1:  # its analytic model sees one chain, not the others' load
        raise UnsupportedModelError(
            f"loss_aware scores a chain with the analytic decomposition, which cannot model "
            f"chains sharing devices ({len(system.chains)} here); place every chain at once "
            "with method 'surrogate' or 'simulation'.")
    start = time.perf_counter()
    base = Costs.of(system, chain)
    base.check_fits()
    systems = [system] if not options else [_with_exits(system, base.chain, o) for o in options]
    accuracy = [None] if not options else [o.accuracy for o in options]
    searches = [_Search(Costs.of(s, base.chain), progress) for s in systems]
    how = ""
    for search in searches:
        how = search.run(exhaustive_limit, restarts, np.random.default_rng(seed))
    scored = sorted((_Scored(k, a, m) for k, s in enumerate(searches) for a, m in s.seen.items()
                     if m is not None), key=_key(loss_target, loss_tolerance, accuracy,
                                                 _least_loss(searches)))
    if not scored:
        raise InfeasibleError(f"No valid placement of chain {base.chain!r}: "
                              f"{base.violation(np.zeros(base.n_blocks, dtype=int))}.")
    if loss_target is not None and scored[0].metrics.loss_probability > loss_target:
        best = min(scored, key=lambda s: s.metrics.loss_probability)
        raise InfeasibleError(
            f"No placement of chain {base.chain!r} meets the loss target {loss_target:g}: the "
            f"least predicted loss is {best.metrics.loss_probability:.4g}, with "
            f"{searches[best.option].costs.placement_of(best.assignment).as_dict()}.")
    chosen, confirmed = _confirm(scored, searches, confirm, loss_target, loss_tolerance, accuracy,
                                 jobs=jobs, replications=replications, seed=seed)
    costs = searches[chosen.option].costs
    details: dict[str, Any] = {
        "search": how, "scored": sum(len(s.seen) for s in searches),
        "predicted": chosen.metrics.to_dict(), "confirmed": confirmed,
        "loss_target": loss_target}
    if options:
        details["exit_option"] = {"label": options[chosen.option].label,
                                  "accuracy": options[chosen.option].accuracy,
                                  "probabilities": dict(options[chosen.option].probabilities)}
    return PlacementDecision(
        method="loss_aware", system=costs.placed(chosen.assignment), chain=base.chain,
        assignment=chosen.assignment, objective="loss" if loss_target is None else "accuracy",
        value=chosen.metrics.loss_probability if loss_target is None or not options
        else options[chosen.option].accuracy,
        latency_s=costs.latency_s(chosen.assignment),
        solve_time_s=time.perf_counter() - start, details=details)


def _with_exits(system: System, chain: str, option: ExitOption) -> System:
    chains = [dataclasses.replace(c, model=option.apply(c.model)) if c.name == chain else c
              for c in system.chains]
    return System(devices=system.devices, links=system.links, chains=chains)


def _least_loss(searches: Sequence[_Search]) -> float:
    return min((m.loss_probability for s in searches for m in s.seen.values() if m is not None),
               default=0.0)


def _key(loss_target: float | None, tolerance: float, accuracy: Sequence[float | None],
         least: float) -> Callable[[_Scored], tuple]:
    """Sort key: smaller is better (see the module docstring)."""
    def key(s: _Scored) -> tuple:
        loss, latency = s.metrics.loss_probability, s.metrics.mean_response_time or np.inf
        if loss_target is None:
            return (loss > least + tolerance, latency if loss <= least + tolerance else loss)
        acc = accuracy[s.option]
        return (loss > loss_target, loss if loss > loss_target else 0.0,
                -(acc if acc is not None else 0.0), latency)
    return key


class _Search:
    """Analytic scores of the placements of one chain, memoised by assignment."""

    def __init__(self, costs: Costs, progress: Callable[[int], None] | None) -> None:
        from ..queueing import DecompositionEvaluator

        self.costs = costs
        self.evaluator = DecompositionEvaluator(matched_laws=True)
        self.evaluator.supports(costs.system)
        self.seen: dict[tuple[int, ...], Metrics | None] = {}
        self.progress = progress

    def score(self, assignment: Iterable[int]) -> Metrics | None:
        key = tuple(int(x) for x in assignment)
        if key not in self.seen:
            valid = self.costs.violation(np.asarray(key)) is None
            self.seen[key] = self.evaluator.evaluate(self.costs.placed(key)) if valid else None
            if self.progress is not None:
                self.progress(len(self.seen))
        return self.seen[key]

    def run(self, limit: int, restarts: int, rng: np.random.Generator) -> str:
        from ._enumerate import count_valid, valid_assignments

        if count_valid(self.costs, limit=limit) <= limit:
            for a in valid_assignments(self.costs):
                self.score(a)
            return "exhaustive"
        for seed in self._seeds(restarts, rng):
            self._climb(seed)
        return "ilp seeds + local search"

    def _seeds(self, restarts: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
        from ._ilp import ilp

        first = self.costs.source if self.costs.source is not None else 0
        seeds = [tuple([first] * self.costs.n_blocks)]
        for objective in ("latency", "bottleneck", "mix"):
            try:
                seeds.append(ilp(self.costs.system, chain=self.costs.chain,
                                 objective=objective).assignment)
            except InfeasibleError:
                continue
        seeds += [_random_placement(self.costs, rng) for _ in range(restarts)]
        return [s for s in seeds if self.score(s) is not None]

    def _climb(self, start: tuple[int, ...]) -> None:
        """First-improvement hill climbing on (loss, mean response time)."""
        current = start
        improved = True
        while improved:
            improved = False
            here = self._value(current)
            for move in _moves(current, self.costs.n_devices):
                if move in self.seen and self.seen[move] is None:
                    continue
                if self.score(move) is not None and self._value(move) < here:
                    current, improved = move, True
                    break

    def _value(self, assignment: tuple[int, ...]) -> tuple[float, float]:
        m = self.seen[assignment]
        assert m is not None
        return (round(m.loss_probability, 12), m.mean_response_time or np.inf)


def _random_placement(costs: Costs, rng: np.random.Generator) -> tuple[int, ...]:
    """A random placement: a random walk over the links from the source (no
    device twice), cut at random points. It may break memory limits; the
    caller scores it as invalid then."""
    n, m = costs.n_blocks, costs.n_devices
    if costs.source is not None:
        start = [costs.source] + [j for j in range(m) if costs.link(costs.source, j)]
    else:
        start = list(range(m))
    path = [int(rng.choice(start))]
    for _ in range(int(rng.integers(0, min(n, m)))):
        options = [j for j in range(m) if j not in path and costs.link(path[-1], j)]
        if not options:
            break
        path.append(int(rng.choice(options)))
    cuts = np.sort(rng.choice(np.arange(1, n), size=len(path) - 1, replace=False))
    sizes = np.diff(np.concatenate(([0], cuts, [n])))
    return tuple(int(d) for d, size in zip(path, sizes) for _ in range(size))


def _moves(a: tuple[int, ...], n_devices: int) -> Iterable[tuple[int, ...]]:
    """Neighbours of an assignment (validity is checked by the caller)."""
    runs = fragments_of(a)
    used = {d for d, _, _ in runs}
    for k in range(len(runs) - 1):  # shift the boundary between runs k and k + 1
        (d0, f0, l0), (d1, f1, l1) = runs[k], runs[k + 1]
        if l0 > f0:
            yield a[:l0] + (d1,) + a[l0 + 1:]
        if l1 > f1:
            yield a[:f1] + (d0,) + a[f1 + 1:]
    for d, first, last in runs:
        for other in range(n_devices):
            if other in used:
                continue
            yield a[:first] + (other,) * (last - first + 1) + a[last + 1:]  # move the fragment
            for cut in range(first + 1, last + 1):  # split it onto an unused device
                yield a[:cut] + (other,) * (last - cut + 1) + a[last + 1:]
    for k in range(1, len(runs) - 1):  # slide an inner run by one block, keeping its size
        (dp, fp, lp), (d, first, last), (dn, fn, ln) = runs[k - 1], runs[k], runs[k + 1]
        if lp > fp:
            yield a[:first - 1] + (d,) + a[first:last] + (dn,) + a[last + 1:]
        if ln > fn:
            yield a[:first] + (dp,) + a[first + 1:last + 1] + (d,) + a[last + 2:]
    for k in range(len(runs) - 1):  # merge run k + 1 into run k, and k into k + 1
        (d0, f0, l0), (d1, f1, l1) = runs[k], runs[k + 1]
        yield a[:f1] + (d0,) * (l1 - f1 + 1) + a[l1 + 1:]
        yield a[:f0] + (d1,) * (l0 - f0 + 1) + a[l0 + 1:]


def _confirm(scored: list[_Scored], searches: Sequence[_Search], confirm: int,
             loss_target: float | None, tolerance: float, accuracy: Sequence[float | None], *,
             jobs: int, replications: int, seed: int) -> tuple[_Scored, list[dict]]:
    """Simulate the ``confirm`` best candidates; the best simulated one wins."""
    if confirm == 0:
        return scored[0], []
    from ..sim import simulate

    top = scored[:confirm]
    simulated = [_Scored(s.option, s.assignment,
                         simulate(searches[s.option].costs.placed(s.assignment), jobs=jobs,
                                  replications=replications, seed=seed)) for s in top]
    least = min(s.metrics.loss_probability for s in simulated)
    ranked = sorted(range(len(top)),
                    key=lambda i: _key(loss_target, tolerance, accuracy, least)(simulated[i]))
    report = [{"placement": searches[s.option].costs.placement_of(s.assignment).as_dict(),
               "option": s.option,
               "predicted_loss": s.metrics.loss_probability,
               "predicted_mean_response_time": s.metrics.mean_response_time,
               "simulated_loss": sim.metrics.loss_probability,
               "simulated_loss_ci": sim.metrics.half_widths.get("loss_probability"),
               "simulated_mean_response_time": sim.metrics.mean_response_time}
              for s, sim in zip(top, simulated)]
    return top[ranked[0]], report

