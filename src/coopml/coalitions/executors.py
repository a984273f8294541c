"""Where coalition evaluations run.

An :class:`Executor` maps a function over a sequence of work items and yields the
results *in order*; everything that depends on randomness is seeded per item, never per
worker, so results are identical whichever executor runs them. ``"serial"`` runs in
this process, ``"joblib"`` in local worker processes (large NumPy arrays are memory-
mapped rather than copied per task). A Ray executor for clusters implements the same
protocol.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, TypeVar, runtime_checkable

from coopml._validation import check_choice, check_int

__all__ = [
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

    >>> list(JoblibExecutor(n_jobs=1).map(abs, [-3]))
    [3]
    """

    name = "joblib"

    def __init__(self, n_jobs: int | None = None) -> None:
        cores = os.cpu_count() or 1
        self.n_workers = cores if n_jobs is None else check_int("n_jobs", n_jobs, minimum=1)

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        from joblib import Parallel, delayed

        parallel = Parallel(n_jobs=self.n_workers, return_as="generator")
        return iter(parallel(delayed(fn)(item) for item in items))


def get_executor(executor: str | Executor = "serial", n_jobs: int | None = None) -> Executor:
    """Resolve an executor name (``"serial"``, ``"joblib"``, ``"ray"``) or pass one through.

    >>> get_executor("serial").name
    'serial'
    """
    if isinstance(executor, Executor):
        return executor
    name = check_choice("executor", executor, {"serial", "joblib", "ray"})
    if name == "serial":
        return SerialExecutor()
    if name == "joblib":
        return JoblibExecutor(n_jobs)
    try:
        from coopml.coalitions.ray_executor import RayExecutor
    except ImportError as exc:
        raise ImportError(
            "executor='ray' needs the 'ray' extra: pip install 'coopml[ray]'"
        ) from exc
    return RayExecutor(n_jobs)
