"""Is the collaborative ML market robust to data replication? A measurement.

Ohrimenko, Tople & Tschiatschek (2019) claim their payment rule is robust to replication
under an idealised learner. This script measures how often a party gains by joining
again under r extra identities (each paying its own fee), for every payment rule:

A. under the paper's own assumptions: the gain of a coalition follows a power-law
   learning curve in the number of *distinct* samples it holds (replicas add nothing),
   so replication cannot change any model;
B. with real learners on the bundled breast-cancer data (logistic regression, k-NN and
   k-NN behind a de-duplicating wrapper, the idealised learner of the paper).

    .venv/bin/python examples/replication_study.py [--instances 2000] [--seeds 12]
                                                   [--out docs/img/market_replication.png]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from coopml.market import PAYMENT_RULES, Task, replication_audit, settle

RULES = [r for r in PAYMENT_RULES if r != "similarity_shapley"]


def power_law_gains(sizes: np.ndarray, owner: np.ndarray, A: float, beta: float) -> np.ndarray:
    """Gain table of a market whose players hold the data of ``owner[p]`` (replicas share
    their owner's data): G(S) = 1 - A * n_S^-beta over distinct samples n_S."""
    m = owner.size
    masks = np.arange(1 << m)
    distinct = np.zeros(1 << m)
    for o in np.unique(owner):
        holds = np.zeros(1 << m, dtype=bool)
        for p in np.flatnonzero(owner == o):
            holds |= (masks >> p) & 1 == 1
        distinct += holds * sizes[o]
    return 1.0 - A * np.maximum(distinct, 1.0) ** -beta


def net_gains(table: np.ndarray, rule: str) -> np.ndarray:
    m = table.size.bit_length() - 1
    everyone = tuple(range(m))
    tasks = [Task(i, everyone, table) for i in range(m)]
    return np.array([p.net_gain for p in settle([str(i) for i in range(m)], tasks, rule).parties])


def idealised_study(instances: int, rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for _ in range(instances):
        m = int(rng.integers(2, 6))
        sizes = rng.integers(20, 2000, size=m).astype(float)
        A, beta = rng.uniform(0.2, 0.9), rng.uniform(0.1, 1.0)
        k, r = int(rng.integers(m)), int(rng.integers(1, 4))
        alone = power_law_gains(sizes, np.arange(m), A, beta)
        copies = power_law_gains(sizes, np.r_[np.arange(m), np.full(r, k)], A, beta)
        for rule in RULES:
            gain = net_gains(copies, rule)[[k, *range(m, m + r)]].sum() - net_gains(alone, rule)[k]
            rows.append({"rule": rule, "replicas": r, "gain": gain})
    return pd.DataFrame(rows)


def real_data_study(seeds: int) -> pd.DataFrame:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from coopml.data import load_dataset, make_parties, train_validation_split
    from coopml.learning import DeduplicatingLearner

    learners = {
        "logistic regression": make_pipeline(StandardScaler(), LogisticRegression()),
        "k-NN": make_pipeline(StandardScaler(), KNeighborsClassifier(5)),
        "k-NN, de-duplicated (idealised)": DeduplicatingLearner(
            make_pipeline(StandardScaler(), KNeighborsClassifier(5))
        ),
    }
    ds = load_dataset("breast_cancer")
    frames = []
    for seed in range(seeds):
        X, X_val, y, y_val = train_validation_split(ds.X, ds.y, random_state=seed)
        parties = make_parties(X, y, 4, "size_skew", concentration=1.0, random_state=seed)
        party = parties[seed % 4].name
        for name, learner in learners.items():
            audit = replication_audit(
                parties,
                learner,
                (X_val, y_val),
                party=party,
                kinds=["exact", "noisy"],
                random_state=seed,
            )
            frames.append(audit.table.assign(learner=name, seed=seed))
    return pd.concat(frames, ignore_index=True)


def summarise(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    return frame.groupby(by, sort=False)["gain"].agg(
        profitable=lambda g: float((g > 1e-9).mean()), mean_gain="mean", max_gain="max"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--out", default="docs/img/market_replication.png")
    args = parser.parse_args()
    pd.set_option("display.width", 160)
    start = time.perf_counter()
    ideal = idealised_study(args.instances, np.random.default_rng(0))
    print(f"A. idealised learner, power-law curve, {args.instances} random markets")
    print(summarise(ideal, ["rule"]).round(4).to_string(), "\n")
    real = real_data_study(args.seeds)
    print(f"B. breast cancer, 4 parties, {args.seeds} random splits, 1-3 replicas, exact/noisy")
    print(summarise(real, ["learner", "rule"]).round(4).to_string())
    print(f"\n{time.perf_counter() - start:.0f} s")
    if args.out:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10, 3.6), layout="constrained")
        ax_a, ax_b = fig.subplots(1, 2)
        a = summarise(ideal, ["rule"])["profitable"]
        ax_a.bar(a.index, a.values, color="tab:blue")
        ax_a.set_title("A. idealised learner (paper's assumptions)")
        b = summarise(real, ["rule", "learner"])["profitable"].unstack()
        b.loc[[*RULES, "similarity_shapley"]].plot.bar(ax=ax_b, rot=0)
        ax_b.set_title("B. real learners, breast cancer")
        for ax in (ax_a, ax_b):
            ax.set_ylabel("share of markets where replication paid")
            ax.set_ylim(0, 1)
            ax.tick_params(axis="x", labelsize=8)
        ax_b.legend(fontsize=7, frameon=False)
        fig.savefig(args.out, dpi=100)
        print(f"figure written to {args.out}")


if __name__ == "__main__":
    main()
