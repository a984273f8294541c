"""Competition intensity and heterogeneity sweeps of the round game, both competition models.

Regenerates ``docs/img/federated_competition_gamma.png`` and
``docs/img/federated_competition_alpha.png`` and prints the tables quoted in
``docs/federated.md`` (game only, no training: about a minute on two cores)::

    .venv/bin/python examples/fl_competition_sweeps.py [--out docs/img] [--seeds 3]

The organisations are the digits example's (``examples/fl_digits.toml``): ten
organisations share the training rows of scikit-learn's bundled digits with Dirichlet
label skew ``alpha_D``; the game parameters are the example's (theta = 1, c = 2e-4,
mu = 0.5, s_max = 3 n) with its measured quality kappa = 0.98 and fitted curve
P(E) = 0.920 - 0.90 E^-0.49. Every point averages ``--seeds`` label partitions. A market
whose weakest organisation would exit (Cournot quantity <= 0 at its accuracy) has no
linearised game; such points are left out (NaN) and counted.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

from coopml.data import dirichlet_label_partition
from coopml.federated.game import (
    AccuracyCurve,
    MarketCompetition,
    RoundGame,
    nash_equilibrium,
    social_optimum,
    utilities,
)

CURVE = AccuracyCurve(A_max=0.920, a=0.90, b=0.49)
MODELS = {
    "linear": "linear",
    "market (Cournot)": MarketCompetition("cournot"),
    "market (Cournot, m0 = 1)": MarketCompetition("cournot", base_margin=1.0),
}
GAMMAS = [0.0, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9]
ALPHAS = [0.05, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0]
N_ORGS = 10


def organisations(alpha: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Real sample counts and label skews of the ten organisations."""
    y = load_digits().target
    train = np.random.default_rng(seed).permutation(y.size)[: int(0.7 * y.size)]
    parts = dirichlet_label_partition(y[train], N_ORGS, alpha, min_size=5, random_state=seed)
    n = np.array([p.size for p in parts], dtype=float)
    h0 = np.array(
        [0.5 * np.abs(np.bincount(y[train][p], minlength=10) / p.size - 0.1).sum() for p in parts]
    )
    return n, h0


def point(model: object, gamma: float, alpha: float, seeds: int) -> dict[str, float]:
    """Mean synthetic totals and welfare over ``seeds`` partitions (NaN if a firm exits)."""
    rows = []
    for seed in range(seeds):
        n, h0 = organisations(alpha, seed)
        try:
            g = RoundGame(
                n=n, h0=h0, theta=1.0, gamma=gamma, c=2e-4, kappa=0.98, mu=0.5,
                s_max=3 * n, curve=CURVE, competition=model,  # type: ignore[arg-type]
            )  # fmt: skip
        except ValueError:
            rows.append([np.nan] * 6)
            continue
        ne = nash_equilibrium(g)
        so = social_optimum(g, equilibrium=ne)
        assert ne.converged and so.converged, (gamma, alpha, seed)
        rows.append(
            [
                ne.s.sum(),
                so.s.sum(),
                ne.social_welfare,
                so.social_welfare,
                float(utilities(g, np.zeros(g.N)).sum()),
                float(h0.mean()),
            ]
        )
    mean = np.nanmean(np.array(rows), axis=0) if not np.all(np.isnan(rows)) else [np.nan] * 6
    keys = ["s_equilibrium", "s_optimum", "welfare_equilibrium", "welfare_optimum",
            "welfare_no_generation", "mean_skew"]  # fmt: skip
    out = dict(zip(keys, (float(v) for v in mean), strict=True))
    out["undefined"] = float(np.isnan(np.array(rows)[:, 0]).sum())
    return out


def plot(
    results: dict[str, list[dict[str, float]]], xs: list[float], xlabel: str, path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(results), figsize=(4.2 * len(results), 6.4), sharex=True)
    for col, (name, pts) in enumerate(results.items()):
        top, bottom = axes[0, col], axes[1, col]
        for key, label in (("s_equilibrium", "equilibrium"), ("s_optimum", "optimum")):
            top.plot(xs, [p[key] for p in pts], marker="o", label=label)
        top.set_title(name)
        top.set_ylabel("synthetic samples per round")
        for key, label in (
            ("welfare_equilibrium", "equilibrium"),
            ("welfare_optimum", "optimum (mechanism)"),
        ):
            gain = [p[key] - p["welfare_no_generation"] for p in pts]
            bottom.plot(xs, gain, marker="o", label=label)
        bottom.axhline(0.0, color="grey", lw=0.8)
        bottom.set_ylabel("welfare minus no generation")
        bottom.set_xlabel(xlabel)
        if xlabel.startswith("Dirichlet"):
            top.set_xscale("log")
            bottom.set_xscale("log")
        top.legend(fontsize=8)
        bottom.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    by_gamma = {m: [point(v, g, 0.3, args.seeds) for g in GAMMAS] for m, v in MODELS.items()}
    by_alpha = {m: [point(v, 0.5, a, args.seeds) for a in ALPHAS] for m, v in MODELS.items()}
    plot(by_gamma, GAMMAS, "competition intensity γ (α_D = 0.3)",
         args.out / "federated_competition_gamma.png")  # fmt: skip
    plot(by_alpha, ALPHAS, "Dirichlet α_D (γ = 0.5; small = heterogeneous)",
         args.out / "federated_competition_alpha.png")  # fmt: skip
    print(json.dumps({"gamma": GAMMAS, "by_gamma": by_gamma, "alpha": ALPHAS,
                      "by_alpha": by_alpha}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
