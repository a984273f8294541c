"""Parties, bundled datasets, partitioners and adversarial helpers.

A :class:`Party` is one organisation's (read-only) training and validation data. Parties
come from DataFrames, CSV or Parquet files (:meth:`Party.from_dataframe`,
:meth:`Party.from_csv`, :meth:`Party.from_parquet`), or are simulated by splitting a
dataset (:func:`make_parties` with IID, size-skew or Dirichlet label-skew partitions).
:mod:`coopml.data.adversarial` builds replicas and corrupted parties for robustness
experiments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coopml._lazy import exports

if TYPE_CHECKING:
    from coopml.data.adversarial import corrupt_features, corrupt_labels, replicate_party
    from coopml.data.datasets import Dataset, list_datasets, load_dataset, train_validation_split
    from coopml.data.partition import (
        dirichlet_label_partition,
        iid_partition,
        make_parties,
        size_skew_partition,
    )
    from coopml.data.party import Party, check_parties, party_warnings
    from coopml.data.preprocessing import TabularSchema, accepts_missing

# Imported on first use (PEP 562): a parties-custody agent answers every Flower message
# in a fresh process and needs only :class:`Party`, not pandas, SciPy or scikit-learn
_LAZY = {
    **dict.fromkeys(["corrupt_features", "corrupt_labels", "replicate_party"], "adversarial"),
    **dict.fromkeys(
        ["Dataset", "list_datasets", "load_dataset", "train_validation_split"], "datasets"
    ),
    **dict.fromkeys(
        ["dirichlet_label_partition", "iid_partition", "make_parties", "size_skew_partition"],
        "partition",
    ),
    **dict.fromkeys(["Party", "check_parties", "party_warnings"], "party"),
    **dict.fromkeys(["TabularSchema", "accepts_missing"], "preprocessing"),
}


__getattr__ = exports(__name__, _LAZY)


__all__ = [
    "Dataset",
    "Party",
    "TabularSchema",
    "accepts_missing",
    "check_parties",
    "corrupt_features",
    "corrupt_labels",
    "dirichlet_label_partition",
    "iid_partition",
    "list_datasets",
    "load_dataset",
    "make_parties",
    "party_warnings",
    "replicate_party",
    "size_skew_partition",
    "train_validation_split",
]
