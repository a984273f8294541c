"""``coopml agent``: a party's agent in a parties-custody market (:mod:`coopml.custody`).

Run on the party's own machine, next to its files. It asks the service who the token
belongs to and what the market's schema is, checks the files against that schema
locally with the same checks and messages as an upload (nothing is uploaded), and then
runs a Flower SuperNode (``flower-supernode``, extra ``flower``) whose ClientApp is
coopml's agent, connecting outward to the operator's SuperLink: the service's own
(``POST /markets/{id}/agent`` names its address), or ``--superlink``. It checks in with
the service while it runs (the market then lists the party's agent as connected), and
proves the party to the operator with a key derived from the token (a 0600 file next to
``--log``; the token itself is never handed to Flower). Every request the
agent answers is appended to ``--log`` (one JSON line: the kind of request and the
shapes it disclosed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer

from coopml.cli._root import console, fail
from coopml.cli.client import (
    DEFAULT_URL,
    TokenOpt,
    UrlOpt,
    _need_token,
    _session,
    make_client,
)

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
            help="The operator's SuperLink (its Fleet API, HOST:PORT); default: the one "
            "the service names.",
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
    from coopml.custody.deployment import free_port
    from coopml.custody.flower import agent_key
    from coopml.service.security import hash_token, write_private_file

    the_token = _need_token(token)
    insecure = root_certificates is None
    if superlink is None:  # the service's own SuperLink (its errors end the command)
        with _session(url, the_token) as client:
            connection = client.agent_check_in(market)
        superlink = str(connection["fleet_api_address"])
        if not connection.get("insecure") and root_certificates is None:
            raise fail("the service's SuperLink uses TLS: pass --root-certificates CA.pem")
    # the market's feature order (columns are matched by name in every file); without a
    # declared schema, the sorted column names, so that agreeing parties agree on order
    # (the operator refuses any party whose columns differ)
    features = (
        [f["name"] for f in schema["features"]] if schema else sorted(scans["train"].features)
    )
    config = {
        "party": party,
        "train": str(train.resolve()),
        "target": target,
        "features": ",".join(features),
        "log": str(log.resolve()),
        "key_file": str(log.resolve().with_suffix(".key")),
    }
    # the proof of the party (an HMAC key derived from the token), readable by us only
    write_private_file(Path(config["key_file"]), agent_key(hash_token(the_token)).encode())
    if validation is not None:
        config["validation"] = str(validation.resolve())
    command = [
        str(Path(sys.executable).with_name("flower-supernode")),
        "--superlink",
        superlink,
        "--clientappio-api-address",  # loopback, and one free port per agent
        f"127.0.0.1:{free_port()}",
        "--node-config",
        " ".join(f"{k}={json.dumps(v)}" for k, v in config.items()),
    ]
    command += ["--insecure"] if insecure else ["--root-certificates", str(root_certificates)]
    console.print(
        f"party {party}: answering market {market}'s requests via {superlink}; every "
        f"request answered is appended to {log} (Ctrl-C stops)",
        highlight=False,
    )
    # the SuperNode starts Flower's own helper processes (flower-superexec, ...) by name:
    # they live next to this Python, which need not be on PATH (an unactivated venv)
    here = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "FLWR_TELEMETRY_ENABLED": "0",
        "PATH": f"{here}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    stop = threading.Event()
    beat = threading.Thread(target=_check_in, args=(url, the_token, market, stop), daemon=True)
    beat.start()
    node = subprocess.Popen(command, env=env)
    try:
        code = node.wait()
    except KeyboardInterrupt:
        node.terminate()
        code = node.wait()
    finally:
        stop.set()
    raise typer.Exit(code)


def _check_in(url: str | None, token: str, market: str, stop: threading.Event) -> None:
    """Check in with the service every ``CHECK_IN_SECONDS`` until ``stop`` (best
    effort: a service that does not answer now is tried again next time)."""
    from coopml.service.custody import CHECK_IN_SECONDS

    while not stop.wait(CHECK_IN_SECONDS):
        try:
            with make_client(url or DEFAULT_URL, token) as client:
                client.agent_check_in(market)
        except Exception:
            pass
