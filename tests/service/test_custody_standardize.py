"""A parties-custody round of a standardised learner (``learner.params.standardize``)
through the service settles and predicts as the same round in operator custody (the
in-process grid of ``test_custody_prediction.py``; no Flower process)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

pytest.importorskip("flwr")
from tests.custody._grid import agent_config, payouts_match
from tests.service.test_custody_prediction import (
    _frames,
    _market,
    _party,
    _payouts,
    _predict,
    _round,
    _upload,
    in_process_flower,
)

from coopml.custody.agent import agent_from_config

__all__ = ["in_process_flower"]  # the fixture, used by name


def test_standardised_ridge_round_equals_operator_custody(
    client: TestClient, tmp_path: Path, in_process_flower: dict[str, Any]
) -> None:
    columns, target, frames = _frames("regression")
    # features at very different scales and a constant column, in every party's files
    for files in frames:
        for frame in files.values():
            frame[columns[0]] *= 1e3
            frame[columns[1]] *= 1e-3
            frame[columns[2]] = 3.0
    operator = _market(client, "regression", "operator", "aggregate_only")
    parties = _market(client, "regression", "parties", "aggregate_only")
    tokens: dict[str, dict[str, str]] = {"operator": {}, "parties": {}}
    for i, files in enumerate(frames):
        name = f"party_{i}"
        tokens["operator"][name] = token = _party(client, operator, name)
        _upload(client, operator, token, name, files, target)
        tokens["parties"][name] = token = _party(client, parties, name)
        features = ",".join(sorted(columns))
        config = agent_config(tmp_path, name, files, target=target, features=features)
        in_process_flower["agents"].append((agent_from_config(config), token))
    reference = _round(client, operator, "ridge", "per_party", {"standardize": True})
    custody = _round(client, parties, "ridge", "per_party", {"standardize": True})
    assert in_process_flower["jobs"][-1]["learner"]["standardize"] is True
    expected, got = _payouts(client, reference), _payouts(client, custody)
    payouts_match(expected, got, atol=1e-6)
    names = sorted(got)
    rows = pd.concat([f["validation"] for f in frames], ignore_index=True)
    for name in names:
        ours = _predict(client, custody, tokens["parties"][name], rows)
        theirs = _predict(client, reference, tokens["operator"][name], rows)
        np.testing.assert_allclose(ours, theirs, rtol=1e-8, atol=1e-8)
