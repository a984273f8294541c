"""Parties custody against operator custody: five parties, logistic regression, loopback.

Breast cancer (scikit-learn's bundled copy, standardised: ``_common.breast_cancer``),
398 training rows split among five parties (iid), 30 features, ``LogisticRegression()``.
``party_0`` owns the whole validation split (171 rows, the shared task of the
single-task market); in the per-party market every other party scores on its own fifth
of it. Three ways to settle the same market:

* operator custody -- :func:`coopml.market.run_market` on the pooled rows (the library,
  ``duplicates="ignore"`` as parties custody cannot screen rows);
* parties custody in process -- :func:`coopml.custody.run_custody_market` over
  :class:`~coopml.custody.LocalTransport` (the protocol's own cost, no carrier);
* parties custody over Flower's deployment runtime -- a SuperLink and five SuperNodes on
  127.0.0.1 (:class:`coopml.custody.deployment.Deployment`), each SuperNode running
  coopml's ClientApp on its party's CSV files, one ``flwr run`` per round.

Reported per market: wall time, ratio to operator custody, Flower messages and round
trips, and the bytes each party sent and received, counted on the encoded messages
(:func:`coopml.custody.flower.encoded_bytes`: each ``Array``'s serialised bytes plus
the JSON string; Flower's per-object framing not included), and the largest payout
difference to operator custody. The SuperNodes' start-up (until each has registered
with the SuperLink) is timed apart; each round's time runs from ``flwr run`` to the
ServerApp's result.

Usage: python benchmarks/bench_custody.py [--quick] [--no-flower]
(``--quick``: the single-task market only.)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _common import breast_cancer, emit, load_average, timed
from sklearn.linear_model import LogisticRegression

from coopml.custody import Agent, LocalTransport, run_custody_market
from coopml.custody.flower import encode, encoded_bytes
from coopml.custody.learners import learner_spec
from coopml.data import Party, make_parties
from coopml.market import run_market

M = 5


def market() -> tuple[list[Party], tuple[np.ndarray, np.ndarray], list[str]]:
    """The five parties (each with its own validation rows) and the shared task."""
    X, y, X_val, y_val = breast_cancer()
    parties = make_parties(X, y, M, random_state=0)
    k = len(y_val) // M
    own = [(X_val, y_val)] + [
        (X_val[i * k : (i + 1) * k], y_val[i * k : (i + 1) * k]) for i in range(1, M)
    ]
    parties = [Party(p.name, p.X, p.y, *own[i]) for i, p in enumerate(parties)]
    return parties, (X_val, y_val), [f"x{j}" for j in range(X.shape[1])]


class CountingTransport(LocalTransport):
    """The in-process carrier, counting round trips and the bytes of the encoded
    messages exactly as the Flower path counts them."""

    def __init__(self, agents: list[Agent]) -> None:
        super().__init__(agents)
        self.exchanges = self.messages = 0
        self.sent = dict.fromkeys(self.agents, 0)
        self.received = dict.fromkeys(self.agents, 0)

    def exchange(self, requests: Any) -> dict[str, dict[str, Any]]:
        replies = super().exchange(requests)
        self.exchanges += 1
        self.messages += len(requests)
        for name, request in requests.items():
            self.received[name] += encoded_bytes(encode(request))
            self.sent[name] += encoded_bytes(encode(replies[name]))
        return replies


def payouts(settlement: Any) -> np.ndarray:
    if isinstance(settlement, dict):
        return np.array([line["payout"] for line in settlement["parties"]])
    return np.array([p.payout for p in settlement.parties])


def start_flower(root: Path, parties: list[Party], columns: list[str]) -> tuple[Any, float]:
    """A SuperLink and one SuperNode per party (as the service starts them); returns
    the deployment and the seconds until every SuperNode has registered."""
    from coopml.custody.deployment import Deployment

    started = time.perf_counter()
    deployment = Deployment(root / "flower", persist=False).start()
    for p in parties:
        config: dict[str, Any] = {"target": "label", "features": ",".join(columns)}
        for kind, (X, y) in {"train": (p.X, p.y), "validation": (p.X_val, p.y_val)}.items():
            path = root / f"{p.name}-{kind}.csv"
            pd.DataFrame(X, columns=columns).assign(label=y).to_csv(path, index=False)
            config[kind] = path
        config["rows"] = root / f"{p.name}.rows.npz"  # as `coopml agent` sets it
        deployment.add_node(p.name, config)
    deadline = time.monotonic() + 300
    while not all("SuperNode ID" in deployment.log(f"node-{p.name}") for p in parties):
        if time.monotonic() > deadline:
            deployment.close()
            raise RuntimeError("the SuperNodes did not register within 300 s")
        time.sleep(0.2)
    return deployment, time.perf_counter() - started


def main(argv: list[str]) -> None:
    parties, shared, columns = market()
    names = [p.name for p in parties]
    modes: dict[str, str | None] = {"single-task": "party_0", "per-party": None}
    if "--quick" in argv:
        del modes["per-party"]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        deployment, startup = (None, 0.0)
        if "--no-flower" not in argv:
            deployment, startup = start_flower(Path(tmp), parties, columns)
            print(f"SuperLink + {M} SuperNodes registered in {startup:.1f} s", flush=True)
        try:
            for mode, validator in modes.items():
                load_before = load_average()
                operator, t_op = timed(
                    lambda v=validator: run_market(
                        parties, LogisticRegression(), shared if v else None, duplicates="ignore"
                    )
                )
                reference = payouts(operator.settlement)
                local = CountingTransport([Agent(p) for p in parties])
                result, t_local = timed(
                    lambda v=validator, t=local: run_custody_market(
                        t, names, LogisticRegression(), v
                    )
                )
                row: dict[str, Any] = {
                    "market": mode,
                    "seconds_operator": t_op,
                    "seconds_in_process": t_local,
                    "exchanges": local.exchanges,
                    "messages": local.messages,
                    "bytes_sent_in_process": local.sent,
                    "bytes_received_in_process": local.received,
                    "max_payout_diff_in_process": float(
                        np.abs(payouts(result.settlement) - reference).max()
                    ),
                }
                if deployment is not None:
                    job = {
                        "names": names,
                        "learner": learner_spec(LogisticRegression()),
                        "validator": validator,
                        "timeout": 300,
                    }
                    flower, t_flower = timed(lambda j=job: deployment.run(j, wait=1800))
                    if not flower.get("ok"):
                        raise RuntimeError(f"the Flower round failed: {flower}")
                    row.update(
                        seconds_flower=t_flower,
                        seconds_flower_inside=flower["seconds"],
                        flower_exchanges=flower["exchanges"],
                        flower_messages=flower["messages"],
                        bytes_sent_flower={k: v["received"] for k, v in flower["wire"].items()},
                        bytes_received_flower={k: v["sent"] for k, v in flower["wire"].items()},
                        max_payout_diff_flower=float(
                            np.abs(payouts(flower["settlement"]) - reference).max()
                        ),
                        ratio_flower_over_operator=t_flower / t_op,
                    )
                row["load_average"] = [load_before, load_average()]
                rows.append(row)
                print(row, flush=True)
        finally:
            if deployment is not None:
                deployment.close()
    print_table(rows, startup)
    emit({"rows": rows, "seconds_flower_startup": startup, "parties": M})


def print_table(rows: list[dict[str, Any]], startup: float) -> None:
    print(
        "| market | operator custody | parties, in process | parties, Flower | of which: "
        "`flwr run` to ServerApp / hello / protocol | round trips (messages) | per round "
        "trip | Flower / operator | max abs payout diff |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        trips = f"{r['exchanges']} ({r['messages']})"
        flower = split = per_trip = ratio = "-"
        if "seconds_flower" in r:
            inside = r["seconds_flower_inside"]
            start = r["seconds_flower"] - inside["connect"] - inside["round"]
            flower = f"{r['seconds_flower']:.0f} s"
            split = f"{start:.0f} / {inside['connect']:.0f} / {inside['round']:.0f} s"
            trips = f"{r['flower_exchanges']} ({r['flower_messages']}), hello included"
            per_trip = f"{inside['round'] / (r['flower_exchanges'] - 1):.1f} s"
            ratio = f"{r['ratio_flower_over_operator']:.0f}x"
        diff = max(r["max_payout_diff_in_process"], r.get("max_payout_diff_flower", 0.0))
        print(
            f"| {r['market']} | {r['seconds_operator']:.2f} s | {r['seconds_in_process']:.2f} s "
            f"| {flower} | {split} | {trips} | {per_trip} | {ratio} | {diff:.1e} |"
        )
    print(f"\nSuperLink and SuperNodes started and registered (apart): {startup:.1f} s")
    print("\n| market | party | sent (KiB) | received (KiB) |\n|---|---|---|---|")
    for r in rows:
        sent = r.get("bytes_sent_flower", r["bytes_sent_in_process"])
        received = r.get("bytes_received_flower", r["bytes_received_in_process"])
        for name in sent:
            kib = f"{sent[name] / 1024:.0f} | {received[name] / 1024:.0f}"
            print(f"| {r['market']} | {name} | {kib} |")


if __name__ == "__main__":
    main(sys.argv[1:])
