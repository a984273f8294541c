"""Issue 16: a batched (fast) utility's small tables are not cut into tiny blocks."""

from __future__ import annotations

import numpy as np
from sklearn.naive_bayes import GaussianNB

from coopml.coalitions.table import compute_table
from coopml.data import Party
from coopml.learning import CoalitionUtility


class CountingUtility(CoalitionUtility):
    """Records the size of every block an executor evaluates."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.blocks: list[int] = []

    def evaluate_block(self, masks):
        self.blocks.append(int(masks.size))
        return super().evaluate_block(masks)


class TwoWorkers:
    """An executor with two workers that runs in line (so the blocks are recorded here)."""

    name, n_workers = "two", 2

    def map(self, fn, items):
        return map(fn, items)


def _utility(split, m: int, **kwargs) -> CountingUtility:
    X, y, X_val, y_val = split
    parties = [Party(f"p{i}", X[i::m], y[i::m]) for i in range(m)]
    return CountingUtility(GaussianNB(), parties, (X_val, y_val), **kwargs)


def test_a_fast_utility_gets_whole_blocks_and_the_same_table(breast_cancer_split):
    utility = _utility(breast_cancer_split, 10)
    assert utility.fast_learner is not None and utility.block_size == 4096
    table, info = compute_table(utility)
    # 1,024 coalitions fit in one block (32 per block before the floor)
    assert utility.blocks == [1024]
    # the same values as coalition by coalition in blocks of 32, bit for bit
    small = np.concatenate(
        [utility.evaluate_masks(np.arange(s, s + 32, dtype=np.int64)) for s in range(0, 1024, 32)]
    )
    assert np.array_equal(table, small) and info["n_evaluations"] == 1024


def test_every_worker_still_gets_a_block(breast_cancer_split):
    utility = _utility(breast_cancer_split, 6)
    compute_table(utility, executor=TwoWorkers())
    assert sorted(utility.blocks) == [32, 32]  # 64 coalitions over 2 workers


def test_a_watched_table_keeps_small_blocks(breast_cancer_split):
    """With a progress callback (the CLI's live progress) or a checkpoint, the report and
    the checkpoints stay frequent: about 32 blocks a worker, as before the floor."""
    utility = _utility(breast_cancer_split, 10)
    calls: list[tuple[int, int]] = []
    compute_table(utility, progress=lambda d, t: calls.append((d, t)))
    assert utility.blocks == [32] * 32 and len(calls) >= 32


def test_a_refitting_utility_keeps_small_blocks(breast_cancer_split):
    utility = _utility(breast_cancer_split, 6, fast=False)
    assert utility.fast_learner is None
    compute_table(utility)
    assert utility.blocks == [2] * 32  # about 32 blocks a worker, as before
