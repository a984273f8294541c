"""The party's agent: answers the operator's requests from rows that never leave it.

An :class:`Agent` holds one party's training rows and, optionally, a validation set.
It answers four kinds of request (:meth:`Agent.handle`), each a function of its own
rows and of what the request carries, and logs every request it answers and what it
disclosed (:attr:`Agent.log`, and the ``coopml.custody.agent`` logger):

``moments``
    row count, feature sums, target sum (regression) or label counts (classification),
    and fingerprints (SHA-256) of its files -- the operator centres every party's
    statistics on the grand mean;
``statistics``
    the learner's per-party sufficient statistics about that centre
    (:meth:`~coopml.learning.fast.StatisticsLearner.party_statistics`);
``newton``
    for a block of coalitions it belongs to, the loss or the gradient and Hessian of
    logistic regression on its own rows at the parameters sent
    (:mod:`coopml.custody.newton`);
``score``
    the validation scores of the coalition models sent (validation set owners only).

With a :class:`~coopml.custody.privacy.GaussianMechanism` (``privacy``) the agent
clips its rows and adds Gaussian noise to what ``moments`` and ``statistics`` release,
and, for logistic regression, to the gradients and Hessians of ``newton`` (calibrated to
the plan of pairs the operator announces first, refusing any beyond it), so that its
round is (epsilon, delta)-differentially private (:mod:`coopml.custody.privacy`). With a
:class:`~coopml.custody.privacy_state.PrivacyState` the round's spending and noise
stream live in a 0600 file between messages (each message may be answered by a new
process), and the party's cumulative spend over rounds is recorded there and logged.

Under Flower's deployment runtime the same agent answers as a ``ClientApp``: the
attribute ``app`` of this module (``coopml.custody.agent:app``), built on first access
so that importing the module needs no ``flwr``. Its files come from the SuperNode's
node config (:func:`agent_from_config`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from coopml._validation import RandomState
from coopml.custody.privacy import (
    GaussianMechanism,
    PrivateRelease,
    clip_rows,
    newton_sensitivity,
    whole,
    within_class_floor,
)
from coopml.data.party import Party

if TYPE_CHECKING:
    from coopml.custody.privacy_state import PrivacyState

# Flower starts a fresh ClientApp process for every message: what only some requests
# need (scikit-learn's estimators and scorers, the fast learners) is imported by the
# request's handler, not here (tests/custody/test_agent_import_light.py).

__all__ = ["Agent", "agent_from_config"]

logger = logging.getLogger("coopml.custody.agent")


class Agent:
    """One party's side of the parties-custody protocol.

    Parameters
    ----------
    party : Party
        The party's training rows (``X``, ``y``) and, if it owns a validation set,
        ``X_val`` and ``y_val``. A validation-only agent (a buyer with a task but no
        training data) passes a party whose training rows are empty of use: it is
        never asked for them unless it is a player.
    privacy : GaussianMechanism, optional
        Noise on every statistic released (:mod:`coopml.custody.privacy`); none by
        default (the exact protocol).
    random_state : int, numpy.random.Generator or None
        The agent's own stream for the noise (unused without ``privacy``; with
        ``state``, it seeds a new round only: a round in the file continues its saved
        stream).
    state : PrivacyState, optional
        Where the agent's privacy state lives between messages (a 0600 file:
        :mod:`coopml.custody.privacy_state`): each message loads round ``round_key``'s
        spending, noise generator and releases, and saves them after answering, so that
        agents built afresh for every message (Flower's ClientApp processes) spend one
        budget and never repeat a draw. Needs ``privacy`` and ``round_key``.
    round_key : str, optional
        The round the messages belong to (Flower's run id).

    Examples
    --------
    >>> a = Agent(Party("alice", [[0.0], [2.0]], [0, 1]))
    >>> reply = a.handle({"kind": "moments", "task": "classification"})
    >>> reply["n"], reply["sum_x"].tolist(), reply["labels"], reply["label_counts"].tolist()
    (2.0, [2.0], [0, 1], [1.0, 1.0])
    >>> [entry["kind"] for entry in a.log]
    ['moments']
    """

    def __init__(
        self,
        party: Party,
        privacy: GaussianMechanism | None = None,
        random_state: RandomState = None,
        state: PrivacyState | None = None,
        round_key: str | None = None,
    ) -> None:
        if not isinstance(party, Party):
            raise TypeError(f"parameter 'party' must be a Party; got {type(party).__name__}")
        if privacy is not None and not all(
            hasattr(privacy, a) for a in ("epsilon", "delta", "clip", "describe")
        ):
            raise TypeError(
                f"parameter 'privacy' must be a GaussianMechanism or None; got {privacy!r}"
            )
        self.party = party
        self.privacy = privacy
        self._private = None if privacy is None else PrivateRelease(privacy, random_state)
        self._moments_reply: dict[str, Any] | None = None
        if state is not None and (privacy is None or not round_key):
            raise ValueError(
                "parameter 'state' needs a privacy mechanism and a round_key (the round's "
                f"id); got privacy={privacy!r}, round_key={round_key!r}"
            )
        self._state, self._round_key, self._random_state = state, round_key, random_state
        self.name = party.name
        #: every request answered: time, kind, and what the reply disclosed
        self.log: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ dispatch
    def handle(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Answer one request (see the module docstring); unknown kinds are refused."""
        kind = request.get("kind")
        handlers = {
            "moments": self._moments,
            "statistics": self._statistics,
            "newton": self._newton,
            "score": self._score,
        }
        if kind not in handlers:
            raise ValueError(
                f"request kind must be one of {', '.join(handlers)}; received {kind!r}"
            )
        entry: dict[str, Any] = {"time": time.time(), "kind": kind}
        if self._state is None:
            reply = handlers[str(kind)](request)
        else:  # the round's state from the file, saved again after answering
            assert self.privacy is not None and self._round_key
            with self._state.round(self._round_key, self.privacy, self._random_state) as rnd:
                self._private, self._moments_reply = rnd.release, rnd.moments_reply
                repeated = rnd.repeat(request)
                reply = handlers[str(kind)](request) if repeated is None else repeated
                rnd.remember(request, reply)
                rnd.moments_reply = self._moments_reply
            if repeated is not None:
                entry["repeat"] = True  # the same release again: nothing new disclosed
            entry["privacy"] = rnd.spend
        disclosed = {
            k: (list(np.shape(v)) if isinstance(v, np.ndarray) else type(v).__name__)
            for k, v in reply.items()
        }
        entry["disclosed"] = disclosed
        self.log.append(entry)
        logger.info("party %s answered %s: disclosed %s", self.name, kind, disclosed)
        if "privacy" in entry:
            from coopml.custody.privacy_state import describe_total

            logger.info("party %s: %s", self.name, describe_total(entry["privacy"]["total"]))
        return reply

    # ------------------------------------------------------------------ requests
    def _moments(self, request: Mapping[str, Any]) -> dict[str, Any]:
        if self._private is not None:
            if self._moments_reply is None:  # released once; a repeat costs nothing
                self._moments_reply = self._private_moments(self._private, request)
            return dict(self._moments_reply)
        X, y = self.party.X, self.party.y
        reply: dict[str, Any] = {
            "n": float(X.shape[0]),
            "n_features": X.shape[1],
            "sum_x": X.sum(axis=0),
            "fingerprint": Party(self.name, X, y).fingerprint(),
            "validation_fingerprint": self._validation_fingerprint(),
        }
        if request.get("task") == "classification":
            labels, counts = np.unique(y, return_counts=True)
            reply["labels"] = labels.tolist()
            reply["label_counts"] = counts.astype(np.float64)
        else:
            reply["sum_y"] = float(np.asarray(y, dtype=np.float64).sum())
        return reply

    def _statistics(self, request: Mapping[str, Any]) -> dict[str, Any]:
        from coopml.custody.learners import build_estimator, custody_learner
        from coopml.learning.fast._base import StatisticsLearner

        estimator = build_estimator(request["learner"])
        fast = custody_learner(estimator)
        if not issubclass(fast, StatisticsLearner):
            raise ValueError(f"{type(estimator).__name__} has no sufficient statistics")
        center: dict[str, Any] = {
            k: np.asarray(v, dtype=np.float64) for k, v in request["center"].items()
        }
        if "y" in center:
            center["y"] = float(center["y"])
        if self._private is not None:
            return self._private_statistics(self._private, fast, center, request)
        if fast.is_classifier:
            classes = list(request["classes"])
            stats = fast.party_statistics(self.party.X, self._codes(classes), center, len(classes))
        else:
            stats = fast.party_statistics(self.party.X, self.party.y, center, 0)
        return dict(stats)

    def _newton(self, request: Mapping[str, Any]) -> dict[str, Any]:
        from coopml.learning.fast._backend import NumpyBackend
        from coopml.learning.fast.logistic_loss import design, rows_grad_hess, rows_loss, targets

        priv = self._private
        X = self.party.X
        if priv is not None:
            X = clip_rows(X, priv.mechanism.clip)
            if not priv.counts:
                raise ValueError("with privacy, the moments must be asked for before newton")
            if not math.isinf(priv.mechanism.epsilon):
                if request["what"] != "grad_hess":
                    raise ValueError(
                        "this agent adds privacy noise and releases no losses (a line "
                        "search would spend budget); the operator's private Newton method "
                        "asks for gradients and Hessians only"
                    )
                if priv.newton_pairs is None or request.get("plan"):  # the announced plan
                    priv.plan_newton((request.get("plan") or {}).get("pairs"))  # (one only)
        be = NumpyBackend()
        theta = np.asarray(request["theta"], dtype=np.float64)
        shift = np.asarray(request["shift"], dtype=np.float64)
        Xt = design(X, shift, bool(request["fit_intercept"]))
        subset = np.asarray(request["subset"], dtype=np.intp)
        target, in_classes = targets(self._codes(list(request["classes"])), subset)
        m = np.ones((theta.shape[0], 1)) * in_classes[None, :]
        if request["what"] == "loss":
            return {"loss": rows_loss(be, theta, Xt, target, m)}
        p = Xt.shape[1]
        triu = np.triu_indices(p)
        full = np.zeros((p, p), dtype=np.intp)
        full[triu] = np.arange(triu[0].size)
        gather = np.maximum(full, full.T).ravel()
        outer = Xt[:, triu[0]] * Xt[:, triu[1]]
        grad, hess = rows_grad_hess(be, theta, Xt, outer, gather, target, m)
        if priv is None or math.isinf(priv.mechanism.epsilon):
            return {"grad": grad, "hess": hess}
        # a design row's norm bound: clipped row, shifted, and the intercept's 1
        radius = math.hypot(
            priv.mechanism.clip + float(np.linalg.norm(shift)),
            float(bool(request["fit_intercept"])),
        )
        sensitivity = newton_sensitivity(radius, subset.size)
        grad, hess = priv.release_newton(grad, hess, sensitivity)
        z, pairs = priv.newton_multiplier(), int(priv.newton_pairs or 0)
        record = {  # the moments' two releases, then the plan's 2 P
            **priv.mechanism.describe("classification"),
            "releases": priv.mechanism.releases("classification") // 2 + 2 * pairs,
            "newton_pairs": pairs,
            "noise_multiplier_newton": z,
        }
        return {
            "grad": grad,
            "hess": hess,
            "sigma_grad": z * sensitivity[0],
            "sigma_hess": z * sensitivity[1],
            "privacy": record,
        }

    def _score(self, request: Mapping[str, Any]) -> dict[str, Any]:
        if self.party.X_val is None or self.party.y_val is None:
            raise ValueError(f"party {self.name!r} holds no validation set to score on")
        from coopml.custody.learners import build_estimator, build_scorer, custody_learner
        from coopml.learning.fast import FastBlock

        X_val, y_val = self.party.X_val, self.party.y_val
        estimator = build_estimator(request["learner"])
        fast = custody_learner(estimator)
        classes = np.asarray(request["classes"]) if fast.is_classifier else None
        shell = fast.shell(estimator, int(request["n_features"]), classes)
        params = {k: np.asarray(v) for k, v in request["params"].items()}
        if "present" in params:
            params["present"] = params["present"].astype(bool)
        constant = np.asarray(request["constant"], dtype=np.float64)
        is_constant = np.asarray(request["is_constant"], dtype=bool)
        block = FastBlock(~is_constant, np.zeros((constant.size, 0)), params)
        scorer = build_scorer(str(request["scorer"]), estimator)
        scores = np.empty(constant.size)
        fitted = np.flatnonzero(~is_constant)
        for b in range(constant.size):
            if is_constant[b]:
                model = self._constant_model(constant[b], classes)
            else:
                model = shell.estimator(block, int(np.searchsorted(fitted, b)))
            scores[b] = float(scorer(model, X_val, y_val))
        return {"scores": scores}

    # ------------------------------------------------------------------ privacy
    def _private_moments(self, p: PrivateRelease, request: Mapping[str, Any]) -> dict[str, Any]:
        """Noisy moments of the clipped rows; no fingerprints, the public labels."""
        m, task = p.mechanism, str(request.get("task"))
        X = clip_rows(self.party.X, m.clip)
        reply: dict[str, Any] = {
            "n_features": X.shape[1],
            "fingerprint": "",
            "validation_fingerprint": self._validation_fingerprint(),
            "privacy": m.describe(task),
        }
        if task == "classification":
            if m.labels is None:
                raise ValueError(
                    "parameter 'labels' of the privacy mechanism must list the market's "
                    "public class labels for classification; got None"
                )
            labels = list(m.labels)
            exact = np.bincount(self._codes(labels), minlength=len(labels)).astype(np.float64)
            counts = whole(p.release("label_counts", exact, 1.0, task))
            p.counts = dict(zip(labels, counts.tolist(), strict=True))
            reply.update(labels=labels, label_counts=counts, n=float(counts.sum()))
        else:
            if m.labels is not None:
                raise ValueError(
                    "parameter 'labels' of the privacy mechanism is for classification "
                    "markets (the public class labels), but this market's learner is a "
                    f"regressor; drop labels (and set target_clip); got labels={list(m.labels)}"
                )
            if m.target_clip is None:
                raise ValueError(
                    "parameter 'target_clip' of the privacy mechanism must bound the targets "
                    "for regression; got None"
                )
            n = whole(p.release("n", np.asarray(float(X.shape[0])), 1.0, task), 1.0)
            y = np.clip(np.asarray(self.party.y, dtype=np.float64), -m.target_clip, m.target_clip)
            sum_y = p.release("sum_y", np.asarray(y.sum()), m.target_clip, task)
            p.counts = {"n": float(n), "sum_y": float(sum_y)}
            reply.update(n=float(n), sum_y=float(sum_y))
        reply["sum_x"] = p.release("sum_x", X.sum(axis=0), m.clip, task)
        p.sum_x = reply["sum_x"]
        return reply

    def _private_statistics(
        self, p: PrivateRelease, fast: Any, center: dict[str, Any], request: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Noisy sufficient statistics of the clipped rows (module docstring of
        :mod:`coopml.custody.privacy`: releases, sensitivities, post-processing)."""
        if not p.counts:
            raise ValueError("with privacy, the moments must be asked for before the statistics")
        m = p.mechanism
        X = clip_rows(self.party.X, m.clip)
        R = m.clip + float(np.linalg.norm(center["x"]))  # a centred row's norm bound
        d = X.shape[1]
        noiseless = p.sigma(1.0, "classification" if fast.is_classifier else "regression") == 0
        if fast.is_classifier:
            task, classes = "classification", list(request["classes"])
            K = len(classes)
            stats = dict(fast.party_statistics(X, self._codes(classes), center, K))
            counts = np.array([p.counts.get(c, 0.0) for c in classes])
            if "squares" in stats:  # Gaussian naive Bayes
                sums = p.release("sums", stats["sums"], R, task).reshape(K, d)
                squares = p.release("squares", stats["squares"], R * R, task).reshape(K, d)
                if not noiseless:  # variances >= the noise's level; nothing in an empty class
                    safe = np.maximum(counts, 1.0)[:, None]
                    floor = p.sigma(R * R, task) / safe  # public: a floor costs no privacy
                    squares = np.maximum(squares, sums**2 / safe + floor)
                    sums[counts == 0], squares[counts == 0] = 0.0, 0.0
                stats.update(sums=sums.ravel(), squares=squares.ravel())
            else:  # LDA
                sums = p.release("class_sums", stats["class_sums"], R, task).reshape(K, d)
                if not noiseless:
                    sums[counts == 0] = 0.0
                gram = p.release_gram("gram", stats["gram"].reshape(d, d), R * R, task)
                if not noiseless:  # every coalition's pooled scatter positive definite
                    gram = within_class_floor(gram, sums, counts, p.sigma(R * R, task))
                stats.update(class_sums=sums.ravel(), gram=gram.ravel())
            if not noiseless:
                stats["counts"] = counts
            return stats
        task = "regression"
        assert m.target_clip is not None
        y = np.clip(np.asarray(self.party.y, dtype=np.float64), -m.target_clip, m.target_clip)
        stats = dict(fast.party_statistics(X, y, center, 0))
        S = m.target_clip + abs(float(center["y"]))  # a centred target's bound
        gram = p.release_gram("gram", stats["gram"].reshape(d, d), R * R, task)
        xty = p.release("xty", stats["xty"], R * S, task)
        if noiseless:
            return stats
        n = p.counts["n"]  # the centred sums follow from the noisy moments
        sx = np.asarray(p.sum_x - n * center["x"])
        # the party's scatter about its own mean floored at the noise's level: every
        # coalition's centred Gram matrix is then positive definite (post-processing)
        gram = within_class_floor(gram, sx[None, :], np.array([n]), p.sigma(R * R, task))
        stats.update(
            n=np.asarray(n),
            sx=sx,
            sy=np.asarray(p.counts["sum_y"] - n * center["y"]),
            gram=gram.ravel(),
            xty=xty,
        )
        return stats

    # ------------------------------------------------------------------ helpers
    def _codes(self, classes: list[Any]) -> NDArray[np.intp]:
        """The party's labels as indices into the market's ``classes``."""
        lookup = {c: k for k, c in enumerate(classes)}
        labels = self.party.y.tolist()
        unknown = sorted({str(v) for v in labels if v not in lookup})
        if unknown:
            raise ValueError(
                f"party {self.name!r} holds labels {unknown} outside the market's classes"
            )
        return np.array([lookup[v] for v in labels], dtype=np.intp)

    @staticmethod
    def _constant_model(value: float, classes: Any) -> Any:
        """The constant predictor the market scores for the empty and single-class
        coalitions (a class index into ``classes``, or a target value)."""
        from sklearn.dummy import DummyClassifier, DummyRegressor

        if classes is None:
            return DummyRegressor(strategy="constant", constant=value).fit(
                np.zeros((1, 1)), [value]
            )
        label = classes[int(value)]
        return DummyClassifier(strategy="constant", constant=label).fit(np.zeros((1, 1)), [label])

    def _validation_fingerprint(self) -> str:
        if self.party.X_val is None or self.party.y_val is None:
            return ""
        return Party("v", self.party.X_val, self.party.y_val, allow_missing=True).fingerprint()

    def __repr__(self) -> str:
        return f"Agent({self.name!r}, n={self.party.n_samples})"


def agent_from_config(config: Mapping[str, Any]) -> Agent:
    """An agent from a SuperNode's node config: ``party`` (its name), ``train`` and
    optionally ``validation`` (CSV or Parquet paths), ``target`` (the label column,
    default ``"target"``) and ``features`` (comma-separated feature columns, matched by
    name; default every other column, in file order).

    With ``rows`` (a path), the parsed files are kept there as a 0600 ``.npz`` keyed by
    the SHA-256 of the files and of these settings, and read from it while the files are
    unchanged: Flower starts a process for every message, which then needs no pandas.

    With ``epsilon``, ``delta`` and ``clip`` (and ``target_clip`` for regression,
    ``labels``, a JSON list of the market's classes, for classification) the agent
    adds Gaussian noise (:func:`~coopml.custody.privacy_state.mechanism_from_config`);
    its privacy state then lives in the file ``privacy_state`` (default: ``log`` with
    the suffix ``.privacy.json``), keyed by ``round`` (the ClientApp sets it to Flower's
    run id), so that the agents built afresh for each message of a round spend one
    budget and never repeat a noise draw (:mod:`coopml.custody.privacy_state`); with
    ``lifetime_epsilon`` a new round that would bring the party's composed spend over
    it is refused.
    """
    for key in ("party", "train"):
        if key not in config:
            raise ValueError(f"node config must set {key!r}; received keys {sorted(config)}")
    party = _read_party(config)
    from coopml.custody.privacy_state import PrivacyState, mechanism_from_config

    privacy = mechanism_from_config(config)
    if privacy is None:
        return Agent(party)
    path = config.get("privacy_state") or (
        str(Path(str(config["log"])).with_suffix(".privacy.json")) if config.get("log") else ""
    )
    if not path or not config.get("round"):
        raise ValueError(
            "a private agent's node config must name its state file (privacy_state, or "
            "log) and the round (round: Flower's run id, which the ClientApp adds); "
            f"received keys {sorted(config)}"
        )
    lifetime = config.get("lifetime_epsilon")
    state = PrivacyState(
        str(path), party.name, None if lifetime in (None, "") else float(str(lifetime))
    )
    return Agent(party, privacy, state=state, round_key=str(config["round"]))


def _read_party(config: Mapping[str, Any]) -> Party:
    """The party of a node config's files, through its ``rows`` cache when it has one."""
    name, target = str(config["party"]), str(config.get("target", "target"))
    train = str(config["train"])
    validation = str(config["validation"]) if config.get("validation") else None
    features = [f for f in str(config.get("features") or "").split(",") if f] or None
    cache = Path(str(config["rows"])) if config.get("rows") else None
    key = ""
    if cache is not None:
        digest = hashlib.sha256(json.dumps([name, target, features]).encode())
        for path in (train, validation):
            digest.update(b"\0" + (Path(path).read_bytes() if path else b""))
        key = digest.hexdigest()
        try:
            with np.load(cache, allow_pickle=False) as rows:
                if str(rows["key"]) == key:
                    val = ("X_val", "y_val") if "X_val" in rows.files else None
                    return Party(
                        name,
                        rows["X"],
                        rows["y"],
                        *(rows[v] for v in val or ()),
                        feature_names=[str(f) for f in rows["features"]] or None,
                    )
        except (OSError, ValueError, KeyError):  # no cache yet, or not one of ours
            pass
    reader = Party.from_parquet if train.endswith((".parquet", ".pq")) else Party.from_csv
    party = reader(name, train, target, features=features, validation=validation)
    labels = [party.y] + ([] if party.y_val is None else [party.y_val])
    if cache is not None and all(y.dtype.kind in "biuf" for y in labels):  # (no pickles)
        arrays: dict[str, Any] = {"key": np.array(key), "X": party.X, "y": party.y}
        arrays["features"] = np.array(list(party.feature_names or []), dtype=str)
        if party.X_val is not None:
            arrays.update(X_val=party.X_val, y_val=party.y_val)
        tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, cache)
    return party


def __getattr__(name: str) -> Any:
    if name == "app":  # built on first access: importing this module needs no flwr
        from coopml.custody.flower import client_app

        app = client_app()  # (an assignment Flower's static check of "agent:app" finds)
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
