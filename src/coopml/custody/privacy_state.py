"""A private agent's state across messages: one 0600 file on the party's machine.

Under Flower's deployment runtime every message is answered by a fresh ClientApp
process, so what an agent with a :class:`~coopml.custody.privacy.GaussianMechanism`
must remember between the messages of a round lives in a file next to its log
(``coopml agent`` names it ``--log`` with the suffix ``.privacy.json``). Per round,
keyed by Flower's run id, it holds

* the releases spent, the noisy counts and feature sums already released (the
  statistics are post-processed from them), the Newton plan and the pairs released:
  the budget is enforced across processes;
* the state of the noise generator: the next process continues the stream, so no
  draw is ever repeated (a process that re-seeded from the same seed would add the
  same noise twice, and the difference of two releases would cancel it);
* the moments reply and the last reply: a request the operator sends again (after a
  disconnect) gets the same release, never a fresh draw;

and, over rounds, the party's cumulative spend: each round that released anything
counts its whole :math:`\\mu` (its budget, whether or not the round completed), and the
rounds compose as Gaussian mechanisms (:func:`~coopml.custody.privacy.compose_rounds`).

The file holds the generator's state and noisy releases: it is as private as the rows
themselves (mode 0600, written atomically, under an exclusive lock).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from coopml._validation import RandomState
from coopml.custody.privacy import GaussianMechanism, PrivateRelease, compose_rounds

__all__ = ["PrivacyState", "RoundState", "mechanism_from_config"]

#: The version of the state file's layout.
FORMAT = 1


def mechanism_from_config(config: Mapping[str, Any]) -> GaussianMechanism | None:
    """The mechanism a SuperNode's node config sets: ``epsilon``, ``delta`` and ``clip``
    (all three or none), optionally ``target_clip`` and ``labels`` (a JSON list).

    Examples
    --------
    >>> m = mechanism_from_config({"epsilon": "1", "delta": "1e-5", "clip": "4",
    ...                            "labels": "[0, 1]"})
    >>> m.epsilon, m.delta, m.clip, m.labels
    (1.0, 1e-05, 4.0, (0, 1))
    >>> mechanism_from_config({"party": "alice"}) is None
    True
    """
    keys = ("epsilon", "delta", "clip")
    given = [k for k in keys if config.get(k) not in (None, "")]
    if not given:
        return None
    if len(given) < len(keys):
        raise ValueError(f"node config must set epsilon, delta and clip together; received {given}")
    values: dict[str, Any] = {}
    for key in (*keys, "target_clip"):
        raw = config.get(key)
        if raw in (None, ""):
            continue
        try:
            values[key] = float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(f"node config {key} must be a number; received {raw!r}") from None
    labels = config.get("labels")
    if labels not in (None, ""):
        parsed = json.loads(str(labels)) if isinstance(labels, str) else labels
        if not isinstance(parsed, list) or len(parsed) < 2:
            raise ValueError(
                f"node config labels must be a JSON list of at least 2 labels; received {labels!r}"
            )
        values["labels"] = parsed
    return GaussianMechanism(**values)


def _mechanism_record(m: GaussianMechanism) -> dict[str, Any]:
    return {
        "epsilon": float(m.epsilon),
        "delta": float(m.delta),
        "clip": float(m.clip),
        "target_clip": None if m.target_clip is None else float(m.target_clip),
        "labels": None if m.labels is None else list(m.labels),
    }


def _encode(value: Any) -> Any:
    """A reply or request as JSON: arrays tagged with their dtype and shape."""
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype), "shape": value.shape}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.asarray(value["__ndarray__"], dtype=value["dtype"]).reshape(value["shape"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def request_digest(request: Mapping[str, Any]) -> str:
    """SHA-256 of a request's canonical JSON (arrays by value)."""
    text = json.dumps(_encode(request), sort_keys=True, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class RoundState:
    """One round's state, loaded from the file for one message and saved after it."""

    key: str
    release: PrivateRelease
    moments_reply: dict[str, Any] | None = None
    #: (digest of the last request answered, its reply)
    last: tuple[str, dict[str, Any]] | None = None
    #: the round's and the party's cumulative spend, filled when the state is saved
    spend: dict[str, Any] = field(default_factory=dict)

    def repeat(self, request: Mapping[str, Any]) -> dict[str, Any] | None:
        """The reply already sent to this very request, if it is the last one answered
        (a request sent again gets the same release: no new draw, no new spending)."""
        if self.last is not None and self.last[0] == request_digest(request):
            return dict(self.last[1])
        return None

    def remember(self, request: Mapping[str, Any], reply: Mapping[str, Any]) -> None:
        self.last = (request_digest(request), dict(reply))


class PrivacyState:
    """A party's privacy state file (module docstring).

    Parameters
    ----------
    path : str or os.PathLike
        The JSON file (created with mode 0600; a ``.lock`` file beside it serialises
        the processes that answer messages).
    party : str
        The party's name; a file written for another party is refused.
    lifetime_epsilon : float, optional
        The party's lifetime budget: a new round whose noise would bring the composed
        spend over all its rounds (:func:`~coopml.custody.privacy.compose_rounds`, at
        the rounds' delta) above this epsilon is refused before anything is released
        (:meth:`check_new_round`); a round already started is answered to its end.
        ``None``: no limit (the spend is still recorded).

    Examples
    --------
    >>> import tempfile
    >>> from coopml.custody.privacy import GaussianMechanism
    >>> path = Path(tempfile.mkdtemp()) / "alice.privacy.json"
    >>> state = PrivacyState(path, "alice")
    >>> m = GaussianMechanism(1.0, 1e-5, clip=1.0)
    >>> with state.round("run-7", m) as rnd:
    ...     _ = rnd.release.release("sum_x", np.zeros(2), 1.0, "classification")
    >>> rnd.spend["releases"], rnd.spend["total"]["rounds"], oct(path.stat().st_mode & 0o777)
    (1, 1, '0o600')
    """

    def __init__(
        self, path: str | os.PathLike[str], party: str, lifetime_epsilon: float | None = None
    ) -> None:
        self.path = Path(path)
        self.party = str(party)
        if lifetime_epsilon is not None and not float(lifetime_epsilon) > 0:
            raise ValueError(
                f"parameter 'lifetime_epsilon' must be positive (inf: no limit); "
                f"received {lifetime_epsilon!r}"
            )
        self.lifetime_epsilon = None if lifetime_epsilon is None else float(lifetime_epsilon)

    def check_new_round(
        self, mechanism: GaussianMechanism, data: dict[str, Any] | None = None
    ) -> None:
        """Refuse (``ValueError``) a new round of ``mechanism`` that would bring the
        party's composed spend over :attr:`lifetime_epsilon`.

        Examples
        --------
        >>> import tempfile
        >>> from coopml.custody.privacy import GaussianMechanism
        >>> path = Path(tempfile.mkdtemp()) / "alice.privacy.json"
        >>> state = PrivacyState(path, "alice", lifetime_epsilon=1.2)
        >>> m = GaussianMechanism(1.0, 1e-5, clip=1.0)
        >>> state.check_new_round(m)  # the first round fits
        >>> with state.round("run-1", m) as rnd:
        ...     _ = rnd.release.release("sum_x", np.zeros(2), 1.0, "classification")
        >>> state.check_new_round(m)
        Traceback (most recent call last):
        ...
        ValueError: party 'alice' has a lifetime privacy budget of epsilon 1.2 ...
        """
        if self.lifetime_epsilon is None:
            return
        data = self.read() if data is None else data
        mus = [float(r["mu"]) for r in data["rounds"].values() if r["spent"] > 0]
        delta = float(mechanism.delta)
        after = compose_rounds([*mus, float(mechanism.mu)], delta)["epsilon"]
        if after <= self.lifetime_epsilon:
            return
        spent = compose_rounds(mus, delta)["epsilon"] if mus else 0.0
        raise ValueError(
            f"party {self.party!r} has a lifetime privacy budget of epsilon "
            f"{self.lifetime_epsilon:g} at delta {delta:g}; it has spent {spent:.4g} over "
            f"{len(mus)} rounds, and a round at epsilon {mechanism.epsilon:g} would bring "
            f"it to {after:.4g}: it answers no new round (its --lifetime-epsilon)"
        )

    def read(self) -> dict[str, Any]:
        """The file's content (an empty ledger when it does not exist yet)."""
        if not self.path.exists():
            return {"format": FORMAT, "party": self.party, "rounds": {}, "total": None}
        data = json.loads(self.path.read_text())
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"privacy state file {self.path} is not a format-{FORMAT} state file")
        if data.get("party") != self.party:
            raise ValueError(
                f"privacy state file {self.path} belongs to party {data.get('party')!r}, "
                f"not {self.party!r}: give each party's agent its own --log"
            )
        return data

    def total(self) -> dict[str, Any] | None:
        """The party's cumulative spend as last recorded (None before any release)."""
        total = self.read().get("total")
        return dict(total) if total else None

    @contextmanager
    def round(
        self, key: str, mechanism: GaussianMechanism, random_state: RandomState = None
    ) -> Iterator[RoundState]:
        """Round ``key``'s state for one message; saved on exit, also on an error (a
        release drawn is spent even if its reply is never sent). A round the file
        already holds continues with its saved generator (``random_state`` seeds a new
        round only) and must have the same mechanism."""
        if not key:
            raise ValueError("a private agent needs the round's key (Flower's run id)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self.read()
            rnd = self._load(data, key, mechanism, random_state)
            try:
                yield rnd
            finally:
                self._save(data, rnd, mechanism)
        finally:
            os.close(lock)  # releases the lock

    # ------------------------------------------------------------------ internals
    def _load(
        self,
        data: dict[str, Any],
        key: str,
        mechanism: GaussianMechanism,
        random_state: RandomState,
    ) -> RoundState:
        saved = data["rounds"].get(key)
        if saved is None:
            self.check_new_round(mechanism, data)  # before anything of it is released
            return RoundState(key, PrivateRelease(mechanism, random_state))
        if saved["mechanism"] != _mechanism_record(mechanism):
            raise ValueError(
                f"round {key}: this agent's noise was calibrated to {saved['mechanism']}; "
                f"refusing to answer it with {_mechanism_record(mechanism)}"
            )
        release = PrivateRelease(mechanism)
        state = saved["rng"]
        bit_generator = getattr(np.random, str(state["bit_generator"]))()
        bit_generator.state = state
        release.rng = np.random.Generator(bit_generator)
        release.spent = int(saved["spent"])
        release.counts = {k: float(v) for k, v in saved["counts"]}
        release.sum_x = None if saved["sum_x"] is None else np.asarray(saved["sum_x"])
        release.newton_pairs = saved["newton_pairs"]
        release.newton_spent = int(saved["newton_spent"])
        moments = saved.get("moments_reply")
        last = saved.get("last")
        return RoundState(
            key,
            release,
            None if moments is None else _decode(moments),
            None if last is None else (str(last["digest"]), _decode(last["reply"])),
        )

    def _save(self, data: dict[str, Any], rnd: RoundState, m: GaussianMechanism) -> None:
        p = rnd.release
        rounds: dict[str, Any] = data["rounds"]
        entry = rounds.get(rnd.key) or {"started": time.time(), "mu": float(m.mu)}
        if rnd.key not in rounds:  # a new round: the others' resendable replies go
            for other in rounds.values():
                other["last"] = None
        entry.update(
            mechanism=_mechanism_record(m),
            updated=time.time(),
            spent=p.spent,
            counts=[[k, v] for k, v in p.counts.items()],
            sum_x=None if p.sum_x is None else np.asarray(p.sum_x).tolist(),
            newton_pairs=p.newton_pairs,
            newton_spent=p.newton_spent,
            rng=p.rng.bit_generator.state,
            moments_reply=None if rnd.moments_reply is None else _encode(rnd.moments_reply),
            last=None
            if rnd.last is None
            else {"digest": rnd.last[0], "reply": _encode(rnd.last[1])},
        )
        rounds[rnd.key] = entry
        spending = [r for r in rounds.values() if r["spent"] > 0]
        total = None
        if spending:
            total = {
                "rounds": len(spending),
                "delta": float(m.delta),
                **compose_rounds([float(r["mu"]) for r in spending], float(m.delta)),
            }
        data["total"] = total
        rnd.spend = {
            "round": rnd.key,
            "epsilon": float(m.epsilon),
            "delta": float(m.delta),
            "mu": float(entry["mu"]),
            "releases": p.spent,
            "newton_pairs": p.newton_pairs,
            "newton_spent": p.newton_spent,
            "total": total,
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)


def describe_total(total: Mapping[str, Any] | None) -> str:
    """One line for the party: its cumulative spend over rounds.

    Examples
    --------
    >>> describe_total(None)
    'no privacy budget spent yet'
    >>> describe_total({"rounds": 4, "epsilon": 2.155, "delta": 1e-5, "mu": 0.8})
    'privacy spent over 4 rounds: epsilon 2.155 at delta 1e-05 (mu 0.8)'
    """
    if not total:
        return "no privacy budget spent yet"
    eps = float(total["epsilon"])
    eps_text = "inf" if math.isinf(eps) else f"{eps:.4g}"
    return (
        f"privacy spent over {int(total['rounds'])} rounds: epsilon {eps_text} at delta "
        f"{float(total['delta']):.3g} (mu {float(total['mu']):.4g})"
    )
