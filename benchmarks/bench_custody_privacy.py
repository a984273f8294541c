"""The privacy knob's price: error in the Shapley values and payouts against epsilon.

Breast cancer (bundled), features standardised (the scale is taken as public: in a
real consortium, publish the scale or clip in the data's own units), 4 parties of the
training split, a buyer owning the validation split; Gaussian naive Bayes in a
parties-custody round where every agent adds Gaussian-mechanism noise
(delta = 1e-5, rows clipped to norm C = 8), 40 noise draws per epsilon. The exact
round (no privacy) is the reference. Writes docs/img/custody_privacy.png and prints the
table quoted in docs/custody.md.

Usage: python benchmarks/bench_custody_privacy.py [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from sklearn.naive_bayes import GaussianNB
from sklearn.preprocessing import StandardScaler

from coopml.coalitions import shapley
from coopml.custody import Agent, AgentError, LocalTransport, run_custody_market
from coopml.custody.privacy import GaussianMechanism
from coopml.data import Party, load_dataset, make_parties, train_validation_split

EPSILONS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 1000.0, float("inf"))  # inf: clipping only
DELTA, CLIP, M = 1e-5, 8.0, 4


def main(quick: bool = False) -> None:
    ds = load_dataset("breast_cancer")
    Xs = StandardScaler().fit_transform(ds.X)
    X, X_val, y, y_val = train_validation_split(Xs, ds.y, random_state=0)
    parties = make_parties(X, y, M, random_state=0)
    names = [p.name for p in parties]
    labels = np.unique(ds.y).tolist()

    def round_(mech: GaussianMechanism | None, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
        buyer = Agent(Party("buyer", X_val[:1], y_val[:1], X_val, y_val))
        agents = [Agent(p, mech, random_state=1000 * seed + j) for j, p in enumerate(parties)]
        r = run_custody_market(
            LocalTransport([*agents, buyer]), names, GaussianNB(), "buyer", rule="shapley"
        )
        phi = shapley(r.games[0]).values
        pay = np.array([p.fee for p in r.settlement.parties])
        return phi, pay, float(r.games[0].table[-1])

    phi0, pay0, v0 = round_(None, 0)
    draws = 5 if quick else 40
    print(f"exact: Shapley {phi0.round(4).tolist()}, fees {pay0.round(4).tolist()}, v(N) {v0:.4f}")
    print(
        "| epsilon | sigma / sensitivity | mean max abs Shapley error | 90th pct | "
        "mean max abs fee error | mean v(N) | rounds failed |"
    )
    print("|---|---|---|---|---|---|---|")
    rows = []
    for eps in EPSILONS:
        mech = GaussianMechanism(eps, DELTA, clip=CLIP, labels=labels)
        err_phi, err_pay, vN, failed = [], [], [], 0
        for s in range(draws):
            try:
                phi, pay, v = round_(mech, s)
            except AgentError:  # e.g. a party's noisy counts round to no rows
                failed += 1
                continue
            err_phi.append(np.abs(phi - phi0).max())
            err_pay.append(np.abs(pay - pay0).max())
            vN.append(v)
        row = (
            eps,
            mech.noise_multiplier("classification"),
            np.mean(err_phi),
            np.quantile(err_phi, 0.9),
            np.mean(err_pay),
            np.mean(vN),
            failed / draws,
        )
        rows.append(row)
        print("| {:g} | {:.3g} | {:.4f} | {:.4f} | {:.4f} | {:.4f} | {:.0%} |".format(*row))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a = np.array([r for r in rows if np.isfinite(r[0])])
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.loglog(a[:, 0], a[:, 2], "o-", label="Shapley values: mean max |error|")
    ax.loglog(a[:, 0], a[:, 3], "^--", label="Shapley values: 90th percentile")
    ax.loglog(a[:, 0], a[:, 4], "s-", label="fees (price 1): mean max |error|")
    ax.axhline(
        np.abs(phi0).max(), color="grey", lw=0.8, ls=":", label="largest exact Shapley value"
    )
    ax.axhline(rows[-1][2], color="red", lw=0.8, ls="-.", label="clipping alone (no noise)")
    ax.set_xlabel(r"$\varepsilon$ per agent and round ($\delta=10^{-5}$, $C=8$)")
    ax.set_ylabel("error against the exact round")
    ax.set_title(f"Gaussian NB, breast cancer, {M} parties, {draws} draws")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(__file__).resolve().parents[1] / "docs" / "img" / "custody_privacy.png"
    fig.savefig(out, dpi=120)
    print(f"figure: {out}")


if __name__ == "__main__":
    main("--quick" in sys.argv)
