r"""The one sampling loop of the Monte Carlo estimators, and what it shares.

Every estimator (:func:`~coopml.coalitions.monte_carlo_shapley`,
:func:`~coopml.coalitions.stratified_shapley`, :func:`~coopml.coalitions.svarm_shapley`,
:func:`~coopml.coalitions.msr_banzhaf`) is a *sampler* -- it proposes a batch of rows,
each row the coalitions of one sample, and folds their values into its running
estimate -- plugged into :func:`run_sampler`, which owns what they have in common
(pyDVL's separation of samplers, update rules and stopping criteria):

* **evaluation** -- each distinct coalition is evaluated once per estimate
  (:class:`Evaluator`), the new coalitions of a batch together, on an executor
  (serial, joblib or Ray); the value source is checked on every value (a clear error
  names the coalition and the function) and substituted fit failures of a utility are
  collected from every worker;
* **budgets** -- a batch is cut so that a ``MaxEvaluations`` or ``MaxPermutations``
  budget is never overrun (:func:`budgets`);
* **stopping** -- the rule is checked after every batch;
* **progress** -- after every batch a ``progress(done, total)`` callback hears how far
  the nearest budget is spent (evaluations, permutations or seconds); a callback that
  takes the keywords ``unit`` and ``detail`` also hears which budget and, for
  ``StandardErrorBelow``, the largest standard error against its target;
* **checkpoints** -- with a ``cache_dir`` (:func:`open_checkpoint`), the state at the
  start of a batch (the memo of evaluated coalitions and substituted failures, the
  sampler's running moments, its random generator's ``bit_generator.state``, the
  stopping rule's counters, the loop's counts) is written every
  :data:`~coopml.coalitions._checkpoint.CHECKPOINT_SECONDS` seconds and when the run
  is interrupted (an exception or Ctrl-C). A run with the same source fingerprint,
  estimator, parameters and seed resumes from it and gives exactly the values and
  standard errors of an uninterrupted run; a finished run removes the file.

A source is ``value_fn(frozenset_of_players) -> float`` (with ``n_players``) or a
*utility*: an object with ``n_players``, ``names`` and ``evaluate_masks(masks)``, and
optionally ``evaluate_block(masks) -> (values, failures)`` (such as a
:class:`~coopml.learning.CoalitionUtility`), which then fits whole batches at once.
Masks are ``int64`` bitmasks (player ``i`` is bit ``i``) up to 62 players, and a 1-D
object array of Python integers beyond (:func:`~coopml._bitmask.encode_members`).

**Honest standard errors.** A sample mean's textbook standard error
:math:`\hat\sigma/\sqrt m` is 0 when every sample is equal -- a player never pivotal in
a voting game, a stratum whose few samples agree -- although the sample cannot rule out
other values. For bounded quantities coopml uses the Agresti--Coull adjustment
(Agresti & Coull, "Approximate is better than 'exact' for interval estimation of
binomial proportions", The American Statistician 52(2), 1998), generalised from 0/1
outcomes to any bounded quantity: the variance is computed with :math:`z^2/2`
pseudo-observations (:math:`z = 1.96`) added at each end :math:`a, b` of the observed
range of the quantity across all players (the estimate itself is the plain, unbiased
sample mean),

.. math::

    \tilde\sigma^2 = \frac{M_2 + m(\bar x - \tilde x)^2
        + \tfrac{z^2}{2}\bigl[(a - \tilde x)^2 + (b - \tilde x)^2\bigr]}{m + z^2 - 1},
    \qquad \tilde x = \frac{m \bar x + \tfrac{z^2}{2}(a + b)}{m + z^2},

and the standard error is :math:`\tilde\sigma / \sqrt m`. For 0/1 samples with none
observed (:math:`\bar x = 0`, :math:`m = 40`) the 95% half-width is 0.064 where the
textbook one is 0 (the exact binomial interval reaches 0.088); it tends to the textbook
value as :math:`m` grows. The reference-games coverage table in ``docs/valuation.md``
measures the intervals this gives.
"""

from __future__ import annotations

import copy
import inspect
import itertools
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from coopml._bitmask import MAX_MASK_PLAYERS, members
from coopml._validation import RandomState, check_int, check_names
from coopml.coalitions import _checkpoint
from coopml.coalitions.executors import Executor, ProgressCallback, get_executor
from coopml.coalitions.stopping import (
    MaxEvaluations,
    MaxPermutations,
    MaxTime,
    SamplerState,
    StandardErrorBelow,
    StoppingRule,
    _And,
    _Composite,
    _Or,
)

__all__ = [
    "MAX_MASK_PLAYERS",
    "Z95",
    "Batch",
    "Evaluator",
    "Sampler",
    "adjusted_stderr",
    "budgets",
    "call_value_function",
    "check_values",
    "merge_moments",
    "open_checkpoint",
    "resolve_executor",
    "resolve_source",
    "resolve_stopping",
    "run_sampler",
]

#: Normal quantile of two-sided 95% intervals.
Z95 = 1.959963984540054


def resolve_source(
    source: Any, n_players: int | None, names: Sequence[str] | None
) -> tuple[bool, int, tuple[str, ...]]:
    """Validate a value source; returns ``(is_utility, n_players, names)``."""
    is_utility = hasattr(source, "evaluate_masks")
    if is_utility:
        n = check_int(
            "value_fn_or_utility.n_players", getattr(source, "n_players", None), minimum=1
        )
        if n_players is not None and n_players != n:
            raise ValueError(
                f"parameter 'n_players' must be None or equal the utility's n_players ({n}); "
                f"got {n_players!r}"
            )
        names = getattr(source, "names", None) if names is None else names
    elif callable(source):
        if n_players is None:
            raise TypeError(
                "parameter 'n_players' is required when 'value_fn_or_utility' is callable"
            )
        n = check_int("n_players", n_players, minimum=1)
    else:
        raise TypeError(
            "parameter 'value_fn_or_utility' must be a callable (frozenset[int] -> float) or an "
            f"object with n_players, names and evaluate_masks; got {type(source).__name__}"
        )
    names = check_names("names", [str(i) for i in range(n)] if names is None else names, n)
    return is_utility, n, names


def resolve_stopping(rule: Any, n_players: int) -> StoppingRule:
    """Check that ``rule`` surely fires and return a private copy (rules are stateful)."""
    if not isinstance(rule, StoppingRule):
        raise TypeError(
            f"parameter 'stopping' must be a StoppingRule or None; got {type(rule).__name__}"
        )
    if not rule._bounded(2**n_players):
        raise ValueError(
            f"parameter 'stopping' may never fire: {rule}; combine it with a budget, e.g. "
            "'stopping | MaxPermutations(1000)' or '| MaxTime(60)' (MaxEvaluations counts "
            "distinct coalitions, so its budget must be at most 2**n_players)"
        )
    return copy.deepcopy(rule)


@dataclass(frozen=True)
class Budgets:
    """The budget leaves that bound a rule: it surely fires once either is reached."""

    evaluations: MaxEvaluations | None = None
    permutations: MaxPermutations | None = None


def budgets(rule: StoppingRule) -> Budgets:
    """The tightest ``MaxEvaluations`` and ``MaxPermutations`` that make ``rule`` fire.

    Through ``|`` the smaller limit of each kind counts; through ``&`` neither side's
    alone does, so nothing is returned for it.

    Examples
    --------
    >>> from coopml.coalitions.stopping import StandardErrorBelow
    >>> b = budgets(MaxEvaluations(500) | MaxEvaluations(300) | StandardErrorBelow(0.1))
    >>> b.evaluations, b.permutations
    (MaxEvaluations(300), None)
    """
    if isinstance(rule, MaxEvaluations):
        return Budgets(evaluations=rule)
    if isinstance(rule, MaxPermutations):
        return Budgets(permutations=rule)
    if isinstance(rule, _Or):
        left, right = budgets(rule.left), budgets(rule.right)

        def tighter(a: Any, b: Any) -> Any:
            return b if a is None or (b is not None and b.limit < a.limit) else a

        return Budgets(
            tighter(left.evaluations, right.evaluations),
            tighter(left.permutations, right.permutations),
        )
    if isinstance(rule, _And):
        return Budgets()
    return Budgets()


def resolve_executor(executor: str | Executor, n_jobs: int | None) -> Executor:
    """The executor of an estimator: ``n_jobs`` > 1 (or -1, all cores) with the default
    ``"serial"`` means local joblib workers."""
    if n_jobs == -1:
        n_jobs = None
        if executor == "serial":
            executor = "joblib"
    elif n_jobs is not None:
        n_jobs = check_int("n_jobs", n_jobs, minimum=1)
        if executor == "serial" and n_jobs > 1:
            executor = "joblib"
    return get_executor(executor, n_jobs)


def _describe(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


def call_value_function(fn: Callable[[frozenset[int]], Any], coalition: frozenset[int]) -> float:
    """``float(fn(coalition))``, refusing anything but a finite real number.

    An exception inside ``fn`` and a value that is not a real number (``None``, a tuple,
    a complex number, an array, a string, a bool) are errors naming the coalition and
    the function.

    Examples
    --------
    >>> call_value_function(lambda s: len(s), frozenset({0, 2}))
    2.0
    >>> call_value_function(lambda s: None, frozenset({1}))
    Traceback (most recent call last):
    ...
    TypeError: value function <lambda> returned None (NoneType) for coalition [1]; ...
    """
    coalition_text = sorted(coalition)
    try:
        value = fn(coalition)
    except Exception as exc:
        raise RuntimeError(
            f"value function {_describe(fn)} raised {type(exc).__name__} on coalition "
            f"{coalition_text}: {exc}"
        ) from exc
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.number):
        raise TypeError(
            f"value function {_describe(fn)} returned {value!r} ({type(value).__name__}) for "
            f"coalition {coalition_text}; it must return a real number (int or float)"
        )
    if isinstance(value, complex | np.complexfloating):
        raise TypeError(
            f"value function {_describe(fn)} returned the complex number {value!r} for "
            f"coalition {coalition_text}; it must return a real number (int or float)"
        )
    result = float(value)
    if not np.isfinite(result):
        raise ValueError(
            f"value function {_describe(fn)} returned {result} for coalition {coalition_text}; "
            "coalition values must be finite"
        )
    return result


def check_values(values: Any, masks: Sequence[int], n: int, source: Any) -> NDArray[np.float64]:
    """A utility's values for ``masks`` as float64, refusing wrong shapes, kinds and NaN."""
    arr = np.asarray(values)
    where = f"{_describe(source)}.evaluate_masks"
    if arr.dtype.kind not in "iuf":
        raise TypeError(
            f"{where} must return real numbers (a float array); got dtype {arr.dtype} for "
            f"coalitions starting with {sorted(members(masks[0], n)) if masks else []}"
        )
    if arr.shape != (len(masks),):
        raise ValueError(
            f"{where} must return shape ({len(masks)},) for {len(masks)} masks; got {arr.shape}"
        )
    out = arr.astype(np.float64)
    if not np.all(np.isfinite(out)):
        bad = int(np.flatnonzero(~np.isfinite(out))[0])
        raise ValueError(
            f"{where} returned {out[bad]} for coalition {sorted(members(masks[bad], n))}; "
            "coalition values must be finite"
        )
    return out


def evaluate_chunk(
    source: Any, is_utility: bool, n: int, masks: list[int]
) -> tuple[NDArray[np.float64], list[Any]]:
    """Values of coalitions ``masks`` and the utility's substituted failures (in workers)."""
    if not is_utility:
        values = [call_value_function(source, members(mask, n)) for mask in masks]
        return np.array(values, dtype=np.float64), []
    dtype = np.int64 if n <= MAX_MASK_PLAYERS else object
    arr = np.empty(len(masks), dtype=dtype)
    arr[:] = masks
    failures: list[Any] = []
    if hasattr(source, "evaluate_block"):
        raw, failures = source.evaluate_block(arr)
    else:
        raw = source.evaluate_masks(arr)
    return check_values(raw, masks, n, source), list(failures)


class Evaluator:
    """Values of coalitions, each distinct one evaluated once, new ones on an executor.

    ``failures`` collects the substituted fits reported by every worker, in order; they
    are also appended to a utility's own ``failures`` list (as a serial run would).
    """

    def __init__(
        self, source: Any, is_utility: bool, n_players: int, executor: Executor | None = None
    ) -> None:
        self.source, self.is_utility, self.n = source, is_utility, n_players
        self.executor = executor if executor is not None else get_executor("serial")
        self.cache: dict[int, float] = {}
        self.failures: list[Any] = []

    @property
    def n_evaluations(self) -> int:
        return len(self.cache)

    def __call__(self, masks: NDArray[Any]) -> NDArray[np.float64]:
        flat = np.asarray(masks).reshape(-1).tolist()
        new = [k for k in dict.fromkeys(flat) if k not in self.cache]
        if new:
            self._evaluate(new)
        out = np.array([self.cache[k] for k in flat], dtype=np.float64)
        return out.reshape(np.shape(masks))

    def _evaluate(self, new: list[int]) -> None:
        workers = self.executor.n_workers
        per = max(1, -(-len(new) // workers))
        chunks = [new[j : j + per] for j in range(0, len(new), per)]
        work = partial(evaluate_chunk, self.source, self.is_utility, self.n)
        results = [work(chunks[0])] if len(chunks) == 1 else list(self.executor.map(work, chunks))
        for chunk, (values, failures) in zip(chunks, results, strict=True):
            self.cache.update(zip(chunk, values.tolist(), strict=True))
            self.failures.extend(failures)
            own = getattr(self.source, "failures", None)
            if failures and isinstance(own, list):
                own.extend(failures)

    def affordable(self, rows: NDArray[Any], limit: int) -> int:
        """How many leading ``rows`` (each a sample's masks) fit in ``limit`` new coalitions."""
        flat = rows.reshape(rows.shape[0], -1)
        if flat.size <= limit:
            return rows.shape[0]
        seen: set[int] = set()
        for r, row in enumerate(flat.tolist()):
            fresh = {k for k in row if k not in self.cache and k not in seen}
            if len(seen) + len(fresh) > limit:
                return r
            seen |= fresh
        return rows.shape[0]

    def save_state(
        self, n_cache: int | None = None, n_failures: int | None = None
    ) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
        """The memo (its first ``n_cache`` entries) and the first ``n_failures`` failures,
        as arrays and a JSON document for a checkpoint."""
        items = list(itertools.islice(self.cache.items(), n_cache))
        keys = [k for k, _ in items]
        key_array = (
            np.array(keys, dtype=np.int64)
            if self.n <= MAX_MASK_PLAYERS
            else np.array([str(k) for k in keys], dtype=str)
        )
        arrays = {
            "memo_keys": key_array,
            "memo_values": np.array([v for _, v in items], dtype=np.float64),
        }
        failures = [getattr(f, "__dict__", f) for f in self.failures[:n_failures]]
        return arrays, {"failures": failures}

    def load_state(self, arrays: dict[str, NDArray[Any]], meta: dict[str, Any]) -> None:
        """Restore :meth:`save_state`'s memo and failures (also onto a utility's own list)."""
        keys = [int(k) for k in arrays["memo_keys"].tolist()]
        self.cache = dict(zip(keys, arrays["memo_values"].tolist(), strict=True))
        failures = [_failure(f) for f in meta["failures"]]
        self.failures = list(failures)
        own = getattr(self.source, "failures", None)
        if failures and isinstance(own, list):
            own.extend(failures)

    def failure_info(self) -> dict[str, Any]:
        """``n_failures`` and ``failures`` (as dictionaries) for a result's ``info``."""
        return {
            "n_failures": len(self.failures),
            "failures": [getattr(f, "__dict__", f) for f in self.failures],
        }


def _failure(record: Any) -> Any:
    """A stored failure as the utility reported it (a FitFailure where it was one)."""
    if isinstance(record, dict) and set(record) == {"mask", "error", "substituted"}:
        from coopml.learning.utility import FitFailure

        return FitFailure(**record)
    return record


def adjusted_stderr(
    count: NDArray[np.float64],
    mean: NDArray[np.float64],
    m2: NDArray[np.float64],
    low: float,
    high: float,
) -> NDArray[np.float64]:
    """Agresti--Coull-adjusted standard errors of running means (see the module docstring).

    ``count`` may hold ``inf`` (a mean known exactly: standard error 0) or 0 (no sample:
    ``inf``); ``low`` and ``high`` are the observed range of the quantity.

    Examples
    --------
    >>> se = adjusted_stderr(np.array([40.0]), np.array([0.0]), np.array([0.0]), 0.0, 1.0)
    >>> round(float(1.96 * se[0]), 3)  # 0 of 40 successes: not a zero-width interval
    0.064
    >>> adjusted_stderr(np.array([np.inf, 0.0]), np.zeros(2), np.zeros(2), 0.0, 1.0).tolist()
    [0.0, inf]
    """
    half = Z95**2 / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(np.isfinite(count), count, 0.0)
        total = c + 2 * half
        centre = (c * mean + half * (low + high)) / total
        m2_adj = m2 + c * (mean - centre) ** 2 + half * ((low - centre) ** 2 + (high - centre) ** 2)
        se = np.sqrt(m2_adj / (total - 1) / c)
    se = np.where(count == 0, np.inf, se)
    return np.where(np.isinf(count), 0.0, se)


def merge_moments(
    count: NDArray[np.float64],
    mean: NDArray[np.float64],
    m2: NDArray[np.float64],
    flat: NDArray[np.intp],
    x: NDArray[np.float64],
) -> None:
    """Add samples ``x`` of cells ``flat`` (flat indices) to running moments, in place.

    ``count``, ``mean`` and ``m2`` (sum of squared deviations) are arrays of any shape;
    the pairwise update of Chan, Golub & LeVeque (1979). Cells with ``count = inf`` are
    exact and must not receive samples.
    """
    size = count.size
    k = np.bincount(flat, minlength=size).astype(np.float64)
    has = k > 0
    s = np.bincount(flat, weights=x, minlength=size)
    batch_mean = np.divide(s, k, out=np.zeros(size), where=has)
    dev = np.bincount(flat, weights=(x - batch_mean[flat]) ** 2, minlength=size)
    c, mu, q = count.reshape(-1), mean.reshape(-1), m2.reshape(-1)  # views
    total = c[has] + k[has]
    delta = batch_mean[has] - mu[has]
    mu[has] += delta * k[has] / total
    q[has] += dev[has] + delta**2 * c[has] * k[has] / total
    c[has] = total


class MomentsCheckpoint:
    """Checkpointing of a sampler that keeps running moments per cell (``count``,
    ``mean``, ``m2``), the observed range (``low``, ``high``), a generator ``rng`` and the
    scalar attributes named in ``extra_state`` (the stratified, SVARM and MSR samplers)."""

    count: NDArray[np.float64]
    mean: NDArray[np.float64]
    m2: NDArray[np.float64]
    low: float
    high: float
    rng: np.random.Generator
    extra_state: tuple[str, ...] = ()

    def save_state(self) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
        arrays = {"count": self.count.copy(), "mean": self.mean.copy(), "m2": self.m2.copy()}
        meta = {name: getattr(self, name) for name in ("low", "high", *self.extra_state)}
        return arrays, meta | {"rng": self.rng.bit_generator.state}

    def load_state(self, arrays: dict[str, NDArray[Any]], meta: dict[str, Any]) -> None:
        self.count, self.mean, self.m2 = arrays["count"], arrays["mean"], arrays["m2"]
        for name in ("low", "high", *self.extra_state):
            setattr(self, name, meta[name])
        self.rng.bit_generator.state = meta["rng"]


@dataclass
class Batch:
    """Rows proposed by a sampler: ``masks[r]`` the coalitions of sample ``r``.

    ``data`` holds per-row arrays the sampler needs to fold the values in; ``units``
    is what one row counts towards ``MaxPermutations``.
    """

    masks: NDArray[Any]
    data: dict[str, NDArray[Any]] = field(default_factory=dict)
    units: float = 1.0

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    def head(self, k: int) -> Batch:
        return Batch(self.masks[:k], {key: v[:k] for key, v in self.data.items()}, self.units)


class Sampler(Protocol):
    """What :func:`run_sampler` drives: propose rows, fold their values in, report."""

    def propose(self) -> Batch: ...

    def update(self, batch: Batch, values: NDArray[np.float64]) -> None: ...

    def state(self) -> tuple[NDArray[np.float64], NDArray[np.float64], int]:
        """``(estimates, standard errors, n_samples)`` for the stopping rule."""
        ...

    def save_state(self) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
        """Copies of everything ``propose`` and ``update`` change (arrays, JSON document),
        the random generator's ``bit_generator.state`` included."""
        ...

    def load_state(self, arrays: dict[str, NDArray[Any]], meta: dict[str, Any]) -> None:
        """Restore :meth:`save_state`'s result."""
        ...


@dataclass
class Run:
    """What the loop did: the rule part that fired, rows and permutation units used."""

    fired: StoppingRule | None
    n_rows: int
    n_units: float
    seconds: float
    resumed: bool = False


@dataclass
class Checkpoint:
    """Where a sampling run is checkpointed, and the state it resumes from (if any)."""

    path: Path
    key: str
    saved: tuple[dict[str, NDArray[Any]], dict[str, Any]] | None = None


def random_state_spec(random_state: RandomState) -> Any:
    """What identifies the stream of ``random_state``: the seed, or a generator's state;
    ``None`` when it cannot be reproduced (fresh entropy)."""
    if random_state is None:
        return None
    if isinstance(random_state, np.random.Generator):
        bits = random_state.bit_generator
        seq = getattr(bits, "seed_seq", None)
        spawned = None
        if isinstance(seq, np.random.SeedSequence):
            spawned = [seq.entropy, list(seq.spawn_key), seq.n_children_spawned]
        return {"state": bits.state, "seed_seq": spawned}
    return int(random_state)


def open_checkpoint(
    cache_dir: str | Path | None,
    source: Any,
    method: str,
    params: dict[str, Any],
    random_state: RandomState,
    evaluate: Evaluator,
) -> Checkpoint | None:
    """The checkpoint of an estimator run in ``cache_dir``, restoring ``evaluate``'s memo.

    The file is keyed by the source's ``fingerprint()``, ``method``, ``params`` (every
    parameter that changes the result) and the random stream, so a changed job never
    resumes a stale state. ``None`` without ``cache_dir``, and (with a warning) with
    ``random_state=None``, whose stream cannot be reproduced.
    """
    if cache_dir is None:
        return None
    fingerprint = getattr(source, "fingerprint", None)
    if not callable(fingerprint):
        raise TypeError(
            "parameter 'cache_dir' needs a utility with a fingerprint() method (such as "
            "coopml.learning.CoalitionUtility) to key its checkpoints; got "
            f"{_describe(source)}, which cannot be fingerprinted"
        )
    seed = random_state_spec(random_state)
    if seed is None:
        warnings.warn(
            f"{method}: not checkpointed to cache_dir: random_state=None draws a fresh "
            "random stream, so an interrupted run cannot be resumed; pass an integer seed",
            stacklevel=3,
        )
        return None
    from coopml import __version__

    spec = {
        "method": method,
        "fingerprint": str(fingerprint()),
        "params": params,
        "seed": seed,
        "coopml": __version__,
    }
    key = _checkpoint.state_key(spec)
    path = _checkpoint.partial_path(cache_dir, key)
    saved = _checkpoint.load_checkpoint(path)
    if saved is not None and saved[1].get("key") != key:
        saved = None
    if saved is not None:
        arrays, meta = saved
        evaluate.load_state(_part(arrays, "evaluator"), meta["evaluator"])
    return Checkpoint(path, key, saved)


def _part(arrays: dict[str, NDArray[Any]], prefix: str) -> dict[str, NDArray[Any]]:
    return {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith(prefix + "/")}


def _leaves(rule: StoppingRule, through_and: bool = True) -> list[StoppingRule]:
    """The leaf rules of ``rule`` (through ``|``, and through ``&`` if ``through_and``)."""
    if isinstance(rule, _Or) or (through_and and isinstance(rule, _Composite)):
        assert isinstance(rule, _Composite)
        return _leaves(rule.left, through_and) + _leaves(rule.right, through_and)
    return [] if isinstance(rule, _Composite) else [rule]


def _rule_state(rule: StoppingRule) -> list[dict[str, Any]]:
    """The plain attributes of every leaf rule (e.g. ``RankStable``'s streak)."""
    plain = (bool, int, float, str, type(None))
    return [{k: v for k, v in vars(leaf).items() if isinstance(v, plain)} for leaf in _leaves(rule)]


def _load_rule_state(rule: StoppingRule, state: list[dict[str, Any]]) -> None:
    for leaf, attributes in zip(_leaves(rule), state, strict=True):
        for name, value in attributes.items():
            setattr(leaf, name, value)


def _accepts_details(progress: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(progress).parameters
    except (TypeError, ValueError):
        return False
    kinds = {p.kind for p in parameters.values()}
    return inspect.Parameter.VAR_KEYWORD in kinds or {"unit", "detail"} <= set(parameters)


def _progress_of(
    rule: StoppingRule, limits: Budgets, state: SamplerState
) -> tuple[int, int, str, str]:
    """``(done, total, unit, detail)``: the budget nearest to firing, and the first
    ``StandardErrorBelow``'s largest standard error against its target."""
    candidates: list[tuple[float, int, int, str]] = []
    if limits.evaluations is not None:
        e = limits.evaluations.limit
        candidates.append((state.n_evaluations / e, state.n_evaluations, e, "evaluations"))
    if limits.permutations is not None:
        p = limits.permutations.limit
        candidates.append((state.n_permutations / p, state.n_permutations, p, "permutations"))
    for leaf in _leaves(rule, through_and=False):
        if isinstance(leaf, MaxTime):
            t = int(np.ceil(leaf.seconds))
            candidates.append((state.elapsed / leaf.seconds, int(state.elapsed), t, "seconds"))
    _, done, total, unit = max(candidates, default=(0.0, 0, 0, "samples"))
    detail = ""
    for leaf in _leaves(rule):
        if isinstance(leaf, StandardErrorBelow) and state.stderr.size:
            scale = {
                None: 1.0,
                "total": abs(float(np.sum(state.means))),
                "max": float(np.max(np.abs(state.means))),
            }[leaf.relative_to]
            detail = (
                f"largest standard error {float(np.max(state.stderr)):.4g}, "
                f"target {leaf.tol * scale:.4g}"
            )
            break
    return min(done, total), total, unit, detail


def run_sampler(
    sampler: Sampler,
    evaluate: Evaluator,
    rule: StoppingRule,
    *,
    max_batches: int | None = None,
    progress: ProgressCallback | None = None,
    checkpoint: Checkpoint | None = None,
) -> Run:
    """Propose, evaluate (within the budgets), update and check ``rule`` until it fires.

    ``max_batches`` ends a sampler that has nothing left to sample (``fired`` None).
    ``progress`` hears the nearest budget's progress after every batch (module
    docstring); ``checkpoint`` (from :func:`open_checkpoint`) saves the state and
    resumes from it.
    """
    limits = budgets(rule)
    n_rows, n_units, previous, elapsed0 = 0, 0.0, None, 0.0
    fired: StoppingRule | None = None
    n_batches = 0
    resumed = checkpoint is not None and checkpoint.saved is not None
    if checkpoint is not None and checkpoint.saved is not None:
        arrays, meta = checkpoint.saved
        sampler.load_state(_part(arrays, "sampler"), meta["sampler"])
        _load_rule_state(rule, meta["rule"])
        n_rows, n_units, n_batches = meta["n_rows"], meta["n_units"], meta["n_batches"]
        elapsed0 = meta["elapsed"]
        previous = arrays["previous"] if meta["has_previous"] else None
    start = time.perf_counter() - elapsed0
    report = None
    if progress is not None:
        detailed = _accepts_details(progress)

        def report(state: SamplerState) -> None:
            done, total, unit, detail = _progress_of(rule, limits, state)
            if detailed:
                progress(done, total, unit=unit, detail=detail)  # type: ignore[call-arg]
            else:
                progress(done, total)

    snapshot: tuple[dict[str, NDArray[Any]], dict[str, Any]] | None = None
    saved_at, saved_batches = time.perf_counter(), n_batches

    def take_snapshot() -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
        """Copies of the sampler's state; the memo and failures as their lengths (they
        only grow, so their first entries are the state at this point)."""
        assert checkpoint is not None
        sampler_arrays, sampler_meta = sampler.save_state()
        arrays = {f"sampler/{k}": v for k, v in sampler_arrays.items()}
        arrays["previous"] = np.zeros(0) if previous is None else previous.copy()
        meta = {
            "key": checkpoint.key,
            "sampler": sampler_meta,
            "n_cache": len(evaluate.cache),
            "n_failures": len(evaluate.failures),
            "rule": _rule_state(rule),
            "n_rows": n_rows,
            "n_units": n_units,
            "n_batches": n_batches,
            "elapsed": time.perf_counter() - start,
            "has_previous": previous is not None,
        }
        return arrays, meta

    def save(snapshot: tuple[dict[str, NDArray[Any]], dict[str, Any]]) -> None:
        assert checkpoint is not None
        arrays, meta = snapshot
        memo, failures = evaluate.save_state(meta["n_cache"], meta["n_failures"])
        arrays = arrays | {f"evaluator/{k}": v for k, v in memo.items()}
        _checkpoint.save_checkpoint(checkpoint.path, arrays, meta | {"evaluator": failures})

    try:
        while max_batches is None or n_batches < max_batches:
            if checkpoint is not None:
                # The state at a batch boundary: what an interrupted batch resumes from.
                snapshot = take_snapshot()
                now = time.perf_counter()
                if n_batches > saved_batches and now - saved_at >= _checkpoint.CHECKPOINT_SECONDS:
                    save(snapshot)
                    saved_at, saved_batches = now, n_batches
            n_batches += 1
            batch = sampler.propose()
            k = len(batch)
            blocked: StoppingRule | None = None
            if limits.permutations is not None:
                room = limits.permutations.limit - n_units
                k_units = min(k, max(0, int(np.floor(room / batch.units + 1e-9))))
                k, blocked = k_units, (limits.permutations if k_units == 0 else None)
            if limits.evaluations is not None and k:
                room_e = limits.evaluations.limit - evaluate.n_evaluations
                k = evaluate.affordable(batch.masks[:k], max(0, room_e))
                blocked = limits.evaluations if k == 0 else blocked
            if k == 0:  # not one more sample fits: the budget that blocked it is spent
                fired = blocked
                break
            batch = batch.head(k)
            sampler.update(batch, evaluate(batch.masks))
            n_rows += k
            n_units += k * batch.units
            means, stderr, n_samples = sampler.state()
            state = SamplerState(
                n_samples=n_samples,
                n_permutations=round(n_units),
                n_evaluations=evaluate.n_evaluations,
                elapsed=time.perf_counter() - start,
                means=means.copy(),
                stderr=stderr.copy(),
                previous_means=previous,
            )
            previous = means.copy()
            fired = rule.check(state)
            if report is not None:
                report(state)
            if fired is not None:
                break
    except BaseException:
        if checkpoint is not None and snapshot is not None:
            save(snapshot)
        raise
    if checkpoint is not None:
        checkpoint.path.unlink(missing_ok=True)
    return Run(fired, n_rows, n_units, time.perf_counter() - start, resumed)
