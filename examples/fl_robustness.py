"""Robustness of the coopetitive FL mechanism against its baselines (docs/federated.md).

Reruns the simulation (digits, 6 organisations, logistic FedAvg, 80 % client sampling,
GMM generators, measured kappa, fitted accuracy curve) over seeds, the competition
intensity gamma, the label skew alpha_D, the horizon (10 and 30 rounds) and the training
budget (a fixed number of local steps, or one local epoch), and prints two Markdown
tables:

1. measured welfare of the mechanism against the best baseline (the measured accuracy
   of each round's global model in place of the fitted curve);
2. participation with standalone outside options (game only: who stays depends on the
   game's utilities, not on the training).

    .venv/bin/python examples/fl_robustness.py            # about 10 minutes on 2 cores
    .venv/bin/python examples/fl_robustness.py --quick    # one seed, a smoke test

A 10-round horizon is the first 10 rounds of the 30-round run (the rounds use the same
random streams, so the two are identical); the accuracy curve is fitted once per split
from 30-round pilots under the same training budget.
"""

from __future__ import annotations

import dataclasses
import sys
import time

import numpy as np

from coopml.federated.config import FLConfig
from coopml.federated.simulation import Setup, prepare, simulate

SEEDS = (0, 1, 2)
GAMMAS = (0.2, 0.5, 0.8)
ALPHAS = (0.1, 1.0)
HORIZONS = (10, 30)
BUDGETS = ("local_steps", "epochs")
BASELINES = ("equilibrium", "no_generation", "competition_oblivious", "random")


def config(seed: int, alpha: float, gamma: float, budget: str) -> FLConfig:
    return FLConfig.model_validate(
        {
            "rounds": max(HORIZONS),
            "random_state": seed,
            "data": {"dataset": "digits", "n_organisations": 6, "alpha": alpha},
            "training": {
                "model": "logistic",
                "budget": budget,
                "local_steps": 10,
                "client_fraction": 0.8,
            },
            "game": {
                "gamma": gamma,
                "c": 2e-4,
                "mu": 0.5,
                "kappa": "measured",
                "curve": {"pilot_rounds": max(HORIZONS)},
            },
        }
    )


def with_gamma(base: Setup, cfg: FLConfig) -> Setup:
    return dataclasses.replace(base, config=cfg, gamma=np.full(base.gamma.size, cfg.game.gamma))


def main(quick: bool = False) -> None:
    seeds = SEEDS[:1] if quick else SEEDS
    start = time.perf_counter()
    # (budget, alpha, gamma, horizon) -> per seed: {strategy: measured welfare}
    welfare: dict[tuple[str, float, float, int], list[dict[str, float]]] = {}
    synthetic: dict[tuple[str, float, float], list[tuple[float, float]]] = {}
    # (alpha, gamma) -> per seed: {strategy: (mean participation, min, game welfare)}
    staying: dict[tuple[float, float], list[dict[str, tuple[float, float, float]]]] = {}
    for budget in BUDGETS:
        for alpha in ALPHAS:
            for seed in seeds:
                base = prepare(config(seed, alpha, GAMMAS[0], budget))
                for gamma in GAMMAS:
                    cfg = config(seed, alpha, gamma, budget)
                    res = simulate(cfg, setup=with_gamma(base, cfg))
                    for R in HORIZONS:
                        welfare.setdefault((budget, alpha, gamma, R), []).append(
                            {
                                k: float(np.nansum(v.utilities_measured[:R]))
                                for k, v in res.strategies.items()
                            }
                        )
                    mech, eq = res.strategies["mechanism"], res.strategies["equilibrium"]
                    synthetic.setdefault((budget, alpha, gamma), []).append(
                        (
                            float(mech.synthetic_per_round.mean()),
                            float(eq.synthetic_per_round.mean()),
                        )
                    )
                    if budget == BUDGETS[0]:
                        game = cfg.game.model_copy(update={"outside_option": "standalone"})
                        out_cfg = cfg.model_copy(update={"game": game})
                        part = simulate(out_cfg, setup=with_gamma(base, out_cfg), train=False)
                        staying.setdefault((alpha, gamma), []).append(
                            {
                                k: (
                                    float(v.participation_per_round.mean()),
                                    float(v.participation_per_round.min()),
                                    v.social_welfare,
                                )
                                for k, v in part.strategies.items()
                            }
                        )
                print(
                    f"  done budget={budget} alpha={alpha} ({time.perf_counter() - start:.0f} s)",
                    file=sys.stderr,
                )

    print("| budget | α_D | γ | rounds | mechanism wins | margin over best baseline "
          "(mean; worst) | best baseline | synthetic/round mech / eq |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for (budget, alpha, gamma, R), runs in welfare.items():
        margins, best = [], []
        for w in runs:
            rival = max(BASELINES, key=lambda k: w[k])
            best.append(rival)
            margins.append(w["mechanism"] - w[rival])
        wins = sum(m >= 0 for m in margins)
        common = max(set(best), key=best.count)
        syn = np.mean(synthetic[budget, alpha, gamma], axis=0)
        print(
            f"| {budget} | {alpha:g} | {gamma:g} | {R} | {wins}/{len(runs)} | "
            f"{np.mean(margins):+.3f}; {min(margins):+.3f} | {common} | "
            f"{syn[0]:.0f} / {syn[1]:.0f} |"
        )
    print()
    names = ("mechanism", *BASELINES)
    print("| α_D | γ | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for (alpha, gamma), runs in staying.items():
        cells = []
        for k in names:
            mean = np.mean([r[k][0] for r in runs])
            low = min(r[k][1] for r in runs)
            sw = np.mean([r[k][2] for r in runs])
            cells.append(f"{mean:.0%} (min {low:.0%}); W {sw:.2f}")
        print(f"| {alpha:g} | {gamma:g} | " + " | ".join(cells) + " |")
    print(f"\nruntime {time.perf_counter() - start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main(quick="--quick" in sys.argv[1:])
