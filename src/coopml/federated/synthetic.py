r"""Synthetic data: per-organisation class-conditional generators, their quality, the splits.

Each organisation fits a class-conditional generator on its **own** data only:

* :class:`GaussianMixtureGenerator` -- one scikit-learn ``GaussianMixture`` per class
  (diagonal covariances by default);
* :class:`VAEGenerator` -- a small class-conditional variational auto-encoder
  (Kingma & Welling 2014; Sohn, Lee & Yan 2015) in torch (extra ``torch``).

An organisation lacking a class cannot synthesise it from its own model, yet the
reconstructed game (CoCoGen+, arXiv 2604.14886) lets synthetic labels follow the
reference distribution. coopml therefore pools the *generators* (never the data): a
:class:`GeneratorPool` draws a class-``k`` sample from organisation ``j``'s generator
with probability proportional to ``j``'s class-``k`` count -- the shared "GenAI
service" of the reconstruction. The quality factor :math:`\kappa` of the game is
*measured* by :func:`measure_quality`: the accuracy of a model trained on synthetic data
divided by the accuracy of the same model trained on the same amount of real data.

:func:`federated_split` splits a bundled dataset among organisations with Dirichlet label
skew (:func:`coopml.data.dirichlet_label_partition`) and measures each organisation's
skew :math:`h_i^0 = \tfrac12\lVert p_i - u\rVert_1`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from coopml._serialization import to_jsonable
from coopml._validation import (
    RandomState,
    check_choice,
    check_fraction,
    check_random_state,
    check_seed,
)
from coopml.data import dirichlet_label_partition, load_dataset, train_validation_split

__all__ = [
    "FederatedData",
    "GaussianMixtureGenerator",
    "Generator",
    "GeneratorPool",
    "QualityResult",
    "VAEGenerator",
    "federated_from_parties",
    "federated_split",
    "fit_generators",
    "label_distribution",
    "measure_quality",
    "skew",
]


# ---------------------------------------------------------------------------------------
# Splits and skew
# ---------------------------------------------------------------------------------------


def label_distribution(y: ArrayLike, n_classes: int) -> NDArray[np.float64]:
    """Empirical label distribution over ``range(n_classes)`` (uniform when ``y`` is empty)."""
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=n_classes).astype(float)
    total = counts.sum()
    return counts / total if total > 0 else np.full(n_classes, 1.0 / n_classes)


def skew(p: ArrayLike, u: ArrayLike) -> float:
    r"""Total-variation skew :math:`\tfrac12\lVert p - u\rVert_1`.

    Examples
    --------
    >>> skew([1.0, 0.0], [0.5, 0.5])
    0.5
    """
    return 0.5 * float(np.abs(np.asarray(p, dtype=float) - np.asarray(u, dtype=float)).sum())


@dataclass(frozen=True, eq=False)
class FederatedData:
    """A dataset split among organisations.

    Attributes
    ----------
    clients : list of (X, y)
        Each organisation's real training data (features standardised).
    X_val, y_val : ndarray
        Held-out validation data.
    n_classes : int
    reference : ndarray of shape (n_classes,)
        Reference label distribution ``u``.
    label_distributions : ndarray of shape (N, n_classes)
        :math:`p_i`.
    h0 : ndarray of shape (N,)
        Skew of each organisation.
    name : str
        Dataset name.
    """

    clients: list[tuple[NDArray[np.float64], NDArray[np.int64]]]
    X_val: NDArray[np.float64]
    y_val: NDArray[np.int64]
    n_classes: int
    reference: NDArray[np.float64]
    label_distributions: NDArray[np.float64]
    h0: NDArray[np.float64]
    name: str = ""
    organisations: tuple[str, ...] = ()
    classes: tuple[Any, ...] = ()

    @property
    def n(self) -> NDArray[np.float64]:
        """Real samples per organisation."""
        return np.array([X.shape[0] for X, _ in self.clients], dtype=np.float64)

    @property
    def n_features(self) -> int:
        """Feature count."""
        return int(self.X_val.shape[1])

    def pooled(self) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """All organisations' real training data stacked."""
        return (
            np.vstack([X for X, _ in self.clients]),
            np.concatenate([y for _, y in self.clients]),
        )


def federated_split(
    dataset: str,
    n_organisations: int,
    alpha: float,
    *,
    validation_fraction: float = 0.3,
    reference: str = "uniform",
    min_size: int = 10,
    random_state: RandomState = None,
) -> FederatedData:
    """Split a bundled classification dataset among organisations with Dirichlet label skew.

    Parameters
    ----------
    dataset : str
        A bundled classification dataset (:func:`coopml.data.list_datasets`).
    n_organisations : int
    alpha : float
        Dirichlet concentration :math:`\\alpha_D` (small = strongly skewed).
    validation_fraction : float
    reference : {"uniform", "global"}
        Reference label distribution ``u``: uniform, or the pooled training mix.
    min_size : int
        Fewest rows per organisation.
    random_state : int, numpy.random.Generator or None

    Examples
    --------
    >>> fd = federated_split("digits", 5, alpha=0.3, random_state=0)
    >>> len(fd.clients), fd.n_classes, bool(np.all((fd.h0 >= 0) & (fd.h0 <= 1)))
    (5, 10, True)
    """
    reference = check_choice("reference", reference, ("uniform", "global"))
    ds = load_dataset(dataset)
    if ds.task != "classification":
        raise ValueError(f"parameter 'dataset' must be a classification dataset; got {dataset!r}")
    seed = check_seed(random_state)
    X_tr, X_val, y_tr, y_val = train_validation_split(
        ds.X, ds.y, validation_fraction, random_state=seed
    )
    mean, std = X_tr.mean(axis=0), X_tr.std(axis=0)
    std[std == 0] = 1.0
    X_tr, X_val = (X_tr - mean) / std, (X_val - mean) / std
    parts = dirichlet_label_partition(
        y_tr, n_organisations, alpha, min_size=min_size, max_retries=1000, random_state=seed + 1
    )
    K = int(np.max(ds.y)) + 1
    clients = [(X_tr[rows], np.asarray(y_tr[rows], dtype=np.int64)) for rows in parts]
    P = np.vstack([label_distribution(y, K) for _, y in clients])
    u = np.full(K, 1.0 / K) if reference == "uniform" else label_distribution(y_tr, K)
    h0 = np.array([skew(p, u) for p in P])
    return FederatedData(
        clients=clients,
        X_val=X_val,
        y_val=np.asarray(y_val, dtype=np.int64),
        n_classes=K,
        reference=u,
        label_distributions=P,
        h0=h0,
        name=dataset,
    )


def federated_from_parties(
    parties: Sequence[tuple[str, ArrayLike, ArrayLike]],
    validation: tuple[ArrayLike, ArrayLike],
    *,
    reference: str = "uniform",
    name: str = "parties",
) -> FederatedData:
    """Organisations with their own data (one file each), as :class:`FederatedData`.

    Labels of any type are encoded ``0..K-1`` in sorted order over every party's and the
    validation labels (:attr:`FederatedData.classes` keeps the originals). Features are
    standardised with the pooled training rows' mean and standard deviation, as
    :func:`federated_split` does: one pooled statistic, never the validation rows.

    Parameters
    ----------
    parties : sequence of (name, X, y)
        Each organisation's training data, columns already matched by name
        (:func:`coopml.config.build_parties`).
    validation : (X_val, y_val)
    reference : {"uniform", "global"}
    name : str

    Examples
    --------
    >>> a = ("a", [[0.0], [1.0], [2.0]], ["no", "no", "yes"])
    >>> b = ("b", [[3.0], [4.0]], ["yes", "yes"])
    >>> fd = federated_from_parties([a, b], ([[1.0], [3.0]], ["no", "yes"]))
    >>> fd.organisations, fd.classes, fd.h0.round(3).tolist()
    (('a', 'b'), ('no', 'yes'), [0.167, 0.5])
    """
    from sklearn.preprocessing import LabelEncoder

    reference = check_choice("reference", reference, ("uniform", "global"))
    if len(parties) < 2:
        raise ValueError(
            f"parameter 'parties' must hold at least 2 organisations; got {len(parties)}"
        )
    names = tuple(str(p[0]) for p in parties)
    Xs = [np.asarray(X, dtype=np.float64) for _, X, _ in parties]
    ys = [np.asarray(y) for _, _, y in parties]
    X_val = np.asarray(validation[0], dtype=np.float64)
    y_val_raw = np.asarray(validation[1])
    encoder = LabelEncoder().fit(np.concatenate([*ys, y_val_raw]))
    K = len(encoder.classes_)
    if K < 2:
        raise ValueError(
            f"the parties' and validation labels must hold at least 2 classes; got {K}"
        )
    X_tr = np.vstack(Xs)
    mean, std = X_tr.mean(axis=0), X_tr.std(axis=0)
    std[std == 0] = 1.0
    clients = [
        ((X - mean) / std, np.asarray(encoder.transform(y), dtype=np.int64))
        for X, y in zip(Xs, ys, strict=True)
    ]
    P = np.vstack([label_distribution(y, K) for _, y in clients])
    y_all = np.concatenate([y for _, y in clients])
    u = np.full(K, 1.0 / K) if reference == "uniform" else label_distribution(y_all, K)
    return FederatedData(
        clients=clients,
        X_val=(X_val - mean) / std,
        y_val=np.asarray(encoder.transform(y_val_raw), dtype=np.int64),
        n_classes=K,
        reference=u,
        label_distributions=P,
        h0=np.array([skew(p, u) for p in P]),
        name=name,
        organisations=names,
        classes=tuple(c.item() if hasattr(c, "item") else c for c in encoder.classes_),
    )


# ---------------------------------------------------------------------------------------
# Generators
# ---------------------------------------------------------------------------------------


@runtime_checkable
class Generator(Protocol):
    """A class-conditional generator fitted on one organisation's data."""

    def fit(self, X: NDArray[np.float64], y: NDArray[np.int64], n_classes: int) -> Any: ...

    def class_counts(self) -> NDArray[np.float64]: ...

    def sample(self, k: int, m: int, rng: np.random.Generator) -> NDArray[np.float64]: ...


@dataclass
class GaussianMixtureGenerator:
    """One ``sklearn.mixture.GaussianMixture`` per class, fitted on the class's rows.

    Parameters
    ----------
    n_components : int, default 2
        Components per class (fewer when the class has fewer rows).
    covariance_type : str, default "diag"
    reg_covar : float, default 1e-2
        Added to the variances (features are standardised).
    random_state : int, default 0

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(-2, 1, (50, 2)), rng.normal(2, 1, (50, 2))])
    >>> y = np.repeat([0, 1], 50)
    >>> g = GaussianMixtureGenerator().fit(X, y, 2)
    >>> float(g.sample(1, 200, rng)[:, 0].mean()) > 1.5
    True
    """

    n_components: int = 2
    covariance_type: str = "diag"
    reg_covar: float = 1e-2
    random_state: int = 0
    _models: dict[int, Any] = field(default_factory=dict, init=False, repr=False)
    _counts: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0), init=False)

    def fit(
        self, X: NDArray[np.float64], y: NDArray[np.int64], n_classes: int
    ) -> GaussianMixtureGenerator:
        from sklearn.mixture import GaussianMixture

        self._counts = np.bincount(y, minlength=n_classes).astype(float)
        self._models = {}
        for k in np.flatnonzero(self._counts):
            rows = X[y == k]
            if rows.shape[0] == 1:
                rows = np.vstack([rows, rows])
            gm = GaussianMixture(
                n_components=max(1, min(self.n_components, rows.shape[0] // 5)),
                covariance_type=self.covariance_type,
                reg_covar=self.reg_covar,
                random_state=self.random_state,
            )
            self._models[int(k)] = gm.fit(rows)
        return self

    def class_counts(self) -> NDArray[np.float64]:
        return self._counts

    def sample(self, k: int, m: int, rng: np.random.Generator) -> NDArray[np.float64]:
        """``m`` samples of class ``k`` (drawn with ``rng``, not the mixture's own state)."""
        gm = self._models[int(k)]
        comp = rng.choice(gm.weights_.size, size=m, p=gm.weights_)
        means = gm.means_[comp]
        if self.covariance_type == "diag":
            return np.asarray(
                means + rng.standard_normal(means.shape) * np.sqrt(gm.covariances_[comp])
            )
        if self.covariance_type == "spherical":
            scale = np.sqrt(gm.covariances_[comp])[:, None]
            return np.asarray(means + rng.standard_normal(means.shape) * scale)
        covs = gm.covariances_ if self.covariance_type == "full" else None
        out = np.empty_like(means)
        for r in range(m):
            cov = covs[comp[r]] if covs is not None else gm.covariances_
            out[r] = rng.multivariate_normal(gm.means_[comp[r]], cov)
        return out


@dataclass
class VAEGenerator:
    """A small class-conditional VAE (torch): encoder ``(x, y) -> z``, decoder ``(z, y) -> x``.

    Parameters
    ----------
    latent_dim : int, default 8
    hidden : int, default 64
    epochs : int, default 150
    batch_size : int, default 64
    learning_rate : float, default 3e-3
    random_state : int, default 0
    """

    latent_dim: int = 8
    hidden: int = 64
    epochs: int = 150
    batch_size: int = 64
    learning_rate: float = 3e-3
    random_state: int = 0
    _decoder: Any = field(default=None, init=False, repr=False)
    _counts: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0), init=False)
    _n_classes: int = field(default=0, init=False)

    def fit(self, X: NDArray[np.float64], y: NDArray[np.int64], n_classes: int) -> VAEGenerator:
        import torch

        torch_gen = torch.Generator().manual_seed(self.random_state)
        self._counts = np.bincount(y, minlength=n_classes).astype(float)
        self._n_classes = n_classes
        d, K, L, H = X.shape[1], n_classes, self.latent_dim, self.hidden
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.random_state)
            enc = torch.nn.Sequential(torch.nn.Linear(d + K, H), torch.nn.ReLU())
            enc_mu, enc_lv = torch.nn.Linear(H, L), torch.nn.Linear(H, L)
            dec = torch.nn.Sequential(
                torch.nn.Linear(L + K, H), torch.nn.ReLU(), torch.nn.Linear(H, d)
            )
        modules = torch.nn.ModuleList([enc, enc_mu, enc_lv, dec])
        opt = torch.optim.Adam(modules.parameters(), lr=self.learning_rate)
        Xt = torch.as_tensor(X, dtype=torch.float32)
        Yt = torch.nn.functional.one_hot(torch.as_tensor(y, dtype=torch.int64), K).float()
        n = Xt.shape[0]
        for _ in range(self.epochs):
            order = torch.randperm(n, generator=torch_gen)
            for start in range(0, n, self.batch_size):
                idx = order[start : start + self.batch_size]
                x, c = Xt[idx], Yt[idx]
                h = enc(torch.cat([x, c], dim=1))
                mu, logvar = enc_mu(h), enc_lv(h)
                eps = torch.randn(mu.shape, generator=torch_gen)
                z = mu + eps * torch.exp(0.5 * logvar)
                recon = dec(torch.cat([z, c], dim=1))
                rec = ((recon - x) ** 2).sum(dim=1).mean()
                kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(dim=1)).mean()
                loss = rec + kl
                opt.zero_grad()
                loss.backward()
                opt.step()
        self._decoder = dec.eval()
        return self

    def class_counts(self) -> NDArray[np.float64]:
        return self._counts

    def sample(self, k: int, m: int, rng: np.random.Generator) -> NDArray[np.float64]:
        """Decode ``m`` latent draws (from ``rng``) conditioned on class ``k``."""
        import torch

        z = torch.as_tensor(rng.standard_normal((m, self.latent_dim)), dtype=torch.float32)
        c = torch.zeros((m, self._n_classes))
        c[:, int(k)] = 1.0
        with torch.no_grad():
            out = self._decoder(torch.cat([z, c], dim=1))
        return np.asarray(out.numpy(), dtype=np.float64)


def _make_generator(kind: str, seed: int, options: dict[str, Any]) -> Generator:
    if kind == "gmm":
        return GaussianMixtureGenerator(random_state=seed, **options)
    if kind == "vae":
        return VAEGenerator(random_state=seed, **options)
    raise ValueError(f"parameter 'kind' must be one of 'gmm', 'vae'; got {kind!r}")


def fit_generators(
    data: FederatedData,
    kind: str = "gmm",
    *,
    random_state: RandomState = 0,
    **options: Any,
) -> GeneratorPool:
    """Fit one generator per organisation on its own data and pool them.

    Parameters
    ----------
    data : FederatedData
    kind : {"gmm", "vae"}
    random_state : int, numpy.random.Generator or None
    **options
        Passed to the generator class (e.g. ``n_components=3`` or ``epochs=100``).
    """
    kind = check_choice("kind", kind, ("gmm", "vae"))
    seed = check_seed(random_state)
    gens = [
        _make_generator(kind, seed + j, dict(options)).fit(X, y, data.n_classes)
        for j, (X, y) in enumerate(data.clients)
    ]
    return GeneratorPool(gens, data.n_classes)


@dataclass(eq=False)
class GeneratorPool:
    """The organisations' generators, pooled per class by their class counts."""

    generators: Sequence[Generator]
    n_classes: int

    def __post_init__(self) -> None:
        counts = np.vstack([g.class_counts() for g in self.generators])
        missing = np.flatnonzero(counts.sum(axis=0) == 0)
        if missing.size:
            raise ValueError(f"no organisation holds classes {missing.tolist()}")
        self._shares = counts / counts.sum(axis=0, keepdims=True)

    def sample(
        self, labels: ArrayLike, rng: np.random.Generator
    ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """Synthetic features for the requested ``labels`` (returned sorted by class)."""
        lab = np.sort(np.asarray(labels, dtype=np.int64))
        blocks: list[NDArray[np.float64]] = []
        for k in np.unique(lab):
            m = int(np.sum(lab == k))
            who = rng.choice(len(self.generators), size=m, p=self._shares[:, k])
            for j in np.unique(who):
                blocks.append(self.generators[j].sample(int(k), int(np.sum(who == j)), rng))
        if not blocks:
            return np.zeros((0, 0)), lab
        return np.vstack(blocks), lab

    def generate(
        self, m: int, reference: ArrayLike, rng: np.random.Generator
    ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """``m`` synthetic samples with labels drawn from ``reference`` (stratified)."""
        u = np.asarray(reference, dtype=np.float64)
        if m <= 0:
            return np.zeros((0, 0)), np.zeros(0, dtype=np.int64)
        counts = np.floor(u * m).astype(int)
        rest = m - counts.sum()
        if rest > 0:
            counts[rng.choice(u.size, size=rest, replace=False, p=u)] += 1
        return self.sample(np.repeat(np.arange(u.size), counts), rng)


@dataclass(frozen=True)
class QualityResult:
    r"""Measured quality :math:`\kappa` of synthetic data.

    Attributes
    ----------
    kappa : float
        ``accuracy_synthetic / accuracy_real``, clipped to ``[floor, 1]``.
    accuracy_synthetic, accuracy_real : float
        Validation accuracy of the probe model trained on synthetic / real data.
    n_samples : int
        Training rows of each probe.
    """

    kappa: float
    accuracy_synthetic: float
    accuracy_real: float
    n_samples: int

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(dict(self.__dict__))


def measure_quality(
    pool: GeneratorPool,
    data: FederatedData,
    *,
    estimator: Any = None,
    floor: float = 0.05,
    random_state: RandomState = 0,
) -> QualityResult:
    """Measure :math:`\\kappa`: a probe trained on synthetic vs on real data, same labels.

    The probe (default ``RidgeClassifier()``, fast and linear) is trained once on the
    pooled real training data and once on as many synthetic samples with the same labels,
    and both are scored on the validation data.

    Examples
    --------
    >>> fd = federated_split("digits", 4, alpha=1.0, random_state=0)
    >>> q = measure_quality(fit_generators(fd, "gmm"), fd)
    >>> 0.5 < q.kappa <= 1.0
    True
    """
    from sklearn.base import clone
    from sklearn.linear_model import RidgeClassifier

    check_fraction("floor", floor, open_low=True)
    rng = check_random_state(random_state)
    probe = RidgeClassifier() if estimator is None else estimator
    X, y = data.pooled()
    Xs, ys = pool.sample(y, rng)
    acc_real = float(clone(probe).fit(X, y).score(data.X_val, data.y_val))
    acc_syn = float(clone(probe).fit(Xs, ys).score(data.X_val, data.y_val))
    kappa = float(np.clip(acc_syn / acc_real if acc_real > 0 else 0.0, floor, 1.0))
    return QualityResult(
        kappa=kappa, accuracy_synthetic=acc_syn, accuracy_real=acc_real, n_samples=int(y.size)
    )
