"""The ``coopml`` command line: a thin typer shell over the library.

``coopml value`` lives in :mod:`coopml.cli.value`; every command group is a typer app in
its own module, registered here.
"""

from __future__ import annotations

from coopml.cli import client, contract, finetune, fl, market, serve, sharing, value
from coopml.cli.app import app, main

app.add_typer(market.app, name="market")
app.add_typer(contract.app, name="contract")
app.add_typer(finetune.app, name="finetune")
app.add_typer(sharing.app, name="sharing")
app.add_typer(fl.app, name="fl")
app.add_typer(client.app, name="client")
app.command("serve")(serve.serve)
app.command("worker")(serve.worker)

__all__ = ["app", "main", "value"]
