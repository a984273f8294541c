"""``coopml agent``: a party's agent in a parties-custody market (:mod:`coopml.custody`).

Run on the party's own machine, next to its files. It asks the service who the token
belongs to and what the market's schema is, checks the files against that schema
locally with the same checks and messages as an upload (nothing is uploaded), and then
runs a Flower SuperNode (``flower-supernode``, extra ``flower``) whose ClientApp is
coopml's agent, connecting outward to the operator's SuperLink. Every request the
agent answers is appended to ``--log`` (one JSON line: the kind of request and the
shapes it disclosed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from coopml.cli._root import console, fail
from coopml.cli.client import DEFAULT_URL, TokenOpt, UrlOpt, _need_token, _session

__all__ = ["agent_command"]

FileOpt = Annotated[Path, typer.Option(exists=True, dir_okay=False, help="A CSV or Parquet file.")]


def agent_command(
    market: Annotated[str, typer.Option("--market", help="The market's id.")],
    train: FileOpt,
    target: Annotated[str, typer.Option(help="The label column.")],
    validation: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="Your validation CSV or Parquet file."),
    ] = None,
    superlink: Annotated[
        str | None,
        typer.Option(
            help="The operator's SuperLink (its Fleet API, HOST:PORT); required unless "
            "--check-only.",
            show_default=False,
        ),
    ] = None,
    root_certificates: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="The CA certificate of the SuperLink's TLS (default: --insecure).",
            show_default=False,
        ),
    ] = None,
    log: Annotated[
        Path, typer.Option(help="Where every answered request is appended (JSON lines).")
    ] = Path("coopml-agent.log"),
    check_only: Annotated[
        bool, typer.Option(help="Check the files against the market's schema and stop.")
    ] = False,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """Answer a parties-custody market's requests from your own files (no row leaves
    this machine)."""
    from coopml.service.domain.datasets import DatasetRuleError, check_local_file

    with _session(url, _need_token(token)) as client:
        me = client.me()
        info = client.get_market(market)
    if info.get("custody") != "parties":
        raise fail(
            f"market {market} is in operator custody: upload your files with "
            "`coopml client upload` instead"
        )
    party = str(me.get("name") or "")
    if me.get("role") != "party" or me.get("market_id") != market or not party:
        raise fail(f"the token is not a party's of market {market}: use your party's token")
    schema = info.get("schema")
    files = [("train", train)] + ([("validation", validation)] if validation else [])
    scans = {}
    for role, path in files:
        try:
            scan = check_local_file(
                path.read_bytes(), path.name, role, target, str(info["task"]), schema
            )
        except DatasetRuleError as exc:
            raise fail(f"{path}: {exc.message}") from None
        scans[role] = scan
        console.print(
            f"{role} file {path}: {scan.n_rows} rows match the market's schema", highlight=False
        )
    if check_only:
        return
    if superlink is None:
        raise fail("--superlink HOST:PORT is required to answer requests")
    # the market's feature order (columns are matched by name in every file)
    features = [f["name"] for f in schema["features"]] if schema else scans["train"].features
    config = {
        "party": party,
        "train": str(train.resolve()),
        "target": target,
        "features": ",".join(features),
        "log": str(log.resolve()),
    }
    if validation is not None:
        config["validation"] = str(validation.resolve())
    command = [
        str(Path(sys.executable).with_name("flower-supernode")),
        "--superlink",
        superlink,
        "--node-config",
        " ".join(f"{k}={json.dumps(v)}" for k, v in config.items()),
    ]
    command += (
        ["--root-certificates", str(root_certificates)] if root_certificates else ["--insecure"]
    )
    console.print(
        f"party {party}: answering market {market}'s requests via {superlink}; every "
        f"request answered is appended to {log} (Ctrl-C stops)",
        highlight=False,
    )
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0"}
    try:
        code = subprocess.call(command, env=env)
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)
