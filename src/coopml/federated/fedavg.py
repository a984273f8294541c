r"""Federated averaging (FedAvg) on the CPU: client sampling, local epochs, weighted means.

McMahan, Moore, Ramage, Hampson & Agüera y Arcas (AISTATS 2017). Each round a fraction
of the clients is sampled; every sampled client starts from the global parameters, runs
``local_epochs`` passes of minibatch SGD over its own data and returns its parameters;
the server averages them weighted by the clients' sample counts:

.. math:: w^{t+1} = \sum_{k \in S_t} \frac{n_k}{\sum_{j\in S_t} n_j}\, w_k^{t+1}.

What one round of local training is, is a stated choice (the *training budget*): a fixed
number of minibatch steps (``local_steps``), the same for every client however many rows
it holds, or ``local_epochs`` passes over its rows (the classic FedAvg formulation, whose
step count grows with the client's data) when ``local_steps`` is None.

Parameters travel as a list of NumPy arrays (the form Flower uses), so a model is three
functions: ``init``, ``local_train`` and ``predict``. Two models ship:
:class:`LogisticModel` (multinomial logistic regression in NumPy) and :class:`MLPModel`
(a small torch multilayer perceptron; torch is the optional extra ``torch`` and is
imported only when the model is used). Everything is deterministic given the seed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from coopml._validation import (
    RandomState,
    check_2d_features,
    check_fraction,
    check_int,
    check_random_state,
)

__all__ = [
    "ClientData",
    "FedAvgResult",
    "FederatedModel",
    "LogisticModel",
    "MLPModel",
    "Params",
    "accuracy",
    "aggregate",
    "fedavg",
    "fedavg_round",
    "make_model",
    "minibatches",
    "sample_clients",
]

Params = list[NDArray[np.float64]]
ClientData = tuple[NDArray[np.float64], NDArray[np.int64]]


@runtime_checkable
class FederatedModel(Protocol):
    """What FedAvg needs from a model: parameters as a list of float64 arrays."""

    @property
    def n_features(self) -> int: ...

    @property
    def n_classes(self) -> int: ...

    def init(self, rng: np.random.Generator) -> Params: ...

    def local_train(
        self,
        params: Params,
        X: NDArray[np.float64],
        y: NDArray[np.int64],
        rng: np.random.Generator,
    ) -> Params: ...

    def predict(self, params: Params, X: NDArray[np.float64]) -> NDArray[np.int64]: ...


def minibatches(
    n: int,
    batch_size: int,
    rng: np.random.Generator,
    *,
    epochs: int = 1,
    steps: int | None = None,
) -> Iterator[NDArray[np.intp]]:
    """Row indices of each minibatch of one round of local training.

    With ``steps`` exactly that many batches, passing over freshly shuffled rows as often
    as needed (the last batch of a pass may be short); otherwise ``epochs`` full passes.
    Each pass draws one permutation from ``rng``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> [b.size for b in minibatches(5, 2, rng, steps=4)]
    [2, 2, 1, 2]
    >>> [b.size for b in minibatches(5, 2, rng, epochs=2)]
    [2, 2, 1, 2, 2, 1]
    """
    if n == 0:
        return
    done = 0
    passes = 0
    while (done < steps) if steps is not None else (passes < epochs):
        order = rng.permutation(n)
        passes += 1
        for start in range(0, n, batch_size):
            if steps is not None and done == steps:
                return
            done += 1
            yield order[start : start + batch_size]


def _softmax(z: NDArray[np.float64]) -> NDArray[np.float64]:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: NDArray[np.float64] = e / e.sum(axis=1, keepdims=True)
    return out


@dataclass(frozen=True)
class LogisticModel:
    """Multinomial logistic regression trained by minibatch SGD (NumPy).

    Parameters
    ----------
    n_features, n_classes : int
    local_epochs : int, default 1
        Passes over the client's data per round (when ``local_steps`` is None).
    batch_size : int, default 32
    learning_rate : float, default 0.1
    l2 : float, default 1e-4
        Weight decay.
    local_steps : int or None, default None
        Minibatch steps per round, whatever the client's size (the fixed training
        budget); None runs ``local_epochs`` passes.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 2)); y = (X[:, 0] > 0).astype(np.int64)
    >>> m = LogisticModel(2, 2, local_epochs=20)
    >>> w = m.local_train(m.init(rng), X, y, rng)
    >>> accuracy(m, w, X, y) > 0.95
    True
    """

    n_features: int
    n_classes: int
    local_epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 0.1
    l2: float = 1e-4
    local_steps: int | None = None

    def init(self, rng: np.random.Generator) -> Params:
        """Zero weights and biases (the logistic loss is convex)."""
        return [np.zeros((self.n_features, self.n_classes)), np.zeros(self.n_classes)]

    def local_train(
        self,
        params: Params,
        X: NDArray[np.float64],
        y: NDArray[np.int64],
        rng: np.random.Generator,
    ) -> Params:
        """One round of minibatch SGD from ``params`` (not modified): ``local_steps``
        steps, or ``local_epochs`` passes."""
        W, b = params[0].copy(), params[1].copy()
        n = X.shape[0]
        if n == 0:
            return [W, b]
        onehot = np.eye(self.n_classes)[y]
        for idx in minibatches(
            n, self.batch_size, rng, epochs=self.local_epochs, steps=self.local_steps
        ):
            P = _softmax(X[idx] @ W + b)
            G = (P - onehot[idx]) / idx.size
            W -= self.learning_rate * (X[idx].T @ G + self.l2 * W)
            b -= self.learning_rate * G.sum(axis=0)
        return [W, b]

    def predict(self, params: Params, X: NDArray[np.float64]) -> NDArray[np.int64]:
        """Most probable class."""
        return np.asarray(np.argmax(X @ params[0] + params[1], axis=1), dtype=np.int64)


@dataclass(frozen=True)
class MLPModel:
    """A small multilayer perceptron (one hidden ReLU layer) trained with torch SGD.

    torch (extra ``torch``) is imported when the model is first used. Training runs on
    the CPU with a torch generator seeded from ``rng``, so it is deterministic.

    Parameters
    ----------
    n_features, n_classes : int
    hidden : int, default 64
    local_epochs : int, default 1
    batch_size : int, default 32
    learning_rate : float, default 0.05
    momentum : float, default 0.0
    weight_decay : float, default 1e-4
    threads : int or None, default 1
        torch intra-op threads while training (restored afterwards); one thread is
        fastest for a network this small. ``None`` leaves torch's setting alone.
    local_steps : int or None, default None
        Minibatch steps per round (the fixed training budget); None runs
        ``local_epochs`` passes.
    """

    n_features: int
    n_classes: int
    hidden: int = 64
    local_epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 0.05
    momentum: float = 0.0
    weight_decay: float = 1e-4
    threads: int | None = 1
    local_steps: int | None = None

    def _net(self) -> Any:
        import torch

        return torch.nn.Sequential(
            torch.nn.Linear(self.n_features, self.hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(self.hidden, self.n_classes),
        ).double()

    def init(self, rng: np.random.Generator) -> Params:
        """He-uniform initial weights drawn from ``rng`` (torch's default layout)."""
        shapes = [
            (self.hidden, self.n_features),
            (self.hidden,),
            (self.n_classes, self.hidden),
            (self.n_classes,),
        ]
        fan_in = [self.n_features, self.n_features, self.hidden, self.hidden]
        return [
            rng.uniform(-1.0, 1.0, size=shape) / np.sqrt(f)
            for shape, f in zip(shapes, fan_in, strict=True)
        ]

    def _load(self, net: Any, params: Params) -> None:
        import torch

        with torch.no_grad():
            for p, value in zip(net.parameters(), params, strict=True):
                p.copy_(torch.from_numpy(np.asarray(value, dtype=np.float64)))

    def local_train(
        self,
        params: Params,
        X: NDArray[np.float64],
        y: NDArray[np.int64],
        rng: np.random.Generator,
    ) -> Params:
        """One round of minibatch SGD (cross-entropy) from ``params``: ``local_steps``
        steps, or ``local_epochs`` passes."""
        import torch

        net = self._net()
        self._load(net, params)
        n = X.shape[0]
        if n == 0:
            return [np.array(p, dtype=np.float64, copy=True) for p in params]
        opt = torch.optim.SGD(
            net.parameters(),
            lr=self.learning_rate,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
        )
        Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float64))
        yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
        loss_fn = torch.nn.CrossEntropyLoss()
        threads = torch.get_num_threads()
        if self.threads is not None and threads != self.threads:
            torch.set_num_threads(self.threads)
        try:
            for batch in minibatches(
                n, self.batch_size, rng, epochs=self.local_epochs, steps=self.local_steps
            ):
                idx = torch.from_numpy(batch)
                opt.zero_grad()
                loss = loss_fn(net(Xt[idx]), yt[idx])
                loss.backward()
                opt.step()
        finally:
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
        return [p.detach().numpy().copy() for p in net.parameters()]

    def predict(self, params: Params, X: NDArray[np.float64]) -> NDArray[np.int64]:
        """Most probable class (NumPy forward pass; no torch needed)."""
        h = np.maximum(X @ params[0].T + params[1], 0.0)
        return np.asarray(np.argmax(h @ params[2].T + params[3], axis=1), dtype=np.int64)


def make_model(kind: str, n_features: int, n_classes: int, **options: Any) -> FederatedModel:
    """Build ``"logistic"`` (:class:`LogisticModel`) or ``"mlp"`` (:class:`MLPModel`).

    Examples
    --------
    >>> make_model("logistic", 4, 3, local_epochs=2)
    LogisticModel(n_features=4, n_classes=3, local_epochs=2, batch_size=32, learning_rate=0.1, l2=0.0001, local_steps=None)
    """  # noqa: E501
    check_int("n_features", n_features, minimum=1)
    check_int("n_classes", n_classes, minimum=2)
    if kind == "logistic":
        return LogisticModel(n_features, n_classes, **options)
    if kind == "mlp":
        return MLPModel(n_features, n_classes, **options)
    raise ValueError(f"parameter 'kind' must be one of 'logistic', 'mlp'; got {kind!r}")


def accuracy(model: FederatedModel, params: Params, X: NDArray[np.float64], y: ArrayLike) -> float:
    """Share of correctly classified rows."""
    return float(np.mean(model.predict(params, X) == np.asarray(y)))


def aggregate(updates: Sequence[Params], n_samples: ArrayLike) -> Params:
    """Weighted mean of client parameters, weights proportional to ``n_samples``.

    Examples
    --------
    >>> aggregate([[np.array([0.0])], [np.array([3.0])]], [2, 1])[0]
    array([1.])
    """
    w = np.asarray(n_samples, dtype=np.float64)
    if len(updates) == 0 or w.shape != (len(updates),) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(
            "aggregate needs one non-negative sample count per update and a positive total; "
            f"got {len(updates)} updates and counts {w.tolist()}"
        )
    w = w / w.sum()
    return [
        np.sum([wk * u[layer] for wk, u in zip(w, updates, strict=True)], axis=0)
        for layer in range(len(updates[0]))
    ]


def sample_clients(n_clients: int, fraction: float, rng: np.random.Generator) -> NDArray[np.intp]:
    """Sorted indices of ``max(1, round(fraction * n_clients))`` clients, without replacement."""
    m = max(1, round(fraction * n_clients))
    return np.sort(rng.choice(n_clients, size=m, replace=False)).astype(np.intp)


def fedavg_round(
    model: FederatedModel,
    params: Params,
    clients: Sequence[ClientData],
    participants: Sequence[int],
    rngs: Sequence[np.random.Generator],
) -> Params:
    """One FedAvg round: local training on each participant, then the weighted mean.

    ``rngs[k]`` drives the minibatch order of participant ``participants[k]``.
    """
    updates = []
    sizes = []
    for k, i in enumerate(participants):
        X, y = clients[i]
        updates.append(model.local_train(params, X, y, rngs[k]))
        sizes.append(X.shape[0])
    if sum(sizes) == 0:
        return params
    return aggregate(updates, sizes)


@dataclass(frozen=True, kw_only=True)
class FedAvgResult:
    """Outcome of :func:`fedavg`.

    Attributes
    ----------
    params : list of ndarray
        Final global parameters.
    accuracy_per_round : ndarray of shape (rounds,)
        Validation accuracy of the global model after each round.
    participants : list of ndarray
        Sampled clients per round.
    converged : bool
        Always true (FedAvg runs a fixed number of rounds).
    n_iter : int
        Rounds run.
    """

    params: Params
    accuracy_per_round: NDArray[np.float64]
    participants: list[NDArray[np.intp]]
    converged: bool
    n_iter: int

    @property
    def final_accuracy(self) -> float:
        """Accuracy after the last round."""
        return float(self.accuracy_per_round[-1])


def _check_clients(clients: Sequence[tuple[ArrayLike, ArrayLike]]) -> list[ClientData]:
    out: list[ClientData] = []
    for k, (X, y) in enumerate(clients):
        Xa = check_2d_features(f"clients[{k}].X", X, allow_empty=True)
        ya = np.asarray(y, dtype=np.int64)
        if ya.shape != (Xa.shape[0],):
            raise ValueError(
                f"parameter 'clients[{k}]' must have one label per row; got {Xa.shape[0]} rows "
                f"and labels of shape {ya.shape}"
            )
        out.append((Xa, ya))
    if not out:
        raise ValueError("parameter 'clients' must hold at least one client")
    return out


def fedavg(
    model: FederatedModel,
    clients: Sequence[tuple[ArrayLike, ArrayLike]],
    validation: tuple[ArrayLike, ArrayLike],
    *,
    rounds: int = 10,
    client_fraction: float = 1.0,
    params: Params | None = None,
    random_state: RandomState = None,
    callback: Callable[[int, Params], None] | None = None,
) -> FedAvgResult:
    """Train ``model`` with FedAvg over ``clients`` and score every round on ``validation``.

    Parameters
    ----------
    model : FederatedModel
        E.g. :class:`LogisticModel` or :class:`MLPModel` (local epochs, batch size and
        learning rate are properties of the model).
    clients : sequence of (X, y)
        Each client's training data.
    validation : (X_val, y_val)
    rounds : int
    client_fraction : float in (0, 1]
        Share of clients sampled each round.
    params : list of ndarray, optional
        Initial global parameters (default ``model.init``).
    random_state : int, numpy.random.Generator or None
    callback : callable(round, params), optional
        Called after each round.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> X, y = load_digits(return_X_y=True)
    >>> X = X / 16.0
    >>> clients = [(X[i:1500:5], y[i:1500:5]) for i in range(5)]
    >>> res = fedavg(LogisticModel(64, 10), clients, (X[1500:], y[1500:]), rounds=5,
    ...              random_state=0)
    >>> res.final_accuracy > 0.85
    True
    """
    data = _check_clients(clients)
    X_val = check_2d_features("validation X", validation[0])
    y_val = np.asarray(validation[1], dtype=np.int64)
    rounds = check_int("rounds", rounds, minimum=1)
    fraction = check_fraction("client_fraction", client_fraction, open_low=True)
    rng = check_random_state(random_state)
    w = model.init(rng) if params is None else [np.asarray(p, dtype=np.float64) for p in params]
    acc = np.empty(rounds)
    chosen: list[NDArray[np.intp]] = []
    for t in range(rounds):
        participants = sample_clients(len(data), fraction, rng)
        rngs = list(rng.spawn(participants.size))
        w = fedavg_round(model, w, data, participants.tolist(), rngs)
        acc[t] = accuracy(model, w, X_val, y_val)
        chosen.append(participants)
        if callback is not None:
            callback(t, w)
    return FedAvgResult(
        params=w, accuracy_per_round=acc, participants=chosen, converged=True, n_iter=rounds
    )
