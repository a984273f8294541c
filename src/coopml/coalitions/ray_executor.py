"""Ray executor: coalition evaluations on a Ray cluster (or a local Ray instance).

Implements the :class:`~coopml.coalitions.executors.Executor` protocol: ``map`` yields
results in the order of the items, and everything random is seeded per item, so a
table or an estimate computed with Ray equals the serial and joblib ones bit for bit.

**What travels.** The mapped function is split into its code (sent by reference) and
its heavy parts -- for coalition evaluations the utility, which holds the parties'
data and the fast learner's statistics, whether it arrives as a bound method
(``utility.evaluate_block``) or inside a :func:`functools.partial` built per batch.
Each heavy part is stored in Ray's object store with ``ray.put`` *once for the
executor's lifetime* (keyed by the object's identity; an object whose attributes were
reassigned is stored again) and every task receives a reference to it, so a node
fetches the utility once and its workers read the NumPy arrays zero-copy from the
node's shared memory. Per task only the coalition masks go out and their values come
back. :meth:`RayExecutor.close` (or leaving a ``with`` block, or dropping the
executor) releases the stored objects.

**Which cluster.** ``address=None`` uses the Ray instance this process already
connected to (``ray.init`` called before), else the cluster in ``RAY_ADDRESS``, else
starts a local instance with ``n_jobs`` CPUs; ``"auto"`` joins the cluster this machine
is part of (started with ``ray start``); ``"HOST:PORT"`` or ``"ray://HOST:10001"``
names one. ``n_jobs`` is the number of tasks running at once, as for joblib: a cluster
coopml did not start is never resized, the executor keeps at most ``n_jobs`` tasks in
flight instead (default: the cluster's CPUs).

**Timeouts and failures.** Each result is awaited at most ``timeout`` seconds (a task
that can never be scheduled, such as one asking for a GPU the cluster lacks, would
otherwise wait forever); then the outstanding tasks are cancelled and a
:class:`TimeoutError` names the setting. Ray re-runs a task whose worker or node died
(``max_retries``, 3 by default; change it with ``task_options``).

Needs the ``ray`` extra: ``pip install 'coopml[ray]'``.
"""

from __future__ import annotations

import functools
import os
import types
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import ray
from ray.exceptions import GetTimeoutError

from coopml._validation import check_int
from coopml.coalitions.executors import DEFAULT_TIMEOUT, TIMEOUT_HINT, check_timeout

__all__ = ["RayExecutor"]

T = TypeVar("T")
R = TypeVar("R")

#: The address this module connected Ray to, by the cluster's GCS address.
_connected: dict[str, str | None] = {}


@ray.remote
def _apply(fn: Callable[..., Any], keys: tuple[str, ...], item: Any, *values: Any) -> Any:
    """``fn(*args, item, **kwargs)``; ``values`` are the arguments then the keyword values
    (top-level arguments, so Ray resolves their object references before the call)."""
    split = len(values) - len(keys)
    return fn(*values[:split], item, **dict(zip(keys, values[split:], strict=True)))


def _inline(obj: Any) -> bool:
    """Whether ``obj`` is small enough to send with every task (numbers, text, and
    functions pickled by reference)."""
    if obj is None or isinstance(obj, bool | int | float | complex | str | bytes):
        return True
    if isinstance(obj, types.BuiltinFunctionType | type):
        return True
    if isinstance(obj, types.FunctionType):
        return (
            obj.__closure__ is None
            and "<" not in obj.__qualname__
            and obj.__module__ not in (None, "__main__")
        )
    return False


def _state(obj: Any) -> tuple[tuple[str, int], ...]:
    """Which objects ``obj``'s public attributes are: reassigning one changes it (private
    caches filled on first use do not)."""
    attributes = getattr(obj, "__dict__", None)
    if not isinstance(attributes, dict):
        return ()
    return tuple((k, id(v)) for k, v in attributes.items() if not k.startswith("_"))


def _forget(executor: weakref.ref[RayExecutor], key: int) -> None:
    """Drop a stored object's entry once the object is gone (its id may be reused)."""
    alive = executor()
    if alive is not None:
        alive._stored.pop(key, None)


def _connect(address: str | None, n_jobs: int | None) -> None:
    if ray.is_initialized():
        ours = _connected.get(ray.get_runtime_context().gcs_address)
        if address is not None and address != ours:
            where = repr(ours) if ours else "the instance of an earlier ray.init()"
            raise ValueError(
                f"parameter 'address' asks for the Ray cluster at {address!r}, but this process "
                f"is already connected to {where}; pass address=None to use it, or call "
                "ray.shutdown() first"
            )
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        if address is not None or os.environ.get("RAY_ADDRESS"):
            # A cluster coopml did not start: never pass num_cpus (Ray refuses it).
            ray.init(address=address)
        else:
            # "local": a new instance even where `ray start` left a cluster to join
            ray.init(address="local", num_cpus=n_jobs, include_dashboard=False)
    except ConnectionError as exc:
        target = address or os.environ.get("RAY_ADDRESS")
        raise ConnectionError(
            f"cannot connect to the Ray cluster at {target!r} (parameter 'address' or "
            f"RAY_ADDRESS): {exc}. Start one with `ray start --head --port=6379` and pass "
            "its address, e.g. 'HEAD_IP:6379' or 'auto' on a cluster node"
        ) from exc
    _connected[ray.get_runtime_context().gcs_address] = address


class RayExecutor:
    """Run items as Ray tasks, results in item order.

    Parameters
    ----------
    n_jobs : int, optional
        Tasks running at the same time (default: the cluster's CPUs). A local instance
        started here gets ``n_jobs`` CPUs; an existing cluster is not resized.
    address : str, optional
        The cluster: ``None`` (the instance this process is connected to, else
        ``RAY_ADDRESS``, else a new local one), ``"auto"``, ``"HOST:PORT"`` or
        ``"ray://HOST:PORT"``.
    timeout : float or None, default 3600
        Seconds to wait for each task's result; ``None`` waits forever.
    task_options : mapping, optional
        Options of every task, passed to Ray's ``.options()``: for example
        ``{"max_retries": 5}``, ``{"num_gpus": 1}`` or ``{"resources": {"big": 1}}``.

    Examples
    --------
    >>> import ray
    >>> _ = ray.init(num_cpus=1, include_dashboard=False)  # doctest: +SKIP
    >>> with RayExecutor(timeout=600) as executor:  # doctest: +SKIP
    ...     list(executor.map(abs, [-1, 2]))
    [1, 2]
    """

    name = "ray"

    def __init__(
        self,
        n_jobs: int | None = None,
        *,
        address: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        task_options: Mapping[str, Any] | None = None,
    ) -> None:
        if n_jobs is not None:
            n_jobs = check_int("n_jobs", n_jobs, minimum=1)
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise ValueError(
                "parameter 'address' must be None, 'auto', 'HOST:PORT' or 'ray://HOST:PORT'; "
                f"got {address!r}"
            )
        self.timeout = check_timeout(timeout)
        if task_options is not None and not isinstance(task_options, Mapping):
            raise TypeError(
                "parameter 'task_options' must be a mapping of Ray task options such as "
                f"{{'max_retries': 5}}; got {type(task_options).__name__}"
            )
        self.task_options = dict(task_options or {})
        self._task = _apply.options(**self.task_options) if self.task_options else _apply
        _connect(address, n_jobs)
        self.address = address
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.n_workers = n_jobs if n_jobs is not None else max(1, cpus)
        # id(obj) -> (attribute identities, reference in the object store)
        self._stored: dict[int, tuple[tuple[tuple[str, int], ...], ray.ObjectRef]] = {}
        self._keep: dict[int, Any] = {}  # objects that cannot be weakly referenced

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        """Run ``fn`` on every item as a Ray task; results in the order of ``items``."""
        call = self._ship(fn)
        return self._results(call, list(items))

    def close(self) -> None:
        """Release everything this executor stored in the object store."""
        self._stored.clear()
        self._keep.clear()

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals
    def _ship(self, fn: Callable[..., Any]) -> tuple[Any, tuple[str, ...], list[Any]]:
        """``fn`` as (callable, keyword names, argument values), heavy parts as references."""
        if isinstance(fn, functools.partial):
            keys = tuple(fn.keywords)
            values = [*fn.args, *fn.keywords.values()]
            return self._store(fn.func), keys, [self._store(v) for v in values]
        if isinstance(fn, types.MethodType):
            return self._store(fn.__func__), (), [self._store(fn.__self__)]
        return self._store(fn), (), []

    def _store(self, obj: Any) -> Any:
        """``obj`` itself when it is small, else its reference, put on first use."""
        if _inline(obj):
            return obj
        key, state = id(obj), _state(obj)
        known = self._stored.get(key)
        if known is not None and known[0] == state:
            return known[1]
        ref = ray.put(obj)
        self._stored[key] = (state, ref)
        try:  # forget the entry with the object, so a recycled id never finds it
            weakref.finalize(obj, _forget, weakref.ref(self), key)
        except TypeError:
            self._keep[key] = obj
        return ref

    def _results(
        self, call: tuple[Any, tuple[str, ...], list[Any]], items: list[Any]
    ) -> Iterator[Any]:
        fn, keys, values = call
        pending: deque[ray.ObjectRef] = deque()
        submitted = 0
        try:
            for index in range(len(items)):
                while submitted < len(items) and len(pending) < self.n_workers:
                    pending.append(self._task.remote(fn, keys, items[submitted], *values))
                    submitted += 1
                ref = pending[0]
                try:
                    result = ray.get(ref, timeout=self.timeout)
                except GetTimeoutError:
                    raise TimeoutError(
                        f"Ray task {index + 1} of {len(items)} gave no result within "
                        f"timeout={self.timeout} s (is it asking for resources the cluster "
                        f"lacks? options {self.task_options or 'default'}); {TIMEOUT_HINT}"
                    ) from None
                pending.popleft()
                yield result
        finally:
            for ref in pending:  # stopped early: do not leave work running
                ray.cancel(ref)
