"""Compute the value table of a coalition utility once, in parallel, cached on disk.

The table has one entry per coalition (``2**n`` of them) and is the single object from
which every exact solution concept is read. Computation is split into blocks of
bitmasks evaluated by an :mod:`~coopml.coalitions.executors` executor (up to
``utility.block_size`` coalitions per block, so a batched fast learner gets big blocks);
the result does not depend on the executor or the block size. With ``cache_dir`` the table is stored
under the utility's fingerprint (learner and parameters, data hashes, scorer, rules,
seed, coopml version) and written atomically, so an interrupted run never leaves a
truncated cache entry.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from coopml.coalitions.executors import Executor, ProgressCallback, get_executor
from coopml.coalitions.value_table import MAX_EXACT_PLAYERS

if TYPE_CHECKING:
    from coopml.learning.utility import CoalitionUtility, FitFailure

__all__ = ["compute_table"]


def compute_table(
    utility: CoalitionUtility,
    *,
    executor: str | Executor = "serial",
    n_jobs: int | None = None,
    cache_dir: str | Path | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[NDArray[np.float64], dict[str, Any]]:
    """The value of every one of the ``2**n`` coalitions of ``utility``, and provenance.

    See :meth:`~coopml.coalitions.game.CoalitionGame.from_utility`, which wraps it.
    """
    n = utility.n_players
    if n > MAX_EXACT_PLAYERS:
        raise ValueError(
            f"an exact value table needs 2**n_players coalitions; {n} players exceeds the "
            f"limit of {MAX_EXACT_PLAYERS}. Use coopml.coalitions.monte_carlo_shapley instead."
        )
    fingerprint = utility.fingerprint()
    path = Path(cache_dir) / f"{fingerprint}.npy" if cache_dir is not None else None
    if path is not None and path.exists():
        table = np.load(path)
        if progress is not None:
            progress(table.size, table.size)
        hit = {"fingerprint": fingerprint, "cache": "hit", "n_evaluations": 0}
        return table, hit

    runner = get_executor(executor, n_jobs)
    total = 1 << n
    # A fast utility fits whole blocks at once, so it asks for larger ones.
    largest = int(getattr(utility, "block_size", 256))
    block = int(np.clip(total // (8 * runner.n_workers), 1, largest))
    blocks = [np.arange(s, min(s + block, total), dtype=np.int64) for s in range(0, total, block)]
    table = np.empty(total, dtype=np.float64)
    failures: list[FitFailure] = []
    start, done = time.perf_counter(), 0
    for masks, (values, block_failures) in zip(
        blocks, runner.map(utility.evaluate_block, blocks), strict=True
    ):
        table[masks] = values
        failures.extend(block_failures)
        done += masks.size
        if progress is not None:
            progress(done, total)
    info: dict[str, Any] = {
        "fingerprint": fingerprint,
        "cache": "miss" if path is not None else "off",
        "n_evaluations": total,
        "seconds": time.perf_counter() - start,
        "executor": runner.name,
        "n_workers": runner.n_workers,
        "failures": [f.__dict__ for f in failures],
    }
    utility.failures.extend(failures)
    if path is not None:
        _atomic_save(path, table)
    return table, info


def _atomic_save(path: Path, table: NDArray[np.float64]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, table)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
