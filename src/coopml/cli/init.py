"""``coopml init DIR --target COL``: a job file for a folder of CSV/Parquet files.

Every CSV or Parquet file in DIR is one party (named after the file's stem), except
the validation task: ``--validation FILE``, or the one file named ``validation*``,
``valid*`` or ``test*``; without one, the job holds out a fraction of every party's
rows as validation data. The features are the first party file's columns less the
target. Missing values and text columns found in the files switch on the matching
``[preprocessing]`` keys. The job is checked (it must load as a value job and as a
market job) before it is written; every key carries a comment, ready to edit.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from coopml.cli._root import console, fail

__all__ = ["init_command", "job_text", "scan_folder"]

DATA_SUFFIXES = (".csv", ".parquet", ".pq")
VALIDATION_PREFIXES = ("validation", "valid", "test")


@dataclass(frozen=True)
class Folder:
    """What :func:`scan_folder` found: party files, the validation file, the schema."""

    parties: tuple[Path, ...]
    validation: Path | None
    features: tuple[str, ...]
    missing: tuple[str, ...]  # features with a missing value in some file
    text: tuple[str, ...]  # features holding text in some file


def _read(path: Path) -> pd.DataFrame:
    from coopml.data.party import read_table

    return read_table(f"file {path.name!r}", path)


def scan_folder(directory: Path, target: str, validation: Path | None = None) -> Folder:
    """The party files of ``directory`` and what the job needs to know about them.

    Raises ``ValueError`` naming the folder, the file or the column when there is no
    data file, several candidate validation files, two files with one stem, or a file
    without the target column.
    """
    from coopml.data.columns import _closest
    from coopml.data.preprocessing import categorical_columns

    if not directory.is_dir():
        raise ValueError(f"DIR: no such folder {str(directory)!r}")
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in DATA_SUFFIXES)
    if validation is None:
        candidates = [p for p in files if p.stem.lower().startswith(VALIDATION_PREFIXES)]
        if len(candidates) > 1:
            raise ValueError(
                f"several files look like the validation task: {[p.name for p in candidates]}; "
                "choose one with --validation FILE"
            )
        validation = candidates[0] if candidates else None
    elif not validation.is_file():
        raise ValueError(f"--validation: no such file {str(validation)!r}")
    parties = [p for p in files if validation is None or p.resolve() != validation.resolve()]
    if not parties:
        raise ValueError(
            f"{str(directory)!r} holds no party data: expected one CSV or Parquet file per "
            f"party (*{', *'.join(DATA_SUFFIXES)})"
        )
    stems = [p.stem for p in parties]
    twice = sorted({s for s in stems if stems.count(s) > 1})
    if twice:
        raise ValueError(f"files {twice} exist in two formats; keep one file per party")
    frames = {p: _read(p) for p in [*parties, *([validation] if validation else [])]}
    for path, frame in frames.items():
        columns = [str(c) for c in frame.columns]
        if target not in columns:
            raise ValueError(
                f"file {path.name!r} has no target column {target!r}"
                f"{_closest(target, columns)}; its columns are {columns}"
            )
    features = [str(c) for c in frames[parties[0]].columns if c != target]
    present = {p.name: f for p, f in frames.items() if set(features) <= set(map(str, f.columns))}
    missing = [c for c in features if any(f[c].isna().any() for f in present.values())]
    try:
        text = categorical_columns(present, features)
    except ValueError:  # numbers in one file, text in another: `value` explains it
        text = []
    return Folder(tuple(parties), validation, tuple(features), tuple(missing), tuple(text))


def _q(text: str) -> str:
    """A TOML basic string (JSON's escapes are valid TOML)."""
    return json.dumps(text, ensure_ascii=False)


def job_text(folder: Folder, target: str, out_dir: Path, learner: str) -> str:
    """The commented TOML job for ``folder``, with paths relative to ``out_dir``."""

    def rel(path: Path) -> str:
        return Path(os.path.relpath(path.resolve(), out_dir.resolve())).as_posix()

    lines = [
        "# coopml job file written by `coopml init`; every key is documented in",
        "# docs/jobfile.md. Run it with `coopml value THIS_FILE` or",
        "# `coopml market run THIS_FILE`. Paths are relative to this file.",
        "",
        "# The feature columns, matched by name in every file (any column order).",
        f"features = [{', '.join(_q(c) for c in folder.features)}]",
        '# Columns beyond the features and the target: "error" or "ignore".',
        'extra_columns = "error"',
        "",
    ]
    for path in folder.parties:
        lines += [
            "[[parties]]  # one party: its name, its training file and label column",
            f"name = {_q(path.stem)}",
            f"path = {_q(rel(path))}",
            f"target = {_q(target)}",
            "",
        ]
    if folder.validation is not None:
        lines += [
            "[validation]  # the task every coalition's model is scored on (never trained on)",
            f"path = {_q(rel(folder.validation))}",
            f"target = {_q(target)}",
            "",
        ]
    else:
        lines += [
            "[validation]  # no validation file was found: hold out 30% of every party's",
            "# rows as the validation task (never trained on); or give path + target",
            "fraction = 0.3",
            "",
        ]
    impute = "median" if folder.missing else "none"
    categorical = "onehot" if folder.text else "error"
    # Linear, kernel, distance and gradient-based learners need comparable feature scales;
    # trees and naive Bayes do not.
    scale_free = any(kind in learner for kind in ("tree", "ensemble", "naive_bayes"))
    scale = "false" if scale_free else "true"
    scale_note = "" if scale_free else "; this learner needs comparable scales"
    lines += [
        "[preprocessing]  # fitted per coalition on its training rows, never on validation",
        f"# missing values found in: {list(folder.missing) or 'none'}",
        f'impute = "{impute}"  # "median", "mean", "most_frequent" or "none" (refuse them)',
        f"# text columns found: {list(folder.text) or 'none'}",
        f'categorical = "{categorical}"  # "onehot", "ordinal" or "error" (refuse text)',
        f"scale = {scale}  # standardise the features (per coalition){scale_note}",
        "",
        "[learner]  # any scikit-learn estimator by import path",
        f"estimator = {_q(learner)}",
        "params = {}  # its constructor parameters, e.g. { C = 0.5 }",
        "",
        "# For `coopml value`, uncomment to choose what to compute:",
        "# [valuation]",
        '# methods = ["shapley", "loo"]  # also "banzhaf", "least_core", "nucleolus",',
        '#                               # "monte_carlo" (for many parties)',
        '# scorer = "accuracy"',
        "",
        "# For `coopml market run`, uncomment to set the market's rules:",
        "# [market]",
        '# rule = "ohrimenko"  # "shapley", "banzhaf", "loo", "similarity_shapley"',
        "# price = 1.0         # money per unit of validation score",
        "",
    ]
    return "\n".join(lines)


def init_command(
    directory: Annotated[
        Path, typer.Argument(help="Folder with one CSV or Parquet file per party.")
    ],
    target: Annotated[str, typer.Option(help="The label column of every file.")],
    validation: Annotated[
        Path | None,
        typer.Option(help="The validation file (default: the file named validation*/test*)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Where to write the job (default DIR/job.toml).")
    ] = None,
    learner: Annotated[
        str, typer.Option(help="The learner's import path.")
    ] = "sklearn.linear_model.LogisticRegression",
    force: Annotated[bool, typer.Option(help="Overwrite an existing job file.")] = False,
) -> None:
    """Write a job file listing every CSV/Parquet file in DIR as a party."""
    import tomllib

    from coopml.config import ConfigError, MarketConfig, ValueConfig, parse_config

    out = out if out is not None else directory / "job.toml"
    if out.exists() and not force:
        raise fail(f"--out: {out} exists; pass --force to overwrite it")
    try:
        folder = scan_folder(directory, target, validation)
        text = job_text(folder, target, out.parent, learner)
        raw = tomllib.loads(text)
        for schema in (ValueConfig, MarketConfig):
            parse_config(raw, source=str(out), schema=schema)
    except (ConfigError, ValueError, OSError) as exc:
        raise fail(str(exc)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    where = f"validation file {folder.validation.name}" if folder.validation else "30% held out"
    console.print(
        f"wrote {out}: {len(folder.parties)} part{'y' if len(folder.parties) == 1 else 'ies'}, "
        f"{len(folder.features)} features, "
        f"{where}. Next: coopml value {out}",
        highlight=False,
        markup=False,
    )
