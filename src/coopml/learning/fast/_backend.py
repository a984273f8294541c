"""Array backends of the batched fast learners: numpy (default) or torch (optional).

A fast learner keeps its per-party statistics and runs its batched kernels on one
backend. :class:`NumpyBackend` is the default and needs nothing beyond the core
dependencies. :class:`TorchBackend` runs the same kernels with torch tensors on a torch
device (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...); torch is imported only when one is
built (extra ``torch``: ``pip install 'coopml[torch]'``). Both compute in float64, so
the two backends agree to rounding (about ``1e-12`` relative on fitted parameters; the
tie margins that send a coalition to the scikit-learn refit are the same).

The kernels are written once, against the small common surface of numpy arrays and
torch tensors (operators, indexing, ``reshape``, ``sum``/``any``/``all`` over ``axis``)
plus the methods below for what differs. The CUDA path uses only device-agnostic torch
calls; it is not exercised by the test suite (which runs the torch backend on CPU).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "Backend",
    "NumpyBackend",
    "TorchBackend",
    "get_backend",
    "set_default_device",
    "use_device",
]

_DEFAULT_DEVICE: list[str | None] = [os.environ.get("COOPML_FAST_DEVICE") or None]


def set_default_device(device: str | None) -> None:
    """Set the device fast learners use when none is passed (``None``: numpy).

    The initial default is the environment variable ``COOPML_FAST_DEVICE`` (unset:
    numpy); the variable also reaches joblib and Ray worker processes.
    """
    _DEFAULT_DEVICE[0] = device


@contextmanager
def use_device(device: str | None) -> Iterator[None]:
    """Within the ``with`` block, fast learners built without a ``device`` use ``device``.

    Examples
    --------
    >>> with use_device(None):
    ...     get_backend().name
    'numpy'
    """
    previous = _DEFAULT_DEVICE[0]
    _DEFAULT_DEVICE[0] = device
    try:
        yield
    finally:
        _DEFAULT_DEVICE[0] = previous


class Backend:
    """The operations the batched kernels need beyond the shared array surface of numpy
    arrays and torch tensors; this base class implements them with numpy.

    Examples
    --------
    >>> be = Backend()
    >>> L, ok = be.cholesky(np.array([[[4.0, 2.0], [2.0, 3.0]], [[1.0, 2.0], [2.0, 1.0]]]))
    >>> ok.tolist()
    [True, False]
    """

    name = "numpy"
    device = "cpu"
    float64: Any = np.float64
    intp: Any = np.intp
    bool_: Any = np.bool_

    def asarray(self, x: Any, dtype: Any = np.float64) -> Any:
        return np.asarray(x, dtype=dtype)

    def numpy(self, x: Any) -> NDArray[Any]:
        return np.asarray(x)

    def zeros(self, shape: Any, dtype: Any = np.float64) -> Any:
        return np.zeros(shape, dtype=dtype)

    def eye(self, d: int) -> Any:
        return np.eye(d)

    def arange(self, n: int) -> Any:
        return np.arange(n)

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        return np.where(cond, a, b)

    def clip_min(self, x: Any, low: float) -> Any:
        return np.maximum(x, low)

    def log(self, x: Any) -> Any:
        return np.log(x)

    def sqrt(self, x: Any) -> Any:
        return np.sqrt(x)

    def abs(self, x: Any) -> Any:
        return np.abs(x)

    def amax(self, x: Any, axis: int | tuple[int, ...]) -> Any:
        return np.max(x, axis=axis)

    def amin(self, x: Any, axis: int) -> Any:
        return np.min(x, axis=axis)

    def argmax(self, x: Any, axis: int) -> Any:
        return np.argmax(x, axis=axis)

    def diagonal(self, x: Any) -> Any:
        """The diagonals of a stack of matrices (copied)."""
        return np.diagonal(x, axis1=-2, axis2=-1).copy()

    def swap(self, x: Any) -> Any:
        """Transpose the last two axes."""
        return np.swapaxes(x, -1, -2)

    def einsum(self, spec: str, *ops: Any) -> Any:
        return np.einsum(spec, *ops)

    def permute(self, x: Any, axes: tuple[int, ...]) -> Any:
        return np.transpose(x, axes)

    def top2(self, x: Any) -> tuple[Any, Any]:
        """The largest and second largest entries along the last axis."""
        part = -np.partition(-x, 1, axis=-1)
        return part[..., 0], part[..., 1]

    def cholesky(self, C: Any) -> tuple[Any, Any]:
        """Lower Cholesky factors of a stack (B, d, d) and whether each succeeded."""
        try:
            return np.linalg.cholesky(C), np.ones(C.shape[0], dtype=bool)
        except np.linalg.LinAlgError:
            L = np.zeros(C.shape)
            ok = np.zeros(C.shape[0], dtype=bool)
            for b in range(C.shape[0]):
                try:
                    L[b] = np.linalg.cholesky(C[b])
                    ok[b] = True
                except np.linalg.LinAlgError:
                    pass
            return L, ok

    def solve(self, C: Any, rhs: Any) -> Any:
        return np.linalg.solve(C, rhs)

    def cho_solve(self, L: Any, C: Any, rhs: Any, ok: Any) -> Any:
        """Solve ``C x = rhs`` where ``ok`` (C's lower Cholesky factor is ``L``); 0 elsewhere.

        numpy has no batched triangular solve, and its batched LU solve is faster than
        looping one, so it solves with ``C``; torch uses the factor.
        """
        if ok.all():
            return np.linalg.solve(C, rhs)
        x = np.zeros(rhs.shape)
        if ok.any():
            x[ok] = np.linalg.solve(C[ok], rhs[ok])
        return x

    def flatnonzero(self, x: Any) -> Any:
        return np.flatnonzero(x)

    def diag(self, v: Any) -> Any:
        return np.diag(v)

    def eigvalsh(self, C: Any) -> Any:
        return np.linalg.eigvalsh(C)

    # numpy only (stable forms): a parties-custody agent imports this module in a fresh
    # process for every Flower message, and SciPy would double its start-up
    def expit(self, x: Any) -> Any:
        return np.exp(-np.logaddexp(0.0, -x))

    def softmax(self, x: Any, axis: int) -> Any:
        return np.exp(self.log_softmax(x, axis))

    def log_softmax(self, x: Any, axis: int) -> Any:
        shifted = x - x.max(axis=axis, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))

    def logaddexp0(self, x: Any) -> Any:
        """``log(1 + exp(x))`` without overflow."""
        return np.logaddexp(0.0, x)


class NumpyBackend(Backend):
    """numpy arrays on the host (the default backend)."""


class TorchBackend(Backend):
    """torch tensors (float64) on ``device``; torch is imported here, lazily.

    Parameters
    ----------
    device : str
        A torch device: ``"cpu"``, ``"cuda"``, ``"cuda:0"``, ...

    Raises
    ------
    ImportError
        When torch is not installed.
    ValueError
        When ``device`` is not a torch device or is not available.
    """

    name = "torch"

    def __init__(self, device: str = "cpu") -> None:
        try:
            import torch
        except ImportError as exc:  # pragma: no cover - exercised without torch only
            raise ImportError(
                f"device={device!r} needs torch (the 'torch' extra): pip install 'coopml[torch]'"
            ) from exc
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(
                f"parameter 'device' must be a torch device such as 'cpu' or 'cuda'; got {device!r}"
            ) from exc
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"parameter 'device' is {device!r} but no CUDA device is available")
        self.torch: Any = torch
        self.device = str(dev)
        self._dev = dev
        self.float64 = torch.float64
        self.intp = torch.int64
        self.bool_ = torch.bool

    # pickling (joblib / Ray workers): rebuild the module handle on the other side
    def __getstate__(self) -> dict[str, Any]:
        return {"device": self.device}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["device"])  # type: ignore[misc]

    def asarray(self, x: Any, dtype: Any = None) -> Any:
        torch = self.torch
        if dtype is None or dtype is np.float64:
            dtype = torch.float64
        elif dtype is np.intp or dtype is np.int64:
            dtype = torch.int64
        elif dtype is bool or dtype is np.bool_:
            dtype = torch.bool
        if isinstance(x, torch.Tensor):
            return x.to(device=self._dev, dtype=dtype)
        return torch.as_tensor(np.asarray(x), dtype=dtype, device=self._dev)

    def numpy(self, x: Any) -> NDArray[Any]:
        if isinstance(x, self.torch.Tensor):
            return x.detach().cpu().numpy()
        return np.asarray(x)

    def zeros(self, shape: Any, dtype: Any = None) -> Any:
        dtype = self.float64 if dtype is None or dtype is np.float64 else dtype
        if dtype is np.intp:
            dtype = self.intp
        elif dtype is bool or dtype is np.bool_:
            dtype = self.bool_
        return self.torch.zeros(shape, dtype=dtype, device=self._dev)

    def eye(self, d: int) -> Any:
        return self.torch.eye(d, dtype=self.float64, device=self._dev)

    def arange(self, n: int) -> Any:
        return self.torch.arange(n, device=self._dev)

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        return self.torch.where(cond, a, b)

    def clip_min(self, x: Any, low: float) -> Any:
        return self.torch.clamp(x, min=low)

    def log(self, x: Any) -> Any:
        return self.torch.log(x)

    def sqrt(self, x: Any) -> Any:
        return self.torch.sqrt(x)

    def abs(self, x: Any) -> Any:
        return self.torch.abs(x)

    def amax(self, x: Any, axis: int | tuple[int, ...]) -> Any:
        return self.torch.amax(x, dim=axis)

    def amin(self, x: Any, axis: int) -> Any:
        return self.torch.amin(x, dim=axis)

    def argmax(self, x: Any, axis: int) -> Any:
        return self.torch.argmax(x, dim=axis)

    def diagonal(self, x: Any) -> Any:
        return self.torch.diagonal(x, dim1=-2, dim2=-1).clone()

    def swap(self, x: Any) -> Any:
        return self.torch.transpose(x, -1, -2)

    def einsum(self, spec: str, *ops: Any) -> Any:
        return self.torch.einsum(spec, *ops)

    def permute(self, x: Any, axes: tuple[int, ...]) -> Any:
        return x.permute(*axes)

    def top2(self, x: Any) -> tuple[Any, Any]:
        values = self.torch.topk(x, 2, dim=-1).values
        return values[..., 0], values[..., 1]

    def cholesky(self, C: Any) -> tuple[Any, Any]:
        L, info = self.torch.linalg.cholesky_ex(C)
        ok = info == 0
        return self.torch.where(ok[:, None, None], L, 0.0), ok

    def solve(self, C: Any, rhs: Any) -> Any:
        return self.torch.linalg.solve(C, rhs)

    def cho_solve(self, L: Any, C: Any, rhs: Any, ok: Any) -> Any:
        eye = self.torch.eye(L.shape[-1], dtype=L.dtype, device=self._dev)
        safe = self.torch.where(ok[:, None, None], L, eye)  # failed factors: identity
        x = self.torch.cholesky_solve(rhs, safe)
        return self.torch.where(ok.reshape(-1, *([1] * (rhs.ndim - 1))), x, 0.0)

    def flatnonzero(self, x: Any) -> Any:
        return self.torch.nonzero(x.reshape(-1)).reshape(-1)

    def diag(self, v: Any) -> Any:
        return self.torch.diag(v)

    def eigvalsh(self, C: Any) -> Any:
        return self.torch.linalg.eigvalsh(C)

    def expit(self, x: Any) -> Any:
        return self.torch.special.expit(x)

    def softmax(self, x: Any, axis: int) -> Any:
        return self.torch.softmax(x, dim=axis)

    def log_softmax(self, x: Any, axis: int) -> Any:
        return self.torch.log_softmax(x, dim=axis)

    def logaddexp0(self, x: Any) -> Any:
        return self.torch.logaddexp(x, self.torch.zeros_like(x))


def get_backend(device: str | None = None) -> Backend:
    """The backend for ``device``: numpy for ``None`` (after the default, see
    :func:`set_default_device`), else torch on that device.

    Examples
    --------
    >>> get_backend(None).name
    'numpy'
    """
    if device is None:
        device = _DEFAULT_DEVICE[0]
    if device is None or device == "numpy":
        return NumpyBackend()
    if not isinstance(device, str):
        raise TypeError(f"parameter 'device' must be a str or None; got {device!r}")
    return TorchBackend(device)
