"""Compute the value table of a coalition utility once, in parallel, cached on disk.

The table has one entry per coalition (``2**n`` of them) and is the single object from
which every exact solution concept is read. Computation is split into blocks of
bitmasks evaluated by an :mod:`~coopml.coalitions.executors` executor (up to
``utility.block_size`` coalitions per block, so a batched fast learner gets big blocks);
the result does not depend on the executor or the block size. With ``cache_dir`` the table is stored
under the utility's fingerprint (learner and parameters, data hashes, scorer, rules,
seed, coopml version) and written atomically, so an interrupted run never leaves a
truncated cache entry.

**Resume.** While a table is computed with ``cache_dir``, the blocks done so far are
checkpointed to ``<fingerprint>.partial.npz`` next to the final entry (every
:data:`~coopml.coalitions._checkpoint.CHECKPOINT_SECONDS` seconds, and when the run is
interrupted by an exception or Ctrl-C), with the fit failures substituted so far. A
later call with the same utility evaluates only the coalitions not yet done; each
coalition's value depends only on the coalition, so the resumed table equals an
uninterrupted one bit for bit. The finished table replaces the checkpoint.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from coopml.coalitions import _checkpoint
from coopml.coalitions._checkpoint import atomic_write, load_checkpoint, partial_path
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
            f"limit of {MAX_EXACT_PLAYERS}. Estimate instead: coopml.coalitions.svarm_shapley "
            "or monte_carlo_shapley, valuation='monte_carlo' in a market (run_market, "
            "[market] in a job file), or methods=['monte_carlo'] in a value job."
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
    table = np.empty(total, dtype=np.float64)
    failures: list[FitFailure] = []
    partial = None if cache_dir is None else partial_path(cache_dir, fingerprint)
    resumed = 0 if partial is None else _resume(partial, table, failures)
    # A fast utility fits whole blocks at once, so it asks for larger ones; about 32
    # blocks a worker keep the progress report and the checkpoints frequent. A batched
    # (fast) learner pays a fixed cost per block, so when no one watches (no progress
    # callback) and nothing is checkpointed, its blocks are never cut below its block
    # size while every worker still gets one.
    largest = int(getattr(utility, "block_size", 256))
    smallest = 1
    watched = progress is not None or cache_dir is not None
    if getattr(utility, "fast_learner", None) is not None and not watched:
        smallest = min(largest, -(-total // runner.n_workers))
    block = int(np.clip(total // (32 * runner.n_workers), smallest, largest))
    blocks = [
        np.arange(max(s, resumed), min(s + block, total), dtype=np.int64)
        for s in range(0, total, block)
        if s + block > resumed
    ]
    start, done = time.perf_counter(), resumed
    saved_at, saved_done = start, resumed
    if progress is not None and resumed:
        progress(done, total)
    try:
        for masks, (values, block_failures) in zip(
            blocks, runner.map(utility.evaluate_block, blocks), strict=True
        ):
            table[masks] = values
            failures.extend(block_failures)
            done += masks.size
            if progress is not None:
                progress(done, total)
            now = time.perf_counter()
            if (
                partial is not None
                and done < total
                and now - saved_at >= _checkpoint.CHECKPOINT_SECONDS
            ):
                _save_partial(partial, table, done, failures)
                saved_at, saved_done = now, done
    except BaseException:
        if partial is not None and done > saved_done:
            _save_partial(partial, table, done, failures)
        raise
    info: dict[str, Any] = {
        "fingerprint": fingerprint,
        "cache": "miss" if path is not None else "off",
        "n_evaluations": total - resumed,
        "seconds": time.perf_counter() - start,
        "executor": runner.name,
        "n_workers": runner.n_workers,
        "failures": [f.__dict__ for f in failures],
    }
    if resumed:
        info["resumed"] = resumed
    utility.failures.extend(failures)
    if path is not None:
        _atomic_save(path, table)
    if partial is not None:
        partial.unlink(missing_ok=True)
    return table, info


def _save_partial(path: Path, table: NDArray[np.float64], done: int, failures: list[Any]) -> None:
    """Checkpoint the first ``done`` coalitions (blocks finish in order) and the failures."""
    meta = {"done": done, "size": table.size, "failures": [_failure_dict(f) for f in failures]}
    _checkpoint.save_checkpoint(path, {"table": table[:done]}, meta)


def _failure_dict(failure: Any) -> dict[str, Any]:
    return {"mask": int(failure.mask), "error": failure.error, "substituted": failure.substituted}


def _resume(path: Path, table: NDArray[np.float64], failures: list[Any]) -> int:
    """Copy a checkpoint's coalitions into ``table``; returns how many (0: none usable)."""
    loaded = load_checkpoint(path)
    if loaded is None:
        return 0
    arrays, meta = loaded
    done, values = int(meta.get("done", 0)), arrays.get("table")
    if meta.get("size") != table.size or values is None or values.shape != (done,):
        return 0  # not this table's checkpoint: start afresh
    from coopml.learning.utility import FitFailure

    table[:done] = values
    failures.extend(FitFailure(**f) for f in meta.get("failures", []))
    return done


def _atomic_save(path: Path, table: NDArray[np.float64]) -> None:
    atomic_write(path, lambda fh: np.save(fh, table))
