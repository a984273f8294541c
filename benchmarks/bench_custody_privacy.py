"""The privacy knob's price: error in the Shapley values and payouts against epsilon.

Four markets, each a parties-custody round where every agent adds Gaussian-mechanism
noise (delta = 1e-5), against the exact round (no privacy) on the same data:

* ``nb``, ``lda``, ``logistic``: breast cancer (bundled), features standardised (the
  scale is taken as public: in a real consortium, publish the scale or clip in the
  data's own units), 4 parties of the training split, a buyer owning the validation
  split; Gaussian naive Bayes, LDA, L2 logistic regression (the noisy federated Newton
  method); rows clipped to norm C = 8; accuracy;
* ``ridge``: diabetes (bundled), features and target standardised, 4 parties, a buyer
  owning the validation split, ``Ridge(alpha=10)``, rows clipped to C = 4 and targets
  to T = 3; clipped R^2.

Writes docs/img/custody_privacy.png and prints the tables quoted in docs/custody.md.

Usage: python benchmarks/bench_custody_privacy.py [--quick] [MARKET ...]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB
from sklearn.preprocessing import StandardScaler

from coopml.coalitions import shapley
from coopml.custody import Agent, AgentError, LocalTransport, run_custody_market
from coopml.custody.privacy import GaussianMechanism
from coopml.data import Party, load_dataset, make_parties, train_validation_split

EPSILONS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 1000.0, float("inf"))  # inf: clipping only
DELTA, M = 1e-5, 4
#: noise draws per epsilon (logistic regression's rounds are the slowest)
DRAWS = {"nb": 40, "lda": 40, "logistic": 20, "ridge": 40}
TITLES = {
    "nb": "Gaussian NB, breast cancer",
    "lda": "LDA, breast cancer",
    "logistic": "logistic regression, breast cancer",
    "ridge": "Ridge(alpha=10), diabetes",
}


def market(name: str) -> dict[str, Any]:
    """The parties, the buyer's validation set, the learner and the mechanism's knobs."""
    if name == "ridge":
        ds = load_dataset("diabetes")
        Xs = StandardScaler().fit_transform(ds.X)
        ys = (ds.y - ds.y.mean()) / ds.y.std()
        X, X_val, y, y_val = train_validation_split(Xs, ys, random_state=0)
        return {
            "parties": make_parties(X, y, M, random_state=0),
            "val": (X_val, y_val),
            "learner": Ridge(alpha=10.0),
            "scorer": "clipped_r2",
            "knobs": {"clip": 4.0, "target_clip": 3.0},
            "task": "regression",
        }
    ds = load_dataset("breast_cancer")
    Xs = StandardScaler().fit_transform(ds.X)
    X, X_val, y, y_val = train_validation_split(Xs, ds.y, random_state=0)
    learner = {
        "nb": GaussianNB(),
        "lda": LinearDiscriminantAnalysis(),
        "logistic": LogisticRegression(),
    }[name]
    return {
        "parties": make_parties(X, y, M, random_state=0),
        "val": (X_val, y_val),
        "learner": learner,
        "scorer": "accuracy",
        "knobs": {"clip": 8.0, "labels": np.unique(ds.y).tolist()},
        "task": "classification",
    }


def sweep(name: str, quick: bool) -> list[tuple[float, ...]]:
    spec = market(name)
    parties, (X_val, y_val) = spec["parties"], spec["val"]
    names = [p.name for p in parties]

    def round_(mech: GaussianMechanism | None, seed: int) -> tuple[Any, Any, float, Any]:
        buyer = Agent(Party("buyer", X_val[:1], y_val[:1], X_val, y_val))
        agents = [Agent(p, mech, random_state=1000 * seed + j) for j, p in enumerate(parties)]
        r = run_custody_market(
            LocalTransport([*agents, buyer]),
            names,
            spec["learner"],
            "buyer",
            rule="shapley",
            scorer=spec["scorer"],
        )
        phi = shapley(r.games[0]).values
        pay = np.array([p.fee for p in r.settlement.parties])
        return phi, pay, float(r.games[0].table[-1]), r.settlement.provenance["privacy"]

    phi0, pay0, v0, _ = round_(None, 0)
    draws = 3 if quick else DRAWS[name]
    print(f"\n## {TITLES[name]} ({M} parties, {draws} draws per epsilon)\n")
    print(f"exact: Shapley {phi0.round(3).tolist()}, fees {pay0.round(3).tolist()}, v(N) {v0:.3f}")
    print(
        "\n| epsilon | sigma / sensitivity | releases | mean max abs Shapley error | 90th pct | "
        "mean max abs fee error | mean v(N) | rounds failed |"
    )
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for eps in EPSILONS:
        mech = GaussianMechanism(eps, DELTA, **spec["knobs"])
        err_phi, err_pay, vN, failed, record = [], [], [], 0, None
        start = time.perf_counter()
        for s in range(draws):
            try:
                phi, pay, v, privacy = round_(mech, s)
            except (AgentError, ValueError):  # a round refused: never settled on garbage
                failed += 1
                continue
            record = privacy["party_0"]
            err_phi.append(np.abs(phi - phi0).max())
            err_pay.append(np.abs(pay - pay0).max())
            vN.append(v)
        # Newton releases: the plan's noise multiplier (moments: the record's own)
        multiplier = (record or {}).get(
            "noise_multiplier_newton", mech.noise_multiplier(spec["task"])
        )
        releases = (record or {}).get("releases", mech.releases(spec["task"]))
        nan = float("nan")
        row = (
            eps,
            0.0 if np.isinf(eps) else multiplier,
            releases,
            np.mean(err_phi) if err_phi else nan,
            np.quantile(err_phi, 0.9) if err_phi else nan,
            np.mean(err_pay) if err_pay else nan,
            np.mean(vN) if vN else nan,
            failed / draws,
        )
        rows.append(row)
        print(
            "| {:g} | {:.3g} | {} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.0%} |".format(*row),
            f"<!-- {time.perf_counter() - start:.0f} s -->",
        )
    rows.append((np.nan, np.abs(phi0).max()))  # the largest exact Shapley value
    return rows


def main(quick: bool = False, which: tuple[str, ...] = tuple(DRAWS)) -> None:
    results = {name: sweep(name, quick) for name in which}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(9, 6.4), sharex=True)
    for ax, name in zip(axes.ravel(), DRAWS, strict=True):
        ax.set_title(TITLES[name], fontsize=9)
        if name not in results:
            continue
        rows = results[name]
        largest = rows[-1][1]
        a = np.array([r for r in rows[:-1] if np.isfinite(r[0])], dtype=float)
        ax.loglog(a[:, 0], a[:, 3], "o-", label="Shapley values: mean max |error|")
        ax.loglog(a[:, 0], a[:, 4], "^--", label="Shapley values: 90th percentile")
        ax.loglog(a[:, 0], a[:, 5], "s-", label="fees (price 1): mean max |error|")
        ax.axhline(largest, color="grey", lw=0.8, ls=":", label="largest exact Shapley value")
        clip_only = rows[-2][3]
        if np.isfinite(clip_only) and clip_only > 0:
            ax.axhline(clip_only, color="red", lw=0.8, ls="-.", label="clipping alone (no noise)")
        failed = a[a[:, 7] > 0]
        for f in failed:
            ax.annotate(f"{f[7]:.0%} failed", (f[0], f[3]), fontsize=6, color="darkred")
    for ax in axes[1]:
        ax.set_xlabel(r"$\varepsilon$ per agent and round ($\delta=10^{-5}$)")
    for ax in axes[:, 0]:
        ax.set_ylabel("error against the exact round")
    axes[0, 0].legend(fontsize=6)
    fig.tight_layout()
    out = Path(__file__).resolve().parents[1] / "docs" / "img" / "custody_privacy.png"
    fig.savefig(out, dpi=120)
    print(f"figure: {out}")


if __name__ == "__main__":
    names = tuple(a for a in sys.argv[1:] if not a.startswith("--")) or tuple(DRAWS)
    main("--quick" in sys.argv, names)
