"""What the custody tests share (not a test module).

- Flower's ``Grid`` stood in by in-process agents: :class:`InProcessGrid` (the message
  ids, the node list, the replies pulled once) and :class:`AgentGrid` (each node an
  :class:`~coopml.custody.agent.Agent` answering through the ClientApp's own reply
  function ``answer``, with its party's key; silent nodes never answer).
- :func:`serve_in_process`: ``flwr run`` of coopml's ServerApp body ``_run`` in process,
  a failure turned into the result the ServerApp writes, the result through JSON.
- :func:`agent_config`: a party's CSV files and the node config ``coopml agent`` writes.
- :func:`split_market` and :func:`both_custodies`: a three-party market from a dataset,
  run in operator custody (:func:`~coopml.market.run_market`, the reference) and in
  parties custody (:func:`~coopml.custody.run_custody_market`).

Flower is imported only by what needs it, so the modules that use the markets alone do
not need the ``flower`` extra.
"""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray

from coopml.custody import Agent, LocalTransport, run_custody_market
from coopml.custody.learners import clipped_r2
from coopml.data import Party, load_dataset, make_parties, train_validation_split
from coopml.market import run_market

if TYPE_CHECKING:
    from flwr.app import Message, RecordDict

_ids = itertools.count()


class InProcessGrid:
    """``get_node_ids``, ``push_messages``, ``pull_messages`` of a Flower ``Grid``:
    node ``100 + i`` is ``nodes[i]``; :meth:`reply` computes a node's answer to a
    message (``None``: no reply comes)."""

    def __init__(self, nodes: Iterable[Any]) -> None:
        self.nodes: dict[int, Any] = {100 + i: node for i, node in enumerate(nodes)}
        self.replies: dict[str, Message] = {}

    def get_node_ids(self) -> list[int]:
        return list(self.nodes)

    def reply(self, node: int, message: Message) -> RecordDict | None:
        raise NotImplementedError

    def push_messages(self, messages: list[Message]) -> list[str]:
        from flwr.app import Message

        ids = []
        for message in messages:
            message.metadata.__dict__["_message_id"] = f"m{next(_ids)}"
            content = self.reply(message.metadata.dst_node_id, message)
            if content is not None:
                self.replies[message.metadata.message_id] = Message(content, reply_to=message)
            ids.append(message.metadata.message_id)
        return ids

    def pull_messages(self, ids: set[str]) -> list[Message]:
        return [self.replies.pop(i) for i in list(ids) if i in self.replies]


class AgentGrid(InProcessGrid):
    """Each node an agent, answering with the ClientApp's reply function and its
    party's key in ``keys`` (none: unsigned); agents named in ``silent`` never answer
    (a disconnected agent)."""

    def __init__(
        self,
        agents: list[Agent],
        keys: dict[str, str] | None = None,
        silent: tuple[str, ...] = (),
    ) -> None:
        super().__init__(agents)
        self.keys = keys or {}
        self.silent = {n for n, a in self.nodes.items() if a.name in silent}

    def reply(self, node: int, message: Message) -> RecordDict | None:
        from coopml.custody.flower import answer

        if node in self.silent:
            return None
        agent = self.nodes[node]
        return answer(agent, message.content, self.keys.get(agent.name))


def serve_in_process(
    monkeypatch: pytest.MonkeyPatch, grid_for: Callable[[dict[str, Any]], Any]
) -> None:
    """``flwr run`` of coopml's ServerApp, in process: each job runs over the grid
    ``grid_for(job)`` returns; a failure becomes the result the ServerApp writes (``ok``,
    ``error``, ``party``) and the result crosses JSON as the ServerApp's file does."""
    from coopml.custody import flower

    def run_job(job: dict[str, Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        grid = grid_for(job)
        try:
            result = flower._run(grid, dict(job))
        except Exception as exc:  # as the ServerApp reports it
            result = {"ok": False, "error": str(exc), "party": getattr(exc, "party", None)}
        parsed: dict[str, Any] = json.loads(json.dumps(result, default=flower._jsonable))
        return parsed

    monkeypatch.setattr(flower, "run_job", run_job)


def superlink_in_process(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The service behind ``client`` told its SuperLink is on, with the Flower home
    ``flwr run`` reads (the grid of :func:`serve_in_process` stands in for both)."""
    import dataclasses

    from coopml.service.custody import _write_incarnation, custody_dir

    ctx = client.app.state.service
    monkeypatch.setattr(ctx, "settings", dataclasses.replace(ctx.settings, superlink="on"))
    home = custody_dir(ctx.settings) / "flwr-home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text("# the SuperLink connection (not used in process)\n")
    _write_incarnation(custody_dir(ctx.settings), "in-process")  # a SuperLink "runs"


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """``frame`` as a CSV file without the index."""
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def agent_config(
    directory: Path, name: str, frames: dict[str, pd.DataFrame], **config: str
) -> dict[str, str]:
    """The node config of party ``name``'s agent: each of its frames written to
    ``directory / "{name}-{role}.csv"`` and named by its role, plus ``config``."""
    out = {"party": name, **config}
    for role, frame in frames.items():
        path = directory / f"{name}-{role}.csv"
        path.write_bytes(csv_bytes(frame))
        out[role] = str(path)
    return out


def split_market(
    X: NDArray[Any], y: NDArray[Any], multi: bool, n_train: int, random_state: int = 0
) -> tuple[list[Party], Any]:
    """Three parties from the first ``n_train`` training rows and the validation rows
    ``(X_val, y_val)``; with ``multi``, each party holds a third of them as its task."""
    X, X_val, y, y_val = train_validation_split(X, y, random_state=random_state)
    parties = make_parties(X[:n_train], y[:n_train], 3, random_state=random_state)
    if multi:
        k = len(y_val) // 3
        parties = [
            Party(p.name, p.X, p.y, X_val[i * k : (i + 1) * k], y_val[i * k : (i + 1) * k])
            for i, p in enumerate(parties)
        ]
    return parties, (X_val, y_val)


def breast_cancer_parties(feature_names: list[str] | None = None) -> tuple[list[Party], Any]:
    """Three parties of 15 rows; ``party_0`` holds the validation rows."""
    ds = load_dataset("breast_cancer")
    X, X_val, y, y_val = train_validation_split(ds.X, ds.y, random_state=0)
    parties = make_parties(X[:45], y[:45], 3, random_state=0)
    parties[0] = Party("party_0", parties[0].X, parties[0].y, X_val, y_val)
    if feature_names is not None:
        parties = [
            Party(p.name, p.X, p.y, p.X_val, p.y_val, feature_names=feature_names) for p in parties
        ]
    return parties, (X_val, y_val)


def both_custodies(
    parties: list[Party],
    validation: Any,
    learner: Any,
    scorer: str,
    multi: bool,
    reference_scorer: Any = None,
    **options: Any,
) -> tuple[Any, Any, LocalTransport]:
    """The market in operator custody (scored by ``reference_scorer``, by default the
    scorer named ``scorer``) and in parties custody over a :class:`LocalTransport`; for
    one shared task (not ``multi``) the validation rows belong to a buyer who is not a
    player. ``options`` go to both (``rule``, ``valuation``, ``stopping``, ...).
    Returns ``(reference, custody, transport)``."""
    if reference_scorer is None:
        reference_scorer = clipped_r2 if scorer == "clipped_r2" else scorer
    reference = run_market(
        parties,
        learner,
        None if multi else validation,
        scorer=reference_scorer,
        duplicates="ignore",
        **options,
    )
    agents = [Agent(p) for p in parties]
    if not multi:
        X_val, y_val = validation
        agents.append(Agent(Party("buyer", X_val[:1], y_val[:1], X_val, y_val)))
    transport = LocalTransport(agents)
    names = [p.name for p in parties]
    custody = run_custody_market(
        transport, names, learner, None if multi else "buyer", scorer=scorer, **options
    )
    return reference, custody, transport


def payouts_match(expected: dict[str, float], got: dict[str, float], atol: float = 1e-6) -> None:
    """Payouts matched by party name: a market where data is worth something, the same
    parties, each payout within ``atol``."""
    assert max(abs(v) for v in expected.values()) > 1e-3
    assert set(got) == set(expected)
    names = sorted(got)
    np.testing.assert_allclose(
        [got[n] for n in names], [expected[n] for n in names], rtol=0, atol=atol
    )


def assert_same_settlement(ref: Any, got: Any, atol: float = 1e-6) -> None:
    """Parties custody's settlement ``got`` is operator custody's ``ref``: it verifies,
    lists the same parties in the same order with the same members, and every payout
    and fee is within ``atol``."""
    assert got.verify().ok
    assert [p.name for p in got.parties] == [p.name for p in ref.parties]
    np.testing.assert_allclose(
        [[p.payout, p.fee] for p in got.parties],
        [[p.payout, p.fee] for p in ref.parties],
        rtol=0,
        atol=atol,
    )
    assert [p.members for p in got.parties] == [p.members for p in ref.parties]
