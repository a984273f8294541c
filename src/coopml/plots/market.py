"""Figures of a market round: the settlement and the replication audit."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from coopml.market import ReplicationAudit, Settlement

__all__ = ["plot_replication_audit", "plot_settlement"]


def plot_settlement(settlement: Settlement) -> Figure:
    """Fee, payment for improvement, payout and net gain of every party.

    Examples
    --------
    >>> from coopml.market import Task, settle
    >>> g = np.array([0.5, 0.6, 0.7, 0.9])
    >>> s = settle(["a", "b"], [Task(0, (0, 1), g), Task(1, (0, 1), g)], mode="single")
    >>> len(plot_settlement(s).axes[0].patches)
    8
    """
    from matplotlib.figure import Figure

    names = settlement.names
    series = {
        "fee (to join)": [p.fee for p in settlement.parties],
        "charge (c × improvement, 0 if refunded)": [p.charge for p in settlement.parties],
        "payout (for its data)": [p.payout for p in settlement.parties],
        "net gain (payout − charge)": [p.net_gain for p in settlement.parties],
    }
    fig = Figure(figsize=(max(6.0, 1.1 * len(names) + 2) + 2.5, 4.0), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(names))
    width = 0.8 / len(series)
    for k, (label, values) in enumerate(series.items()):
        ax.bar(x + (k - (len(series) - 1) / 2) * width, values, width, label=label)
    ax.axhline(0.0, color="black", linewidth=0.8)
    crowded = sum(len(n) for n in names) > 60
    ax.set_xticks(x, names, rotation=30 if crowded else 0, ha="right" if crowded else "center")
    ax.set_ylabel(f"money (units of the price c = {settlement.price:g})")
    ax.set_title(f"Settlement under the '{settlement.rule}' rule")
    # the key sits beside the axes, never over the bars
    ax.legend(frameon=False, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def plot_replication_audit(audit: ReplicationAudit) -> Figure:
    """Gain from replicating, against the number of replicas, one line per rule; one
    panel per kind of copy (exact, noisy). Above zero, replication paid."""
    from matplotlib.figure import Figure

    table = audit.table
    kinds = list(dict.fromkeys(table["kind"]))
    fig = Figure(figsize=(4.2 * len(kinds) + 3, 3.6), layout="constrained")
    axes = fig.subplots(1, len(kinds), sharey=True, squeeze=False)[0]
    for ax, kind in zip(axes, kinds, strict=True):
        part = table[table["kind"] == kind]
        for rule, rows in part.groupby("rule", sort=False):
            ax.plot(rows["replicas"], rows["gain"], marker="o", label=str(rule))
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_xticks(sorted(set(part["replicas"])))
        ax.set_xlabel("replicas")
        ax.set_title(f"{kind} copies")
    axes[0].set_ylabel(f"gain of '{audit.party}' from replicating (units of c)")
    axes[-1].legend(
        frameon=False,
        fontsize="small",
        title="payment rule",
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
    )
    return fig
