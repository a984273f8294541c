"""The root typer application and the shared console."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from coopml import __version__

app = typer.Typer(
    name="coopml",
    help="coopml: value data, run collaborative ML markets and analyse data-sharing games.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(soft_wrap=True)  # a line never wraps: paths and values stay whole
err_console = Console(stderr=True, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        console.print(f"coopml {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """coopml: value data, run collaborative ML markets and analyse data-sharing games."""


def fail(message: str) -> typer.Exit:
    """Print an error for the user (no traceback) and return the exit to raise.

    ``message`` is printed as it is: square brackets (``[[parties]]``, ``[validation]``)
    are escaped, never read as Rich markup.
    """
    # soft wrap: file paths and names are never cut by inserted line breaks
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


#: Environment variable: seconds between two plain progress lines (output not a terminal).
PROGRESS_INTERVAL_ENV = "COOPML_PROGRESS_INTERVAL"
#: Default seconds between two plain progress lines.
PROGRESS_INTERVAL = 5.0

QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Show no progress.")]


def print_warnings(messages: Iterable[str]) -> None:
    """Print each distinct warning once, as a clean ``warning: ...`` line (a learner's
    warning repeated for every coalition it was fitted on appears once)."""
    for message in dict.fromkeys(messages):
        console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False)


ExecutorOpt = Annotated[
    str | None, typer.Option(help="Override the executor: serial, joblib or ray.")
]
NJobsOpt = Annotated[int | None, typer.Option(help="Override the number of tasks run at once.")]
RayAddressOpt = Annotated[
    str | None, typer.Option(help="Ray cluster to run on: auto, HOST:PORT or ray://HOST:PORT.")
]


def duration(seconds: float) -> str:
    """Seconds for people: ``3.1 s``, ``4 min 10 s``, ``2 h 05 min``.

    >>> duration(3.14), duration(250), duration(7500)
    ('3.1 s', '4 min 10 s', '2 h 05 min')
    """
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class PlainProgress:
    """Progress as a plain line every ``interval`` seconds, for output that is not a
    terminal: ``coalitions 512/4096 (12%), 3.1 s elapsed, ETA 22 s``.

    The callback of the library's computations: ``progress(done, total)``, with the
    optional keywords ``unit`` (what is counted) and ``detail`` (e.g. a stopping rule's
    state). A new ``unit`` or ``total``, or a count that goes back, starts a new phase
    (the next value table or estimator), timed from the previous phase's last report.
    The last count of a phase is always printed; the ETA is extrapolated from the rate
    since the phase's first report (a resumed run starts with a count done earlier).

    Examples
    --------
    >>> clock = iter([0.0, 2.0, 4.0, 8.0]).__next__
    >>> progress = PlainProgress(print, interval=0, clock=clock)
    >>> progress(100, 400)
    coalitions 100/400 (25%), 2.0 s elapsed, ETA ?
    >>> progress(200, 400)
    coalitions 200/400 (50%), 4.0 s elapsed, ETA 4.0 s
    >>> progress(40, 300, unit="evaluations", detail="largest standard error 0.02")
    evaluations 40/300 (13%), 4.0 s elapsed, ETA ?; largest standard error 0.02
    """

    def __init__(
        self,
        write: Callable[[str], object],
        interval: float = PROGRESS_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.write, self.interval, self.clock = write, interval, clock
        self.started = self.last_at = clock()
        self.phase: tuple[str, int] | None = None
        self.first: tuple[float, int] = (self.started, 0)
        self.last_done, self.printed_at = 0, -math.inf

    def __call__(
        self, done: int, total: int, *, unit: str = "coalitions", detail: str = ""
    ) -> None:
        now = self.clock()
        if self.phase != (unit, total) or done < self.last_done:
            if self.phase is not None:  # the previous phase ended at its last report
                self.started = self.last_at
            self.phase, self.first = (unit, total), (now, done)
        self.last_done, self.last_at = done, now
        finished = done >= total > 0
        if not finished and now - self.printed_at < self.interval:
            return
        self.printed_at = now
        percent = math.floor(100 * done / total) if total else 0
        line = f"{unit} {done}/{total} ({percent}%), {duration(now - self.started)} elapsed"
        if not finished:
            t0, d0 = self.first
            rate = (done - d0) / (now - t0) if done > d0 and now > t0 else 0.0
            line += f", ETA {duration((total - done) / rate) if rate > 0 else '?'}"
        self.write(line + (f"; {detail}" if detail else ""))


def _interval() -> float:
    raw = os.environ.get(PROGRESS_INTERVAL_ENV)
    if raw is None:
        return PROGRESS_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not value >= 0 or math.isinf(value):
        raise fail(f"{PROGRESS_INTERVAL_ENV} must be seconds >= 0; got {raw!r}")
    return value


@contextmanager
def coalition_progress(
    quiet: bool = False, interval: float | None = None
) -> Iterator[Callable[..., None] | None]:
    """Progress of coalition evaluations; yields the ``progress(done, total)`` callback
    that the library's computations accept (``None`` when ``quiet``).

    On a terminal: a Rich bar with the count, the elapsed time and an ETA. Otherwise a
    plain line on stderr every ``interval`` seconds (default ``COOPML_PROGRESS_INTERVAL``
    or 5 s; see :class:`PlainProgress`). While it is open, SIGTERM exits like Ctrl-C
    (``SystemExit``), so an interrupted computation saves its checkpoint.
    """
    with _terminate_as_exit():
        with _progress(quiet, interval) as progress:
            yield progress


@contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """Turn SIGTERM (a killed job) into ``SystemExit(143)`` while computing, so that the
    library writes its checkpoints as it does on Ctrl-C (``cache_dir``)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _exit(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _progress(quiet: bool, interval: float | None) -> Iterator[Callable[..., None] | None]:
    if quiet:
        yield None
        return
    if not err_console.is_terminal:
        seconds = _interval() if interval is None else interval
        yield PlainProgress(
            lambda line: err_console.print(line, markup=False, highlight=False, soft_wrap=True),
            seconds,
        )
        return
    columns = (
        TextColumn("[bold]{task.fields[unit]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[detail]}"),
    )
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("coalitions", total=None, unit="coalitions", detail="")
        last: list[tuple[str, int, int]] = []  # (unit, total, done) of the last report

        def update(done: int, total: int, *, unit: str = "coalitions", detail: str = "") -> None:
            if not last or last[-1][:2] != (unit, total) or done < last[-1][2]:
                # a new phase (the next table or estimator): restart the speed estimate
                bar.reset(task, total=total, completed=done, unit=unit, detail="")
            last[:] = [(unit, total, done)]
            bar.update(task, completed=done, total=total, detail=escape(detail))

        yield update
