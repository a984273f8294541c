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
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from packaging.version import InvalidVersion, Version

from coopml._bitmask import MAX_MASK_PLAYERS, decode_masks, encode_members
from coopml._records import dump_record, read_record
from coopml._validation import check_int, check_positive
from coopml.coalitions._checkpoint import (
    CHECKPOINT_SECONDS,
    load_checkpoint,
    save_checkpoint,
    state_key,
)
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
from coopml.market.records import GainSampleRecord

__all__ = [
    "DEFAULT_MAX_EVALUATIONS",
    "DEFAULT_STDERR_TARGET",
    "ESTIMATORS",
    "EXACT_LIMIT",
    "VALUATIONS",
    "GainSample",
    "ReplayMismatch",
    "ShareStderrBelow",
    "estimate_gains",
    "market_stopping",
    "sampled_shares",
    "share_stderr",
    "stopping_from_json",
    "stopping_to_json",
    "valuation_differences",
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
        raise ValueError(
            f"masks hold {len(raw)} bytes; n_evaluations={k} coalitions of n_players={n} "
            f"need {k * n_bytes}"
        )
    packed = np.frombuffer(raw, dtype=np.uint8).reshape(k, n_bytes)
    member = np.unpackbits(packed, axis=1, bitorder="little", count=n).astype(bool)
    out = encode_members(member) if k else np.zeros(0, dtype=np.int64)
    return [int(m) for m in np.asarray(out).tolist()]


#: How a sample's masks and values are packed (the record's ``encoding``).
ENCODING = (
    "zlib+base64; masks: packed bits, little-endian, one row per coalition; "
    "values: float64 little-endian"
)


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
    #: Fields of the record that the sample does not need but a reader may trust
    #: (``stopping_text``, ``numpy``, ``encoding``), as read; the replay checks them.
    recorded: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float64)
        if values.shape != (len(self.masks),):
            raise ValueError(
                f"sample: {len(self.masks)} coalitions but {values.size} values; they must match"
            )
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise ValueError(
                f"values[{bad[0]}] (the gain of coalition {self.masks[bad[0]]:#x}) is "
                f"{float(values[bad[0]])!r}; a sample's gains must be finite ({bad.size} "
                "non-finite)"
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

    def to_record(self) -> GainSampleRecord:
        """The record: masks packed into bits and values as little-endian float64, each
        zlib-compressed and base64-encoded, with their SHA-256."""
        masks = _pack_masks(self.masks, self.n_players)
        values = self.values.astype("<f8").tobytes()
        return GainSampleRecord(
            estimator=self.estimator,
            rule=self.rule,
            n_players=self.n_players,
            seed=self.seed,
            stopping=self.stopping,
            stopping_text=str(stopping_from_json(self.stopping)),
            batch_size=self.batch_size,
            stopped_by=self.stopped_by,
            converged=self.converged,
            n_evaluations=self.n_evaluations,
            selection_evaluations=self.selection_evaluations,
            # the version that drew the sample: kept when a read record is written again
            numpy=self.recorded.get("numpy", importlib.metadata.version("numpy")),
            encoding=ENCODING,
            masks=_blob(masks),
            values=_blob(values),
            sha256=hashlib.sha256(masks + values).hexdigest(),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form of :meth:`to_record` (:class:`~coopml.market.records.GainSampleRecord`)."""
        return dump_record(self.to_record())

    @classmethod
    def from_record(cls, record: GainSampleRecord) -> GainSample:
        """Unpack a validated record (a ValueError if its blobs are malformed or do not
        match their hash)."""
        n, k = record.n_players, record.n_evaluations
        try:
            raw_masks, raw_values = _unblob(record.masks), _unblob(record.values)
        except (ValueError, zlib.error, binascii.Error) as exc:
            raise ValueError(f"malformed sample: {exc}") from None
        if hashlib.sha256(raw_masks + raw_values).hexdigest() != record.sha256:
            raise ValueError("malformed sample: its samples do not match their sha256")
        try:
            return cls(
                n_players=n,
                masks=tuple(_unpack_masks(raw_masks, n, k)),
                values=np.frombuffer(raw_values, dtype="<f8").astype(np.float64),
                rule=record.rule,
                estimator=record.estimator,
                seed=record.seed,
                stopping=dict(record.stopping),
                batch_size=record.batch_size,
                stopped_by=record.stopped_by,
                converged=record.converged,
                selection_evaluations=record.selection_evaluations,
                recorded={  # checked by the replay (sampled_shares)
                    k: getattr(record, k)
                    for k in ("stopping_text", "numpy", "encoding")
                    if getattr(record, k) is not None
                },
            )
        except ValueError as exc:
            raise ValueError(f"malformed sample: {exc}") from None

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> GainSample:
        """Read :meth:`to_dict` output (a ValueError naming the field if it is malformed)."""
        return cls.from_record(read_record(GainSampleRecord, record, "gain sample"))


# ---------------------------------------------------------------------------- sources
class _Recorder:
    """A task's gains measured by the utility (on an executor), recorded in this process.

    Bitmasks are over ``members`` (bit ``k`` is player ``members[k]`` of ``utility``);
    ``overrides`` fixes the gain of some coalitions (the released model's). With a
    ``cache`` file, the gains measured are saved there (every
    :data:`~coopml.coalitions._checkpoint.CHECKPOINT_SECONDS`, on an interruption and at
    the end) and gains found there are not measured again: the estimate is sampled
    afresh over them, so a resumed run records exactly what an uninterrupted one does.
    """

    def __init__(
        self,
        utility: Any,
        members: Sequence[int],
        executor: Executor,
        overrides: dict[int, float],
        progress: ProgressCallback | None = None,
        budget: int = 0,
        cache: Path | None = None,
    ) -> None:
        self.utility, self.members, self.executor = utility, list(members), executor
        self.n_players = len(self.members)
        self.names = tuple(utility.names[j] for j in self.members)
        self.values: dict[int, float] = {}
        self.overrides, self.progress, self.budget = overrides, progress, budget
        self.cache, self.known = cache, dict[int, float]()
        self.saved_at, self.n_saved = time.perf_counter(), 0
        loaded = None if cache is None else load_checkpoint(cache)
        if loaded is not None:
            arrays, _ = loaded
            keys = [int(k) for k in arrays["masks"].tolist()]
            self.known = dict(zip(keys, arrays["values"].tolist(), strict=True))

    def save(self) -> None:
        """Write every gain measured so far (this run's and the cache's) to the cache."""
        gains = {**self.known, **self.values}
        if self.cache is None or len(gains) == self.n_saved:
            return
        arrays = {
            "masks": np.array([str(k) for k in gains], dtype=str),
            "values": np.array(list(gains.values()), dtype=np.float64),
        }
        save_checkpoint(self.cache, arrays, {"n_players": self.n_players})
        self.saved_at, self.n_saved = time.perf_counter(), len(gains)

    def _global(self, masks: list[int]) -> NDArray[Any]:
        local = decode_masks(_mask_array(masks, self.n_players), self.n_players)
        member = np.zeros((len(masks), self.utility.n_players), dtype=bool)
        member[:, self.members] = local
        return encode_members(member)

    def evaluate_block(self, masks: NDArray[Any]) -> tuple[NDArray[np.float64], list[Any]]:
        keys = [int(k) for k in np.asarray(masks).reshape(-1).tolist()]
        new = [k for k in dict.fromkeys(keys) if k not in self.values]
        failures: list[Any] = []
        fresh = {k: float(self.overrides[k]) for k in new if k in self.overrides}
        fresh.update({k: self.known[k] for k in new if k in self.known and k not in fresh})
        todo = [k for k in new if k not in fresh]
        if todo:
            per = max(1, -(-len(todo) // self.executor.n_workers))
            chunks = [todo[j : j + per] for j in range(0, len(todo), per)]
            work = partial(_evaluate, self.utility)
            results = self.executor.map(work, [self._global(c) for c in chunks])
            for chunk, (values, failed) in zip(chunks, results, strict=True):
                fresh.update(zip(chunk, np.asarray(values, dtype=float).tolist(), strict=True))
                failures.extend(failed)
        for k in new:  # in the order the estimator asked: the record's order is the replay's
            self.values[k] = fresh[k]
        if failures and isinstance(getattr(self.utility, "failures", None), list):
            self.utility.failures.extend(failures)
        if new and self.progress is not None:
            self.progress(len(self.values), max(self.budget, len(self.values)))
        if todo and time.perf_counter() - self.saved_at >= CHECKPOINT_SECONDS:
            self.save()
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
        self.order: list[int] = []  # coalitions in the order first asked for

    def evaluate_masks(self, masks: NDArray[Any]) -> NDArray[np.float64]:
        keys = [int(k) for k in np.asarray(masks).reshape(-1).tolist()]
        missing = [k for k in keys if k not in self.gains]
        if missing:
            raise ValueError(
                f"the estimator draws coalition {missing[0]:#x} (seed {self.sample.seed}), "
                "which the record does not hold: its sample (masks, values, seed, estimator, "
                "batch_size or stopping) was altered, or it was written by a coopml or NumPy "
                f"version whose random streams differ (it names NumPy "
                f"{self.sample.recorded.get('numpy', 'unknown')}; this is "
                f"{importlib.metadata.version('numpy')})"
            )
        for k in keys:
            if k not in self.used:
                self.used.add(k)
                self.order.append(k)
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
    cache_dir: str | Path | None = None,
) -> GainSample:
    """Estimate ``rule``'s values over ``members`` of ``utility``; record the gains used.

    The model fits run on ``executor``; sampling runs here, so the record does not
    depend on the executor. ``overrides`` fixes gains by local bitmask (the released
    model's gain for the grand coalition). ``selection_evaluations`` (fits spent choosing
    the members) are taken off the evaluation budget, and so are the single-party
    coalitions for an estimator that does not count them itself (:func:`_uncounted`),
    so the recorded coalitions never exceed a ``MaxEvaluations`` budget. With
    ``cache_dir`` the gains are kept there (by the utility's fingerprint and the
    members) and a rerun measures only those it lacks.
    """
    estimator = check_estimable(rule)
    n = len(members)
    used = selection_evaluations + _uncounted(estimator, n)
    total = _budget(stopping_to_json(stopping))
    if total and total - used < 2:
        raise ValueError(
            f"parameter 'stopping': an evaluation budget of {total} cannot estimate {n} "
            f"parties: {selection_evaluations} fits chose the members and every estimate "
            f"evaluates the empty, grand and {n} single-party coalitions exactly; give at "
            f"least {used + 2} (more for standard errors)"
        )
    rule_json = _spend(stopping_to_json(stopping), used, n)
    batch = max(256, 2 * n) if estimator == "svarm_shapley" else 256
    budget = _budget(rule_json)
    cache = None if cache_dir is None else _gains_cache(cache_dir, utility, members)
    recorder = _Recorder(utility, members, executor, overrides or {}, progress, budget, cache)
    try:
        result = _run(
            estimator, _Game(recorder, rule, empty_gain), stopping_from_json(rule_json), seed, batch
        )
    finally:  # kept on an interruption, to resume from; and at the end, to rerun from
        recorder.save()
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


def _uncounted(estimator: str, n: int) -> int:
    """Coalitions the market evaluates exactly (:class:`_Game`: the empty, grand and
    single-party coalitions) that the estimator's own budget does not count: SVARM
    evaluates them all in its exact strata, MSR only the empty and grand coalitions."""
    return n if estimator == "msr_banzhaf" and n > 1 else 0


def _gains_cache(cache_dir: str | Path, utility: Any, members: Sequence[int]) -> Path:
    """The file of the gains of ``members`` of ``utility`` in ``cache_dir``."""
    if not hasattr(utility, "fingerprint"):
        raise ValueError(
            "parameter 'cache_dir' needs a utility with a fingerprint() (a CoalitionUtility); "
            f"got {type(utility).__name__}"
        )
    spec = {"gains": utility.fingerprint(), "members": [int(j) for j in members]}
    return Path(cache_dir) / f"{state_key(spec)}.gains.npz"


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
            f"sample.rule: the sample estimates rule {sample.rule!r}, not {rule!r}; estimated "
            "shares are tied to the rule they were sampled for (settle again to change the rule)"
        )
    lookup = _Lookup(sample)
    game = _Game(lookup, rule, empty_gain)
    result = _run(
        sample.estimator, game, stopping_from_json(sample.stopping), sample.seed, sample.batch_size
    )
    problems = _replay_differences(sample, result, lookup)
    if problems:
        raise ReplayMismatch(problems)
    return result


class ReplayMismatch(ValueError):
    """The replayed estimate disagrees with its record; ``problems`` names each field."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


def _is_numpy_version(text: Any) -> bool:
    """Whether ``text`` is a NumPy release's version (``2.1.3``, ``1.26.4``,
    ``2.3.0rc1``): a PEP 440 version (:mod:`packaging`) of at least two parts."""
    if not isinstance(text, str) or len(text) > 64:
        return False
    try:
        return len(Version(text).release) >= 2 and str(Version(text)) == text
    except InvalidVersion:
        return False


def _replay_differences(sample: GainSample, result: ValuationResult, lookup: _Lookup) -> list[str]:
    """Every field of the sample that disagrees with the replay, by name ``sample.<field>``."""
    problems: list[str] = []
    unused = len(set(sample.masks) - lookup.used)
    if unused:
        problems.append(
            f"sample.masks: the record holds {unused} coalition(s) the estimator never draws: "
            "its masks or its stopping rule were altered"
        )
    elif tuple(lookup.order) != sample.masks:
        at = next(
            i for i, (a, b) in enumerate(zip(lookup.order, sample.masks, strict=True)) if a != b
        )
        problems.append(
            f"sample.masks: the record's evaluation order differs from the replay's from "
            f"coalition {at} on (recorded {sample.masks[at]:#x}, replayed {lookup.order[at]:#x})"
        )
    if str(result.info["stopped_by"]) != sample.stopped_by:
        problems.append(
            f"sample.stopped_by: stored {sample.stopped_by!r} != replayed "
            f"{str(result.info['stopped_by'])!r}"
        )
    if bool(result.converged) != sample.converged:
        problems.append(
            f"sample.converged: stored {sample.converged} != replayed {bool(result.converged)}"
        )
    text = sample.recorded.get("stopping_text")
    if text is not None and text != str(stopping_from_json(sample.stopping)):
        problems.append(
            f"sample.stopping_text: stored {text!r} != the stored rule "
            f"{str(stopping_from_json(sample.stopping))!r}"
        )
    version = sample.recorded.get("numpy")
    if "numpy" in sample.recorded and not _is_numpy_version(version):
        problems.append(f"sample.numpy: stored {version!r} is not a NumPy version")
    encoding = sample.recorded.get("encoding")
    if encoding is not None and encoding != ENCODING:
        problems.append(
            f"sample.encoding: stored {encoding!r}, but the masks and values were decoded "
            f"(and hash-checked) as {ENCODING!r}, the only encoding coopml writes"
        )
    return problems


def valuation_differences(stored: Any, fresh: Any, path: str = "valuation") -> list[str]:
    """Every field of a stored ``valuation`` block that disagrees with the recomputed one,
    by its name (``valuation.tasks[2].converged``).

    Examples
    --------
    >>> valuation_differences({"evaluations": 9, "seed": 0}, {"evaluations": 8, "seed": 0})
    ['valuation.evaluations: stored 9 != recomputed 8']
    """
    if isinstance(stored, dict) and isinstance(fresh, dict):
        problems: list[str] = []
        for key in [*fresh, *(k for k in stored if k not in fresh)]:
            if key not in stored:
                problems.append(f"{path}.{key}: missing (recomputed {fresh[key]!r})")
            elif key not in fresh:
                problems.append(f"{path}.{key}: stored {stored[key]!r}, which is not recomputed")
            else:
                problems.extend(valuation_differences(stored[key], fresh[key], f"{path}.{key}"))
        return problems
    if isinstance(stored, list) and isinstance(fresh, list) and len(stored) == len(fresh):
        return [
            problem
            for i, (a, b) in enumerate(zip(stored, fresh, strict=True))
            for problem in valuation_differences(a, b, f"{path}[{i}]")
        ]
    same = type(stored) is type(fresh) and stored == fresh
    return [] if same else [f"{path}: stored {stored!r} != recomputed {fresh!r}"]


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
