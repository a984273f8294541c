"""Federated-learning job files (TOML), validated with pydantic.

A job names the data (a bundled classification dataset split among organisations with
Dirichlet label skew, or one CSV/Parquet file per organisation under ``[[parties]]``
with a ``[validation]`` file, columns matched by name as in value and market jobs: see
:func:`coopml.config.build_parties`), the FedAvg model, the generators, the game parameters and the
strategies; a ``[sweep]`` table adds the competition intensities and skews to sweep.
See ``examples/fl_digits.toml``.

Example
-------
>>> cfg = FLConfig.model_validate({"data": {"dataset": "wine", "n_organisations": 3}})
>>> cfg.rounds, cfg.training.model, cfg.game.kappa
(30, 'logistic', 'measured')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from coopml.config import (
    ConfigError,
    PartyFile,
    PreprocessingConfig,
    ValidationFile,
    load_config,
    parse_config,
)
from coopml.federated.competition import MarketCompetition

__all__ = [
    "STRATEGIES",
    "ConfigError",
    "CurveConfig",
    "FLConfig",
    "FLDataConfig",
    "GameConfig",
    "GeneratorConfig",
    "SweepConfig",
    "TrainingConfig",
    "load_fl_config",
    "parse_fl_config",
]

STRATEGIES = ("mechanism", "equilibrium", "no_generation", "competition_oblivious", "random")
Strategy = Literal["mechanism", "equilibrium", "no_generation", "competition_oblivious", "random"]
_DEFAULT_STRATEGIES: tuple[Strategy, ...] = (
    "mechanism",
    "equilibrium",
    "no_generation",
    "competition_oblivious",
    "random",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FLDataConfig(_Strict):
    """A bundled classification dataset split among organisations (Dirichlet label skew)."""

    dataset: str = "digits"
    n_organisations: int = Field(10, ge=2, le=200)
    alpha: float = Field(0.5, gt=0, description="Dirichlet concentration alpha_D")
    validation_fraction: float = Field(0.3, gt=0, lt=1)
    reference: Literal["uniform", "global"] = "uniform"
    min_size: int = Field(10, ge=1)


class TrainingConfig(_Strict):
    """FedAvg: the model, the local training budget, minibatches, client sampling.

    ``budget`` states what one round of local training is: ``"local_steps"`` (default)
    runs exactly ``local_steps`` minibatch SGD steps on every participant, however many
    real and synthetic rows it holds, so generating data buys no extra training;
    ``"epochs"`` runs ``local_epochs`` passes over the participant's rows (the steps then
    grow with its synthetic data).
    """

    model: Literal["logistic", "mlp"] = "logistic"
    budget: Literal["local_steps", "epochs"] = "local_steps"
    local_steps: int = Field(10, ge=1, description="minibatch steps per round (budget)")
    local_epochs: int = Field(1, ge=1, description="passes per round (budget = 'epochs')")
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(0.05, gt=0)
    client_fraction: float = Field(1.0, gt=0, le=1)
    hidden: int = Field(64, ge=1, description="hidden units of the MLP")

    def model_options(self) -> dict[str, Any]:
        """Keyword arguments for :func:`coopml.federated.fedavg.make_model`."""
        options: dict[str, Any] = {
            "local_epochs": self.local_epochs,
            "local_steps": self.local_steps if self.budget == "local_steps" else None,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
        }
        if self.model == "mlp":
            options["hidden"] = self.hidden
        return options


class GeneratorConfig(_Strict):
    """Per-organisation class-conditional generators."""

    kind: Literal["gmm", "vae"] = "gmm"
    n_components: int = Field(2, ge=1, description="GMM components per class")
    latent_dim: int = Field(8, ge=1, description="VAE latent size")
    epochs: int = Field(100, ge=1, description="VAE training epochs")

    def options(self) -> dict[str, Any]:
        """Keyword arguments for the generator class."""
        if self.kind == "gmm":
            return {"n_components": self.n_components}
        return {"latent_dim": self.latent_dim, "epochs": self.epochs}


class CurveConfig(_Strict):
    """The accuracy curve P(E) = A_max - a E^-b: fitted from pilot FedAvg runs, or given."""

    fit: bool = True
    pilot_fractions: list[float] = Field(
        default_factory=lambda: [0.02, 0.05, 0.1, 0.25, 0.5, 1.0], min_length=3
    )
    pilot_rounds: int | None = Field(None, ge=1, description="default: rounds")
    A_max: float | None = Field(None, gt=0)
    a: float | None = Field(None, gt=0)
    b: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _given(self) -> CurveConfig:
        if not self.fit and None in (self.A_max, self.a, self.b):
            raise ValueError("with fit = false give A_max, a and b")
        if any(not 0 < f <= 1 for f in self.pilot_fractions):
            raise ValueError(f"pilot_fractions must lie in (0, 1]; got {self.pilot_fractions}")
        return self


class GameConfig(_Strict):
    """Parameters of the per-round game (scalars apply to every organisation).

    ``competition`` says how rivals' accuracy enters utility
    (:mod:`coopml.federated.competition`): ``"linear"`` (default) or ``"market"``, a
    differentiated-products oligopoly (``market = "cournot"`` or ``"bertrand"``, with
    ``base_margin``) whose product similarity is ``gamma`` (one value for everyone;
    Bertrand needs ``gamma < 1``). The ``"standalone"`` outside option models a leaver's
    competition linearly, so it needs ``competition = "linear"``.
    """

    theta: float | list[float] = 1.0
    gamma: float | list[float] = 0.5
    c: float | list[float] = 2e-5
    mu: float = Field(0.2, ge=0)
    kappa: float | Literal["measured"] = "measured"
    s_max_factor: float = Field(3.0, ge=0, description="s_max_i = s_max_factor * n_i")
    beta: Literal["contribution", "equal", "shapley"] = "contribution"
    outside_option: Literal["none", "standalone"] | float | list[float] = Field(
        "none",
        description="participation rule: 'none' (everyone stays), 'standalone' or values",
    )
    curve: CurveConfig = Field(default_factory=CurveConfig)
    competition: Literal["linear", "market"] = "linear"
    market: Literal["cournot", "bertrand"] = Field(
        "cournot", description="competition = 'market': the oligopoly model"
    )
    base_margin: float = Field(
        0.0, description="competition = 'market': margin of a product of zero accuracy"
    )

    @model_validator(mode="after")
    def _ranges(self) -> GameConfig:
        def values(x: float | list[float]) -> list[float]:
            return x if isinstance(x, list) else [x]

        if any(v <= 0 for v in values(self.theta)):
            raise ValueError(f"theta must be > 0; got {self.theta}")
        if any(not 0 <= v <= 1 for v in values(self.gamma)):
            raise ValueError(f"gamma must lie in [0, 1]; got {self.gamma}")
        if any(v < 0 for v in values(self.c)):
            raise ValueError(f"c must be >= 0; got {self.c}")
        if self.kappa != "measured" and not 0 < float(self.kappa) <= 1:
            raise ValueError(f"kappa must lie in (0, 1] or be 'measured'; got {self.kappa}")
        if self.competition == "linear":
            given = sorted({"market", "base_margin"} & self.model_fields_set)
            if given:
                raise ValueError(f"{given[0]} applies only with competition = 'market'")
            return self
        if len(set(values(self.gamma))) > 1:
            raise ValueError(
                "competition = 'market' needs one product similarity: gamma must be one "
                f"number (or equal entries); got {self.gamma}"
            )
        if self.market == "bertrand" and values(self.gamma)[0] >= 1:
            raise ValueError(f"market = 'bertrand' needs gamma < 1; got {self.gamma}")
        if self.outside_option == "standalone":
            raise ValueError(
                "outside_option = 'standalone' models a leaver's competition linearly; with "
                "competition = 'market' use 'none' or configured values"
            )
        return self

    def competition_model(self) -> str | MarketCompetition:
        """What :class:`~coopml.federated.round_game.RoundGame` takes as ``competition``."""
        if self.competition == "linear":
            return "linear"
        return MarketCompetition(self.market, self.base_margin)


class SweepConfig(_Strict):
    """What ``coopml fl sweep`` varies (each value runs a full simulation)."""

    gamma: list[float] = Field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75])
    alpha: list[float] = Field(default_factory=lambda: [0.1, 0.3, 1.0, 10.0])
    rounds: int | None = Field(None, ge=1, description="rounds per run (default: rounds)")
    train: bool = Field(True, description="run FedAvg (false: the game only, fast)")

    @model_validator(mode="after")
    def _ranges(self) -> SweepConfig:
        if any(not 0 <= g <= 1 for g in self.gamma):
            raise ValueError(f"sweep.gamma values must lie in [0, 1]; got {self.gamma}")
        if any(a <= 0 for a in self.alpha):
            raise ValueError(f"sweep.alpha values must be > 0; got {self.alpha}")
        return self


class FLConfig(_Strict):
    """A coopetitive federated-learning job (see the module docstring)."""

    rounds: int = Field(30, ge=1)
    random_state: int = Field(0, ge=0)
    strategies: list[Strategy] = Field(
        default_factory=lambda: list(_DEFAULT_STRATEGIES), min_length=1
    )
    data: FLDataConfig = Field(default_factory=FLDataConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig)
    game: GameConfig = Field(default_factory=GameConfig)
    sweep: SweepConfig = Field(default_factory=SweepConfig)
    parties: list[PartyFile] | None = Field(None, description="one CSV/Parquet file each")
    validation: ValidationFile | None = None
    features: list[str] | None = Field(None, min_length=1)
    extra_columns: Literal["error", "ignore"] = "error"
    preprocessing: PreprocessingConfig = Field(default_factory=PreprocessingConfig)

    @model_validator(mode="after")
    def _one_data_source(self) -> FLConfig:
        files = self.parties is not None or self.validation is not None
        if not files:
            only_files = {"extra_columns", "preprocessing"} & self.model_fields_set
            if self.features is not None or only_files:
                raise ValueError(
                    "features, extra_columns and [preprocessing] apply only to [[parties]] files"
                )
            return self
        if not self.parties or self.validation is None:
            raise ValueError("[[parties]] and [validation] must be given together")
        if len(self.parties) < 2:
            raise ValueError(
                f"[[parties]] must list at least 2 organisations; got {len(self.parties)}"
            )
        names = [p.name for p in self.parties]
        if len(set(names)) != len(names):
            raise ValueError(f"[[parties]] names must be unique; got {names}")
        split = {"dataset", "n_organisations", "alpha", "validation_fraction", "min_size"}
        given = sorted(split & self.data.model_fields_set)
        if given:
            raise ValueError(
                f"data.{given[0]} splits a bundled dataset; with [[parties]] files each "
                "organisation's rows come from its file (keep only data.reference)"
            )
        return self

    def resolve_paths(self, base_dir: str | Path) -> FLConfig:
        """The config with relative party and validation paths resolved against ``base_dir``."""
        if self.parties is None or self.validation is None:
            return self
        base = Path(base_dir)

        def full(path: str | None) -> str | None:
            if path is None or Path(path).is_absolute():
                return path
            return str(base / path)

        parties = [
            p.model_copy(
                update={
                    "path": full(p.path),
                    "validation": full(p.validation),
                }
            )
            for p in self.parties
        ]
        validation = self.validation.model_copy(update={"path": full(self.validation.path)})
        return self.model_copy(update={"parties": parties, "validation": validation})


def parse_fl_config(raw: dict[str, Any], source: str = "config") -> FLConfig:
    """Validate a mapping as an :class:`FLConfig`; errors raise :class:`ConfigError`."""
    return parse_config(raw, source, FLConfig)


def load_fl_config(path: str | Path) -> FLConfig:
    """Read and validate a TOML job file (party files resolve against its folder)."""
    config, base_dir = load_config(path, FLConfig)
    return config.resolve_paths(base_dir)
