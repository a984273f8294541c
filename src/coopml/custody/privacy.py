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
eigenvalues set to zero), LDA's and the linear models' Gram matrices then have the
party's scatter about its own (class) means floored at the noise's level
(:func:`within_class_floor`: every coalition's pooled scatter is then positive
definite, so every coalition can be fit), and a class's sums of squares are raised to at least
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

**Logistic regression** (:mod:`coopml.custody.newton`). The federated Newton method
asks each agent, at every iterate, for the gradient and Hessian of its loss for each
coalition it belongs to. With privacy the operator runs a *fixed, public* number of
damped Newton iterations (no line search: a loss would be one more release) and, before
the first, announces to each agent how many gradient--Hessian pairs it will ask
(``plan``); the agent calibrates its noise to that count and refuses any pair beyond it,
so the guarantee does not rest on the operator's honesty. With rows clipped to
:math:`C` and the operator's shift :math:`s`, a design row :math:`\tilde x = (x - s, 1)`
has norm at most :math:`\tilde R = \sqrt{(C + \lVert s\rVert_2)^2 + 1}` (without an
intercept, :math:`C + \lVert s\rVert_2`), and adding or removing one row changes

* the coalition's gradient :math:`\sum_i (p_i - y_i)\otimes\tilde x_i` by at most
  :math:`\tilde R` (two classes) or :math:`\sqrt2\,\tilde R` (:math:`K > 2`);
* its Hessian (upper triangle) by at most :math:`\tilde R^2/4` (two classes) or
  :math:`\tilde R^2` (:math:`K > 2`)

(:math:`|p - y| \le 1` and :math:`p(1-p) \le 1/4`; for :math:`K` classes
:math:`\lVert p - y\rVert_2 \le \sqrt2`, and :math:`\operatorname{diag}(p) - pp^\top` is
positive semi-definite with trace below 1, so its Frobenius norm is below 1). The
round's budget is split as in any classification round: the two ``moments`` releases
spend half of :math:`\mu^2` (each :math:`\mu/2`), and the :math:`2P` Newton releases of
a plan of :math:`P` pairs the other half, each :math:`\mu/(2\sqrt P)`, i.e.
:math:`\sigma = 2\sqrt P\,\Delta/\mu` (:meth:`PrivateRelease.newton_multiplier`). The
agent mirrors each noisy Hessian and projects it onto the positive semi-definite cone
(post-processing); the operator floors the eigenvalues of each coalition's summed
Hessian at the noise's spectral scale (:mod:`coopml.custody.newton`).

**Accounting.** Every release is a Gaussian mechanism, so the round is exactly
:math:`\mu`-GDP, i.e. :math:`\rho`-zCDP with :math:`\rho = \mu^2/2` (zero-concentrated
DP [BS16]_; composition adds the :math:`\rho`'s, as GDP adds the :math:`\mu^2`'s). The
:math:`(\varepsilon, \delta)` an agent is given is converted with the exact profile
above, which is the optimal conversion for a composition of Gaussian mechanisms; the
record (:meth:`GaussianMechanism.describe`) also carries :math:`\mu`, :math:`\rho` and
the looser generic zCDP conversion :math:`\varepsilon = \rho + 2\sqrt{\rho\ln(1/\delta)}`
([BS16]_ Proposition 1.3; :func:`zcdp_epsilon`) for comparison. The Newton plan, and
so the :math:`\sigma`'s, depend on the noisy class counts already released; parts
chosen adaptively within a fixed total :math:`\mu^2` still compose to :math:`\mu`-GDP
(fully adaptive composition of Gaussian mechanisms [ST22]_). Several rounds of one
party compose the same way (:func:`compose_rounds`): their :math:`\rho`'s add. An
agent serves one round; a party that takes part in several records each round's
``mu`` and composes them (the operator sees only the current round's agents):
``coopml agent`` does so in its state file (:mod:`coopml.custody.privacy_state`).

References
----------
.. [BW18] B. Balle and Y.-X. Wang, "Improving the Gaussian mechanism for differential
   privacy: analytical calibration and optimal denoising", ICML 2018.
.. [DRS22] J. Dong, A. Roth and W. J. Su, "Gaussian differential privacy", JRSS B 84(1),
   2022.
.. [ST22] A. Smith and A. Thakurta, "Fully adaptive composition for Gaussian
   differential privacy", arXiv:2210.17520, 2022.
.. [BS16] M. Bun and T. Steinke, "Concentrated differential privacy: simplifications,
   extensions, and lower bounds", TCC 2016.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from coopml._validation import RandomState, check_random_state

__all__ = [
    "GaussianMechanism",
    "PrivateRelease",
    "classic_sigma",
    "clip_rows",
    "compose_rounds",
    "gdp_delta",
    "gdp_mu",
    "newton_sensitivity",
    "within_class_floor",
    "zcdp_epsilon",
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
    from scipy.special import log_ndtr  # (here: the agent's light import)

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
    from scipy.optimize import brentq

    hi = 1.0
    while gdp_delta(hi, epsilon) < delta:
        hi *= 2.0
    return float(brentq(lambda mu: gdp_delta(mu, epsilon) - delta, 0.0, hi, xtol=1e-14))


def zcdp_epsilon(rho: float, delta: float) -> float:
    r"""The generic conversion of :math:`\rho`-zCDP to :math:`(\varepsilon, \delta)`-DP,
    :math:`\varepsilon = \rho + 2\sqrt{\rho \ln(1/\delta)}` (Bun and Steinke 2016,
    Proposition 1.3). For Gaussian mechanisms the exact profile (:func:`gdp_delta` with
    :math:`\mu = \sqrt{2\rho}`) gives a smaller :math:`\varepsilon`.

    Examples
    --------
    >>> round(zcdp_epsilon(0.5, 1e-5), 2)
    5.3
    """
    return float(rho + 2.0 * math.sqrt(rho * math.log(1.0 / delta)))


def compose_rounds(mus: Sequence[float], delta: float) -> dict[str, float]:
    r"""A party's guarantee over several rounds of :math:`\mu_r`-GDP (each round's
    ``mu`` in its provenance record): :math:`\mu = \sqrt{\sum_r \mu_r^2}`
    (:math:`\rho = \sum_r \rho_r`), and the :math:`\varepsilon` at ``delta`` of the
    exact profile (:func:`gdp_delta`) and of the generic zCDP conversion.

    Examples
    --------
    >>> mu = gdp_mu(1.0, 1e-5)
    >>> total = compose_rounds([mu, mu, mu, mu], 1e-5)  # four rounds at epsilon = 1
    >>> round(total["mu"] / mu, 6), round(total["epsilon"], 3)
    (2.0, 2.155)

    No privacy loss (every ``mu`` 0), or so little that ``epsilon = 0`` already holds at
    ``delta``, composes to ``epsilon = 0``:

    >>> compose_rounds([0.0], 1e-5)["epsilon"], compose_rounds([1e-9], 1e-5)["epsilon"]
    (0.0, 0.0)
    """
    if (
        isinstance(mus, str | bytes)
        or not len(mus)
        or any(not (_is_real(m) and m >= 0) for m in mus)
    ):
        raise ValueError(f"parameter 'mus' must be non-negative GDP parameters; got {mus!r}")
    if not (_is_real(delta) and 0 < delta < 1):
        raise ValueError(f"parameter 'delta' must be in (0, 1); got {delta!r}")
    mu = math.sqrt(sum(float(m) ** 2 for m in mus))
    if math.isinf(mu):
        epsilon = math.inf
    elif gdp_delta(mu, 0.0) <= delta:  # mu = 0, or tiny: (0, delta)-DP already
        epsilon = 0.0
    else:
        from scipy.optimize import brentq

        hi = 1.0
        while gdp_delta(mu, hi) > delta:
            hi *= 2.0
        epsilon = float(brentq(lambda e: gdp_delta(mu, e) - delta, 0.0, hi, xtol=1e-12))
    rho = mu * mu / 2.0
    return {"mu": mu, "rho": rho, "epsilon": epsilon, "epsilon_zcdp": zcdp_epsilon(rho, delta)}


def newton_sensitivity(radius: float, n_classes: int) -> tuple[float, float]:
    r"""L2 sensitivities of one coalition's logistic gradient and Hessian (upper
    triangle) when every design row has norm at most ``radius`` (module docstring).

    Examples
    --------
    >>> newton_sensitivity(2.0, 2), newton_sensitivity(2.0, 3)
    ((2.0, 1.0), (2.8284271247461903, 4.0))
    """
    if n_classes == 2:
        return radius, radius * radius / 4.0
    return math.sqrt(2.0) * radius, radius * radius


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


def _is_real(value: Any) -> bool:
    """A real number, not a bool (``True`` is no epsilon)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_labels(labels: Any) -> tuple[Any, ...]:
    """The market's public class labels, sorted: at least two, distinct, comparable."""
    what = "parameter 'labels' must list the market's public class labels"
    if isinstance(labels, str | bytes) or not isinstance(labels, Iterable):
        raise ValueError(f"{what} (a sequence, e.g. [0, 1]); got {labels!r}")
    values = list(labels)
    if any(isinstance(v, float) and math.isnan(v) for v in values):
        raise ValueError(f"{what}, none of them NaN; got {values!r}")
    try:
        ordered = tuple(sorted(values))
        distinct = len(set(values)) == len(values)
    except TypeError:
        raise TypeError(
            f"{what}, all of one comparable type (e.g. all integers or all strings); got {values!r}"
        ) from None
    if len(values) < 2 or not distinct:
        raise ValueError(
            f"{what}: at least two distinct labels (a classification market); got {values!r}"
        )
    return ordered


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
        if not (_is_real(self.epsilon) and self.epsilon > 0):
            raise ValueError(f"parameter 'epsilon' must be positive (or inf); got {self.epsilon!r}")
        if not (_is_real(self.delta) and 0 < self.delta < 1):
            raise ValueError(f"parameter 'delta' must be in (0, 1); got {self.delta!r}")
        for name in ("clip", "target_clip"):
            value = getattr(self, name)
            if value is None and name == "target_clip":
                continue
            if not (_is_real(value) and value > 0):
                raise ValueError(f"parameter {name!r} must be positive; got {value!r}")
            if math.isinf(value) and not math.isinf(self.epsilon):
                raise ValueError(
                    f"parameter {name!r} must be finite when epsilon is finite (the "
                    f"sensitivity would be infinite); got {value!r}"
                )
        if self.labels is not None:
            object.__setattr__(self, "labels", _check_labels(self.labels))

    @property
    def mu(self) -> float:
        """The round's GDP parameter (:func:`gdp_mu` of ``epsilon`` and ``delta``)."""
        return gdp_mu(float(self.epsilon), float(self.delta))

    @staticmethod
    def releases(task: str) -> int:
        """Noised releases in one round of ``task`` (``"classification"`` or ``"regression"``)
        of a sufficient-statistic learner (logistic regression: 2 + 2 P, P its plan's pairs)."""
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
            **self.accounting(),
        }

    def accounting(self) -> dict[str, float]:
        r"""The round's :math:`\mu` (GDP), :math:`\rho = \mu^2/2` (zCDP) and the
        :math:`\varepsilon` of the generic zCDP conversion at ``delta`` (looser than
        ``epsilon``, which the exact Gaussian profile gives)."""
        mu = self.mu
        rho = mu * mu / 2.0
        return {"mu": mu, "rho_zcdp": rho, "epsilon_zcdp": zcdp_epsilon(rho, float(self.delta))}


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
    #: gradient-Hessian pairs of logistic regression's plan, and those released
    newton_pairs: int | None = None
    newton_spent: int = 0

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
                f"this agent has released {self.spent}; refusing to release {name!r}. A new "
                "round (a new Flower run) starts a new budget; the rounds' guarantees compose"
            )
        self.spent += 1
        values = np.asarray(values, dtype=np.float64)
        sigma = self.sigma(sensitivity, task)
        if sigma == 0.0:
            return values.copy()
        return values + self.rng.normal(0.0, sigma, size=values.shape)

    def plan_newton(self, pairs: Any) -> None:
        """Fix the number of gradient-Hessian pairs of a logistic round (once). They
        replace the ``statistics`` releases: the half of the budget those would spend."""
        if isinstance(pairs, float) and pairs == int(pairs):
            pairs = int(pairs)
        if not isinstance(pairs, int) or isinstance(pairs, bool) or pairs < 1:
            raise ValueError(
                f"the first newton request must carry plan['pairs'], a positive whole "
                f"number; got {pairs!r}"
            )
        if self.newton_pairs is not None:
            if pairs != self.newton_pairs:
                raise ValueError(
                    f"privacy budget: this agent calibrated its noise to a plan of "
                    f"{self.newton_pairs} gradient-Hessian pairs; refusing a new plan of {pairs}"
                )
            return
        k = self.mechanism.releases("classification")
        if self.spent != k // 2:
            raise ValueError(
                "privacy budget: a logistic round releases the moments and then gradients "
                f"and Hessians only; this agent has released {self.spent} statistics"
            )
        self.spent = k  # the statistics' half of the budget goes to the Newton pairs
        self.newton_pairs = pairs

    def newton_multiplier(self) -> float:
        r""":math:`\sigma/\Delta = 2\sqrt{P}/\mu` of each Newton release (plan of ``P``)."""
        if math.isinf(self.mechanism.epsilon):
            return 0.0
        if self.newton_pairs is None:
            raise ValueError("no Newton plan: the first newton request must carry one")
        return 2.0 * math.sqrt(self.newton_pairs) / self.mechanism.mu

    def release_newton(
        self,
        grad: NDArray[np.float64],
        hess: NDArray[np.float64],
        sensitivity: tuple[float, float],
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Noisy gradients (b, P) and Hessians (b, P, P) of ``b`` coalitions: noise on
        each gradient and on each Hessian's upper triangle, mirrored and projected onto
        the PSD cone; refused beyond the plan."""
        b = grad.shape[0]
        if self.newton_pairs is None or self.newton_spent + b > self.newton_pairs:
            raise ValueError(
                f"privacy budget spent: the plan allows {self.newton_pairs} gradient-Hessian "
                f"pairs, {self.newton_spent} released; refusing {b} more"
            )
        self.newton_spent += b
        z = self.newton_multiplier()
        if z == 0.0:
            return grad.copy(), hess.copy()
        s_grad, s_hess = z * sensitivity[0], z * sensitivity[1]
        P = hess.shape[-1]
        iu = np.triu_indices(P)
        noisy_grad = grad + self.rng.normal(0.0, s_grad, size=grad.shape)
        upper = np.zeros_like(hess)
        upper[:, iu[0], iu[1]] = hess[:, iu[0], iu[1]] + self.rng.normal(
            0.0, s_hess, size=(b, iu[0].size)
        )
        sym = upper + np.swapaxes(np.triu(upper, 1), 1, 2)
        w, V = np.linalg.eigh(sym)
        psd = (V * np.maximum(w, 0.0)[:, None, :]) @ np.swapaxes(V, 1, 2)
        return noisy_grad, (psd + np.swapaxes(psd, 1, 2)) / 2.0

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


def within_class_floor(
    gram: NDArray[np.float64],
    sums: NDArray[np.float64],
    counts: NDArray[np.float64],
    sigma: float,
) -> NDArray[np.float64]:
    r"""LDA's noisy Gram matrix with the party's within-class scatter
    :math:`W = G - \sum_k s_k s_k^\top / n_k` (noisy class sums ``sums`` (K, d) and
    counts) projected onto the matrices with every eigenvalue at least
    :math:`\tau = 2\sigma\sqrt d` (about the spectral norm of the Gram's noise):
    returns :math:`W_+ + \sum_k s_k s_k^\top / n_k`. Post-processing (free).

    Since :math:`(\sum_j s_j)(\sum_j s_j)^\top / \sum_j n_j \preceq \sum_j s_j s_j^\top / n_j`,
    every coalition's pooled within-class scatter is then at least :math:`\sum_j W_{j+}
    \succeq |S|\,\tau I`: positive definite, so every coalition's LDA can be fit.

    Examples
    --------
    >>> g = within_class_floor(np.eye(2), np.array([[2.0, 0.0]]), np.array([1.0]), 0.5)
    >>> np.linalg.eigvalsh(g - np.array([[4.0, 0.0], [0.0, 0.0]])).round(6).tolist()
    [1.414214, 1.414214]
    """
    d = gram.shape[0]
    safe = np.where(counts > 0, counts, 1.0)
    between = np.einsum("kd,ke->de", sums / np.sqrt(safe)[:, None], sums / np.sqrt(safe)[:, None])
    W = gram - between
    w, V = np.linalg.eigh((W + W.T) / 2.0)
    floored = (V * np.maximum(w, 2.0 * sigma * math.sqrt(d))) @ V.T
    out = floored + between
    return np.asarray((out + out.T) / 2.0)


def whole(values: NDArray[np.float64], low: float = 0.0) -> NDArray[np.float64]:
    """Noisy counts as whole numbers at least ``low`` (post-processing)."""
    return np.maximum(np.round(values), low)
