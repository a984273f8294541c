r"""Exporting each party's customised model: skops files, ONNX where the learner converts.

:func:`export_models` writes the model the market trained for every requester
(:class:`~coopml.market.CustomModel`) to a folder, as a `skops <https://skops.rtfd.io>`_
file always and as an `ONNX <https://onnx.ai>`_ file where
`skl2onnx <https://onnx.ai/sklearn-onnx>`_ converts the learner, with a manifest
(``models.json``) naming for each party its files, their SHA-256 digests, the learner,
the parties whose data trained it, and how well the ONNX file reproduces the model.

**What a model file gives away.** A file holds the model's whole fitted state, not only
its predictions, and some learners keep training rows in it: a k-nearest-neighbours
model stores every row, a tree grown to purity has one-row leaves. In the market a
party receives only its own model and the release check of
:mod:`coopml.market.release` decides whether the file may leave. The operator who runs
``coopml market run`` holds every party's data already, so the export is allowed
there; the manifest still flags each file (``holds_other_parties_rows``) with that
check, so that nobody passes a file on without knowing. ``false`` means no copy of
another party's row was found; aggregates (class means, two-row statistics) are not
detected (see :mod:`coopml.market.release`). ``null`` means the model could not be
fully inspected.

**What a model file takes.** For a job read from files (``schema`` given), the skops
file is one scikit-learn ``Pipeline`` whose first step,
:class:`~coopml.data.preprocessing.TabularEncoder`, takes a party's raw rows as a
pandas DataFrame, selects the job's feature columns *by name* (any order; a missing
column is an error) and encodes them exactly as the market did, followed by the fitted
model; loading it needs coopml installed. The manifest's ``input`` lists those columns
in order with their kind (numeric or categorical) and categories, with the ``target``
and the ``classes``. The ONNX file is the fitted model without that first step: its
``input`` entry names the encoded columns it expects, in order.

The optional dependencies are the ``export`` extra: ``pip install 'coopml[export]'``.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from coopml.data import Party
from coopml.data.preprocessing import TabularEncoder, TabularSchema, accepts_missing
from coopml.market.market import CustomModel, MarketResult
from coopml.market.release import check_release

__all__ = ["MANIFEST", "describe_export", "export_models", "load_skops", "require_skops"]

#: Name of the manifest written next to the model files.
MANIFEST = "models.json"

_EXTRA = "pip install 'coopml[export]'"
_NOTE = (
    "Each file holds the whole fitted state of a party's customised model. Models of "
    "row-holding learners (k-nearest neighbours, trees grown to purity) contain other "
    "parties' training rows: see holds_other_parties_rows before passing a file on. "
    "false: no copy of another party's row was found (aggregates such as class means are "
    "not detected); null: the model could not be fully inspected."
)


def require_skops() -> Any:
    """``skops.io``, or an ImportError that names the ``export`` extra."""
    try:
        import skops.io as sio
    except ImportError:
        raise ImportError(
            "exporting models needs skops, from the optional extra 'export': " + _EXTRA
        ) from None
    return sio


def load_skops(path: str | Path) -> Any:
    """Load a skops file written by :func:`export_models`, trusting exactly the types
    that skops reports as not trusted by default (``get_untrusted_types``).

    Only load files you wrote yourself or whose SHA-256 matches the manifest: trusting
    a file's types lets it build those objects.
    """
    sio = require_skops()
    path = Path(path)
    return sio.load(path, trusted=sio.get_untrusted_types(file=path))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _file_stems(names: Sequence[str]) -> dict[str, str]:
    """A safe, distinct file stem per party name (``"St Mary's"`` -> ``"St_Mary_s"``)."""
    stems: dict[str, str] = {}
    used: set[str] = set()
    for name in names:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "party"
        candidate, k = stem, 2
        while candidate.lower() in used:
            candidate, k = f"{stem}_{k}", k + 1
        used.add(candidate.lower())
        stems[name] = candidate
    return stems


def _rows(parties: Sequence[Party], validation: bool) -> tuple[NDArray[Any], NDArray[Any]]:
    X = [p.X for p in parties] + [p.X_val for p in parties if validation and p.X_val is not None]
    y = [p.y for p in parties] + [p.y_val for p in parties if validation and p.y_val is not None]
    return np.vstack(X), np.concatenate(y)


def _release(model: CustomModel, parties: Sequence[Party]) -> dict[str, Any]:
    """The release check of ``model`` against every other party's training rows."""
    own = [p for p in parties if p.name == model.requester]
    others = [p for p in parties if p.name != model.requester]
    if not others:
        return {"holds_other_parties_rows": False, "reason": "there is no other party"}
    X, y = _rows(others, validation=False)
    X_own, y_own = _rows(own, validation=True) if own else (None, None)
    try:
        check = check_release(model.estimator, X, y, X_own=X_own, y_own=y_own)
    except (TypeError, ValueError) as exc:
        return {"holds_other_parties_rows": None, "reason": f"could not be inspected: {exc}"}
    holds = None if check.errors else not check.releasable
    return {
        "holds_other_parties_rows": holds,
        "reason": check.reason,
        "where": check.summary(),
    }


def _onnx(
    model: CustomModel, path: Path, X: NDArray[Any], expects: Mapping[str, Any]
) -> dict[str, Any]:
    """Convert to ONNX (float64 inputs where the converter and runtime support them,
    else float32), write it, and measure how often it predicts what the model does."""
    try:
        import onnxruntime as ort
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
    except ImportError:
        return {"skipped": "skl2onnx or onnxruntime is not installed: " + _EXTRA}
    reasons = []
    expected = np.asarray(model.predict(X))
    for tensor, dtype in ((DoubleTensorType, np.float64), (FloatTensorType, np.float32)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                onx = to_onnx(
                    model.estimator,
                    initial_types=[("X", tensor([None, X.shape[1]]))],
                    options={"zipmap": False},
                )
            data = onx.SerializeToString()
            session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
            got = np.asarray(session.run(None, {"X": X.astype(dtype)})[0]).reshape(expected.shape)
        except Exception as exc:  # the converter's and the runtime's errors vary
            reasons.append(f"{np.dtype(dtype).name}: {type(exc).__name__}: {exc}".strip())
            continue
        path.write_bytes(data)
        out: dict[str, Any] = {
            "file": path.name,
            "sha256": _sha256(path),
            "input": {
                "name": "X",
                "dtype": np.dtype(dtype).name,
                "n_features": X.shape[1],
                **expects,
            },
            "checked_rows": int(X.shape[0]),
        }
        if expected.dtype.kind == "f" and got.dtype.kind == "f":
            out["max_abs_difference"] = float(np.max(np.abs(got - expected), initial=0.0))
        else:
            out["agreement"] = float(np.mean(got == expected))
        return out
    return {"skipped": "the learner does not convert to ONNX: " + " | ".join(reasons)[:500]}


def _input(schema: TabularSchema, estimator: Any) -> dict[str, Any]:
    """The manifest's description of the raw DataFrame the skops pipeline takes."""
    columns = []
    for name in schema.features:
        if name in schema.categories:
            cats = list(schema.categories[name])
            columns.append({"name": name, "dtype": "categorical", "categories": cats})
        else:
            columns.append({"name": name, "dtype": "numeric"})
    return {
        "kind": "pandas DataFrame, columns matched by name (others ignored)",
        "columns": columns,
        "encoding": schema.encoding if schema.categories else None,
        "missing_values": (
            "allowed (empty cells, NaN or None), handled as in training"
            if accepts_missing(estimator)
            else "not allowed: the learner does not take missing values"
        ),
    }


def _onnx_expects(schema: TabularSchema | None, n_features: int) -> dict[str, Any]:
    """What the ONNX file's one input ``X`` holds, column by column."""
    if schema is None:
        return {"columns": None, "holds": f"the {n_features} features as in training"}
    names = schema.get_feature_names_out()
    if not schema.categories:
        return {
            "columns": names,
            "holds": "the feature columns in this order as numbers, NaN where missing",
        }
    unknown = "all 0" if schema.encoding == "onehot" else "NaN"
    return {
        "columns": names,
        "holds": (
            "the encoded features in this order, as the skops pipeline's first step "
            "('encode') writes them: numeric columns as numbers; "
            + (
                "one column 'name=category' per category of a categorical feature, 1 or 0"
                if schema.encoding == "onehot"
                else "a categorical feature as its category's position in its list"
            )
            + f"; NaN in a feature's column(s) where it is missing, {unknown} for a value "
            "outside its categories. The ONNX file does not encode text itself."
        ),
    }


def _classes(estimator: Any) -> list[Any] | None:
    classes = getattr(estimator, "classes_", None)
    return None if classes is None else np.asarray(classes).tolist()


def _composed(schema: TabularSchema, estimator: Any) -> Any:
    """One Pipeline: select and encode the raw columns by name, then the fitted model."""
    from sklearn.pipeline import Pipeline

    steps = estimator.steps if isinstance(estimator, Pipeline) else [("model", estimator)]
    return Pipeline([("encode", TabularEncoder.from_schema(schema)), *steps])


def export_models(
    result: MarketResult,
    parties: Sequence[Party],
    out_dir: str | Path,
    *,
    onnx: bool = True,
    schema: TabularSchema | None = None,
    targets: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Write every party's customised model to ``out_dir``, with a manifest.

    Parameters
    ----------
    result : MarketResult
        A settled round (:func:`~coopml.market.run_market`); ``result.models`` maps a
        party to its model.
    parties : sequence of Party
        The parties of the round, matched to the models by name: their rows are what
        the release check looks for and what the ONNX file is checked on.
    out_dir : str or Path
        Folder to write ``<party>.skops``, ``<party>.onnx`` and ``models.json`` to
        (created if missing).
    onnx : bool, default True
        Also convert to ONNX where skl2onnx converts the learner.
    schema : TabularSchema, optional
        The job's feature columns and their fixed encoding (``MarketJob.schema``): the
        skops file then takes raw rows as a DataFrame (see the module docstring).
        Without it the skops file takes the encoded float matrix the market used.
    targets : mapping of str to str, optional
        Each party's target column, recorded in the manifest.

    Returns
    -------
    dict
        The manifest also written to ``out_dir / "models.json"``: ``note`` and, per party,
        ``files`` (``skops`` and ``onnx`` with ``file`` and ``sha256``; ``onnx`` carries
        ``agreement`` or ``max_abs_difference`` measured on every party's rows, or
        ``skipped`` and why), ``learner``, ``trained_on``, ``validation_gain`` and
        ``holds_other_parties_rows`` (True, False or None) with its ``release_check``,
        ``input`` (what the skops file takes), ``target`` and ``classes``.

    Raises
    ------
    ImportError
        When skops is not installed (the error names the ``export`` extra).
    ValueError
        When a model's party is not among ``parties``.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.naive_bayes import GaussianNB
    >>> from coopml.data import load_dataset, make_parties, train_validation_split
    >>> from coopml.market import run_market
    >>> ds = load_dataset("breast_cancer")
    >>> X, X_val, y, y_val = train_validation_split(ds.X, ds.y, random_state=0)
    >>> parties = make_parties(X, y, 2, names=["north", "south"], random_state=0)
    >>> result = run_market(parties, GaussianNB(), (X_val, y_val))
    >>> folder = tempfile.mkdtemp()
    >>> manifest = export_models(result, parties, folder, onnx=False)
    >>> entry = manifest["models"]["north"]
    >>> entry["files"]["skops"]["file"], entry["holds_other_parties_rows"]
    ('north.skops', False)
    >>> model = load_skops(Path(folder) / "north.skops")
    >>> bool((model.predict(X_val) == result.models["north"].predict(X_val)).all())
    True
    """
    sio = require_skops()
    by_name = {p.name: p for p in parties}
    missing = [name for name in result.models if name not in by_name]
    if missing:
        raise ValueError(
            f"parameter 'parties' must hold every party of the round; missing {missing}, "
            f"got {sorted(by_name)}"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    X_all = _rows(list(parties), validation=True)[0].astype(np.float64)
    if schema is not None and len(schema.get_feature_names_out()) != X_all.shape[1]:
        raise ValueError(
            f"parameter 'schema' encodes {len(schema.get_feature_names_out())} columns but "
            f"the parties have {X_all.shape[1]}"
        )
    stems = _file_stems(list(result.models))
    expects = _onnx_expects(schema, X_all.shape[1])
    taken: dict[str, Any] = {}
    if schema is None:
        names = next((p.feature_names for p in parties if p.feature_names is not None), None)
        taken = {
            "kind": "float matrix, columns by position",
            "n_features": int(X_all.shape[1]),
            "columns": None if names is None else list(names),
        }
    models: dict[str, Any] = {}
    for name, model in result.models.items():
        skops_path = out / f"{stems[name]}.skops"
        fitted = model.estimator if schema is None else _composed(schema, model.estimator)
        sio.dump(fitted, skops_path)
        files: dict[str, Any] = {"skops": {"file": skops_path.name, "sha256": _sha256(skops_path)}}
        if onnx:
            files["onnx"] = _onnx(model, out / f"{stems[name]}.onnx", X_all, expects)
        release = _release(model, parties)
        models[name] = {
            "input": taken if schema is None else _input(schema, model.estimator),
            "target": None if targets is None else targets.get(name),
            "classes": _classes(model.estimator),
            "files": files,
            "learner": " ".join(repr(model.estimator).split()),
            "trained_on": list(model.members),
            "validation_gain": model.validation_gain,
            "holds_other_parties_rows": release.pop("holds_other_parties_rows"),
            "release_check": release,
        }
    manifest = {"format": "coopml-models/1", "note": _NOTE, "models": models}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def describe_export(manifest: Mapping[str, Any]) -> list[str]:
    """One line per exported party, for the terminal: files, and a warning where the
    file holds other parties' rows or where ONNX could not be written faithfully."""
    lines = []
    for name, entry in manifest["models"].items():
        files = entry["files"]
        written = [files["skops"]["file"]]
        onnx = files.get("onnx", {})
        if "file" in onnx:
            written.append(onnx["file"])
        line = f"{name}: {', '.join(written)}"
        columns = entry.get("input", {}).get("columns")
        if columns and isinstance(columns[0], dict):
            line += " (takes a DataFrame with columns " + ", ".join(c["name"] for c in columns)
            line += ")"
        if "skipped" in onnx:
            line += f" (no ONNX: {onnx['skipped'][:120]})"
        elif onnx.get("agreement", 1.0) < 1.0:
            line += f" (ONNX agrees on {onnx['agreement']:.2%} of {onnx['checked_rows']} rows)"
        holds = entry["holds_other_parties_rows"]
        if holds is None:
            line += "; could not check for other parties' rows"
        elif holds:
            line += "; holds other parties' training rows"
        lines.append(line)
    return lines
