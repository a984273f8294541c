r"""Real-data mode: firms are parties with datasets, learning curves are measured.

Each *task* is a group of firms (:class:`~coopml.data.Party`) that compete in one market
with models for the same prediction task. The task's learning curve
:math:`\varepsilon(N) = \varepsilon_\infty + A N^{-\beta}` is measured by training the
chosen learner on nested subsets of the firms' pooled data
(:func:`~coopml.competition.fit_learning_curve`, several repeats), and the sharing
analysis (:func:`~coopml.competition.analyze`) runs on the fitted curve with the firms'
data sizes. Task hardness is therefore measured, not assumed: the fitted :math:`\beta`
is small when the error falls slowly. Evaluating :math:`\varepsilon` at the pooled size
extrapolates the curve a little beyond the largest measured size (the validation rows
are held out), which is the point of fitting a curve.

:func:`load_sharing_config` reads a TOML file (``examples/sharing_two_tasks.toml``)
describing tasks built from bundled datasets (optionally made harder by feature noise)
or from one CSV/Parquet file per firm; :func:`run_sharing_config` fits and analyses
every task (``coopml sharing fit-curve``).

This is the real-data mode of the **reconstructed** model of Tsoy & Konstantinov,
"Strategic data sharing between competitors", NeurIPS 2023 (arXiv 2305.16052).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from coopml._validation import RandomState, check_random_state, check_seed
from coopml.competition.analysis import SharingAnalysis, analyze
from coopml.competition.learning import LearningCurveFit, fit_learning_curve
from coopml.competition.negotiation import full_sharing_threshold
from coopml.config import ConfigError, LearnerConfig, build_learner, load_config
from coopml.data import Party, corrupt_features, load_dataset

__all__ = [
    "PartySharing",
    "SharingConfig",
    "analyze_parties",
    "build_tasks",
    "load_sharing_config",
    "run_sharing_config",
]


@dataclass(frozen=True, kw_only=True)
class PartySharing:
    """The sharing analysis of firms whose learning curve was measured on their data.

    Parameters
    ----------
    name : str
        The task's name.
    firms : tuple of str
        Party names, in the order of ``analysis.full.sizes``.
    fit : LearningCurveFit
        The measured learning curve (with standard errors).
    analysis : SharingAnalysis
        :func:`~coopml.competition.analyze` on the fitted curve and the firms' sizes.
    """

    name: str
    firms: tuple[str, ...]
    fit: LearningCurveFit
    analysis: SharingAnalysis

    @property
    def threshold(self) -> float | None:
        """Cournot duopoly: the larger firm agrees to full sharing iff ``gamma`` is below
        this value (``2 R``); ``None`` for more than two firms."""
        sizes = self.analysis.full.sizes
        return full_sharing_threshold(self.fit.curve, sizes) if sizes.size == 2 else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary: the task, firms, fit, threshold and analysis."""
        return {
            "task": self.name,
            "firms": list(self.firms),
            "learning_curve": self.fit.to_dict(),
            "threshold_gamma": self.threshold,
            "analysis": self.analysis.to_dict(),
        }


def analyze_parties(
    parties: Sequence[Party],
    learner: Any,
    gamma: float,
    *,
    name: str = "task",
    curve_sizes: Sequence[int] | None = None,
    n_repeats: int = 3,
    validation_fraction: float = 0.3,
    random_state: RandomState = None,
    **analyze_kwargs: Any,
) -> PartySharing:
    """Measure the task's learning curve on the firms' pooled data, then analyse sharing.

    Parameters
    ----------
    parties : sequence of Party
        The competing firms (2 to 6), with data on the same task.
    learner : scikit-learn estimator
        The model the firms train (cloned for every fit).
    gamma : float
        Product similarity.
    name : str
        A label for the task.
    curve_sizes : sequence of int, optional
        Training sizes of the learning-curve measurement (default: six sizes up to all
        pooled training rows).
    n_repeats, validation_fraction, random_state
        As in :func:`~coopml.competition.fit_learning_curve`.
    **analyze_kwargs
        Passed to :func:`~coopml.competition.analyze` (``market``, ``quality``,
        ``kappa``, ``margin``, ``rule``).

    Returns
    -------
    PartySharing

    Examples
    --------
    >>> from sklearn.naive_bayes import GaussianNB
    >>> from coopml.data import load_dataset
    >>> d = load_dataset("digits")
    >>> firms = [Party("big", d.X[:600], d.y[:600]), Party("small", d.X[600:750], d.y[600:750])]
    >>> r = analyze_parties(firms, GaussianNB(), gamma=0.1, random_state=0)
    >>> r.analysis.full.sizes.tolist(), r.analysis.full.unanimous
    ([600.0, 150.0], True)
    """
    if len(parties) < 2 or not all(isinstance(p, Party) for p in parties):
        raise TypeError("parameter 'parties' must be a sequence of at least 2 Party objects")
    X = np.vstack([p.X for p in parties])
    y = np.concatenate([p.y for p in parties])
    fit = fit_learning_curve(
        learner, X, y, sizes=curve_sizes, n_repeats=n_repeats,
        validation_fraction=validation_fraction, random_state=random_state,
    )  # fmt: skip
    sizes = [p.n_samples for p in parties]
    analysis = analyze(sizes, gamma, curve=fit.curve, **analyze_kwargs)
    return PartySharing(name=name, firms=tuple(p.name for p in parties), fit=fit, analysis=analysis)


# --------------------------------------------------------------------------------------
# Configuration files
# --------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FirmFile(_Strict):
    """One firm's data from a CSV or Parquet file."""

    name: str = Field(min_length=1)
    path: str
    target: str


class TaskConfig(_Strict):
    """A group of competing firms: rows of a bundled dataset, or one file per firm."""

    name: str = Field(min_length=1)
    dataset: str | None = None
    feature_noise: float = Field(
        0.0, ge=0, description="Gaussian feature noise (in feature standard deviations)"
    )
    sizes: list[int] | None = Field(None, description="firms' data sizes (bundled dataset)")
    names: list[str] | None = None
    firms: list[FirmFile] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> TaskConfig:
        if (self.dataset is None) == (self.firms is None):
            raise ValueError("give either 'dataset' (with 'sizes') or 'firms' (files)")
        if self.dataset is not None and (self.sizes is None or len(self.sizes) < 2):
            raise ValueError("'sizes' must list at least 2 firm sizes for a bundled dataset")
        if self.sizes is not None and min(self.sizes) < 1:
            raise ValueError(f"'sizes' must be >= 1; got {self.sizes}")
        if self.firms is not None and len(self.firms) < 2:
            raise ValueError("'firms' must list at least 2 firms")
        if self.names is not None and self.sizes is not None and len(self.names) != len(self.sizes):
            raise ValueError("'names' must have one entry per size")
        return self


class CurveConfig(_Strict):
    """How learning curves are measured."""

    sizes: list[int] | None = None
    n_repeats: int = Field(3, ge=1, le=100)
    validation_fraction: float = Field(0.3, gt=0, lt=1)
    random_state: int | None = Field(0, ge=0)


class MarketSection(_Strict):
    """The market the firms compete in."""

    gamma: float = Field(ge=0, le=1)
    market: Literal["cournot", "bertrand"] = "cournot"
    quality: Literal["cost", "demand"] = "cost"
    margin: float = Field(1.0, gt=0)
    kappa: float = Field(0.25, ge=0)
    rule: Literal["nash", "kalai_smorodinsky", "egalitarian", "utilitarian"] = "nash"


class SharingConfig(_Strict):
    """A ``coopml sharing fit-curve`` configuration (see ``examples/sharing_two_tasks.toml``)."""

    market: MarketSection
    learner: LearnerConfig = LearnerConfig()
    curve: CurveConfig = CurveConfig()
    task: list[TaskConfig] = Field(min_length=1)


def load_sharing_config(path: str | Path) -> tuple[SharingConfig, Path]:
    """Read and validate a sharing configuration; returns it and its directory.

    Raises
    ------
    ConfigError
        With one line per invalid key.
    """
    return load_config(path, SharingConfig)


def build_tasks(
    cfg: SharingConfig, base_dir: Path = Path(), random_state: RandomState = None
) -> dict[str, list[Party]]:
    """The firms of every task: disjoint random rows of a bundled dataset (after feature
    noise, if any), or one party per file (paths relative to ``base_dir``)."""
    rng = check_random_state(cfg.curve.random_state if random_state is None else random_state)
    tasks: dict[str, list[Party]] = {}
    for task in cfg.task:
        if task.dataset is not None:
            assert task.sizes is not None
            data = load_dataset(task.dataset)
            whole = Party(task.name, data.X, data.y)
            if task.feature_noise > 0:
                whole = corrupt_features(whole, task.feature_noise, random_state=check_seed(rng))
            if sum(task.sizes) > whole.n_samples:
                raise ConfigError(
                    f"task {task.name!r}: sizes add up to {sum(task.sizes)} but dataset "
                    f"{task.dataset!r} has {whole.n_samples} rows"
                )
            order = rng.permutation(whole.n_samples)
            names = task.names or [f"firm_{i}" for i in range(len(task.sizes))]
            parties, start = [], 0
            for firm, size in zip(names, task.sizes, strict=True):
                rows = order[start : start + size]
                parties.append(Party(firm, whole.X[rows], whole.y[rows]))
                start += size
        else:
            assert task.firms is not None
            parties = []
            for f in task.firms:
                file = Path(f.path) if Path(f.path).is_absolute() else base_dir / f.path
                reader = Party.from_parquet if file.suffix == ".parquet" else Party.from_csv
                parties.append(reader(f.name, file, f.target))
        tasks[task.name] = parties
    return tasks


def run_sharing_config(
    cfg: SharingConfig, base_dir: Path = Path(), *, tasks: Mapping[str, list[Party]] | None = None
) -> list[PartySharing]:
    """Fit the learning curve of every task and analyse sharing on it."""
    learner = build_learner(cfg.learner)
    built = build_tasks(cfg, base_dir) if tasks is None else tasks
    m = cfg.market
    results = []
    for name, parties in built.items():
        result = analyze_parties(
            parties, learner, m.gamma, name=name, curve_sizes=cfg.curve.sizes,
            n_repeats=cfg.curve.n_repeats, validation_fraction=cfg.curve.validation_fraction,
            random_state=cfg.curve.random_state, market=m.market, quality=m.quality,
            margin=m.margin, kappa=m.kappa, rule=m.rule,
        )  # fmt: skip
        results.append(result)
    return results
