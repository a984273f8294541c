r"""The privacy knob: Gaussian-mechanism noise on the statistics an agent sends.

An agent configured with a :class:`GaussianMechanism` adds Gaussian noise to every
statistic it releases, so that everything it sends in a round is
:math:`(\varepsilon, \delta)`-differentially private with respect to its training rows.

**Neighbouring relation.** Two training sets are neighbours when one is the other with
one row added or removed. The guarantee covers the party's *training* rows; the
scores a validation owner returns are exact (its validation rows are not protected).

**Clipping.** Before anything is computed each training row is clipped to Euclidean
norm at most :math:`C` (``clip``; about the origin, so standardise the features to a
*public* scale first), :math:`x \mapsto x \min(1, C/\lVert x\rVert_2)`, and each
regression target to :math:`|y| \le T` (``target_clip``). Statistics are taken about
the operator's centre :math:`c` (public), so a centred row has norm at most
:math:`R = C + \lVert c_x\rVert_2` and a centred target at most :math:`S = T + |c_y|`.

**Releases and their** :math:`L_2` **sensitivities** (one row added or removed):

=====================  ==============================================  ======================
request                released (noised)                               sensitivity
=====================  ==============================================  ======================
``moments``            label counts (classification) or row count      :math:`1`
``moments``            feature sums                                    :math:`C`
``moments``            target sum (regression)                         :math:`T`
``statistics`` NB      per-class sums; per-class sums of squares       :math:`R`; :math:`R^2`
``statistics`` LDA     per-class sums; Gram matrix (upper triangle)    :math:`R`; :math:`R^2`
``statistics`` linear  Gram matrix (upper triangle); :math:`X^\top y`  :math:`R^2`; :math:`RS`
=====================  ==============================================  ======================

Everything else the agent sends is computed from these releases (post-processing,
which costs no privacy): the counts in ``statistics`` repeat the noisy counts of
``moments``, a linear model's centred sums follow from the noisy sums and count, counts
are rounded to whole non-negative numbers, a Gram matrix is mirrored from its noisy
upper triangle and projected onto the positive semi-definite cone (negative
eigenvalues set to zero), and a class's sums of squares are raised to at least
``sum**2 / count + sigma`` (each variance at least the noise's level ``sigma / count``:
a variance the noise pushed to zero would let one feature decide every prediction) --
as the operator's checks (:mod:`coopml.custody.checks`) require. Files' fingerprints
are not sent (a hash of the rows would tell whether a guessed data set is exactly the
party's), and the labels announced are the market's public labels (``labels``), not
those the party holds.

**Calibration and composition.** A Gaussian mechanism with sensitivity :math:`\Delta`
and noise :math:`\sigma` is :math:`\mu`-GDP with :math:`\mu = \Delta/\sigma`; :math:`k`
of them compose to :math:`\sqrt{\sum_i \mu_i^2}`-GDP [DRS22]_ (Corollary 3.3), and
:math:`\mu`-GDP is :math:`(\varepsilon, \delta(\varepsilon))`-DP for every
:math:`\varepsilon` with

.. math:: \delta(\varepsilon) = \Phi\left(-\frac{\varepsilon}{\mu} + \frac{\mu}{2}\right)
          - e^{\varepsilon}\,\Phi\left(-\frac{\varepsilon}{\mu} - \frac{\mu}{2}\right),

the analytic Gaussian mechanism's exact privacy profile ([BW18]_ Theorem 8; [DRS22]_
Corollary 2.13). The agent solves this for the :math:`\mu` of its round's budget and
gives each of the round's :math:`k` releases (:meth:`GaussianMechanism.releases`: 4 for
classification, 5 for regression) :math:`\mu/\sqrt{k}`, i.e.
:math:`\sigma_i = \Delta_i \sqrt{k} / \mu`. Composition is exact for Gaussian noise
(no slack from basic or advanced composition). An agent spends its budget once: a
release beyond its ``k`` is refused, so a second round needs a new agent (and the two
rounds' guarantees compose). Noise is drawn from the agent's own generator.

Logistic regression is refused with privacy: its federated Newton method releases
gradients and Hessians at a data-dependent number of iterates and line-search steps,
which a fixed budget does not cover (not built).

References
----------
.. [BW18] B. Balle and Y.-X. Wang, "Improving the Gaussian mechanism for differential
   privacy: analytical calibration and optimal denoising", ICML 2018.
.. [DRS22] J. Dong, A. Roth and W. J. Su, "Gaussian differential privacy", JRSS B 84(1),
   2022.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import brentq
from scipy.special import log_ndtr

from coopml._validation import RandomState, check_random_state

__all__ = [
    "GaussianMechanism",
    "PrivateRelease",
    "classic_sigma",
    "clip_rows",
    "gdp_delta",
    "gdp_mu",
]

#: Releases per round, by task (see the module docstring).
RELEASES = {"classification": 4, "regression": 5}


def gdp_delta(mu: float, epsilon: float) -> float:
    r"""The :math:`\delta` at which :math:`\mu`-GDP is :math:`(\varepsilon, \delta)`-DP.

    Examples
    --------
    >>> round(gdp_delta(1.0, 1.0), 4)
    0.1269
    """
    if mu == 0.0:
        return 0.0
    a = -epsilon / mu + mu / 2.0
    b = -epsilon / mu - mu / 2.0
    return float(math.exp(log_ndtr(a)) - math.exp(epsilon + log_ndtr(b)))


def gdp_mu(epsilon: float, delta: float) -> float:
    r"""The largest :math:`\mu` such that :math:`\mu`-GDP is :math:`(\varepsilon, \delta)`-DP.

    A single Gaussian mechanism of sensitivity :math:`\Delta` then needs
    :math:`\sigma = \Delta/\mu` (the analytic Gaussian mechanism of [BW18]_).

    Examples
    --------
    >>> round(1.0 / gdp_mu(1.0, 1e-5), 3)  # sigma per unit sensitivity
    3.73
    >>> gdp_mu(float("inf"), 1e-5)
    inf
    """
    if math.isinf(epsilon):
        return math.inf
    hi = 1.0
    while gdp_delta(hi, epsilon) < delta:
        hi *= 2.0
    return float(brentq(lambda mu: gdp_delta(mu, epsilon) - delta, 0.0, hi, xtol=1e-14))


def classic_sigma(epsilon: float, delta: float, sensitivity: float = 1.0) -> float:
    r"""The classical calibration :math:`\sigma = \Delta\sqrt{2\ln(1.25/\delta)}/\varepsilon`
    (Dwork and Roth, 2014, Theorem A.1; valid for :math:`\varepsilon < 1`), for comparison:
    the analytic calibration needs less noise.

    Examples
    --------
    >>> round(classic_sigma(1.0, 1e-5), 3)
    4.845
    """
    return sensitivity * math.sqrt(2.0 * math.log(1.25 / delta)) / epsilon


def clip_rows(X: NDArray[np.float64], bound: float) -> NDArray[np.float64]:
    """Every row of ``X`` scaled to Euclidean norm at most ``bound``.

    Examples
    --------
    >>> clip_rows(np.array([[3.0, 4.0], [0.3, 0.4]]), 1.0).tolist()
    [[0.6, 0.8], [0.3, 0.4]]
    """
    X = np.asarray(X, dtype=np.float64)
    norms = np.linalg.norm(X, axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(norms > bound, bound / norms, 1.0)
    return X * scale


@dataclass(frozen=True)
class GaussianMechanism:
    r"""An agent's privacy knob: its round is :math:`(\varepsilon, \delta)`-DP.

    Parameters
    ----------
    epsilon : float
        Positive; ``inf`` adds no noise (rows are still clipped).
    delta : float
        In (0, 1).
    clip : float
        Bound :math:`C` on each training row's Euclidean norm (positive; ``inf`` only
        with ``epsilon=inf``).
    target_clip : float, optional
        Bound :math:`T` on each regression target's absolute value (needed for
        regression).
    labels : sequence, optional
        The market's public class labels (needed for classification: the labels a party
        holds are not announced).

    Examples
    --------
    >>> m = GaussianMechanism(1.0, 1e-5, clip=5.0, labels=[0, 1])
    >>> m.releases("classification"), round(m.noise_multiplier("classification"), 3)
    (4, 7.46)
    """

    epsilon: float
    delta: float
    clip: float
    target_clip: float | None = None
    labels: Sequence[Any] | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.epsilon, int | float) and self.epsilon > 0):
            raise ValueError(f"parameter 'epsilon' must be positive (or inf); got {self.epsilon!r}")
        if not (isinstance(self.delta, int | float) and 0 < self.delta < 1):
            raise ValueError(f"parameter 'delta' must be in (0, 1); got {self.delta!r}")
        for name in ("clip", "target_clip"):
            value = getattr(self, name)
            if value is None and name == "target_clip":
                continue
            if not (isinstance(value, int | float) and value > 0):
                raise ValueError(f"parameter {name!r} must be positive; got {value!r}")
            if math.isinf(value) and not math.isinf(self.epsilon):
                raise ValueError(
                    f"parameter {name!r} must be finite when epsilon is finite (the "
                    f"sensitivity would be infinite); got {value!r}"
                )
        if self.labels is not None:
            object.__setattr__(self, "labels", tuple(sorted(self.labels)))

    @property
    def mu(self) -> float:
        """The round's GDP parameter (:func:`gdp_mu` of ``epsilon`` and ``delta``)."""
        return gdp_mu(float(self.epsilon), float(self.delta))

    @staticmethod
    def releases(task: str) -> int:
        """Noised releases in one round of ``task`` (``"classification"`` or ``"regression"``)."""
        if task not in RELEASES:
            raise ValueError(f"task must be one of {', '.join(RELEASES)}; received {task!r}")
        return RELEASES[task]

    def noise_multiplier(self, task: str) -> float:
        r""":math:`\sigma_i/\Delta_i = \sqrt{k}/\mu` of every release of a ``task`` round."""
        return math.sqrt(self.releases(task)) / self.mu

    def describe(self, task: str) -> dict[str, Any]:
        """The record of this mechanism (the settlement's provenance carries it)."""
        return {
            "mechanism": "gaussian",
            "epsilon": float(self.epsilon),
            "delta": float(self.delta),
            "neighbouring": "add or remove one training row",
            "clip": float(self.clip),
            "target_clip": None if self.target_clip is None else float(self.target_clip),
            "composition": "Gaussian DP (Dong, Roth and Su 2022), analytic calibration "
            "(Balle and Wang 2018)",
            "releases": self.releases(task),
            "noise_multiplier": self.noise_multiplier(task),
        }


@dataclass
class PrivateRelease:
    """One agent's noisy releases: its mechanism, its own random stream, its spending.

    Examples
    --------
    >>> p = PrivateRelease(GaussianMechanism(1.0, 1e-5, clip=1.0), random_state=0)
    >>> p.release("sum_x", np.zeros(2), 1.0, "classification").shape
    (2,)
    >>> p.spent
    1
    """

    mechanism: GaussianMechanism
    random_state: RandomState = None
    spent: int = 0
    #: the noisy counts of ``moments``, reused (post-processing) in ``statistics``
    counts: dict[Any, float] = field(default_factory=dict)
    #: the noisy feature sums of ``moments`` (a linear model's centred sums follow)
    sum_x: NDArray[np.float64] | None = None

    def __post_init__(self) -> None:
        self.rng = check_random_state(self.random_state)

    def sigma(self, sensitivity: float, task: str) -> float:
        """The noise of a release of L2 ``sensitivity`` in a ``task`` round."""
        if math.isinf(self.mechanism.epsilon):
            return 0.0
        return sensitivity * self.mechanism.noise_multiplier(task)

    def release(
        self, name: str, values: NDArray[np.float64], sensitivity: float, task: str
    ) -> NDArray[np.float64]:
        """``values`` plus Gaussian noise of :meth:`sigma`; refused beyond the budget."""
        k = self.mechanism.releases(task)
        if self.spent >= k:
            raise ValueError(
                f"privacy budget spent: a {task} round releases {k} noisy statistics and "
                f"this agent has released {self.spent}; refusing to release {name!r}. Start "
                "the agent again for a new round (its guarantees then compose)"
            )
        self.spent += 1
        values = np.asarray(values, dtype=np.float64)
        sigma = self.sigma(sensitivity, task)
        if sigma == 0.0:
            return values.copy()
        return values + self.rng.normal(0.0, sigma, size=values.shape)

    def release_gram(
        self, name: str, gram: NDArray[np.float64], sensitivity: float, task: str
    ) -> NDArray[np.float64]:
        """A noisy symmetric PSD Gram matrix: noise on the upper triangle, mirrored, then
        projected onto the PSD cone (negative eigenvalues set to zero)."""
        d = gram.shape[0]
        iu = np.triu_indices(d)
        noisy = np.zeros((d, d))
        noisy[iu] = self.release(name, gram[iu], sensitivity, task)
        if self.sigma(sensitivity, task) == 0.0:
            return np.asarray(gram, dtype=np.float64).copy()
        noisy = noisy + np.triu(noisy, 1).T
        w, V = np.linalg.eigh(noisy)
        psd = (V * np.maximum(w, 0.0)) @ V.T
        return np.asarray((psd + psd.T) / 2.0)


def whole(values: NDArray[np.float64], low: float = 0.0) -> NDArray[np.float64]:
    """Noisy counts as whole numbers at least ``low`` (post-processing)."""
    return np.maximum(np.round(values), low)
