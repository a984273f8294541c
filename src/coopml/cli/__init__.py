"""The ``coopml`` command line: a thin typer shell over the library.

``coopml value`` lives in :mod:`coopml.cli.value`; every command group is a typer app in
its own module, registered by :func:`build_app`. ``coopml client ...`` runs the client
group alone, so that using a service does not import the library's heavy dependencies.
"""

from __future__ import annotations

import functools
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

__all__ = ["app", "build_app", "main"]


@functools.cache
def build_app() -> typer.Typer:
    """The root app with every command group registered (once)."""
    from coopml.cli import admin, client, contract, finetune, fl, market, serve, sharing, value
    from coopml.cli import backup as backup_cli
    from coopml.cli import init as init_cli
    from coopml.cli import keys as keys_cli
    from coopml.cli import ledger as ledger_cli
    from coopml.cli._root import app

    del value  # registers `coopml value` on import
    app.command("init")(init_cli.init_command)
    app.add_typer(market.app, name="market")
    app.add_typer(contract.app, name="contract")
    app.add_typer(finetune.app, name="finetune")
    app.add_typer(sharing.app, name="sharing")
    app.add_typer(fl.app, name="fl")
    app.add_typer(client.app, name="client")
    from coopml.cli.agent import agent_command

    app.command("agent")(agent_command)
    app.add_typer(admin.app, name="admin")
    app.command("serve")(serve.serve)
    app.command("worker")(serve.worker)
    app.add_typer(ledger_cli.app, name="ledger")
    app.add_typer(keys_cli.app, name="keys")
    app.command("backup")(backup_cli.backup)
    app.command("restore")(backup_cli.restore)
    return app


def main() -> None:
    """Console-script entry point."""
    args = sys.argv[1:]
    if args[:1] == ["client"]:
        from coopml.cli.client import app as client_app

        client_app(args=args[1:], prog_name="coopml client")
        return
    build_app()()


def __getattr__(name: str) -> Any:
    if name == "app":
        return build_app()
    raise AttributeError(f"module 'coopml.cli' has no attribute {name!r}")
