r"""Estimated payment shares for large markets: sampled, recorded and replayable.

An exact gain table needs :math:`2^n` model fits; beyond a few dozen parties a market
estimates its payment rule instead, from a sample of coalitions, and records what it
needs for anyone to recompute the shares without trusting the market:

* **Estimators** (chosen by the reference-games coverage table of
  ``docs/valuation.md``): Shapley-type rules (``"ohrimenko"``, ``"shapley"``,
  ``"similarity_shapley"``) use stratified SVARM
  (:func:`~coopml.coalitions.svarm_shapley`; the best lowest coverage at 2,000 and
  10,000 evaluations); ``"banzhaf"`` uses maximum-sample-reuse
  (:func:`~coopml.coalitions.msr_banzhaf`). ``"loo"`` has no sampling estimator and is
  refused. The Ohrimenko characteristic function
  :math:`v(S) = (1 + |S|)\,G(S) - \sum_{j \in S} G(\{j\})` needs the singleton gains
  :math:`G(\{j\})`: they, the empty coalition and the grand coalition are evaluated
  exactly before sampling, and :math:`v` is computed from them and the sampled
  :math:`G(S)`.
* **Record** (:class:`GainSample`): every coalition whose gain was measured (bitmasks
  packed into bits, any number of parties), its gain as float64, the seed, the stopping
  rule (as data) and the batch size; packed with zlib and base64 inside the JSON record.
* **Replay** (:func:`sampled_shares`): the estimator is run again with the recorded seed
  and rule on the recorded gains instead of model fits. It draws the same coalitions in
  the same order and performs the same updates, so it returns the same estimate; a
  coalition the record lacks, a coalition it holds that the estimator never draws, or
  a different stopping outcome is an error. Replay relies on NumPy's random streams
  (the record names the NumPy version that wrote it).

**From estimates to money.** Raw values :math:`\hat\varphi` with standard errors
:math:`s` become shares :math:`\psi_i = \hat\varphi_i^+ / T`, :math:`T = \sum_j
\hat\varphi_j^+` (negative values clipped, as for exact shares,
:mod:`coopml.market.payment`), so the shares sum to one and the market balances exactly
whatever the estimate. The normalisation's own uncertainty is propagated to first order
without assuming anything about how the players' errors correlate (they share
coalitions):

.. math::

    \operatorname{se}(\psi_i) \le \frac1T \sqrt{(1 - \psi_i)^2 s_i^2
        + \psi_i^2 \Bigl(\sum_{j \ne i,\ \hat\varphi_j > 0} s_j\Bigr)^2},

and a payout :math:`b_i = A\,\psi_i` of a payment :math:`A` has standard error
:math:`A \operatorname{se}(\psi_i)` (independent tasks add in quadrature). A clipped
party's payout is 0 with standard error :math:`A s_i / T`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib.metadata
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import NDArray

from coopml._bitmask import MAX_MASK_PLAYERS, decode_masks, encode_members
from coopml._validation import check_int, check_positive
from coopml.coalitions.executors import Executor, ProgressCallback
from coopml.coalitions.msr_banzhaf import msr_banzhaf
from coopml.coalitions.result import ValuationResult
from coopml.coalitions.stopping import (
    MaxEvaluations,
    MaxPermutations,
    RankStable,
    SamplerState,
    StandardErrorBelow,
    StoppingRule,
    _And,
    _Or,
)
from coopml.coalitions.svarm import svarm_shapley

__all__ = [
    "DEFAULT_MAX_EVALUATIONS",
    "DEFAULT_STDERR_TARGET",
    "ESTIMATORS",
    "EXACT_LIMIT",
    "VALUATIONS",
    "GainSample",
    "ShareStderrBelow",
    "estimate_gains",
    "market_stopping",
    "sampled_shares",
    "share_stderr",
    "stopping_from_json",
    "stopping_to_json",
]

#: How a market values coalitions.
VALUATIONS = ("auto", "exact", "monte_carlo")

#: ``valuation="auto"`` is exact up to this many parties (a 14-party table of
#: Gaussian naive Bayes on the digits data takes about 3 s on the 2-core machine; 16
#: parties take 4 times as long and 20 parties over a minute) and estimated above.
EXACT_LIMIT = 14

#: The estimator of each payment rule that has one.
ESTIMATORS = {
    "ohrimenko": "svarm_shapley",
    "shapley": "svarm_shapley",
    "similarity_shapley": "svarm_shapley",
    "banzhaf": "msr_banzhaf",
}

#: Default evaluation budget (distinct coalitions, i.e. model fits) of one estimate: a
#: cap. 100 parties of the digits data reach the default target after about 16,000 fits
#: (docs/market.md, "Large markets").
DEFAULT_MAX_EVALUATIONS = 25_000

#: Default convergence target: every payout's standard error at most this fraction of
#: the total paid out (:class:`ShareStderrBelow`).
DEFAULT_STDERR_TARGET = 0.01


class ShareStderrBelow(StoppingRule):
    r"""Stop once every normalised share's standard error is at most ``tol`` (convergence).

    The shares are the clipped, normalised raw values :math:`\psi_i =
    \hat\varphi_i^+ / \sum_j \hat\varphi_j^+` and their standard errors the bound of
    :func:`share_stderr`, so a payout :math:`A\,\psi_i` of a payment :math:`A` has
    standard error at most ``tol`` times :math:`A`: the target is on the money, as a
    fraction of the total paid out (independent tasks add in quadrature, so it holds for
    a multi-task market's total as well). ``similarity_shapley`` discounts the values
    after estimation: the target is on the undiscounted shares. Never fires before
    ``min_samples`` samples (the smallest per-stratum count for SVARM), as
    :class:`~coopml.coalitions.stopping.StandardErrorBelow`.

    Examples
    --------
    >>> from coopml.coalitions.stopping import SamplerState
    >>> rule = ShareStderrBelow(0.01)
    >>> state = SamplerState(n_samples=9, n_permutations=9, n_evaluations=99, elapsed=0.0,
    ...                      means=np.array([1.0, 3.0]), stderr=np.array([0.01, 0.02]))
    >>> share_stderr(state.means, state.stderr).round(4).tolist(), rule(state)
    ([0.0023, 0.0023], True)
    >>> rule(SamplerState(n_samples=9, n_permutations=9, n_evaluations=99, elapsed=0.0,
    ...                   means=np.array([1.0, 3.0]), stderr=np.array([0.1, 0.2])))
    False
    """

    converges = True

    def __init__(self, tol: float, *, min_samples: int = 8) -> None:
        self.tol = check_positive("tol", tol)
        self.min_samples = check_int("min_samples", min_samples, minimum=2)

    def check(self, state: SamplerState) -> StoppingRule | None:
        if state.n_samples < self.min_samples:
            return None
        with np.errstate(invalid="ignore", divide="ignore"):
            se = share_stderr(np.asarray(state.means), np.asarray(state.stderr))
        return self if bool(np.all(se <= self.tol)) else None

    def __str__(self) -> str:
        extra = "" if self.min_samples == 8 else f", min_samples={self.min_samples}"
        return f"ShareStderrBelow({self.tol:g}{extra})"


def market_stopping(
    max_evaluations: int = DEFAULT_MAX_EVALUATIONS,
    stderr_target: float | None = DEFAULT_STDERR_TARGET,
) -> StoppingRule:
    """The market's stopping rule: an evaluation budget, and optionally a target.

    ``MaxEvaluations(max_evaluations) | ShareStderrBelow(stderr_target)``: stop when
    every payout's standard error is at most ``stderr_target`` times the total paid out
    (converged), or after ``max_evaluations`` distinct coalitions (model fits; not
    converged, and the settlement says so).

    Examples
    --------
    >>> market_stopping()
    MaxEvaluations(25000) | ShareStderrBelow(0.01)
    >>> market_stopping(2000, None)
    MaxEvaluations(2000)
    """
    rule: StoppingRule = MaxEvaluations(check_int("max_evaluations", max_evaluations, minimum=1))
    if stderr_target is not None:
        rule = rule | ShareStderrBelow(check_positive("stderr_target", stderr_target))
    return rule


def stopping_to_json(rule: StoppingRule) -> dict[str, Any]:
    """A stopping rule as data, for the record; :func:`stopping_from_json` rebuilds it.

    Only rules whose outcome the recorded gains determine can be replayed, so
    ``MaxTime`` (and custom rules) are refused.

    Examples
    --------
    >>> stopping_to_json(MaxEvaluations(100) | RankStable(3))
    {'any': [{'max_evaluations': 100}, {'rank_stable': 3}]}
    >>> stopping_from_json(stopping_to_json(MaxPermutations(50) & RankStable(3)))
    MaxPermutations(50) & RankStable(3)
    """
    if isinstance(rule, _Or | _And):
        key = "any" if isinstance(rule, _Or) else "all"
        return {key: [stopping_to_json(rule.left), stopping_to_json(rule.right)]}
    if isinstance(rule, MaxEvaluations):
        return {"max_evaluations": rule.limit}
    if isinstance(rule, MaxPermutations):
        return {"max_permutations": rule.limit}
    if isinstance(rule, StandardErrorBelow):
        return {
            "stderr_below": rule.tol,
            "relative_to": rule.relative_to,
            "min_samples": rule.min_samples,
        }
    if isinstance(rule, RankStable):
        return {"rank_stable": rule.n_checks}
    if isinstance(rule, ShareStderrBelow):
        return {"share_stderr_below": rule.tol, "min_samples": rule.min_samples}
    raise ValueError(
        "parameter 'stopping' must combine MaxEvaluations, MaxPermutations, "
        "StandardErrorBelow, ShareStderrBelow and RankStable (a settlement replays it); "
        f"got {rule}: a time budget (MaxTime) would make the record impossible to recompute"
    )


def stopping_from_json(data: Any) -> StoppingRule:
    """Rebuild a rule written by :func:`stopping_to_json` (a ValueError if malformed)."""
    if not isinstance(data, dict) or not data:
        raise ValueError(f"stopping rule: expected a mapping; got {data!r}")
    if "any" in data or "all" in data:
        parts = data["any"] if "any" in data else data["all"]
        left, right = (stopping_from_json(part) for part in parts)
        return left | right if "any" in data else left & right
    if "max_evaluations" in data:
        return MaxEvaluations(int(data["max_evaluations"]))
    if "max_permutations" in data:
        return MaxPermutations(int(data["max_permutations"]))
    if "stderr_below" in data:
        return StandardErrorBelow(
            float(data["stderr_below"]),
            data.get("relative_to"),
            min_samples=int(data.get("min_samples", 8)),
        )
    if "rank_stable" in data:
        return RankStable(int(data["rank_stable"]))
    if "share_stderr_below" in data:
        return ShareStderrBelow(
            float(data["share_stderr_below"]), min_samples=int(data.get("min_samples", 8))
        )
    raise ValueError(f"stopping rule: unknown form {data!r}")


def _spend(data: dict[str, Any], used: int, n_players: int) -> dict[str, Any]:
    """``data`` with every evaluation budget lowered by ``used`` (at least 1) and capped
    at the ``2**n_players`` coalitions that exist."""
    if "any" in data or "all" in data:
        key = "any" if "any" in data else "all"
        return {key: [_spend(part, used, n_players) for part in data[key]]}
    if "max_evaluations" in data:
        limit = max(1, int(data["max_evaluations"]) - used)
        return {"max_evaluations": min(limit, 2**n_players)}
    return dict(data)


# ---------------------------------------------------------------------------- record
def _pack_masks(masks: Sequence[int], n: int) -> bytes:
    member = decode_masks(_mask_array(masks, n), n) if masks else np.zeros((0, n), bool)
    return np.packbits(member, axis=1, bitorder="little").tobytes()


def _unpack_masks(raw: bytes, n: int, k: int) -> list[int]:
    n_bytes = (n + 7) // 8
    if len(raw) != k * n_bytes:
        raise ValueError(f"masks hold {len(raw)} bytes; {k} coalitions of {n} need {k * n_bytes}")
    packed = np.frombuffer(raw, dtype=np.uint8).reshape(k, n_bytes)
    member = np.unpackbits(packed, axis=1, bitorder="little", count=n).astype(bool)
    out = encode_members(member) if k else np.zeros(0, dtype=np.int64)
    return [int(m) for m in np.asarray(out).tolist()]


def _mask_array(masks: Sequence[int], n: int) -> NDArray[Any]:
    arr = np.empty(len(masks), dtype=np.int64 if n <= MAX_MASK_PLAYERS else object)
    arr[:] = list(masks)
    return arr


def _blob(raw: bytes) -> str:
    return base64.b64encode(zlib.compress(raw, 9)).decode("ascii")


def _unblob(text: str) -> bytes:
    return zlib.decompress(base64.b64decode(text.encode("ascii"), validate=True))


@dataclass(frozen=True, eq=False)
class GainSample:
    """The measured gains of the coalitions an estimate used, and how to replay it.

    Coalitions are bitmasks over the task's members (bit ``k`` is ``members[k]``),
    Python integers, in the order they were evaluated.
    """

    n_players: int
    masks: tuple[int, ...]
    values: NDArray[np.float64]
    rule: str
    estimator: str
    seed: int
    stopping: dict[str, Any]
    batch_size: int
    stopped_by: str
    converged: bool
    selection_evaluations: int = 0

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float64)
        if values.shape != (len(self.masks),):
            raise ValueError(
                f"sample: {len(self.masks)} coalitions but {values.size} values; they must match"
            )
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "_index", dict(zip(self.masks, values.tolist(), strict=True)))

    @property
    def n_evaluations(self) -> int:
        """Distinct coalitions whose gain was measured for the estimate."""
        return len(self.masks)

    def gains(self) -> dict[int, float]:
        """Gain of every recorded coalition, by bitmask."""
        return dict(self._index)  # type: ignore[attr-defined]

    def gain(self, mask: int) -> float:
        """The recorded gain of coalition ``mask`` (a ValueError if not recorded)."""
        try:
            return float(self._index[mask])  # type: ignore[attr-defined]
        except KeyError:
            raise ValueError(f"the sample holds no gain for coalition {mask:#x}") from None

    def to_dict(self) -> dict[str, Any]:
        """JSON form: masks packed into bits and values as little-endian float64, each
        zlib-compressed and base64-encoded, with their SHA-256."""
        masks = _pack_masks(self.masks, self.n_players)
        values = self.values.astype("<f8").tobytes()
        return {
            "estimator": self.estimator,
            "rule": self.rule,
            "n_players": self.n_players,
            "seed": self.seed,
            "stopping": self.stopping,
            "stopping_text": str(stopping_from_json(self.stopping)),
            "batch_size": self.batch_size,
            "stopped_by": self.stopped_by,
            "converged": self.converged,
            "n_evaluations": self.n_evaluations,
            "selection_evaluations": self.selection_evaluations,
            "numpy": importlib.metadata.version("numpy"),
            "encoding": "zlib+base64; masks: packed bits, little-endian, one row per "
            "coalition; values: float64 little-endian",
            "masks": _blob(masks),
            "values": _blob(values),
            "sha256": hashlib.sha256(masks + values).hexdigest(),
        }

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> GainSample:
        """Read :meth:`to_dict` output (a ValueError if it is malformed)."""
        try:
            n, k = int(record["n_players"]), int(record["n_evaluations"])
            raw_masks, raw_values = _unblob(record["masks"]), _unblob(record["values"])
            if hashlib.sha256(raw_masks + raw_values).hexdigest() != record["sha256"]:
                raise ValueError("its samples do not match their sha256")
            values = np.frombuffer(raw_values, dtype="<f8").astype(np.float64)
            return cls(
                n_players=n,
                masks=tuple(_unpack_masks(raw_masks, n, k)),
                values=values,
                rule=str(record["rule"]),
                estimator=str(record["estimator"]),
                seed=int(record["seed"]),
                stopping=dict(record["stopping"]),
                batch_size=int(record["batch_size"]),
                stopped_by=str(record["stopped_by"]),
                converged=bool(record["converged"]),
                selection_evaluations=int(record.get("selection_evaluations", 0)),
            )
        except (KeyError, TypeError, ValueError, zlib.error, binascii.Error) as exc:
            raise ValueError(f"malformed sample: {exc}") from None


# ---------------------------------------------------------------------------- sources
class _Recorder:
    """A task's gains measured by the utility (on an executor), recorded in this process.

    Bitmasks are over ``members`` (bit ``k`` is player ``members[k]`` of ``utility``);
    ``overrides`` fixes the gain of some coalitions (the released model's).
    """

    def __init__(
        self,
        utility: Any,
        members: Sequence[int],
        executor: Executor,
        overrides: dict[int, float],
        progress: ProgressCallback | None = None,
        budget: int = 0,
    ) -> None:
        self.utility, self.members, self.executor = utility, list(members), executor
        self.n_players = len(self.members)
        self.names = tuple(utility.names[j] for j in self.members)
        self.values: dict[int, float] = {}
        self.overrides, self.progress, self.budget = overrides, progress, budget

    def _global(self, masks: list[int]) -> NDArray[Any]:
        local = decode_masks(_mask_array(masks, self.n_players), self.n_players)
        member = np.zeros((len(masks), self.utility.n_players), dtype=bool)
        member[:, self.members] = local
        return encode_members(member)

    def evaluate_block(self, masks: NDArray[Any]) -> tuple[NDArray[np.float64], list[Any]]:
        keys = [int(k) for k in np.asarray(masks).reshape(-1).tolist()]
        new = [k for k in dict.fromkeys(keys) if k not in self.values]
        failures: list[Any] = []
        todo = [k for k in new if k not in self.overrides]
        if todo:
            per = max(1, -(-len(todo) // self.executor.n_workers))
            chunks = [todo[j : j + per] for j in range(0, len(todo), per)]
            work = partial(_evaluate, self.utility)
            results = self.executor.map(work, [self._global(c) for c in chunks])
            for chunk, (values, failed) in zip(chunks, results, strict=True):
                self.values.update(
                    zip(chunk, np.asarray(values, dtype=float).tolist(), strict=True)
                )
                failures.extend(failed)
        for k in new:
            if k in self.overrides:
                self.values[k] = float(self.overrides[k])
        if failures and isinstance(getattr(self.utility, "failures", None), list):
            self.utility.failures.extend(failures)
        if new and self.progress is not None:
            self.progress(len(self.values), max(self.budget, len(self.values)))
        return np.array([self.values[k] for k in keys], dtype=np.float64), failures

    def evaluate_masks(self, masks: NDArray[Any]) -> NDArray[np.float64]:
        return self.evaluate_block(masks)[0]


def _evaluate(utility: Any, masks: NDArray[Any]) -> tuple[NDArray[np.float64], list[Any]]:
    if hasattr(utility, "evaluate_block"):
        values, failures = utility.evaluate_block(masks)
        return np.asarray(values, dtype=np.float64), list(failures)
    return np.asarray(utility.evaluate_masks(masks), dtype=np.float64), []


class _Lookup:
    """Recorded gains as a source; remembers which coalitions were asked for."""

    def __init__(self, sample: GainSample) -> None:
        self.sample, self.n_players = sample, sample.n_players
        self.names = tuple(str(i) for i in range(self.n_players))
        self.gains, self.used = sample.gains(), set[int]()

    def evaluate_masks(self, masks: NDArray[Any]) -> NDArray[np.float64]:
        keys = [int(k) for k in np.asarray(masks).reshape(-1).tolist()]
        missing = [k for k in keys if k not in self.gains]
        if missing:
            raise ValueError(
                f"the estimator draws coalition {missing[0]:#x} (seed {self.sample.seed}), "
                "which the record does not hold: its samples were altered, or it was written "
                "by a coopml or NumPy version whose random streams differ"
            )
        self.used.update(keys)
        return np.array([self.gains[k] for k in keys], dtype=np.float64)


class _Game:
    """The game an estimator samples: the rule's characteristic function over gains.

    ``"ohrimenko"``: :math:`v(S) = (1 + |S|) G(S) - \\sum_{j \\in S} G(\\{j\\})`; other
    rules: :math:`G` itself. The empty coalition takes the settlement's convention.
    """

    def __init__(self, gains: Any, rule: str, empty_gain: Callable[[float], float]) -> None:
        self.gains, self.rule, self.n_players = gains, rule, gains.n_players
        self.names = tuple(str(i) for i in range(self.n_players))
        n = self.n_players
        self.empty = empty_gain(float(gains.evaluate_masks(_mask_array([0], n))[0]))
        singles = [1 << j for j in range(n)]
        self.own = gains.evaluate_masks(_mask_array(singles, n))
        gains.evaluate_masks(_mask_array([(1 << n) - 1], n))

    def evaluate_masks(self, masks: NDArray[Any]) -> NDArray[np.float64]:
        arr = np.asarray(masks).reshape(-1)
        g = np.asarray(self.gains.evaluate_masks(arr), dtype=np.float64)
        empty = np.array([int(k) == 0 for k in arr.tolist()], dtype=bool)
        g = np.where(empty, self.empty, g)
        if self.rule != "ohrimenko":
            return g
        member = decode_masks(arr, self.n_players)
        return (1 + member.sum(axis=1)) * g - member.astype(np.float64) @ self.own


def _run(
    estimator: str, game: _Game, stopping: StoppingRule, seed: int, batch: int
) -> ValuationResult:
    if estimator == "svarm_shapley":
        return svarm_shapley(game, stopping=stopping, batch_size=batch, random_state=seed)
    if estimator == "msr_banzhaf":
        return msr_banzhaf(game, stopping=stopping, batch_size=batch, random_state=seed)
    raise ValueError(
        f"unknown estimator {estimator!r}; this coopml replays {sorted(ESTIMATORS.values())}"
    )


def check_estimable(rule: str) -> str:
    """The estimator of ``rule``, or a ValueError naming the rules that have one."""
    if rule not in ESTIMATORS:
        raise ValueError(
            f"payment rule {rule!r} has no sampling estimator, so valuation='monte_carlo' "
            f"cannot settle it; rules that can be estimated: {sorted(ESTIMATORS)}. Use "
            "valuation='exact' (at most 25 parties) or one of those rules"
        )
    return ESTIMATORS[rule]


def estimate_gains(
    utility: Any,
    members: Sequence[int],
    rule: str,
    *,
    stopping: StoppingRule,
    seed: int,
    empty_gain: Callable[[float], float],
    overrides: dict[int, float] | None = None,
    executor: Executor,
    progress: ProgressCallback | None = None,
    selection_evaluations: int = 0,
) -> GainSample:
    """Estimate ``rule``'s values over ``members`` of ``utility``; record the gains used.

    The model fits run on ``executor``; sampling runs here, so the record does not
    depend on the executor. ``overrides`` fixes gains by local bitmask (the released
    model's gain for the grand coalition). ``selection_evaluations`` (fits spent choosing
    the members) are taken off the evaluation budget.
    """
    estimator = check_estimable(rule)
    n = len(members)
    rule_json = _spend(stopping_to_json(stopping), selection_evaluations, n)
    batch = max(256, 2 * n) if estimator == "svarm_shapley" else 256
    budget = _budget(rule_json)
    recorder = _Recorder(utility, members, executor, overrides or {}, progress, budget)
    result = _run(
        estimator, _Game(recorder, rule, empty_gain), stopping_from_json(rule_json), seed, batch
    )
    if result.stderr is not None and not np.all(np.isfinite(result.stderr)):
        raise ValueError(
            f"parameter 'stopping': {stopping_to_json(stopping)} stopped {estimator} after "
            f"{len(recorder.values)} evaluations, before every stratum of the {n} parties "
            "was sampled, so some shares have no standard error; give an evaluation budget "
            "(MaxEvaluations, the job file's max_evaluations) large enough for the "
            "estimator's warm-up instead of a permutation count"
        )
    masks = tuple(recorder.values)
    return GainSample(
        n_players=n,
        masks=masks,
        values=np.array([recorder.values[k] for k in masks], dtype=np.float64),
        rule=rule,
        estimator=estimator,
        seed=seed,
        stopping=rule_json,
        batch_size=batch,
        stopped_by=str(result.info["stopped_by"]),
        converged=bool(result.converged),
        selection_evaluations=selection_evaluations,
    )


def _budget(data: dict[str, Any]) -> int:
    if "any" in data or "all" in data:
        parts = [_budget(p) for p in data.get("any", data.get("all", []))]
        return min((p for p in parts if p), default=0)
    return int(data.get("max_evaluations", 0))


def sampled_shares(
    sample: GainSample, rule: str, empty_gain: Callable[[float], float]
) -> ValuationResult:
    """Replay the estimate of ``rule``'s raw values from the recorded gains.

    Raises a ValueError when the record cannot have produced itself: a coalition the
    estimator draws is missing, the record holds coalitions it never draws, the rule
    differs from the sampled one, or the stopping outcome differs from the recorded one.
    """
    if rule != sample.rule:
        raise ValueError(
            f"the sample estimates rule {sample.rule!r}, not {rule!r}; estimated shares are "
            "tied to the rule they were sampled for (settle again to change the rule)"
        )
    lookup = _Lookup(sample)
    game = _Game(lookup, rule, empty_gain)
    result = _run(
        sample.estimator, game, stopping_from_json(sample.stopping), sample.seed, sample.batch_size
    )
    unused = len(set(sample.masks) - lookup.used)
    if unused:
        raise ValueError(
            f"the record holds {unused} coalition(s) the estimator never draws: its samples "
            "were altered"
        )
    if str(result.info["stopped_by"]) != sample.stopped_by:
        raise ValueError(
            f"the replayed estimate stopped by {result.info['stopped_by']}, the record says "
            f"{sample.stopped_by}"
        )
    return result


def share_stderr(raw: NDArray[np.float64], stderr: NDArray[np.float64]) -> NDArray[np.float64]:
    """Standard errors of normalised shares ``max(raw, 0) / sum(max(raw, 0))`` (module
    docstring: first order, any correlation between the players' errors).

    Examples
    --------
    >>> share_stderr(np.array([1.0, 3.0]), np.array([0.1, 0.1])).round(4).tolist()
    [0.0198, 0.0198]
    >>> share_stderr(np.array([2.0, -1.0]), np.array([0.0, 0.5])).tolist()
    [0.0, 0.25]
    """
    positive = np.maximum(raw, 0.0)
    total = float(positive.sum())
    if total <= 0:
        return np.where(stderr > 0, np.inf, 0.0)
    psi = positive / total
    counted = np.where(raw > 0, stderr, 0.0)
    rest = counted.sum() - counted
    return np.sqrt(((1 - psi) * stderr) ** 2 + (psi * rest) ** 2) / total
