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

With ``--epsilon``, ``--delta`` and ``--clip`` (and ``--target-clip`` in a regression
market; the classes are the schema's, or ``--labels``, in a classification market)
the agent adds Gaussian-mechanism noise to what it releases
(:class:`~coopml.custody.privacy.GaussianMechanism`): each round is then
(epsilon, delta)-differentially private with respect to its training rows. Its
privacy state -- each round's spending and noise generator, and the party's
cumulative spend over rounds -- lives in a 0600 file next to ``--log``
(``.privacy.json``: :mod:`coopml.custody.privacy_state`); each log line carries the
round's and the cumulative spend.

The agent supervises its SuperNode (:func:`supervise_node`): when the SuperNode exits
unexpectedly (a code other than 0), or when a check-in shows that the service's
SuperLink has restarted (a new ``superlink_incarnation``: a SuperNode registers with one
SuperLink only), it starts a new one (a new ClientAppIo port, the same node config,
privacy settings and state file included), after a backoff that doubles while
SuperNodes keep dying young (capped), and says why. Ctrl-C, SIGTERM or SIGHUP stop the
SuperNode's process group and the agent.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, Protocol

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

__all__ = [
    "RETRY_CHECK_IN_SECONDS",
    "NodeProcess",
    "SuperNodeProcess",
    "agent_command",
    "supervise_node",
]

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
    epsilon: Annotated[
        float | None,
        typer.Option(
            help="Privacy: each round (epsilon, delta)-differentially private (positive; "
            "inf: rows clipped, no noise). Needs --delta and --clip.",
            show_default=False,
        ),
    ] = None,
    delta: Annotated[
        float | None, typer.Option(help="Privacy: the round's delta, in (0, 1).")
    ] = None,
    clip: Annotated[
        float | None,
        typer.Option(
            help="Privacy: each training row clipped to this Euclidean norm (positive; "
            "standardise your features to a public scale first).",
            show_default=False,
        ),
    ] = None,
    target_clip: Annotated[
        float | None,
        typer.Option(
            help="Privacy, regression markets: each target clipped to |y| <= this.",
            show_default=False,
        ),
    ] = None,
    labels: Annotated[
        str | None,
        typer.Option(
            help="Privacy, classification markets whose schema declares no classes: the "
            "market's classes, comma-separated (public; announced instead of yours).",
            show_default=False,
        ),
    ] = None,
    lifetime_epsilon: Annotated[
        float | None,
        typer.Option(
            help="Privacy: the lifetime budget; a new round that would bring the composed "
            "spend over all rounds (at --delta) above this epsilon is refused.",
            show_default=False,
        ),
    ] = None,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """Answer a parties-custody market's requests from your own files (no row leaves
    this machine)."""
    from coopml.service.domain.datasets import DatasetRuleError, check_local_file

    try:  # the options alone, before anything is asked of the service
        check_privacy_options(epsilon, delta, clip, target_clip, labels)
        if lifetime_epsilon is not None and (epsilon is None or not lifetime_epsilon > 0):
            raise ValueError(
                "--lifetime-epsilon must be positive (inf: no limit) and needs --epsilon, "
                f"--delta and --clip; received {lifetime_epsilon}"
                + ("" if epsilon is not None else " without --epsilon")
            )
    except ValueError as exc:
        raise fail(str(exc)) from None

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
    privacy: dict[str, str] = {}
    if epsilon is not None:
        try:
            privacy = privacy_config(
                epsilon,
                delta,
                clip,
                target_clip,
                labels,
                str(info["task"]),
                schema,
                scans["train"].label_type,
            )
        except ValueError as exc:
            raise fail(str(exc)) from None
    if check_only:
        return
    from coopml.custody.deployment import free_port
    from coopml.custody.flower import agent_key
    from coopml.service.security import hash_token, write_private_file

    the_token = _need_token(token)
    insecure = root_certificates is None
    follow = superlink is None  # the service's own SuperLink: follow its restarts
    incarnation = None
    if superlink is None:  # the service's own SuperLink (its errors end the command)
        with _session(url, the_token) as client:
            connection = client.agent_check_in(market)
        superlink = str(connection["fleet_api_address"])
        incarnation = connection.get("superlink_incarnation")
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
        # the parsed files (0600), so that each message's process needs no pandas
        "rows": str(log.resolve().with_suffix(".rows.npz")),
    }
    # the proof of the party (an HMAC key derived from the token), readable by us only
    write_private_file(Path(config["key_file"]), agent_key(hash_token(the_token)).encode())
    if validation is not None:
        config["validation"] = str(validation.resolve())
    if privacy:
        from coopml.custody.privacy_state import PrivacyState, describe_total, mechanism_from_config

        config.update(privacy, privacy_state=str(log.resolve().with_suffix(".privacy.json")))
        if lifetime_epsilon is not None:
            config["lifetime_epsilon"] = repr(float(lifetime_epsilon))
        try:
            state = PrivacyState(config["privacy_state"], party, lifetime_epsilon)
            spent = state.total()
            mechanism = mechanism_from_config(privacy)
            assert mechanism is not None
            state.check_new_round(mechanism)  # a spent budget: say so now, not mid-round
        except ValueError as exc:
            raise fail(str(exc)) from None
        console.print(
            f"privacy: each round ({privacy['epsilon']}, {privacy['delta']})-differentially "
            f"private, rows clipped to {privacy['clip']}; {describe_total(spent)}"
            + ("" if lifetime_epsilon is None else f" of a lifetime epsilon {lifetime_epsilon:g}")
            + f" (state: {config['privacy_state']})",
            highlight=False,
            soft_wrap=True,
        )
    node_config = " ".join(f"{k}={_node_value(v)}" for k, v in config.items())
    tls = ["--insecure"] if insecure else ["--root-certificates", str(root_certificates)]
    console.print(
        f"party {party}: answering market {market}'s requests via {superlink}; every "
        f"request answered is appended to {log} (Ctrl-C stops)",
        highlight=False,
        soft_wrap=True,
    )
    # the SuperNode starts Flower's own helper processes (flower-superexec, ...) by name:
    # they live next to this Python, which need not be on PATH (an unactivated venv)
    # (and its SuperExec with Flower's polling sleeps shortened: coopml.custody.polling)
    from coopml.custody.polling import command as polling_command
    from coopml.custody.polling import shim

    here = str(Path(sys.executable).parent)
    shims = str(shim(log.resolve().with_suffix(".bin")))
    env = {
        **os.environ,
        "FLWR_TELEMETRY_ENABLED": "0",
        "PATH": os.pathsep.join([shims, here, os.environ.get("PATH", "")]),
    }

    def start() -> SuperNodeProcess:
        # a new ClientAppIo port at each start (loopback, one per agent); the same
        # node config, privacy settings and state file included
        command = polling_command("supernode")  # flower-supernode, shorter sleeps
        command += ["--superlink", str(superlink)]
        command += ["--clientappio-api-address", f"127.0.0.1:{free_port()}"]
        command += ["--node-config", node_config, *tls]
        return SuperNodeProcess(command, env)

    with _stop_signals():
        supervise_node(
            start,
            _CheckIn(url, the_token, market, follow),
            incarnation=incarnation,
            say=lambda line: console.print(
                f"party {party}: {line}", highlight=False, soft_wrap=True
            ),
        )


#: Seconds between check-ins while the service does not answer (it may be restarting,
#: with a new SuperLink that the agent's SuperNode must register with).
RETRY_CHECK_IN_SECONDS = 5.0


class NodeProcess(Protocol):
    """A running SuperNode as :func:`supervise_node` sees it."""

    def poll(self) -> int | None:
        """Its exit code once it has exited, None while it runs."""
        ...

    def stop(self) -> None:
        """Stop it and every process it started (idempotent)."""
        ...


class SuperNodeProcess:
    """``flower-supernode`` in a process group of its own (Flower's helper processes and
    ClientApps, which it starts, with it), so that a restart or a stop ends them all.

    Parameters
    ----------
    command : list of str
    env : dict
    grace : float, default 10
        Seconds between SIGTERM and SIGKILL of the group on :meth:`stop`.
    """

    def __init__(self, command: list[str], env: dict[str, str], grace: float = 10.0) -> None:
        self.grace = grace
        # its own group: SIGINT from the terminal reaches the agent only, which stops it;
        # no stdin (a background group that read the terminal would be stopped)
        self.process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, process_group=0)

    def poll(self) -> int | None:
        """The SuperNode's exit code, or None while it runs."""
        return self.process.poll()

    def stop(self) -> None:
        """SIGTERM the group, wait up to ``grace`` seconds, then SIGKILL what is left of
        it (a ClientApp may outlive the SuperNode)."""
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(self.grace)
        except subprocess.TimeoutExpired:
            pass
        self._signal(signal.SIGKILL)
        self.process.wait()

    def _signal(self, sig: int) -> None:
        pid = self.process.pid
        if pid is None or pid <= 1:  # never our own group (0) nor init's
            return
        try:
            os.killpg(pid, sig)
        except OSError:  # the group is gone
            pass


def supervise_node(
    start: Callable[[], NodeProcess],
    check_in: Callable[[], str | None] | None,
    *,
    incarnation: str | None = None,
    check_in_seconds: float | None = None,
    poll_seconds: float = 0.5,
    first_delay: float = 1.0,
    max_delay: float = 60.0,
    stable_seconds: float = 60.0,
    say: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Run a SuperNode and keep one running until interrupted (``KeyboardInterrupt``:
    Ctrl-C, or SIGTERM / SIGHUP under :func:`_stop_signals`) or until it exits with code
    0 (Flower's success: it ended by itself), then stop it.

    Every ``poll_seconds`` it looks whether the node has exited; every
    ``check_in_seconds`` (default :data:`~coopml.service.custody.CHECK_IN_SECONDS`) it
    calls ``check_in``, which returns the service's SuperLink's incarnation id (None:
    unknown; a check-in that raises is tried again after
    :data:`RETRY_CHECK_IN_SECONDS`), and once more just
    before each restart (the incarnation the new node registers with). It restarts the node
    when the node has exited with a code other than 0, or when the incarnation differs
    from the one the node was started under (that SuperLink, with the node's
    registration, is gone), after a delay of ``first_delay`` seconds doubled for each
    consecutive restart of a node that ran less than ``stable_seconds``, capped at
    ``max_delay``; each restart says why.

    Examples
    --------
    A node that exits at once, twice, then runs; a check-in that sees a new SuperLink:

    >>> class Node:
    ...     def __init__(self, code): self.code = code
    ...     def poll(self): return self.code
    ...     def stop(self): pass
    >>> codes = iter([1, 1, None, None])
    >>> seen = iter(["a", "a", "a", "b"])
    >>> def check_in():
    ...     value = next(seen, None)
    ...     if value is None:
    ...         raise KeyboardInterrupt  # Ctrl-C
    ...     return value
    >>> supervise_node(lambda: Node(next(codes)), check_in, incarnation="a",
    ...                check_in_seconds=0, sleep=lambda s: None, clock=lambda: 0.0)
    restarting the SuperNode in 1 s: it exited with code 1
    restarting the SuperNode in 2 s: it exited with code 1
    restarting the SuperNode in 4 s: the service's SuperLink restarted (a new incarnation, b)
    stopped
    """
    if check_in_seconds is None:
        from coopml.service.custody import CHECK_IN_SECONDS

        check_in_seconds = CHECK_IN_SECONDS
    node = start()
    started = clock()
    next_check = started + check_in_seconds
    failures, unreachable = 0, False
    try:
        while True:
            sleep(poll_seconds)
            code = node.poll()
            reason = None
            if code == 0:  # Flower's SUCCESS: it ended by itself, not by a fault
                say("the SuperNode exited (code 0); stopping")
                return
            if code is not None:
                reason = f"it exited with code {code}"
            elif check_in is not None and clock() >= next_check:
                next_check = clock() + check_in_seconds
                try:
                    seen = check_in()
                except Exception as exc:  # best effort: the service may be restarting
                    retry = min(RETRY_CHECK_IN_SECONDS, check_in_seconds)
                    if not unreachable:
                        say(f"could not check in ({exc}); trying every {retry:g} s")
                    seen, unreachable = None, True
                    next_check = clock() + retry  # soon: its SuperLink restarts with it
                else:
                    unreachable = False
                if seen is not None and seen != incarnation:
                    reason = f"the service's SuperLink restarted (a new incarnation, {seen})"
                    incarnation = seen
            if reason is None:
                continue
            node.stop()
            # the n-th restart in a row of nodes that died young waits first * 2**(n-1)
            failures = 1 if clock() - started >= stable_seconds else failures + 1
            delay = min(max_delay, first_delay * 2.0 ** (failures - 1))
            say(f"restarting the SuperNode in {delay:g} s: {reason}")
            sleep(delay)
            if check_in is not None:  # the incarnation the new node will register with
                try:
                    incarnation = check_in() or incarnation
                except Exception:
                    pass
                next_check = clock() + check_in_seconds
            node = start()
            started = clock()
    except KeyboardInterrupt:
        say("stopped")
    finally:
        node.stop()


class _CheckIn:
    """One check-in with the service (``POST /markets/{id}/agent``): the SuperLink's
    incarnation when ``follow`` (the agent runs against the service's SuperLink), else
    None (``--superlink`` names another one: the check-in only shows it connected)."""

    def __init__(self, url: str | None, token: str, market: str, follow: bool) -> None:
        self.url, self.token, self.market, self.follow = url, token, market, follow

    def __call__(self) -> str | None:
        with make_client(self.url or DEFAULT_URL, self.token) as client:
            connection = client.agent_check_in(self.market)
        seen = connection.get("superlink_incarnation")
        return str(seen) if self.follow and seen is not None else None


@contextmanager
def _stop_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP interrupt like Ctrl-C while inside (the SuperNode is then
    stopped, not orphaned); the previous handlers are restored after."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def check_privacy_options(
    epsilon: float | None,
    delta: float | None,
    clip: float | None,
    target_clip: float | None,
    labels: str | None,
) -> None:
    """The privacy options on their own: all of --epsilon, --delta and --clip or none,
    each in its range (raises ``ValueError`` naming the option, what is allowed and what
    was received).

    Examples
    --------
    >>> check_privacy_options(1.0, 1e-5, 4.0, None, None)
    >>> check_privacy_options(1.0, None, 4.0, None, None)
    Traceback (most recent call last):
    ...
    ValueError: --epsilon, --delta and --clip go together; ... (missing --delta)
    """
    given = {"--epsilon": epsilon, "--delta": delta, "--clip": clip}
    named = [k for k, v in given.items() if v is not None]
    if not named:
        extra = [k for k, v in (("--target-clip", target_clip), ("--labels", labels)) if v]
        if extra:
            raise ValueError(
                f"{', '.join(extra)} set the privacy noise, which needs --epsilon, --delta "
                "and --clip; received none of them"
            )
        return
    if len(named) < len(given):
        missing = [k for k in given if k not in named]
        raise ValueError(
            f"--epsilon, --delta and --clip go together; received {', '.join(named)} "
            f"(missing {', '.join(missing)})"
        )
    assert epsilon is not None and delta is not None and clip is not None
    if not epsilon > 0:
        raise ValueError(f"--epsilon must be positive (or inf: no noise); received {epsilon}")
    if not 0 < delta < 1:
        raise ValueError(f"--delta must be in (0, 1); received {delta}")
    if not clip > 0 or (math.isinf(clip) and not math.isinf(epsilon)):
        raise ValueError(
            "--clip must be a positive finite number (a row norm bound: inf only with "
            f"--epsilon inf); received {clip}"
        )
    if target_clip is not None and (
        not target_clip > 0 or (math.isinf(target_clip) and not math.isinf(epsilon))
    ):
        raise ValueError(
            "--target-clip must be a positive finite number (a bound on |target|); "
            f"received {target_clip}"
        )


def privacy_config(
    epsilon: float,
    delta: float | None,
    clip: float | None,
    target_clip: float | None,
    labels: str | None,
    task: str,
    schema: Any,
    label_type: str,
) -> dict[str, str]:
    """The node config of a private agent in a ``task`` market: the options checked
    against the market (``--target-clip`` for regression; for classification the
    schema's classes, or ``--labels`` typed as the files' ``label_type``).

    Examples
    --------
    >>> privacy_config(1.0, 1e-5, 4.0, None, "0,1", "classification", None, "integer")
    {'epsilon': '1.0', 'delta': '1e-05', 'clip': '4.0', 'labels': '[0, 1]'}
    >>> privacy_config(1.0, 1e-5, 4.0, None, None, "regression", None, "number")
    Traceback (most recent call last):
    ...
    ValueError: --target-clip is needed in a regression market ...; received none
    """
    check_privacy_options(epsilon, delta, clip, target_clip, labels)
    config = {"epsilon": repr(float(epsilon)), "delta": repr(delta), "clip": repr(clip)}
    if task == "regression":
        if labels:
            raise ValueError(f"--labels is for classification markets; received {labels!r}")
        if target_clip is None:
            raise ValueError(
                "--target-clip is needed in a regression market (the bound on each "
                "target's absolute value, e.g. --target-clip 3); received none"
            )
        config["target_clip"] = repr(float(target_clip))
        return config
    if target_clip is not None:
        raise ValueError(
            f"--target-clip is for regression markets; this market is {task}: received "
            f"{target_clip}"
        )
    declared = (schema or {}).get("classes")
    given = None if not labels else [_label(v.strip(), label_type) for v in labels.split(",")]
    if given is not None and (len(given) < 2 or len(set(given)) != len(given)):
        raise ValueError(f"--labels must list at least 2 distinct classes; received {labels!r}")
    if declared is not None and given is not None and sorted(given) != sorted(declared):
        raise ValueError(
            f"--labels must be the classes the market's schema declares, {declared}; "
            f"received {given}"
        )
    classes = declared if declared is not None else given
    if classes is None:
        raise ValueError(
            "--labels is needed: the market's schema declares no classes, and a private "
            "agent announces the market's public classes, not those it holds (e.g. "
            "--labels 0,1); received none"
        )
    config["labels"] = json.dumps(list(classes))
    if "'" in config["labels"] and '"' in config["labels"]:
        raise ValueError(
            "--labels: Flower's node config cannot carry labels holding both ' and \"; "
            f"received {classes}"
        )
    return config


def _node_value(value: str) -> str:
    """A value of ``--node-config`` as Flower reads it (TOML, split by a pattern that
    allows no quote inside a quoted value): a basic string, or a literal one for a value
    with double quotes (string labels' JSON).

    Examples
    --------
    >>> print(_node_value("/data/alice.csv"), _node_value('["a", "b"]'))
    "/data/alice.csv" '["a", "b"]'
    """
    if '"' in value and "'" not in value:
        return f"'{value}'"
    return json.dumps(value)


def _label(text: str, label_type: str) -> Any:
    """One --labels entry as the files' label type reads it (labels matched by value)."""
    try:
        if label_type == "integer":
            return int(text)
        if label_type == "number":
            return float(text)
        if label_type == "boolean":
            return {"true": True, "false": False}[text.lower()]
    except (ValueError, KeyError):
        raise ValueError(
            f"--labels entries must be of the labels' type {label_type!r}; received {text!r}"
        ) from None
    return text
