"""Ray executor: coalition evaluations on a Ray cluster (or a local Ray instance).

Implements the :class:`~coopml.coalitions.executors.Executor` protocol: ``map`` yields
results in the order of the items, and everything random is seeded per item, so a
table computed with Ray equals the serial and joblib tables bit for bit. The mapped
function (for a value table: the utility's bound ``evaluate_block`` method, which
holds the parties' data and the fast learner's statistics) is stored once in Ray's
object store with ``ray.put`` and every task receives a reference to it, so large data
is shared by the workers rather than serialised per task (NumPy arrays are read
zero-copy from shared memory on each node).

Connects to the running Ray instance if there is one (``ray.init()`` called by the
user, or ``RAY_ADDRESS`` set); otherwise starts a local one with ``n_jobs`` CPUs.
Needs the ``ray`` extra: ``pip install 'coopml[ray]'``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import ray

from coopml._validation import check_int

__all__ = ["RayExecutor"]

T = TypeVar("T")
R = TypeVar("R")


@ray.remote
def _apply(fn: Callable[[Any], Any], item: Any) -> Any:
    return fn(item)


class RayExecutor:
    """Run items as Ray tasks, results in item order.

    Parameters
    ----------
    n_jobs : int, optional
        CPUs of the local instance started when none is running (default: all cores);
        with a running instance, ``n_workers`` reports its CPUs.

    Examples
    --------
    >>> import ray
    >>> _ = ray.init(num_cpus=1, include_dashboard=False)  # doctest: +SKIP
    >>> list(RayExecutor().map(abs, [-1, 2]))  # doctest: +SKIP
    [1, 2]
    """

    name = "ray"

    def __init__(self, n_jobs: int | None = None) -> None:
        if n_jobs is not None:
            check_int("n_jobs", n_jobs, minimum=1)
        if not ray.is_initialized():
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            if os.environ.get("RAY_ADDRESS"):
                ray.init()
            else:
                ray.init(num_cpus=n_jobs, include_dashboard=False)
        self.n_workers = int(ray.cluster_resources().get("CPU", 1))

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        fn_ref = ray.put(fn)  # once: every task reads the same stored function and data
        refs = [_apply.remote(fn_ref, item) for item in items]
        return (ray.get(ref) for ref in refs)
