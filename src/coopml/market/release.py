r"""Model release check: does a fitted model hold another party's training rows?

A market that hands a party the *file* of its customised model hands over the model's
whole fitted state, not only its predictions. Some learners keep their training data in
that state: a k-nearest-neighbours model stores every training row and its label, a
decision tree grown to purity has leaves that describe a single training row, and a
class mean over a class of one row *is* that row. :func:`check_release` inspects a
fitted estimator (any scikit-learn object, a :class:`~sklearn.pipeline.Pipeline`
included) for the training rows of the *other* parties — the rows the recipient
:math:`i` must not learn — and reports every place it finds one.

What is a row
-------------
Party :math:`j \ne i` holds rows :math:`(x_r, y_r)`, :math:`x_r \in \mathbb{R}^d`. The
check reads every array of the fitted state (:func:`fitted_arrays`: public and private
attributes of the estimator and of every nested estimator, pipeline step, list, tuple,
dict and object array, recursively, and a tree's ``tree_`` through its public arrays
``value``, ``threshold``, ``impurity``, ``n_node_samples``, ...) and reports

* **features** — a floating-point array whose last axis has length :math:`d_k` (or a
  2-D array whose first axis does) with a row equal to some :math:`x_r`, bit for bit
  in the array's precision, either raw (:math:`k = 0`) or after the first :math:`k`
  steps of the pipeline (the scaled rows a ``StandardScaler`` → kNN pipeline stores). A
  1-D array of length :math:`d_k` is one row;
* **label** (aligned) — in the same object as such a feature array with :math:`n` rows,
  a per-sample array (first axis :math:`n`: kNN's ``_y``) whose entry at a matched row
  equals that row's label :math:`y_r` (encoded labels are decoded through the object's
  ``classes_``);
* **label** (tree leaves) — a leaf of a fitted tree (``tree_``, also every tree of a
  forest) that holds a single training row (``n_node_samples == 1``): its ``value`` is
  that row's label or target. The check routes every :math:`x_r` (after the pipeline's
  steps) to its leaf with ``apply`` and reports :math:`r` when the leaf holds one row and
  its value equals :math:`y_r`. For regression trees (squared error) it also solves a
  leaf of *two* rows with integer weights :math:`w_1 + w_2 = W`: the stored mean
  :math:`m` and impurity :math:`v` give the two targets
  :math:`m \pm \sqrt{v\, w_2 / w_1}`, reported when one equals :math:`y_r`.

Rows that the recipient holds itself (``X_own``, ``y_own``: its training and validation
rows) are never reported: a model cannot reveal to a party what it already has.

What it cannot detect
---------------------
The check finds *copies* and *single-row statistics*, not everything a model reveals:

* aggregates of two or more rows: class means (``GaussianNB.theta_``,
  ``LinearDiscriminantAnalysis.means_``) and ``StandardScaler``'s ``mean_``/``var_``
  over classes of ≥ 2 rows, a mean of two rows, classification leaves of ≥ 2 rows, a
  pure leaf (it says that every row in its region has one label). Such a statistic
  may still pin down a row by *differencing*: a recipient who knows all but one row
  of an aggregate computes the last one (a coalition of the recipient and one other
  party with a single row; ``n_samples_seen_`` tells how many rows there were);
* a row stored transformed in a way that is not one of the pipeline's own steps
  (rounded, permuted, a projection), or only some of its features;
* a tree leaf's region: the thresholds on the path to a one-row leaf are midpoints
  between that row and its neighbours, so they bound its features without equalling
  them (the leaf is reported through its label);
* leaves of boosted trees (they hold residuals, not labels) and multi-output labels;
* what predictions reveal: a model served only for queries can still be probed
  (membership and model-extraction attacks) — the reason for a query quota.

A match can also be a coincidence: low-dimensional data with few distinct values (two
binary features, say) may equal some unrelated array row. The check then errs towards
refusing the release.

Examples
--------
>>> import numpy as np
>>> from sklearn.linear_model import LogisticRegression
>>> from sklearn.neighbors import KNeighborsClassifier
>>> rng = np.random.default_rng(0)
>>> X_own, X_other = rng.normal(size=(20, 3)), rng.normal(size=(25, 3))
>>> y_own, y_other = (X_own[:, 0] > 0).astype(int), (X_other[:, 0] > 0).astype(int)
>>> X, y = np.vstack([X_own, X_other]), np.concatenate([y_own, y_other])
>>> knn = KNeighborsClassifier(algorithm="brute").fit(X, y)
>>> check = check_release(knn, X_other, y_other, X_own=X_own, y_own=y_own)
>>> check.releasable
False
>>> [(e.path, e.kind, e.n_rows) for e in check.exposures]
[('_fit_X', 'features', 25), ('_y', 'label', 25)]
>>> check_release(LogisticRegression().fit(X, y), X_other, y_other).releasable
True
"""

from __future__ import annotations

import math
import re
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["Exposure", "ReleaseCheck", "check_release", "fitted_arrays"]

#: Public arrays of a fitted ``sklearn.tree._tree.Tree`` (its whole state).
TREE_ARRAYS = (
    "children_left",
    "children_right",
    "feature",
    "threshold",
    "impurity",
    "n_node_samples",
    "weighted_n_node_samples",
    "missing_go_to_left",
    "value",
)
_MAX_DEPTH = 64
_ATOMS = (str, bytes, bytearray, int, float, complex, bool, type(None), np.generic, np.dtype)
_SKIP = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType)


@dataclass(frozen=True)
class Exposure:
    """Other parties' rows found at one place of a fitted model.

    Attributes
    ----------
    path : str
        Where: attribute names from the estimator down (``"_fit_X"``,
        ``"kneighborsclassifier._y"``, ``"estimators_[3].tree_.value"``).
    kind : {"features", "label"}
        A copy of feature rows, or individual labels (targets).
    how : str
        How it was found (``"raw rows"``, ``"rows after step 'standardscaler'"``,
        ``"aligned with _fit_X"``, ``"leaf holding one training row"``, ...).
    rows : tuple of int
        Indices of the exposed rows in the ``X`` given to :func:`check_release`.
    """

    path: str
    kind: Literal["features", "label"]
    how: str
    rows: tuple[int, ...]

    @property
    def n_rows(self) -> int:
        """How many distinct rows of the other parties are exposed here."""
        return len(self.rows)

    def to_dict(self, *, rows: bool = False) -> dict[str, Any]:
        """JSON-serialisable form (``rows``: include the row indices)."""
        out: dict[str, Any] = {
            "path": self.path,
            "kind": self.kind,
            "how": self.how,
            "n_rows": self.n_rows,
        }
        if rows:
            out["rows"] = list(self.rows)
        return out


@dataclass(frozen=True)
class ReleaseCheck:
    """The outcome of :func:`check_release`.

    Attributes
    ----------
    exposures : tuple of Exposure
        Every place holding another party's row; empty when none was found.
    n_arrays : int
        How many arrays of the fitted state were inspected.
    n_trees : int
        How many fitted trees had their leaves inspected.
    errors : tuple of str
        Parts that could not be inspected (a tree whose ``apply`` failed, say); any
        error makes the model not releasable.
    """

    exposures: tuple[Exposure, ...]
    n_arrays: int
    n_trees: int = 0
    errors: tuple[str, ...] = field(default=())

    @property
    def releasable(self) -> bool:
        """True when no row of another party was found and everything was inspected."""
        return not self.exposures and not self.errors

    @property
    def rows(self) -> tuple[int, ...]:
        """Every exposed row (indices into ``X``), sorted."""
        return tuple(sorted({r for e in self.exposures for r in e.rows}))

    def summary(self) -> list[dict[str, Any]]:
        """Exposures grouped by place, with indices of repeated parts collapsed
        (``estimators_[*].tree_.value``): ``{"path", "kind", "n_rows"}`` each."""
        groups: dict[tuple[str, str], set[int]] = {}
        for e in self.exposures:
            key = (re.sub(r"\[\d+\]", "[*]", e.path), e.kind)
            groups.setdefault(key, set()).update(e.rows)
        return [{"path": p, "kind": k, "n_rows": len(r)} for (p, k), r in groups.items()]

    @property
    def reason(self) -> str:
        """One sentence: why the model may or may not be released (names no party and
        no row)."""
        if self.errors:
            return "the fitted model could not be fully inspected: " + "; ".join(self.errors)
        if not self.exposures:
            return (
                f"no training row of another party found in the fitted state "
                f"({self.n_arrays} arrays, {self.n_trees} trees inspected)"
            )
        parts = []
        for g in self.summary():
            what = "training rows" if g["kind"] == "features" else "individual labels"
            parts.append(f"{what} in {g['path']}")
        return "the fitted state holds other parties' " + ", ".join(parts)

    def to_dict(self, *, rows: bool = False) -> dict[str, Any]:
        """JSON-serialisable form (``rows``: include the row indices)."""
        return {
            "releasable": self.releasable,
            "reason": self.reason,
            "n_arrays": self.n_arrays,
            "n_trees": self.n_trees,
            "errors": list(self.errors),
            "exposures": [e.to_dict(rows=rows) for e in self.exposures],
        }


# ---------------------------------------------------------------------------- walking
def _is_tree(obj: Any) -> bool:
    return type(obj).__module__.startswith("sklearn.tree") and type(obj).__name__ == "Tree"


def _steps(obj: Any) -> list[tuple[str, Any]] | None:
    """A pipeline's ``(name, step)`` list, else None."""
    steps = getattr(obj, "steps", None)
    if isinstance(steps, list) and all(
        isinstance(s, tuple) and len(s) == 2 and isinstance(s[0], str) for s in steps
    ):
        return steps
    return None


def _state(obj: Any) -> tuple[str, Any]:
    """``("attrs", dict)`` or ``("items", sequence)``: what pickling/skops would save."""
    if _is_tree(obj):
        return "attrs", {name: getattr(obj, name) for name in TREE_ARRAYS if hasattr(obj, name)}
    steps = _steps(obj)
    if steps is not None:
        rest = {k: v for k, v in vars(obj).items() if k != "steps"}
        return "attrs", {**dict(steps), **rest}
    state: Any = None
    getstate = getattr(obj, "__getstate__", None)
    if callable(getstate):
        try:
            state = getstate()
        except Exception:
            state = None
    if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):
        if isinstance(state[0], dict | type(None)):  # (__dict__, __slots__ values)
            state = {**(state[0] or {}), **state[1]}
    if isinstance(state, dict):
        return "attrs", state
    if isinstance(state, list | tuple):
        return "items", state
    if hasattr(obj, "__dict__"):
        return "attrs", dict(vars(obj))
    return "items", ()


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _children(obj: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield f"{path}[{key!r}]", value
    elif isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            yield f"{path}[{i}]", value
    elif isinstance(obj, np.ndarray):  # object arrays
        for i, value in enumerate(obj.ravel()):
            yield f"{path}[{i}]", value
    else:
        kind, state = _state(obj)
        if kind == "attrs":
            for key, value in state.items():
                yield _join(path, str(key)), value
        else:
            for i, value in enumerate(state):
                yield f"{path}[{i}]", value


def _walk(
    obj: Any, path: str, seen: set[int], depth: int = 0
) -> Iterator[tuple[str, Any, NDArray[Any] | None]]:
    """``(path, obj, array)``: every array (``obj`` is the array) and every container
    object (``array`` None), depth first."""
    if depth > _MAX_DEPTH or isinstance(obj, _ATOMS) or isinstance(obj, _SKIP):
        return
    if isinstance(obj, np.ndarray) and obj.dtype != object:
        if obj.dtype.names:  # a structured array: one array per field
            for name in obj.dtype.names:
                yield f"{path}[{name!r}]", obj, np.asarray(obj[name])
        else:
            yield path, obj, obj
        return
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if hasattr(obj, "toarray") and hasattr(obj, "data"):  # scipy.sparse: its stored values
        yield from _walk(np.asarray(obj.data), _join(path, "data"), seen, depth + 1)
        return
    yield path, obj, None
    for child_path, child in _children(obj, path):
        yield from _walk(child, child_path, seen, depth + 1)


def fitted_arrays(estimator: Any) -> Iterator[tuple[str, NDArray[Any]]]:
    """Every array of a fitted object's state, with its path.

    Walks public and private attributes (what skops or pickle would save), pipeline
    steps by name, lists, tuples, dicts, object arrays and nested objects, recursively;
    a fitted tree's ``tree_`` through its public arrays and structured arrays field by
    field.

    Parameters
    ----------
    estimator : object
        A fitted estimator (or any object).

    Yields
    ------
    path : str
        Attribute path from ``estimator``.
    array : ndarray
        The array found there.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.tree import DecisionTreeRegressor
    >>> tree = DecisionTreeRegressor(max_depth=1).fit(np.arange(4.0)[:, None], [0, 0, 1, 1])
    >>> [path for path, _ in fitted_arrays(tree) if path.startswith("tree_")][:3]
    ['tree_.children_left', 'tree_.children_right', 'tree_.feature']
    """
    for path, _obj, array in _walk(estimator, "", set()):
        if array is not None:
            yield path, array


# ---------------------------------------------------------------------------- matching
def _as_2d(X: ArrayLike, name: str) -> NDArray[np.float64]:
    A = np.asarray(X, dtype=np.float64)
    if A.ndim == 1:
        A = A[:, None]
    if A.ndim != 2:
        raise ValueError(f"parameter '{name}' must be a 2-D array of rows; got shape {A.shape}")
    return A


def _keys(A: NDArray[Any], dtype: np.dtype[Any]) -> list[bytes]:
    rows = np.ascontiguousarray(A, dtype=dtype) + dtype.type(0)  # -0.0 -> 0.0
    return [row.tobytes() for row in rows]


class _RowIndex:
    """Other parties' rows of one stage, hashed per floating dtype (own rows left out)."""

    def __init__(self, X: NDArray[np.float64], own: NDArray[np.float64] | None, how: str):
        self.X, self.own, self.how, self.width = X, own, how, X.shape[1]
        self._by_dtype: dict[str, dict[bytes, list[int]]] = {}

    def lookup(self, dtype: np.dtype[Any]) -> dict[bytes, list[int]]:
        if dtype.str not in self._by_dtype:
            known = set() if self.own is None else set(_keys(self.own, dtype))
            index: dict[bytes, list[int]] = {}
            for r, key in enumerate(_keys(self.X, dtype)):
                if key not in known:
                    index.setdefault(key, []).append(r)
            self._by_dtype[dtype.str] = index
        return self._by_dtype[dtype.str]


@dataclass
class _Context:
    """The inputs that reach the object being walked: its stage's rows, and the
    ``classes_`` that decode its labels."""

    X: NDArray[np.float64]
    own: NDArray[np.float64] | None
    stage: str
    classes: NDArray[Any] | None = None


class _Inspector:
    def __init__(
        self,
        X: NDArray[np.float64],
        y: NDArray[Any] | None,
        X_own: NDArray[np.float64] | None,
        y_own: NDArray[Any] | None,
    ) -> None:
        self.y, self.y_own = y, y_own
        self.indexes: list[_RowIndex] = []
        self.found: dict[tuple[str, str, str], set[int]] = {}
        self.n_arrays = 0
        self.n_trees = 0
        self.errors: list[str] = []
        self.seen: set[int] = set()
        self.root = _Context(X, X_own, "raw rows")

    def add(self, path: str, kind: str, how: str, rows: Any) -> None:
        rows = set(int(r) for r in rows)
        if rows:
            self.found.setdefault((path, kind, how), set()).update(rows)

    def add_stage(self, ctx: _Context) -> None:
        if not any(ix.X is ctx.X for ix in self.indexes):
            self.indexes.append(_RowIndex(ctx.X, ctx.own, ctx.stage))

    # -- the walk, with pipelines' stages and ensembles' classes_ carried down
    def inspect(self, obj: Any, path: str, ctx: _Context, depth: int = 0) -> None:
        if depth > _MAX_DEPTH or isinstance(obj, _ATOMS) or isinstance(obj, _SKIP):
            return
        if isinstance(obj, np.ndarray) and obj.dtype != object:
            for p, _o, array in _walk(obj, path, set()):
                if array is not None:
                    self.n_arrays += 1
                    self.match_rows(p, array)
            return
        if id(obj) in self.seen:
            return
        self.seen.add(id(obj))
        steps = _steps(obj)
        if steps is not None and hasattr(obj, "fit"):
            self.inspect_pipeline(obj, steps, path, ctx, depth)
            return
        if hasattr(obj, "tree_") and hasattr(obj, "apply") and _is_tree(obj.tree_):
            self.inspect_tree(obj, path, ctx)
        classes = getattr(obj, "classes_", None)
        child_ctx = ctx
        if hasattr(obj, "estimators_") and isinstance(classes, np.ndarray):
            child_ctx = _Context(ctx.X, ctx.own, ctx.stage, classes)
        children = list(_children(obj, path))
        if isinstance(obj, dict) or not isinstance(obj, list | tuple | np.ndarray):
            self.match_aligned(obj, path, children)
        for child_path, child in children:
            self.inspect(child, child_path, child_ctx, depth + 1)

    def inspect_pipeline(
        self, pipe: Any, steps: list[tuple[str, Any]], path: str, ctx: _Context, depth: int
    ) -> None:
        # every stage's rows first, so that any array is matched against all of them
        stages, X, own = [ctx], ctx.X, ctx.own
        for name, step in steps[:-1]:
            if step is not None and step != "passthrough":
                try:
                    X = np.asarray(step.transform(X), dtype=np.float64)
                    own = None if own is None else np.asarray(step.transform(own), np.float64)
                except Exception as exc:
                    self.errors.append(f"step {name!r} could not transform the rows: {exc}")
                    return
            if X.ndim != 2:
                self.errors.append(f"step {name!r} does not return rows (shape {X.shape})")
                return
            stages.append(_Context(X, own, f"rows after step {name!r}"))
        for stage in stages:
            self.add_stage(stage)
        for (name, step), stage in zip(steps, stages, strict=True):
            self.inspect(step, _join(path, name), stage, depth + 1)
        rest = {k: v for k, v in vars(pipe).items() if k != "steps"}
        for key, value in rest.items():
            self.inspect(value, _join(path, key), ctx, depth + 1)

    # -- feature rows: exact copies
    def match_rows(self, path: str, array: NDArray[Any]) -> None:
        if array.dtype.kind != "f" or array.size == 0:
            return
        for ix in self.indexes:
            d = ix.width
            views = []
            if array.shape[-1] == d:
                views.append(array.reshape(-1, d))
            if array.ndim == 2 and array.shape[0] == d and array.shape[1] != d:
                views.append(array.T)
            for view in views:
                index = ix.lookup(array.dtype)
                hits = [index[k] for k in _keys(view, array.dtype) if k in index]
                self.add(path, "features", ix.how, (r for rs in hits for r in rs))

    def _positions(self, array: NDArray[Any]) -> dict[int, list[int]]:
        """Row position in ``array`` -> matched other rows, for a 2-D float array."""
        out: dict[int, list[int]] = {}
        if array.dtype.kind != "f" or array.ndim != 2:
            return out
        for ix in self.indexes:
            if array.shape[1] != ix.width:
                continue
            index = ix.lookup(array.dtype)
            for pos, key in enumerate(_keys(array, array.dtype)):
                if key in index:
                    out.setdefault(pos, []).extend(index[key])
        return out

    # -- labels stored next to matched rows (kNN's _y next to _fit_X)
    def match_aligned(self, obj: Any, path: str, children: list[tuple[str, Any]]) -> None:
        if self.y is None:
            return
        arrays = [  # attributes only: items of a tuple state are not aligned by meaning
            (p, a)
            for p, a in children
            if isinstance(a, np.ndarray) and a.dtype != object and not p.endswith("]")
        ]
        for p, a in arrays:
            positions = self._positions(a)
            if not positions:
                continue
            n = a.shape[0]
            for q, b in arrays:
                if q == p or b.ndim not in (1, 2) or b.shape[0] != n:
                    continue
                if b.ndim == 2 and b.shape[1] != 1:
                    continue
                raw = b.reshape(n)
                # the labels themselves, or indices into the object's classes_
                candidates = [raw] + [d for d in [self.decode(obj, raw)] if d is not None]
                rows = [
                    r
                    for pos, rs in positions.items()
                    for r in rs
                    if any(_same_label(labels[pos], self.y[r]) for labels in candidates)
                ]
                self.add(q, "label", f"aligned with {p.rsplit('.', 1)[-1]}", rows)

    @staticmethod
    def decode(obj: Any, b: NDArray[Any]) -> NDArray[Any] | None:
        classes = getattr(obj, "classes_", None)
        if classes is None and isinstance(obj, dict):
            classes = obj.get("classes_")
        if isinstance(classes, np.ndarray) and classes.ndim == 1 and b.dtype.kind in "iu":
            if b.size and (b.min() < 0 or b.max() >= len(classes)):
                return None
            return classes[b]
        return None

    # -- tree leaves that describe one (or two solvable) rows
    def inspect_tree(self, est: Any, path: str, ctx: _Context) -> None:
        self.n_trees += 1
        if self.y is None:
            return
        tree = est.tree_
        where = _join(path, "tree_.value")
        try:
            leaves = est.apply(ctx.X)
            own_leaves = None if ctx.own is None else est.apply(ctx.own)
        except Exception as exc:
            self.errors.append(f"{_join(path, 'tree_')}: cannot route rows to leaves ({exc})")
            return
        value = np.asarray(tree.value)
        if value.shape[1] != 1:
            return  # multi-output: not analysed (see the module's docstring)
        n = np.asarray(tree.n_node_samples)
        w = np.asarray(tree.weighted_n_node_samples)
        impurity = np.asarray(tree.impurity)
        est_classes = getattr(est, "classes_", None)
        classifier = est_classes is not None
        squared = getattr(est, "criterion", "") == "squared_error"

        def readable(leaf: int) -> list[Any]:
            """The labels (targets) of the leaf's rows that its state gives away."""
            if n[leaf] == 1:
                if classifier:
                    assert est_classes is not None
                    label = np.asarray(est_classes)[int(np.argmax(value[leaf, 0]))]
                    if ctx.classes is not None and float(label).is_integer():
                        label = ctx.classes[int(label)]
                    return [label]
                return [float(value[leaf, 0, 0])]
            if n[leaf] == 2 and not classifier and squared:
                total = float(w[leaf])
                if not total.is_integer() or not 2 <= total <= 64:
                    return []
                m, v = float(value[leaf, 0, 0]), max(float(impurity[leaf]), 0.0)
                out = []
                for w1 in range(1, int(total)):
                    s = math.sqrt(v * (total - w1) / w1)
                    out += [m + s, m - s]
                return out
            return []

        own_labels: dict[int, list[Any]] = {}
        if own_leaves is not None and self.y_own is not None:
            for leaf, label in zip(own_leaves, self.y_own, strict=False):
                own_labels.setdefault(int(leaf), []).append(label)
        cache: dict[int, list[Any]] = {}
        single: list[int] = []
        pair: list[int] = []
        for r, leaf in enumerate(leaves):
            leaf = int(leaf)
            if leaf not in cache:
                cache[leaf] = readable(leaf)
            read = cache[leaf]
            if not read or not any(_same_label(v, self.y[r]) for v in read):
                continue
            if any(_same_label(v, o) for v in read for o in own_labels.get(leaf, [])):
                continue  # the recipient's own row could be the one
            (single if n[leaf] == 1 else pair).append(r)
        self.add(where, "label", "leaf holding one training row", single)
        self.add(where, "label", "leaf of two rows (mean ± impurity)", pair)

    def result(self) -> ReleaseCheck:
        exposures = tuple(
            Exposure(path, kind, how, tuple(sorted(rows)))  # type: ignore[arg-type]
            for (path, kind, how), rows in sorted(self.found.items())
        )
        return ReleaseCheck(exposures, self.n_arrays, self.n_trees, tuple(self.errors))


def _same_label(a: Any, b: Any) -> bool:
    if isinstance(a, float | np.floating) or isinstance(b, float | np.floating):
        try:
            fa, fb = float(a), float(b)
        except (TypeError, ValueError):
            return False
        return fa == fb or math.isclose(fa, fb, rel_tol=1e-7, abs_tol=1e-9)
    return bool(a == b)


def check_release(
    estimator: Any,
    X: ArrayLike,
    y: ArrayLike | None = None,
    *,
    X_own: ArrayLike | None = None,
    y_own: ArrayLike | None = None,
) -> ReleaseCheck:
    """Inspect a fitted model for training rows of other parties before releasing it.

    Parameters
    ----------
    estimator : object
        The fitted model (an estimator or a :class:`~sklearn.pipeline.Pipeline`).
    X : array of shape (n_rows, n_features)
        The rows the recipient must not learn: the other parties' training rows, in the
        column order the model was trained with.
    y : array of shape (n_rows,), optional
        Their labels (targets). Without them only feature rows are searched.
    X_own, y_own : arrays, optional
        Rows the recipient holds itself (its training and validation data); never
        reported, even where another party has the same row.

    Returns
    -------
    ReleaseCheck
        ``releasable`` (no exposure), every :class:`Exposure` (where, what, which
        rows), and a ``reason`` that names no party and no row. The module docstring
        lists exactly what is and what is not detected.

    Examples
    --------
    A tree grown to purity has leaves of one row: their labels are the rows' labels.

    >>> import numpy as np
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> from sklearn.naive_bayes import GaussianNB
    >>> rng = np.random.default_rng(1)
    >>> X_own, X_other = rng.normal(size=(30, 4)), rng.normal(size=(30, 4))
    >>> y_own = (X_own[:, 0] + rng.normal(size=30) > 0).astype(int)
    >>> y_other = (X_other[:, 0] + rng.normal(size=30) > 0).astype(int)
    >>> X, y = np.vstack([X_own, X_other]), np.concatenate([y_own, y_other])
    >>> tree = make_pipeline(StandardScaler(), DecisionTreeClassifier(random_state=0))
    >>> check = check_release(tree.fit(X, y), X_other, y_other, X_own=X_own, y_own=y_own)
    >>> check.releasable, check.summary()[0]["path"]
    (False, 'decisiontreeclassifier.tree_.value')
    >>> nb = make_pipeline(StandardScaler(), GaussianNB()).fit(X, y)
    >>> check_release(nb, X_other, y_other, X_own=X_own, y_own=y_own).reason
    'no training row of another party found in the fitted state (8 arrays, 0 trees inspected)'
    """
    X_arr = _as_2d(X, "X")
    y_arr = None if y is None else np.asarray(y)
    if y_arr is not None and y_arr.shape[0] != X_arr.shape[0]:
        raise ValueError(
            f"parameter 'y' must have one label per row of X ({X_arr.shape[0]}); "
            f"got {y_arr.shape[0]}"
        )
    own = None if X_own is None else _as_2d(X_own, "X_own")
    if own is not None and own.shape[1] != X_arr.shape[1]:
        raise ValueError(
            f"parameter 'X_own' must have {X_arr.shape[1]} columns like X; got {own.shape[1]}"
        )
    y_own_arr = None if y_own is None else np.asarray(y_own)
    if y_own_arr is not None and (own is None or y_own_arr.shape[0] != own.shape[0]):
        raise ValueError("parameter 'y_own' must have one label per row of X_own")
    inspector = _Inspector(X_arr, y_arr, own, y_own_arr)
    inspector.add_stage(inspector.root)
    inspector.inspect(estimator, "", inspector.root)
    return inspector.result()
