"""The ``coopml`` command line: a thin typer shell over the library.

``coopml value`` lives in :mod:`coopml.cli.value`; every command group is a typer app in
its own module, registered here.
"""

from __future__ import annotations

from coopml.cli import admin, client, contract, finetune, fl, market, serve, sharing, value
from coopml.cli import backup as backup_cli
from coopml.cli import keys as keys_cli
from coopml.cli import ledger as ledger_cli
from coopml.cli.app import app, main

app.add_typer(market.app, name="market")
app.add_typer(contract.app, name="contract")
app.add_typer(finetune.app, name="finetune")
app.add_typer(sharing.app, name="sharing")
app.add_typer(fl.app, name="fl")
app.add_typer(client.app, name="client")
app.add_typer(admin.app, name="admin")
app.command("serve")(serve.serve)
app.command("worker")(serve.worker)
app.add_typer(ledger_cli.app, name="ledger")
app.add_typer(keys_cli.app, name="keys")
app.command("backup")(backup_cli.backup)
app.command("restore")(backup_cli.restore)

__all__ = ["app", "main", "value"]
