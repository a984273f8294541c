"""Flower client: one organisation's data, generator and local training.

:class:`FlowerClient` reports the statistics the server's round game needs (real sample
count and label histogram; no raw data), draws the synthetic amount the server sends
with the generation stream it sends, and trains locally with the model's own
``local_train`` (:mod:`coopml.federated.fedavg`) under the job's training budget.
Streams travel in the fit configuration as a seed sequence's entropy and spawn key
(:func:`encode_stream`), so a client running apart draws exactly what the built-in
simulator draws for it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from flwr.client import Client, NumPyClient
from flwr.common import Context, Scalar
from numpy.typing import ArrayLike

from coopml.federated.fedavg import FederatedModel, Params

__all__ = ["FlowerClient", "decode_stream", "encode_stream", "make_client_fn"]


def _round_rng(seed: int, server_round: int, partition_id: int) -> np.random.Generator:
    """Fallback stream of ``partition_id`` in ``server_round`` when the server sends none."""
    return np.random.default_rng([seed, server_round, partition_id])


def encode_stream(rng: np.random.Generator) -> str:
    """A spawned generator as a config string: its seed sequence's entropy and spawn key."""
    seq = rng.bit_generator.seed_seq
    assert isinstance(seq, np.random.SeedSequence)
    return json.dumps({"entropy": seq.entropy, "spawn_key": list(seq.spawn_key)})


def decode_stream(text: str) -> np.random.Generator:
    """Rebuild the generator encoded by :func:`encode_stream` (the identical stream)."""
    spec = json.loads(text)
    seq = np.random.SeedSequence(spec["entropy"], spawn_key=tuple(spec["spawn_key"]))
    return np.random.Generator(np.random.PCG64(seq))


class FlowerClient(NumPyClient):
    """One organisation: its real data, a synthetic-data generator and local training.

    Parameters
    ----------
    partition_id : int
        The organisation's index (Flower's ``node_config["partition-id"]``).
    X, y : ndarray
        Real training data.
    model : FederatedModel
        Provides ``local_train`` (e.g. :class:`~coopml.federated.fedavg.LogisticModel`).
    n_classes : int
    generator : object with ``generate(m, reference, rng) -> (X, y)``, optional
        E.g. a :class:`~coopml.federated.synthetic.GeneratorPool`. Without one the
        client refuses a positive synthetic amount.
    reference : array-like of shape (n_classes,), optional
        Label distribution of synthetic samples (default uniform).
    random_state : int, default 0
        Used only when the server sends no random streams: round ``t`` then draws from
        ``default_rng([seed, t, partition_id])``. :class:`CoopetitiveFedAvg` sends each
        client its minibatch and generation streams (``"train_stream"``,
        ``"generation_stream"`` in the fit config), spawned like the built-in simulator's.

    Examples
    --------
    >>> from coopml.federated.fedavg import LogisticModel
    >>> X, y = np.array([[0.0], [1.0], [2.0]]), np.array([0, 1, 1])
    >>> model = LogisticModel(1, 2)
    >>> client = FlowerClient(4, X, y, model, n_classes=2)
    >>> client.get_properties({})
    {'partition_id': 4, 'n_samples': 3, 'label_histogram': '[1, 2]'}
    >>> params, n, metrics = client.fit(model.init(None), {"synthetic": 0, "server_round": 1})
    >>> n, metrics
    (3, {'partition_id': 4, 'n_real': 3, 'n_synthetic': 0})
    """

    def __init__(
        self,
        partition_id: int,
        X: ArrayLike,
        y: ArrayLike,
        model: FederatedModel,
        *,
        n_classes: int,
        generator: Any = None,
        reference: ArrayLike | None = None,
        random_state: int = 0,
    ) -> None:
        self.partition_id = int(partition_id)
        self.X = np.asarray(X, dtype=np.float64)
        self.y = np.asarray(y, dtype=np.int64)
        self.model = model
        self.n_classes = int(n_classes)
        self.generator = generator
        self.reference = (
            np.full(self.n_classes, 1.0 / self.n_classes)
            if reference is None
            else np.asarray(reference, dtype=np.float64)
        )
        self.seed = int(random_state)

    def get_properties(self, config: Mapping[str, Scalar]) -> dict[str, Scalar]:
        """Report the statistics the server's game needs (no raw data)."""
        hist = np.bincount(self.y, minlength=self.n_classes)
        return {
            "partition_id": self.partition_id,
            "n_samples": int(self.y.size),
            "label_histogram": json.dumps(hist.tolist()),
        }

    def get_parameters(self, config: Mapping[str, Scalar]) -> Params:
        """Initial parameters from the model (seeded)."""
        return self.model.init(np.random.default_rng(self.seed))

    def fit(
        self, parameters: Params, config: Mapping[str, Scalar]
    ) -> tuple[Params, int, dict[str, Scalar]]:
        """Generate ``config["synthetic"]`` samples, train locally on real + synthetic."""
        m = int(config.get("synthetic", 0))
        server_round = int(config.get("server_round", 0))
        if "train_stream" in config:
            train_rng = decode_stream(str(config["train_stream"]))
            gen_rng = decode_stream(str(config["generation_stream"]))
        else:
            train_rng = gen_rng = _round_rng(self.seed, server_round, self.partition_id)
        X, y = self.X, self.y
        if m > 0:
            if self.generator is None:
                raise ValueError(
                    f"organisation {self.partition_id} was asked for {m} synthetic samples "
                    "but has no generator"
                )
            Xs, ys = self.generator.generate(m, self.reference, gen_rng)
            X = np.vstack([X, Xs])
            y = np.concatenate([y, ys])
        params = [np.asarray(p, dtype=np.float64) for p in parameters]
        new = self.model.local_train(params, X, y, train_rng)
        metrics: dict[str, Scalar] = {
            "partition_id": self.partition_id,
            "n_real": int(self.y.size),
            "n_synthetic": m,
        }
        return new, int(y.size), metrics

    def evaluate(
        self, parameters: Params, config: Mapping[str, Scalar]
    ) -> tuple[float, int, dict[str, Scalar]]:
        """Accuracy of ``parameters`` on the organisation's own data (loss = 1 − accuracy)."""
        params = [np.asarray(p, dtype=np.float64) for p in parameters]
        acc = float(np.mean(self.model.predict(params, self.X) == self.y))
        return 1.0 - acc, int(self.y.size), {"accuracy": acc}


def make_client_fn(
    clients: Sequence[tuple[ArrayLike, ArrayLike]],
    model: FederatedModel,
    *,
    n_classes: int,
    generator: Any = None,
    reference: ArrayLike | None = None,
    random_state: int = 0,
) -> Callable[[Context], Client]:
    """A Flower ``client_fn``: node ``partition-id`` becomes ``FlowerClient(clients[id])``."""
    data = [(np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64)) for X, y in clients]
    ref = None if reference is None else np.asarray(reference, dtype=np.float64)

    def client_fn(context: Context) -> Client:
        pid = int(context.node_config["partition-id"])
        X, y = data[pid]
        return FlowerClient(
            pid,
            X,
            y,
            model,
            n_classes=n_classes,
            generator=generator,
            reference=ref,
            random_state=random_state,
        ).to_client()

    return client_fn
