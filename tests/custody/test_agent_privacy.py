"""The privacy knob in a deployment: ``coopml agent``'s options, and a private agent's
state across the fresh processes Flower starts for each message (issue 17).

Each "process" below is an :class:`~coopml.custody.agent.Agent` built afresh from the
same node config (as the ClientApp builds one per message), sharing only the state
file on the party's disk.
"""

from __future__ import annotations

import json
import math
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from coopml.cli import app
from coopml.cli.agent import privacy_config
from coopml.custody.agent import Agent, agent_from_config
from coopml.custody.privacy import (
    GaussianMechanism,
    PrivateRelease,
    compose_rounds,
    gdp_delta,
    gdp_mu,
)
from coopml.custody.privacy_state import PrivacyState
from coopml.data import Party

EPS, DELTA, CLIP = 2.0, 1e-5, 3.0


def _write(tmp_path: Path, task: str) -> Path:
    rng = np.random.default_rng(11)
    X = rng.normal(size=(40, 3))
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    if task == "classification":
        frame["y"] = (X[:, 0] + 0.5 * rng.normal(size=40) > 0).astype(int)
    else:
        frame["y"] = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=40)
    path = tmp_path / f"alice-{task}.csv"
    frame.to_csv(path, index=False)
    return path


def _config(tmp_path: Path, task: str, round_key: str = "run-1") -> dict[str, Any]:
    config: dict[str, Any] = {
        "party": "alice",
        "train": str(_write(tmp_path, task)),
        "target": "y",
        "features": "a,b,c",
        "log": str(tmp_path / "alice.log"),
        "epsilon": str(EPS),
        "delta": str(DELTA),
        "clip": str(CLIP),
        "round": round_key,
    }
    if task == "classification":
        config["labels"] = "[0, 1]"
    else:
        config["target_clip"] = "5.0"
    return config


# ---------------------------------------------------------------------- the CLI's options
@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--epsilon", "1", "--clip", "3"], "--epsilon, --delta and --clip go together"),
        (["--epsilon", "1", "--clip", "3"], "(missing --delta)"),
        (["--epsilon", "0", "--delta", "1e-5", "--clip", "3"], "--epsilon must be positive"),
        (["--epsilon", "-1", "--delta", "1e-5", "--clip", "3"], "received -1.0"),
        (["--epsilon", "1", "--delta", "1.5", "--clip", "3"], "--delta must be in (0, 1)"),
        (["--epsilon", "1", "--delta", "0", "--clip", "3"], "received 0.0"),
        (["--epsilon", "1", "--delta", "1e-5", "--clip", "0"], "--clip must be a positive"),
        (["--epsilon", "1", "--delta", "1e-5", "--clip", "inf"], "inf only with --epsilon inf"),
        (["--epsilon", "1", "--delta", "1e-5", "--clip", "nan"], "received nan"),
        (
            ["--epsilon", "1", "--delta", "1e-5", "--clip", "3", "--target-clip", "-2"],
            "--target-clip must be a positive finite number",
        ),
        (["--target-clip", "2"], "--target-clip set the privacy noise, which needs --epsilon"),
        (["--labels", "0,1"], "--labels set the privacy noise"),
        (["--lifetime-epsilon", "4"], "needs --epsilon, --delta and --clip; received 4.0 without"),
        (
            ["--epsilon", "1", "--delta", "1e-5", "--clip", "3", "--lifetime-epsilon", "0"],
            "--lifetime-epsilon must be positive",
        ),
    ],
)
def test_cli_refuses_bad_privacy_options_before_asking_the_service(
    tmp_path: Path, options: list[str], message: str
) -> None:
    train = _write(tmp_path, "classification")
    # an unreachable service: the options are refused before any connection
    args = ["agent", "--market", "m1", "--train", str(train), "--target", "y"]
    args += ["--url", "http://127.0.0.1:9", "--token", "t", *options]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()), result.output
    assert "127.0.0.1:9" not in result.output  # never got as far as the service


def test_privacy_options_checked_against_the_market() -> None:
    ok = privacy_config(1.0, 1e-5, 3.0, 4.0, None, "regression", None, "number")
    assert ok == {"epsilon": "1.0", "delta": "1e-05", "clip": "3.0", "target_clip": "4.0"}
    with pytest.raises(ValueError, match="--target-clip is needed in a regression market"):
        privacy_config(1.0, 1e-5, 3.0, None, None, "regression", None, "number")
    with pytest.raises(ValueError, match="--labels is for classification markets"):
        privacy_config(1.0, 1e-5, 3.0, 4.0, "0,1", "regression", None, "number")
    with pytest.raises(ValueError, match="--target-clip is for regression markets"):
        privacy_config(1.0, 1e-5, 3.0, 4.0, None, "classification", None, "integer")
    with pytest.raises(ValueError, match="--labels is needed: the market's schema declares"):
        privacy_config(1.0, 1e-5, 3.0, None, None, "classification", None, "integer")
    with pytest.raises(ValueError, match="of the labels' type 'integer'; received 'yes'"):
        privacy_config(1.0, 1e-5, 3.0, None, "0,yes", "classification", None, "integer")
    with pytest.raises(ValueError, match="at least 2 distinct classes; received '1,1'"):
        privacy_config(1.0, 1e-5, 3.0, None, "1,1", "classification", None, "integer")
    schema = {"classes": ["benign", "malignant"]}
    with pytest.raises(ValueError, match=r"declares, \['benign', 'malignant'\]; received"):
        privacy_config(1.0, 1e-5, 3.0, None, "benign,other", "classification", schema, "string")
    # the schema's classes are the public labels; typed labels from --labels
    got = privacy_config(1.0, 1e-5, 3.0, None, None, "classification", schema, "string")
    assert json.loads(got["labels"]) == ["benign", "malignant"]
    got = privacy_config(1.0, 1e-5, 3.0, None, "1, 0", "classification", None, "integer")
    assert json.loads(got["labels"]) == [1, 0]
    got = privacy_config(1.0, 1e-5, 3.0, None, "true,false", "classification", None, "boolean")
    assert json.loads(got["labels"]) == [True, False]


# ---------------------------------------------------------------- state across processes
def test_the_noise_stream_continues_across_processes_and_never_repeats(tmp_path: Path) -> None:
    m = GaussianMechanism(EPS, DELTA, clip=1.0)
    zeros = np.zeros(6)
    # what re-seeding each process would do: the same draws twice (their difference
    # cancels the noise of two releases) -- the defect the state file prevents
    again = [PrivateRelease(m, 0).release("x", zeros, 1.0, "regression") for _ in range(2)]
    np.testing.assert_array_equal(again[0], again[1])
    state = PrivacyState(tmp_path / "alice.privacy.json", "alice")
    draws = []
    for _ in range(2):  # two processes, both given seed 0
        with state.round("run-1", m, random_state=0) as rnd:
            draws.append(rnd.release.release("x", zeros, 1.0, "regression"))
    assert not np.allclose(draws[0], draws[1])
    # the second process continued the first's stream exactly (one generator, one stream)
    sigma = PrivateRelease(m).sigma(1.0, "regression")
    expected = np.random.default_rng(0).normal(0.0, sigma, size=12)
    np.testing.assert_allclose(np.concatenate(draws), expected, rtol=1e-12)
    assert stat.S_IMODE((tmp_path / "alice.privacy.json").stat().st_mode) == 0o600


def test_two_processes_answer_as_one_agent_and_share_one_budget(tmp_path: Path) -> None:
    config = _config(tmp_path, "regression")
    path = Path(config["log"]).with_suffix(".privacy.json")
    party = agent_from_config(config).party
    m = GaussianMechanism(EPS, DELTA, clip=CLIP, target_clip=5.0)
    moments = {"kind": "moments", "task": "regression"}
    center = {"x": party.X.mean(axis=0), "y": float(party.y.mean())}
    stats = {
        "kind": "statistics",
        "learner": {"name": "LinearRegression", "params": {}},
        "center": center,
    }

    def process(seed: int) -> Agent:  # a fresh ClientApp process (seeded here to compare)
        return Agent(party, m, seed, state=PrivacyState(path, "alice"), round_key="run-1")

    first = process(0).handle(moments)
    second = process(0).handle(stats)
    # the statistics request sent again (its reply was lost): the same release
    resent = process(7)
    again = resent.handle(stats)
    np.testing.assert_array_equal(again["xty"], second["xty"])
    np.testing.assert_array_equal(again["gram"], second["gram"])
    assert resent.log[-1]["repeat"] is True
    # one agent answering both in one process, from the same seed: the same releases,
    # so process two continued the stream (a re-seeded process would not)
    single = Agent(party, m, random_state=0)
    np.testing.assert_allclose(single.handle(moments)["sum_x"], first["sum_x"], rtol=1e-12)
    reference = single.handle(stats)
    for key in ("gram", "xty", "sx"):
        np.testing.assert_allclose(reference[key], second[key], rtol=1e-12)
    # the budget is one across processes: a moments request sent again gets the same
    # release (no new draw, nothing spent), a different statistics request is refused
    third = process(5)
    repeat = third.handle(moments)
    np.testing.assert_array_equal(repeat["sum_x"], first["sum_x"])
    assert third.log[-1]["privacy"]["releases"] == GaussianMechanism.releases("regression")
    other = {**stats, "center": {"x": center["x"] + 1.0, "y": center["y"]}}
    with pytest.raises(ValueError, match="privacy budget spent"):
        process(6).handle(other)


def test_processes_built_from_the_node_config_draw_fresh_noise(tmp_path: Path) -> None:
    """As ``coopml agent`` runs it: OS entropy in every process, the state in the file."""
    config = _config(tmp_path, "regression")
    moments = {"kind": "moments", "task": "regression"}
    a, b = agent_from_config(config), agent_from_config({**config, "round": "run-2"})
    # two rounds' releases of the same rows: independent noise
    assert not np.allclose(a.handle(moments)["sum_x"], b.handle(moments)["sum_x"])
    with pytest.raises(ValueError, match=r"must name its state file .* and the round"):
        agent_from_config({k: v for k, v in config.items() if k != "round"})


def test_the_newton_plan_is_enforced_across_processes(tmp_path: Path) -> None:
    config = _config(tmp_path, "classification")
    agent_from_config(config).handle({"kind": "moments", "task": "classification"})
    newton = {
        "kind": "newton",
        "what": "grad_hess",
        "classes": [0, 1],
        "subset": [0, 1],
        "shift": np.zeros(3),
        "fit_intercept": True,
        "plan": {"pairs": 2},
    }
    first = agent_from_config(config).handle({**newton, "theta": np.zeros((1, 4))})
    assert first["privacy"]["newton_pairs"] == 2
    with pytest.raises(ValueError, match="calibrated its noise to a plan of 2"):
        agent_from_config(config).handle({**newton, "theta": np.ones((1, 4)), "plan": {"pairs": 9}})
    second = agent_from_config(config).handle({**newton, "theta": np.full((1, 4), 0.1)})
    assert not np.allclose(first["grad"], second["grad"])
    with pytest.raises(ValueError, match="the plan allows 2 gradient-Hessian pairs, 2 released"):
        agent_from_config(config).handle({**newton, "theta": np.full((1, 4), 0.2)})
    saved = json.loads(Path(config["log"]).with_suffix(".privacy.json").read_text())
    assert saved["rounds"]["run-1"]["newton_spent"] == 2


def test_the_cumulative_spend_is_recorded_and_logged(tmp_path: Path) -> None:
    from coopml.custody.flower import _append_log

    moments = {"kind": "moments", "task": "classification"}
    for run in ("run-1", "run-2", "run-3"):
        config = _config(tmp_path, "classification", run)
        agent = agent_from_config(config)
        agent.handle(moments)
        _append_log(config, agent)  # what the ClientApp appends to --log
    # a fourth process of round 3 spends nothing new
    agent_from_config(config).handle(moments)
    saved = json.loads(Path(config["log"]).with_suffix(".privacy.json").read_text())
    assert sorted(saved["rounds"]) == ["run-1", "run-2", "run-3"]
    total = saved["total"]
    mu = gdp_mu(EPS, DELTA)
    assert total["rounds"] == 3
    assert total["mu"] == pytest.approx(math.sqrt(3) * mu, rel=1e-12)
    # the composed epsilon is where the 3-round profile meets delta (not 3 * epsilon)
    assert gdp_delta(math.sqrt(3) * mu, total["epsilon"]) == pytest.approx(DELTA, rel=1e-6)
    assert EPS < total["epsilon"] < 3 * EPS
    lines = [json.loads(x) for x in Path(config["log"]).read_text().splitlines()]
    assert [line["privacy"]["round"] for line in lines] == ["run-1", "run-2", "run-3"]
    assert [line["privacy"]["total"]["rounds"] for line in lines] == [1, 2, 3]
    assert lines[-1]["privacy"]["total"]["epsilon"] == pytest.approx(total["epsilon"])
    assert lines[-1]["privacy"]["epsilon"] == EPS and lines[-1]["privacy"]["delta"] == DELTA


def test_a_lifetime_budget_refuses_the_round_that_would_exceed_it(tmp_path: Path) -> None:
    """``lifetime_epsilon``: rounds are answered while the composed spend, this round
    included, stays within it; the next round is refused before any release (its
    message names the party, the budget, the spend and what the round would bring),
    while a round already started is answered to its end."""
    moments = {"kind": "moments", "task": "classification"}
    mu = gdp_mu(EPS, DELTA)
    rounds = next(n for n in range(1, 50) if compose_rounds([mu] * (n + 1), DELTA)["epsilon"] > 3.0)
    for i in range(rounds):
        config = {**_config(tmp_path, "classification", f"run-{i}"), "lifetime_epsilon": "3.0"}
        agent_from_config(config).handle(moments)
    state_file = Path(config["log"]).with_suffix(".privacy.json")
    before = state_file.read_bytes()
    refused = {**config, "round": "run-next"}
    with pytest.raises(ValueError, match=r"party 'alice' has a lifetime privacy budget of ep") as e:
        agent_from_config(refused).handle(moments)
    assert f"over {rounds} rounds" in str(e.value) and "it answers no new round" in str(e.value)
    assert state_file.read_bytes() == before  # nothing released, nothing recorded
    # the last round that fitted is still answered (a resent or later message of it)
    assert agent_from_config(config).handle(moments)["n"] > 0
    # without the budget the same state answers (the spend is still recorded)
    del refused["lifetime_epsilon"]
    agent_from_config(refused).handle(moments)
    assert json.loads(state_file.read_text())["total"]["rounds"] == rounds + 1


def test_the_state_file_refuses_another_mechanism_or_party(tmp_path: Path) -> None:
    config = _config(tmp_path, "classification")
    agent_from_config(config).handle({"kind": "moments", "task": "classification"})
    path = Path(config["log"]).with_suffix(".privacy.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(ValueError, match="round run-1: this agent's noise was calibrated"):
        agent_from_config({**config, "epsilon": "4.0"}).handle({"kind": "moments"})
    with pytest.raises(ValueError, match="belongs to party 'alice', not 'bob'"):
        agent_from_config({**config, "party": "bob"}).handle({"kind": "moments"})
    # an agent without privacy keeps no state (the exact protocol, unchanged)
    plain = {k: v for k, v in config.items() if k not in ("epsilon", "delta", "clip", "labels")}
    agent = agent_from_config(plain)
    assert agent.privacy is None
    reply = agent.handle({"kind": "moments", "task": "classification"})
    assert "privacy" not in reply and "privacy" not in agent.log[-1]
    party = Party("p", np.zeros((2, 1)), [0, 1])
    with pytest.raises(ValueError, match="parameter 'state' needs a privacy mechanism"):
        Agent(party, state=PrivacyState(path, "p"), round_key="r")


def test_string_labels_travel_in_flowers_node_config() -> None:
    pytest.importorskip("flwr")
    from flwr.common.config import parse_config_args

    from coopml.cli.agent import _node_value

    config = privacy_config(1.0, 1e-5, 3.0, None, "no, yes it is", "classification", None, "string")
    text = " ".join(f"{k}={_node_value(v)}" for k, v in config.items())
    parsed = parse_config_args([text])
    assert json.loads(parsed["labels"]) == ["no", "yes it is"]
    assert parsed["epsilon"] == "1.0" and parsed["delta"] == "1e-05"


@pytest.mark.slow
def test_private_supernodes_settle_over_flowers_runtime(tmp_path: Path) -> None:
    """A SuperLink and two SuperNodes with private agents on loopback (every message a
    fresh ClientApp process): the round settles, its provenance names each party's
    (epsilon, delta), and each party's state file holds the run under Flower's run id."""
    pytest.importorskip("flwr")
    from sklearn.naive_bayes import GaussianNB

    from coopml.custody.deployment import Deployment
    from coopml.custody.learners import learner_spec

    rng = np.random.default_rng(2)
    epsilons = {"party_0": 8.0, "party_1": 3.0}
    with Deployment(tmp_path / "flower") as deployment:
        for name, epsilon in epsilons.items():
            config: dict[str, Any] = {"target": "y", "features": "a,b,c"}
            for role, n in (("train", 60), ("validation", 40)):
                X = rng.normal(size=(n, 3))
                frame = pd.DataFrame(X, columns=["a", "b", "c"])
                frame["y"] = (X[:, 0] - X[:, 1] + 0.5 * rng.normal(size=n) > 0).astype(int)
                frame.to_csv(tmp_path / f"{name}-{role}.csv", index=False)
                config[role] = tmp_path / f"{name}-{role}.csv"
            config.update(log=tmp_path / f"{name}.log", epsilon=epsilon, delta=DELTA, clip=4.0)
            deployment.add_node(name, {**config, "labels": "[0, 1]"})
        job = {"names": list(epsilons), "learner": learner_spec(GaussianNB())}
        result = deployment.run({**job, "validator": "party_0", "timeout": 180})
    assert result["ok"], result
    privacy = result["settlement"]["provenance"]["privacy"]
    for name, epsilon in epsilons.items():
        assert privacy[name]["epsilon"] == epsilon and privacy[name]["delta"] == DELTA
        saved = json.loads((tmp_path / f"{name}.privacy.json").read_text())
        (run,) = saved["rounds"]
        assert run.isdigit() and saved["rounds"][run]["spent"] == 4
        assert saved["total"]["rounds"] == 1
        lines = [json.loads(x) for x in (tmp_path / f"{name}.log").read_text().splitlines()]
        assert {x["kind"] for x in lines} >= {"moments", "statistics"}
        assert all(x["privacy"]["round"] == run for x in lines)
