"""Where coalition evaluations run.

An :class:`Executor` maps a function over a sequence of work items and yields the
results *in order*; everything that depends on randomness is seeded per item, never per
worker, so results are identical whichever executor runs them. ``"serial"`` runs in
this process, ``"joblib"`` in local worker processes (large NumPy arrays are memory-
mapped rather than copied per task), ``"ray"`` as tasks on a Ray cluster
(:class:`~coopml.coalitions.ray_executor.RayExecutor`).

The parameters mean the same for every parallel executor: ``n_jobs`` is the number of
tasks running at the same time, and ``timeout`` the seconds to wait for one task's
result (default :data:`DEFAULT_TIMEOUT`; ``None`` waits forever) before the run stops
with a :class:`TimeoutError` that names the setting. The serial executor runs in the
calling process and has neither.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, TypeVar, runtime_checkable

from coopml._validation import check_choice, check_int

__all__ = [
    "DEFAULT_TIMEOUT",
    "Executor",
    "JoblibExecutor",
    "ProgressCallback",
    "SerialExecutor",
    "get_executor",
]

T = TypeVar("T")
R = TypeVar("R")

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(n_done, n_total)``."""

#: Seconds a parallel executor waits for one task's result before giving up.
DEFAULT_TIMEOUT = 3600.0

#: How to change the timeout, quoted by every timeout error.
TIMEOUT_HINT = (
    "raise it with timeout=<seconds> (None waits forever) on the executor, `timeout` in "
    "the job file's [executor] table, or COOPML_EXECUTOR_TIMEOUT for the service"
)


def check_timeout(timeout: float | None) -> float | None:
    """``timeout`` as seconds > 0, or ``None`` (also for ``inf``): wait forever.

    >>> check_timeout(30), check_timeout(float("inf"))
    (30.0, None)
    >>> check_timeout(0)
    Traceback (most recent call last):
    ...
    ValueError: parameter 'timeout' must be seconds > 0 or None (wait forever); got 0
    """
    if timeout is None:
        return None
    ok = isinstance(timeout, int | float) and not isinstance(timeout, bool)
    if not ok or math.isnan(timeout) or timeout <= 0:
        raise ValueError(
            f"parameter 'timeout' must be seconds > 0 or None (wait forever); got {timeout!r}"
        )
    return None if math.isinf(timeout) else float(timeout)


@runtime_checkable
class Executor(Protocol):
    """Maps ``fn`` over ``items``, yielding results in the order of ``items``."""

    name: str
    n_workers: int

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]: ...


class SerialExecutor:
    """Run every item in the calling process.

    >>> list(SerialExecutor().map(abs, [-1, 2]))
    [1, 2]
    """

    name = "serial"
    n_workers = 1

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        return (fn(item) for item in items)


class JoblibExecutor:
    """Run items in ``n_jobs`` local processes with joblib (loky backend).

    ``timeout`` bounds each task (joblib applies it with more than one process).

    >>> list(JoblibExecutor(n_jobs=1).map(abs, [-3]))
    [3]
    """

    name = "joblib"

    def __init__(self, n_jobs: int | None = None, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        cores = os.cpu_count() or 1
        self.n_workers = cores if n_jobs is None else check_int("n_jobs", n_jobs, minimum=1)
        self.timeout = check_timeout(timeout)

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        from joblib import Parallel, delayed

        timeout = self.timeout if self.n_workers > 1 else None  # one process: in line
        parallel = Parallel(n_jobs=self.n_workers, return_as="generator", timeout=timeout)
        return self._results(parallel(delayed(fn)(item) for item in items))

    def _results(self, results: Iterator[R]) -> Iterator[R]:
        from multiprocessing import TimeoutError as PoolTimeout

        try:
            yield from results
        except PoolTimeout:
            raise TimeoutError(
                f"a joblib task gave no result within timeout={self.timeout} s; {TIMEOUT_HINT}"
            ) from None


def get_executor(
    executor: str | Executor = "serial",
    n_jobs: int | None = None,
    *,
    address: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> Executor:
    """Resolve an executor name (``"serial"``, ``"joblib"``, ``"ray"``) or pass one through.

    ``address`` names a Ray cluster (``executor="ray"`` only; see
    :class:`~coopml.coalitions.ray_executor.RayExecutor`); ``n_jobs`` and ``timeout`` are
    described in the module docstring. An executor object is returned as it is.

    >>> get_executor("serial").name
    'serial'
    >>> get_executor("joblib", 2, timeout=60).timeout
    60.0
    >>> get_executor("joblib", address="auto")
    Traceback (most recent call last):
    ...
    ValueError: parameter 'address' names a Ray cluster and needs executor='ray'; got ...
    """
    if isinstance(executor, Executor):
        return executor
    name = check_choice("executor", executor, {"serial", "joblib", "ray"})
    if address is not None and name != "ray":
        raise ValueError(
            "parameter 'address' names a Ray cluster and needs executor='ray'; "
            f"got executor={name!r}"
        )
    if name == "serial":
        return SerialExecutor()
    if name == "joblib":
        return JoblibExecutor(n_jobs, timeout)
    try:
        from coopml.coalitions.ray_executor import RayExecutor
    except ImportError as exc:
        raise ImportError(
            "executor='ray' needs the 'ray' extra: pip install 'coopml[ray]'"
        ) from exc
    return RayExecutor(n_jobs, address=address, timeout=timeout)
