r"""The operator's side of the statistics exchange: moments, then sufficient statistics.

Two requests reach every party's agent:

1. ``moments`` -- the row count :math:`n_j`, the feature sums :math:`\sum x`, the target
   sum (regression) or the count of each label (classification). The operator forms
   the market's classes (every label any party holds, sorted), each party's class
   counts, and the centre (the grand mean, :meth:`~coopml.learning.fast.FastLearner.center`);
2. ``statistics`` -- each party's sufficient statistics about that centre
   (:meth:`~coopml.learning.fast.StatisticsLearner.party_statistics`: Gram matrices,
   cross products, class sums and sums of squares). Every coalition's model is then
   computed from their sums by the same kernels as in operator custody
   (:meth:`~coopml.learning.fast.StatisticsLearner.from_statistics`).

Every reply is checked (:mod:`coopml.custody.checks`) before it is used.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from coopml.custody.checks import AgentError, check_counts, check_psd, entry
from coopml.custody.learners import learner_spec
from coopml.custody.transport import Transport
from coopml.learning.fast import (
    FastGaussianNB,
    FastLinearDiscriminantAnalysis,
    FastLinearRegression,
)
from coopml.learning.fast._base import StatisticsLearner

__all__ = ["Moments", "collect_moments", "statistics_learner"]


@dataclass(frozen=True)
class Moments:
    """What the parties' ``moments`` replies establish (player order).

    Attributes
    ----------
    names : tuple of str
    n : ndarray of shape (M,)
        Rows of each party.
    sum_x : ndarray of shape (M, d)
    sum_y : ndarray of shape (M,) or None
        Target sums (regression).
    classes : ndarray of shape (K,) or None
        The market's classes (classification).
    class_counts : ndarray of shape (M, K) or None
    fingerprints, validation_fingerprints : tuple of str
        SHA-256 of each party's training (and validation) files, for the provenance
        (empty from an agent that adds privacy noise).
    privacy : tuple of dict or None
        Each party's privacy mechanism as it announced it
        (:meth:`~coopml.custody.privacy.GaussianMechanism.describe`), or None; a
        logistic round completes it with the party's Newton plan
        (:mod:`coopml.custody.newton`).
    """

    names: tuple[str, ...]
    n: NDArray[np.float64]
    sum_x: NDArray[np.float64]
    sum_y: NDArray[np.float64] | None
    classes: NDArray[Any] | None
    class_counts: NDArray[np.float64] | None
    fingerprints: tuple[str, ...]
    validation_fingerprints: tuple[str, ...]
    privacy: tuple[dict[str, Any] | None, ...] = ()

    @property
    def n_features(self) -> int:
        return int(self.sum_x.shape[1])

    def center(self, fast: Any) -> dict[str, Any]:
        """The centre of every party's statistics for the fast learner ``fast``."""
        sum_y = 0.0 if self.sum_y is None else float(self.sum_y.sum())
        return dict(fast.center(float(self.n.sum()), self.sum_x.sum(axis=0), sum_y))


def collect_moments(transport: Transport, names: Sequence[str], task: str) -> Moments:
    """Ask every party for its moments and check them (``task``: ``"classification"``
    or ``"regression"``)."""
    replies = transport.exchange({name: {"kind": "moments", "task": task} for name in names})
    # the number of features most parties announce: a party that differs is named
    widths = [int(np.size(replies[name].get("sum_x", []))) for name in names]
    d = Counter(widths).most_common(1)[0][0]
    n, sum_x, sum_y, labels, counts = [], [], [], [], []
    for name in names:
        reply = replies[name]
        n_j = entry(name, reply, "n", ())
        check_counts(name, "n", n_j)
        if n_j < 1:
            raise AgentError(name, "announced no training rows")
        sum_x.append(entry(name, reply, "sum_x", (d,)))
        n.append(float(n_j))
        if task == "classification":
            own = list(reply.get("labels", []))
            c = entry(name, reply, "label_counts", (len(own),))
            check_counts(name, "label_counts", c)
            if c.sum() != n_j:
                raise AgentError(
                    name, f"sent label counts adding up to {c.sum():g}, not its {n_j:g} rows"
                )
            labels.append(own)
            counts.append(c)
        else:
            sum_y.append(float(entry(name, reply, "sum_y", ())))
    classes = class_counts = None
    if task == "classification":
        classes = np.unique(np.concatenate([np.asarray(own) for own in labels]))
        class_counts = np.zeros((len(names), classes.size))
        for j, (own, c) in enumerate(zip(labels, counts, strict=True)):
            class_counts[j, np.searchsorted(classes, np.asarray(own))] = c
    return Moments(
        tuple(names),
        np.array(n),
        np.stack(sum_x),
        None if task == "classification" else np.array(sum_y),
        classes,
        class_counts,
        tuple(str(replies[name].get("fingerprint", "")) for name in names),
        tuple(str(replies[name].get("validation_fingerprint", "")) for name in names),
        tuple(_privacy(name, replies[name].get("privacy")) for name in names),
    )


def _privacy(name: str, record: Any) -> dict[str, Any] | None:
    """A party's announced privacy mechanism: None, or a record with its (epsilon, delta)."""
    if record is None:
        return None
    if not isinstance(record, dict) or not {"epsilon", "delta", "clip"} <= set(record):
        raise AgentError(name, f"sent a privacy record without epsilon, delta and clip: {record!r}")
    return dict(record)


def statistics_learner(
    transport: Transport, moments: Moments, estimator: Any, fast: type[StatisticsLearner]
) -> StatisticsLearner:
    """Collect every party's sufficient statistics for ``estimator`` and build the fast
    learner from them (no validation rows: its blocks carry models, not predictions)."""
    shell = fast.shell(estimator, moments.n_features, moments.classes)
    center = moments.center(shell)
    request = {
        "kind": "statistics",
        "learner": learner_spec(estimator),
        "center": center,
        "classes": [] if moments.classes is None else moments.classes.tolist(),
    }
    replies = transport.exchange({name: request for name in moments.names})
    stats = [
        _checked(name, replies[name], moments, j, fast) for j, name in enumerate(moments.names)
    ]
    return fast.from_statistics(estimator, stats, center, classes=moments.classes)


def _checked(
    name: str, reply: dict[str, Any], moments: Moments, j: int, fast: type[StatisticsLearner]
) -> dict[str, NDArray[np.float64]]:
    """One party's statistics, every entry checked for shape, finiteness and consistency."""
    d = moments.n_features
    K = 0 if moments.classes is None else moments.classes.size
    expected: dict[type, dict[str, tuple[int, ...]]] = {
        FastLinearRegression: {"n": (), "sx": (d,), "sy": (), "gram": (d * d,), "xty": (d,)},
        FastGaussianNB: {"counts": (K,), "sums": (K * d,), "squares": (K * d,)},
        FastLinearDiscriminantAnalysis: {
            "counts": (K,),
            "class_sums": (K * d,),
            "gram": (d * d,),
        },
    }
    shapes = expected[fast]
    stats = {k: entry(name, reply, k, shape) for k, shape in shapes.items()}
    if fast.is_classifier:
        assert moments.class_counts is not None
        if not np.array_equal(stats["counts"], moments.class_counts[j]):
            raise AgentError(
                name,
                f"sent class counts {stats['counts'].tolist()} that do not match the counts "
                f"it announced {moments.class_counts[j].tolist()}",
            )
    elif stats["n"] != moments.n[j]:
        raise AgentError(
            name, f"sent statistics of {stats['n']:g} rows but announced {moments.n[j]:g}"
        )
    if "gram" in stats:
        check_psd(name, "gram", stats["gram"].reshape(d, d))
    if "squares" in stats:
        # per class and feature: n_k * sum(z^2) >= (sum z)^2 (a variance is not negative)
        counts = np.repeat(stats["counts"], d)
        if (stats["squares"] < 0).any() or (
            counts * stats["squares"] - stats["sums"] ** 2
            < -1e-9 * (1.0 + counts * stats["squares"])
        ).any():
            raise AgentError(name, "sent sums of squares smaller than its sums allow")
    return stats
