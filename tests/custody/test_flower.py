"""Parties custody on Flower's deployment runtime: a SuperLink and three SuperNodes on
loopback; payouts equal operator custody's.

Gaussian naive Bayes only (one round trip, about 80 s): every Flower message starts a
ClientApp process, so logistic regression's Newton round trips take minutes here; the
same ServerApp code runs logistic regression through an in-process grid in
``test_flower_transport.py``, and the protocol itself is checked in ``test_protocol.py``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.naive_bayes import GaussianNB
from sklearn.preprocessing import StandardScaler

from coopml.custody.learners import learner_spec
from coopml.data import Party, load_dataset, make_parties, train_validation_split
from coopml.market import run_market

pytest.importorskip("flwr")
from coopml.custody.deployment import Deployment

pytestmark = pytest.mark.slow
COLUMNS = ["radius", "texture", "perimeter", "area"]


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, list[Party]]]:
    """Three parties' files, a SuperLink and one SuperNode per party (all on 127.0.0.1);
    every process is killed at the end, also when a test fails."""
    root = tmp_path_factory.mktemp("custody")
    ds = load_dataset("breast_cancer")
    X, X_val, y, y_val = train_validation_split(ds.X[:, :4], ds.y, random_state=0)
    scale = StandardScaler().fit(X)  # well conditioned: few Newton round trips
    X, X_val = scale.transform(X), scale.transform(X_val)
    parties = make_parties(X[:30], y[:30], 3, random_state=0)
    k = len(y_val) // 3  # party_0 holds the whole validation set (the shared task too)
    own = [(X_val, y_val)] + [
        (X_val[i * k : (i + 1) * k], y_val[i * k : (i + 1) * k]) for i in (1, 2)
    ]
    parties = [Party(p.name, p.X, p.y, *own[i]) for i, p in enumerate(parties)]
    with Deployment(root / "flower") as deployment:
        for p in parties:
            config = {"target": "label", "features": ",".join(COLUMNS), "log": root / p.name}
            for kind, (Xp, yp) in {"train": (p.X, p.y), "validation": (p.X_val, p.y_val)}.items():
                frame = pd.DataFrame(Xp, columns=COLUMNS).assign(label=yp)
                # columns in another order in each file: matched by name, not position
                frame = frame[list(reversed(frame.columns))] if p.name == "party_1" else frame
                frame.to_csv(root / f"{p.name}-{kind}.csv", index=False)
                config[kind] = root / f"{p.name}-{kind}.csv"
            deployment.add_node(p.name, config)
        yield deployment, parties


def _payouts(record: dict[str, Any]) -> list[float]:
    return [line["payout"] for line in record["parties"]]


def test_three_supernodes_settle_as_operator_custody(
    market: tuple[Deployment, list[Party]],
) -> None:
    deployment, parties = market
    names = [p.name for p in parties]
    started = time.monotonic()
    nb = deployment.run(
        {
            "names": names,
            "learner": learner_spec(GaussianNB()),
            "validator": "party_0",
            "timeout": 180,  # SuperNodes still starting on a busy CI machine
        }
    )
    assert nb["ok"], nb
    print(f"Gaussian NB over Flower: {time.monotonic() - started:.0f} s", nb["bytes_out"])
    shared = (parties[0].X_val, parties[0].y_val)
    reference = run_market(parties, GaussianNB(), shared, duplicates="ignore").settlement
    np.testing.assert_allclose(
        _payouts(nb["settlement"]), [p.payout for p in reference.parties], atol=1e-6
    )
    assert max(abs(p.payout) for p in reference.parties) > 1e-3

    # every party's agent logged what it answered; no reply carried a row
    log = (Path(deployment.root).parent / "party_1").read_text().splitlines()
    assert any('"kind": "moments"' in line for line in log)
