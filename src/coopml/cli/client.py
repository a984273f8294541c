"""``coopml client``: the operator's and the parties' side of the marketplace service.

Every command talks to a running ``coopml serve`` through :class:`coopml.service.client.
CoopmlClient`; the address and the API token come from ``--url``/``--token`` or the
environment variables ``COOPML_URL`` and ``COOPML_TOKEN``. ``--json`` prints the service's
answer as JSON. The three are options of the ``client`` group (``coopml client --url U
--token T markets``, read once by :func:`connection_options`) and are accepted after the
command's name too (``coopml client markets --token T``; those win). ``--quiet`` prints
only the new id (``add-party``, ``rotate-token``: only the token), for shell scripts.
"""

from __future__ import annotations

import functools
import inspect
import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from coopml.cli._render import print_table
from coopml.cli._root import console, err_console, fail

if TYPE_CHECKING:
    from coopml.service.client import CoopmlClient
    from coopml.service.responses import MarketDict, PageDict, RoundDict

app = typer.Typer(
    name="client",
    help="Use a running coopml service: markets, parties, uploads, rounds, settlements, models.",
    no_args_is_help=True,
)

DEFAULT_URL = "http://127.0.0.1:8000"

UrlOpt = Annotated[
    str,
    typer.Option("--url", envvar="COOPML_URL", help="The service's address.", show_default=True),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="COOPML_TOKEN",
        help="API token (operator's or party's); default: $COOPML_TOKEN.",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the service's answer as JSON.")]
# The same three after a command's name: unset (None) unless given there.
_AfterUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="The service's address (also accepted before the command; default: "
        f"$COOPML_URL, else {DEFAULT_URL}).",
        show_default=False,
    ),
]
_AfterTokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        help="API token (operator's or party's; also accepted before the command; "
        "default: $COOPML_TOKEN).",
        show_default=False,
    ),
]
_AfterJsonOpt = Annotated[
    bool,
    typer.Option("--json", help="Print the service's answer as JSON (also before the command)."),
]
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="Print only the new id (for scripts).")
]
TimeoutOpt = Annotated[float, typer.Option(help="Seconds to wait for each request.")]
RoundArg = Annotated[str, typer.Argument(help="The round's id.")]
MarketArg = Annotated[str, typer.Argument(help="The market's id.")]
PartyArg = Annotated[str, typer.Argument(help="The party's id or name.")]
LimitOpt = Annotated[int, typer.Option(min=1, max=500, help="Page size (1..500).")]
OffsetOpt = Annotated[int, typer.Option(min=0, help="Skip this many items.")]

#: Rows per ``predict`` request (the service accepts at most 10,000).
PREDICT_BATCH = 10_000


@dataclass(frozen=True)
class Connection:
    """Where and as whom a command talks to the service, and whether it answers in JSON.

    Examples
    --------
    >>> group = Connection("http://10.0.0.5:8000", "operator-token", as_json=True)
    >>> group.merged(url=None, token="party-token", as_json=False)
    Connection(url='http://10.0.0.5:8000', token='party-token', as_json=True)
    """

    url: str = DEFAULT_URL
    token: str | None = None
    as_json: bool = False

    def merged(
        self, *, url: str | None = None, token: str | None = None, as_json: bool = False
    ) -> Connection:
        """These options overridden by the ones given after the command's name."""
        return Connection(
            self.url if url is None else url,
            self.token if token is None else token,
            self.as_json or as_json,
        )


_CONNECTION = "coopml.client.connection"  # the group's Connection, in ctx.meta


@app.callback()
def connection_options(
    ctx: typer.Context,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The options every command shares; each command also accepts them after its name
    (those win)."""
    ctx.meta[_CONNECTION] = Connection(url, token, as_json)


def _command(
    name: str, *, token: bool = True, json: bool = True
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register ``coopml client NAME``: the function receives the merged
    :class:`Connection` as ``conn``; ``--url`` (and ``--token``, ``--json`` where the
    command uses them) are also accepted after the command's name."""
    shared: list[tuple[str, Any, Any]] = [("url", _AfterUrlOpt, None)]
    if token:
        shared.append(("token", _AfterTokenOpt, None))
    if json:
        shared.append(("as_json", _AfterJsonOpt, False))

    def register(func: Callable[..., None]) -> Callable[..., None]:
        own = inspect.signature(func, eval_str=True).parameters.values()
        kw = inspect.Parameter.KEYWORD_ONLY
        params = [p for p in own if p.name != "conn"]
        params.append(inspect.Parameter("ctx", kw, annotation=typer.Context))
        params += [inspect.Parameter(n, kw, default=d, annotation=a) for n, a, d in shared]

        @functools.wraps(func)
        def command(ctx: typer.Context, **kwargs: Any) -> None:
            group = ctx.meta.get(_CONNECTION, Connection())
            given = {n: kwargs.pop(n, d) for n, _, d in shared}
            if not json and group.as_json:
                raise fail(f"--json: `coopml client {name}` has no JSON answer")
            func(conn=group.merged(**given), **kwargs)

        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        app.command(name)(command)
        return func

    return register


def make_client(url: str, token: str | None, timeout: float = 30.0) -> CoopmlClient:
    """The client every command uses (tests replace this to talk to an in-process app)."""
    from coopml.service.client import CoopmlClient

    return CoopmlClient(url, token, timeout=timeout)


@contextmanager
def _session(url: str, token: str | None, timeout: float = 30.0) -> Iterator[CoopmlClient]:
    """Open a client and turn service errors into a one-line message and exit code 1."""
    from coopml.service.client import ServiceError

    try:
        client = make_client(url, token, timeout)
    except ValueError as exc:
        raise fail(str(exc)) from None
    try:
        yield client
    except ServiceError as exc:
        where = f" (HTTP {exc.status}, {exc.code}" if exc.status else f" ({exc.code}"
        rid = f", request id {exc.request_id})" if exc.request_id else ")"
        err_console.print(f"[bold red]error:[/] {exc.message}{where}{rid}", highlight=False)
        if exc.status == 401 and exc.code == "unauthenticated":  # not expired/revoked
            err_console.print(
                "  check --token / $COOPML_TOKEN (the operator's token is in "
                "DATA_DIR/operator.token)",
                highlight=False,
            )
        if getattr(exc, "retry_after", None):
            err_console.print(f"  retry after {exc.retry_after:g} s", highlight=False)
        raise typer.Exit(code=1) from None
    finally:
        client.close()


def _need_token(token: str | None) -> str:
    if not token:
        raise fail("no API token: pass --token or set COOPML_TOKEN")
    return token


def _print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, sort_keys=False))


def _table(title: str, rows: Sequence[Mapping[str, Any]], columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in columns:
        table.add_column(column, no_wrap=True, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    return table


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def _parse_params(pairs: list[str]) -> dict[str, Any]:
    """``["C=0.5", "max_iter=200", "penalty=l2"]`` → ``{"C": 0.5, "max_iter": 200, ...}``.

    Values are read as JSON where they parse (numbers, ``true``/``false``, ``null``,
    lists) and kept as strings otherwise.
    """
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise fail(f"--param must look like key=value; got {pair!r}")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    return params


# ---------------------------------------------------------------------------- who / health


def _list_page(
    conn: Connection,
    fetch: Callable[[CoopmlClient], PageDict[Any]],
    title: str,
    columns: list[str],
    unit: str = "",
) -> None:
    """Fetch one page of a list endpoint and print it as JSON or as a table."""
    with _session(conn.url, _need_token(conn.token)) as client:
        page = fetch(client)
    if conn.as_json:
        _print_json(page)
        return
    total = f"{page['total']} {unit}".strip()
    print_table(_table(f"{title} ({total})", page["items"], columns), console)


@_command("health", token=False)
def health_command(conn: Connection) -> None:
    """Check that the service answers (no token needed)."""
    with _session(conn.url, None) as client:
        answer = client.health()
    if conn.as_json:
        _print_json(answer)
        return
    console.print(f"{conn.url}: {answer.get('status')} (database {answer.get('database')})")


@_command("me")
def me_command(conn: Connection) -> None:
    """Show who the token belongs to: the operator, or a party of a market."""
    with _session(conn.url, _need_token(conn.token)) as client:
        answer = client.me()
    if conn.as_json:
        _print_json(answer)
        return
    if answer.get("role") == "operator":
        console.print("operator")
    else:
        console.print(
            f"party {answer.get('name')} (id {answer.get('party_id')}) "
            f"of market {answer.get('market_id')}",
            highlight=False,
        )


# ---------------------------------------------------------------------------- operator
@_command("create-market")
def create_market_command(
    conn: Connection,
    name: Annotated[str, typer.Argument(help="A name for the market.")],
    task: Annotated[str, typer.Option(help="classification or regression.")] = "classification",
    description: Annotated[str, typer.Option(help="Free text shown to parties.")] = "",
    release_policy: Annotated[
        str | None,
        typer.Option(
            help="Which model files parties may download: query_only (none, predictions "
            "only; the service's default), aggregate_only (only models that hold no "
            "training row of another party) or full (all; audited).",
            show_default=False,
        ),
    ] = None,
    predict_quota: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Rows a party may send to predict, per round and window "
            "(default: the service's, COOPML_PREDICT_QUOTA).",
            show_default=False,
        ),
    ] = None,
    predict_window: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="The quota's window in seconds (default: COOPML_PREDICT_WINDOW).",
            show_default=False,
        ),
    ] = None,
    schema: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="A JSON file declaring the data every upload must match: target, "
            "label_type, optional classes, features [{name, type}] (default: the first "
            "upload fixes it).",
            show_default=False,
        ),
    ] = None,
    max_datasets: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Datasets one party may keep (default: COOPML_MAX_DATASETS_PER_PARTY).",
            show_default=False,
        ),
    ] = None,
    max_bytes: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Bytes one party may keep (default: COOPML_MAX_BYTES_PER_PARTY).",
            show_default=False,
        ),
    ] = None,
    custody: Annotated[
        str,
        typer.Option(
            help="Who holds the parties' rows: operator (they upload datasets, stored "
            "encrypted) or parties (no row leaves its owner; each party runs `coopml "
            "agent`).",
        ),
    ] = "operator",
    quiet: QuietOpt = False,
) -> None:
    """Create a market (operator), with its model release policy and prediction quota
    (set once; every party sees them)."""
    if custody not in ("operator", "parties"):
        raise fail(f"--custody must be one of operator, parties; got {custody!r}")
    if release_policy is not None and release_policy not in RELEASE_POLICIES:
        choices = ", ".join(RELEASE_POLICIES)
        raise fail(f"--release-policy must be one of {choices}; got {release_policy!r}")
    declared = None
    if schema is not None:
        try:
            declared = json.loads(schema.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise fail(f"--schema: {schema} is not a JSON file: {exc}") from None
    quotas = None
    if max_datasets is not None or max_bytes is not None:
        quotas = {"max_datasets_per_party": max_datasets, "max_bytes_per_party": max_bytes}
    with _session(conn.url, _need_token(conn.token)) as client:
        market = client.create_market(
            name,
            task=task,
            description=description,
            release_policy=release_policy,
            predict_quota=predict_quota,
            predict_window_seconds=predict_window,
            schema=declared,
            quotas=quotas,
            custody=custody,
        )
    if conn.as_json:
        _print_json(market)
    elif quiet:
        typer.echo(market["id"])
    else:
        console.print(f"market {market['name']} created: id {market['id']}", highlight=False)
        console.print(_policy_line(market), highlight=False)
        console.print(f"custody: {market.get('custody', 'operator')}", highlight=False)


#: The model release policies a market may have (see docs/service.md).
RELEASE_POLICIES = ("query_only", "aggregate_only", "full")


def _policy_line(market: MarketDict) -> str:
    """The market's release policy and prediction quota, in words."""
    policy = market.get("release_policy", "?")
    text = f"release policy: {policy}"
    if policy == "full":
        text += " (every model file is released, even one holding other parties' rows)"
    elif policy == "query_only":
        text += " (predictions only; no model file is released)"
    elif policy == "aggregate_only":
        text += " (model files only when they hold no other party's training rows)"
    if market.get("predict_quota") is not None:
        text += (
            f"; predictions: at most {market['predict_quota']} rows per party and round "
            f"every {market.get('predict_window_seconds')} s"
        )
    return text


@_command("markets")
def markets_command(
    conn: Connection,
    limit: LimitOpt = 50,
    offset: OffsetOpt = 0,
) -> None:
    """List the markets the token may see."""
    _list_page(
        conn,
        lambda c: c.list_markets(limit=limit, offset=offset),
        "Markets",
        [
            "id",
            "name",
            "task",
            "custody",
            "agents_connected",
            "release_policy",
            "predict_quota",
            "n_parties",
            "created_at",
        ],
    )


@_command("market")
def market_command(conn: Connection, market_id: MarketArg) -> None:
    """Show a market: custody, release policy and, in parties custody, which parties'
    agents are connected (checked in within the last minute)."""
    from urllib.parse import quote

    with _session(conn.url, _need_token(conn.token)) as client:
        market = client.get_market(market_id)
        parties = []
        if market.get("custody") == "parties":
            parties = list(client.iter_pages(f"/markets/{quote(market_id, safe='')}/parties"))
    if conn.as_json:
        _print_json(market)
        return
    console.print(
        f"market {market['name']} ({market['task']}): id {market['id']}, "
        f"{market['n_parties']} parties",
        highlight=False,
    )
    console.print(_policy_line(market), highlight=False)
    console.print(f"custody: {market.get('custody', 'operator')}", highlight=False)
    if market.get("custody") != "parties":
        return
    connected = set(market.get("agents_connected") or [])
    console.print(f"agents connected: {len(connected)} of {market['n_parties']}", highlight=False)
    rows = [
        {"party": p["name"], "agent": "agent connected" if p["name"] in connected else "no agent"}
        for p in parties
    ]
    print_table(_table("Parties' agents", rows, ["party", "agent"]), console)


@_command("add-party")
def add_party_command(
    conn: Connection,
    market_id: MarketArg,
    name: Annotated[str, typer.Argument(help="The party's name (letters, digits, _ . -).")],
    quiet: QuietOpt = False,
) -> None:
    """Register a party (operator) and print its API token — shown this once only."""
    with _session(conn.url, _need_token(conn.token)) as client:
        party = client.add_party(market_id, name)
    if conn.as_json:
        _print_json(party)
    elif quiet:
        typer.echo(party["token"])
    else:
        console.print(f"party {party['name']} added: id {party['id']}", highlight=False)
        console.print("its API token (shown once; give it to the party, keep it secret):")
        typer.echo(party["token"])


@_command("parties")
def parties_command(
    conn: Connection,
    market_id: MarketArg,
    limit: LimitOpt = 50,
    offset: OffsetOpt = 0,
) -> None:
    """List a market's parties (a party sees only itself)."""
    _list_page(
        conn,
        lambda c: c.list_parties(market_id, limit=limit, offset=offset),
        "Parties",
        ["id", "name", "created_at"],
    )


def _party_id(client: CoopmlClient, market_id: str, party: str) -> str:
    """The id of the market's party named (or with id) ``party``."""
    from urllib.parse import quote

    names = {}
    for item in client.iter_pages(f"/markets/{quote(market_id, safe='')}/parties"):
        if item["id"] == party:
            return party
        names[item["name"]] = str(item["id"])
    if party not in names:
        raise fail(f"market {market_id} has no party with id or name {party!r}")
    return names[party]


@_command("revoke-token")
def revoke_token_command(
    conn: Connection,
    market_id: MarketArg,
    party: PartyArg,
) -> None:
    """Revoke a party's API tokens (operator): they answer 401 from now on and the
    party's dashboard sessions end; rotate-token gives it a new one."""
    with _session(conn.url, _need_token(conn.token)) as client:
        party_id = _party_id(client, market_id, party)
        client.revoke_party_token(market_id, party_id)
    if conn.as_json:
        _print_json({"party_id": party_id, "market_id": market_id, "revoked": True})
    else:
        console.print(f"party {party}: every token revoked", highlight=False)


@_command("rotate-token")
def rotate_token_command(
    conn: Connection,
    market_id: MarketArg,
    party: PartyArg,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print only the new token (for scripts).")
    ] = False,
) -> None:
    """Give a party a new API token (operator) and print it — shown this once only;
    the party's older tokens stop working."""
    with _session(conn.url, _need_token(conn.token)) as client:
        party_id = _party_id(client, market_id, party)
        issued = client.rotate_party_token(market_id, party_id)
    if conn.as_json:
        _print_json(issued)
    elif quiet:
        typer.echo(issued["token"])
    else:
        expiry = f", expires {issued['expires_at']}" if issued.get("expires_at") else ""
        console.print(f"party {issued['name']}: old tokens revoked{expiry}", highlight=False)
        console.print("its new API token (shown once; give it to the party, keep it secret):")
        typer.echo(issued["token"])


def _empty_value(text: str | None) -> str | float | None:
    """``--empty-value``: a convention's name, or a number sent as one."""
    if text is None or text in {"majority", "zero"}:
        return text
    try:
        return float(text)
    except ValueError:
        raise typer.BadParameter(
            f"must be 'majority', 'zero' or a number in [0, 1]; got {text!r}",
            param_hint="--empty-value",
        ) from None


@_command("open-round")
def open_round_command(
    conn: Connection,
    market_id: MarketArg,
    learner: Annotated[
        str, typer.Option(help="Learner from the service's allow-list, e.g. logistic_regression.")
    ],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Learner parameter key=value (repeatable)."),
    ] = None,
    rule: Annotated[
        str | None,
        typer.Option(
            "--rule",
            help="Payment rule: ohrimenko, shapley, banzhaf, loo, ... [default: the service's]",
        ),
    ] = None,
    price: Annotated[
        float | None, typer.Option("--price", help="Fee price c (> 0). [default: 1]")
    ] = None,
    tasks: Annotated[
        str | None,
        typer.Option(
            help="single (one shared task) or per_party (each party's own validation data, "
            "a customised model each). [default: the service's]"
        ),
    ] = None,
    duplicates: Annotated[
        str | None,
        typer.Option(help="Duplicate-data handling: ignore, report, drop or merge."),
    ] = None,
    random_state: Annotated[int | None, typer.Option(help="Seed of the round.")] = None,
    empty_value: Annotated[
        str | None,
        typer.Option(
            "--empty-value",
            help="Value of the empty coalition: majority, zero or a number in [0, 1]. "
            "[default: majority]",
        ),
    ] = None,
    replication_party: Annotated[
        str | None,
        typer.Option(help="Also audit what this party would gain by replicating its data."),
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the round to finish.")] = False,
    wait_timeout: Annotated[
        float, typer.Option("--wait-timeout", help="Seconds --wait waits at most.")
    ] = 600.0,
    quiet: QuietOpt = False,
) -> None:
    """Open a round (operator): train, value and settle with the market's data."""
    params = _parse_params(param or [])
    with _session(conn.url, _need_token(conn.token)) as client:
        rnd = client.open_round(
            market_id,
            learner,
            params,
            payment_rule=rule,
            fee_price=price,
            tasks=tasks,
            duplicates=duplicates,
            random_state=random_state,
            replication_party=replication_party,
            empty_value=_empty_value(empty_value),
        )
        if wait:
            rnd = _wait(client, rnd["id"], wait_timeout, show=not (quiet or conn.as_json))
    if conn.as_json:
        _print_json(rnd)
    elif quiet:
        typer.echo(rnd["id"])
    else:
        console.print(f"round {rnd['id']} {rnd['status']}", highlight=False)
    if wait and rnd.get("status") == "failed":
        raise typer.Exit(code=1)


@_command("rounds")
def rounds_command(
    conn: Connection,
    market_id: MarketArg,
    limit: LimitOpt = 50,
    offset: OffsetOpt = 0,
) -> None:
    """List a market's rounds."""
    _list_page(
        conn,
        lambda c: c.list_rounds(market_id, limit=limit, offset=offset),
        "Rounds",
        ["id", "status", "progress", "created_at", "finished_at"],
    )


@_command("status")
def status_command(
    conn: Connection,
    round_id: RoundArg,
    wait: Annotated[bool, typer.Option(help="Follow the round until it completes or fails.")] = (
        False
    ),
    wait_timeout: Annotated[
        float, typer.Option("--wait-timeout", help="Seconds --wait waits at most.")
    ] = 600.0,
) -> None:
    """Show a round's status and progress; with --wait, a progress bar until it ends.

    Exit code 1 if the round failed.
    """
    with _session(conn.url, _need_token(conn.token)) as client:
        if wait:
            rnd = _wait(client, round_id, wait_timeout, show=not conn.as_json)
        else:
            rnd = client.get_round(round_id)
    if conn.as_json:
        _print_json(rnd)
    else:
        progress = float(rnd.get("progress") or 0.0)
        message = f" — {rnd['message']}" if rnd.get("message") else ""
        console.print(
            f"round {rnd['id']}: {rnd['status']} ({progress:.0%}){message}", highlight=False
        )
        if rnd.get("status") in ("queued", "running", "stalled"):
            from rich.progress_bar import ProgressBar

            console.print(ProgressBar(total=1.0, completed=progress, width=40))
    if rnd.get("status") == "failed":
        raise typer.Exit(code=1)


def _wait(client: CoopmlClient, round_id: str, timeout: float, *, show: bool) -> RoundDict:
    columns = (
        TextColumn("[bold]round"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=True, disable=not show) as bar:
        task = bar.add_task("queued", total=1.0)

        def update(state: RoundDict) -> None:
            bar.update(
                task,
                completed=float(state.get("progress") or 0.0),
                description=str(state.get("status", "")),
            )

        try:
            return client.wait_round(round_id, timeout=timeout, on_update=update)
        except TimeoutError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(code=1) from None


@_command("settlement")
def settlement_command(
    conn: Connection,
    round_id: RoundArg,
) -> None:
    """A round's settlement: the operator sees every line, a party its own."""
    with _session(conn.url, _need_token(conn.token)) as client:
        answer = client.settlement(round_id)
    if conn.as_json:
        _print_json(answer)
        return
    lines = list(answer.get("lines", []))
    preferred = [
        "name",
        "fee",
        "fee_returned",
        "payout",
        "payout_stderr",
        "net_gain",
        "own_gain",
        "model_gain",
    ]
    columns = [c for c in preferred if any(c in line for line in lines)] or sorted(
        {k for line in lines for k in line}
    )
    print_table(_table(f"Settlement of round {round_id}", lines, columns), console)
    for line in lines:  # parties custody: what each private agent's release cost
        privacy = line.get("privacy")
        if privacy:
            console.print(
                f"privacy of {line['name']}: {describe_privacy(privacy)}",
                highlight=False,
                soft_wrap=True,
            )
    extra = {k: v for k, v in answer.items() if k not in {"lines", "round_id"}}
    for key, value in extra.items():
        console.print(f"{key}: {json.dumps(value)}", highlight=False)


def describe_privacy(privacy: Mapping[str, Any]) -> str:
    """One line for a settlement line's ``privacy`` (the API's
    ``SettlementPrivacyOut``).

    Examples
    --------
    >>> describe_privacy({"noise": True, "epsilon": 1.0, "delta": 1e-05, "clip": 4.0,
    ...                   "target_clip": None, "releases": 4, "mu": 0.26805,
    ...                   "rho_zcdp": 0.035926})
    '(ε = 1, δ = 1e-05)-DP for one training row this round (Gaussian mechanism, 4 releases, rows clipped to 4; μ = 0.268, ρ = 0.0359 zCDP)'
    >>> describe_privacy({"noise": False, "epsilon": None, "delta": 1e-05, "clip": 4.0})
    'rows clipped to 4, no noise (ε = ∞): no privacy guarantee'
    """  # noqa: E501
    clip = f"rows clipped to {privacy.get('clip'):g}" if privacy.get("clip") else "no clip"
    if privacy.get("target_clip") is not None:
        clip += f", targets to {privacy['target_clip']:g}"
    if not privacy.get("noise"):
        return f"{clip}, no noise (ε = ∞): no privacy guarantee"
    spent = [
        form.format(privacy[key])
        for key, form in (("mu", "μ = {:.3g}"), ("rho_zcdp", "ρ = {:.3g} zCDP"))
        if privacy.get(key) is not None
    ]
    releases = f"{privacy['releases']} releases, " if privacy.get("releases") else ""
    detail = f"Gaussian mechanism, {releases}{clip}" + (f"; {', '.join(spent)}" if spent else "")
    return (
        f"(ε = {privacy['epsilon']:g}, δ = {privacy['delta']:g})-DP for one training row "
        f"this round ({detail})"
    )


@_command("audit")
def audit_command(
    conn: Connection,
    round_id: RoundArg,
) -> None:
    """A round's audit (operator): balance, verification, duplicates, replication."""
    with _session(conn.url, _need_token(conn.token)) as client:
        answer = client.audit(round_id)
    if conn.as_json:
        _print_json(answer)
        return
    for section, value in answer.items():
        if section == "round_id":
            continue
        console.print(f"[bold]{section}[/]")
        if isinstance(value, dict):
            for key, item in value.items():
                console.print(f"  {key}: {json.dumps(item, default=str)}", highlight=False)
        else:
            console.print(f"  {json.dumps(value, default=str)}", highlight=False)


@_command("ledger")
def ledger_command(
    conn: Connection,
    round_id: RoundArg,
    limit: LimitOpt = 50,
    offset: OffsetOpt = 0,
) -> None:
    """A round's append-only money ledger (operator)."""
    _list_page(
        conn,
        lambda c: c.ledger(round_id, limit=limit, offset=offset),
        "Ledger",
        ["kind", "party_id", "amount"],
        unit="entries",
    )


@_command("audit-log")
def audit_log_command(
    conn: Connection,
    limit: LimitOpt = 50,
    offset: OffsetOpt = 0,
) -> None:
    """Who accessed which dataset, model or prediction (a party: its own items)."""
    _list_page(
        conn,
        lambda c: c.audit_log(limit=limit, offset=offset),
        "Audit log",
        ["at", "actor", "action", "item_type", "item_id"],
        unit="entries",
    )


# ---------------------------------------------------------------------------- parties
@_command("upload")
def upload_command(
    conn: Connection,
    market_id: MarketArg,
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, readable=True, help="A CSV or Parquet file."),
    ],
    target: Annotated[str, typer.Option(help="The target column's name.")],
    role: Annotated[str, typer.Option(help="train or validation.")] = "train",
    name: Annotated[str | None, typer.Option(help="A name for the dataset.")] = None,
    replaces: Annotated[
        str | None,
        typer.Option(
            help="Replace this dataset of yours (its id) in one step.", show_default=False
        ),
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Upload training or validation data (party).

    Only numeric features and no missing values; every dataset of a market matches the
    market's schema (feature columns and types, label type); the same file twice is
    refused.
    """
    with _session(conn.url, _need_token(conn.token), timeout=300.0) as client:
        dataset = client.upload_dataset(
            market_id, file, role=role, target=target, name=name, replaces=replaces
        )
    if conn.as_json:
        _print_json(dataset)
    elif quiet:
        typer.echo(dataset["id"])
    else:
        console.print(
            f"{dataset['role']} dataset {dataset['id']}: {dataset['n_rows']} rows, "
            f"{dataset['n_features']} features, target {dataset['target']!r}",
            highlight=False,
        )


@_command("delete-dataset", json=False)
def delete_dataset_command(
    conn: Connection,
    dataset_id: Annotated[str, typer.Argument(help="The dataset's id.")],
) -> None:
    """Delete a dataset (its owner party, or the operator) and erase its stored copy."""
    with _session(conn.url, _need_token(conn.token)) as client:
        client.delete_dataset(dataset_id)
    console.print(f"dataset {dataset_id} deleted", highlight=False)


@_command("datasets")
def datasets_command(
    conn: Connection,
    market_id: MarketArg,
    limit: LimitOpt = 50,
    offset: OffsetOpt = 0,
) -> None:
    """List a market's datasets (a party sees its own)."""
    _list_page(
        conn,
        lambda c: c.list_datasets(market_id, limit=limit, offset=offset),
        "Datasets",
        ["id", "name", "role", "n_rows", "n_features", "target", "created_at"],
    )


@_command("download-model", json=False)
def download_model_command(
    conn: Connection,
    round_id: RoundArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the skops file.")] = (
        Path("model.skops")
    ),
) -> None:
    """Download your customised model of a round (party) as a skops file.

    Load it with ``skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))``
    after checking the listed types.
    """
    with _session(conn.url, _need_token(conn.token), timeout=300.0) as client:
        content = client.download_model(round_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(content)
    console.print(f"model written to {out} ({len(content):,} bytes)", highlight=False)


@_command("predict", json=False)
def predict_command(
    conn: Connection,
    round_id: RoundArg,
    data: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="CSV of feature rows (with header)."
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write here (.csv or .json); default: stdout as CSV."),
    ] = None,
    drop: Annotated[
        list[str] | None,
        typer.Option(help="Column(s) of DATA to ignore, e.g. the target (repeatable)."),
    ] = None,
) -> None:
    """Predict with your model of a round (party): CSV in, CSV or JSON out.

    Columns are matched by name to the market's feature columns when DATA's header has
    them all (extra columns such as the target are ignored); otherwise every column of
    DATA is used in file order.
    """
    import pandas as pd

    try:
        frame = pd.read_csv(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise fail(f"cannot read {data} as CSV: {exc}") from None
    frame = frame.drop(columns=[c for c in (drop or []) if c in frame.columns])
    if frame.empty:
        raise fail(f"{data} has no rows to predict")
    with _session(conn.url, _need_token(conn.token), timeout=300.0) as client:
        features = _feature_columns(client, round_id)
        if features and set(features) <= set(frame.columns):
            frame = frame[features]
        bad = [str(c) for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
        if bad:
            raise fail(f"every column of {data} must be numeric; not numeric: {', '.join(bad)}")
        rows = frame.to_numpy(dtype=float).tolist()
        predictions: list[Any] = []
        for start in range(0, len(rows), PREDICT_BATCH):
            predictions.extend(client.predict(round_id, rows[start : start + PREDICT_BATCH]))
    if out is not None and out.suffix.lower() == ".json":
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"predictions": predictions}))
    else:
        text = pd.DataFrame({"prediction": predictions}).to_csv(index=False)
        if out is None:
            sys.stdout.write(text)
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    console.print(f"{len(predictions)} predictions written to {out}", highlight=False)


def _feature_columns(client: CoopmlClient, round_id: str) -> list[str]:
    """The feature columns in the order the round's models expect.

    The service's answer where it gives one (``config.features`` of the round, else the
    features of the market's schema); otherwise the column order of the party's own
    dataset.
    """
    from coopml.service.client import ServiceError

    try:
        rnd = client.get_round(round_id)
        features = (rnd.get("config") or {}).get("features")
        if not features:
            schema = client.get_market(rnd["market_id"]).get("schema")
            features = [f["name"] for f in schema["features"]] if schema else None
        if features:
            return [str(c) for c in features]
        datasets = client.list_datasets(rnd["market_id"], limit=1)["items"]
    except (ServiceError, KeyError, AttributeError):
        return []
    if not datasets:
        return []
    target = datasets[0].get("target")
    return [str(c) for c in datasets[0].get("columns") or [] if c != target]
