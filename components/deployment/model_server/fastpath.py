"""A faster equal path through ``model.joblib``: its ColumnTransformer as numpy operations, then the estimator.

``model.joblib`` stays the model (KServe's stock sklearn runtime loads it as it is). At load time, when the
pipeline has the shape train writes (``frame`` -> ``ColumnTransformer`` -> estimator, see docs/DESIGN.md) and
every preprocessing step is one this module knows (``astype`` coercion, ``SimpleImputer``, ``StandardScaler``,
``OneHotEncoder`` without drop, infrequent categories included), :func:`derive` reads the fitted parameters (imputer
statistics, scaler mean and scale, encoder categories) and encodes a request's checked columns straight into
the estimator's input matrix: no DataFrame, no per-call input validation of each step. Anything else, and
a pipeline whose fast path does not give the same predictions on probe rows, is served through the pipeline.

Equality is tested on a real eval set (tests/test_fastpath.py): labels exactly, probabilities within 1e-12.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["FastPath", "Unsupported", "derive"]


class Unsupported(Exception):
    """The pipeline has a step the fast path does not reproduce (the message says which)."""


@dataclass
class _Numeric:
    columns: List[str]
    fill: Optional[np.ndarray]
    mean: Optional[np.ndarray]
    scale: Optional[np.ndarray]

    def encode(self, values: Mapping[str, np.ndarray], rows: int) -> np.ndarray:
        block = np.empty((rows, len(self.columns)), dtype=np.float64)
        for j, name in enumerate(self.columns):
            block[:, j] = values[name]
        if self.fill is not None:
            holes = np.isnan(block)
            if holes.any():
                block[holes] = np.broadcast_to(self.fill, block.shape)[holes]
        if self.mean is not None:
            block -= self.mean
        if self.scale is not None:
            block /= self.scale
        return block


@dataclass
class _OneHot:
    columns: List[str]
    fill: Optional[List[Any]]
    index: List[Dict[str, int]]
    unknown: List[Optional[int]]
    offsets: List[int]
    width: int

    def encode(self, values: Mapping[str, np.ndarray], rows: int) -> np.ndarray:
        block = np.zeros((rows, self.width), dtype=np.float64)
        for j, name in enumerate(self.columns):
            column, lookup, offset, unknown = values[name], self.index[j], self.offsets[j], self.unknown[j]
            fill = self.fill[j] if self.fill is not None else None
            for row in range(rows):
                value = column[row]
                if value is None or (isinstance(value, float) and value != value):
                    value = fill
                position = lookup.get(value, unknown) if value is not None else unknown
                if position is not None:  # None: all zeros (handle_unknown="ignore")
                    block[row, offset + position] = 1.0
        return block


class FastPath:
    """Checked columns -> the estimator's input matrix -> the estimator."""

    def __init__(self, blocks: List[Any], estimator: Any):
        self.blocks = blocks
        self.estimator = estimator

    def matrix(self, columns: Mapping[str, np.ndarray], rows: int) -> np.ndarray:
        """Encode checked columns into the estimator's input matrix."""
        parts = [block.encode(columns, rows) for block in self.blocks]
        return parts[0] if len(parts) == 1 else np.hstack(parts)


def derive(pipeline: Any, feature_dtypes: Mapping[str, str]) -> FastPath:
    """Read the fitted preprocessing of ``pipeline`` into a :class:`FastPath`.

    Raises:
        Unsupported: naming the step the fast path cannot reproduce.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 3:
        raise Unsupported("not a Pipeline of frame, ColumnTransformer and estimator")
    _check_frame_step(pipeline.steps[0][1])
    prep, estimator = pipeline.steps[1][1], pipeline.steps[2][1]
    if not isinstance(prep, ColumnTransformer):
        raise Unsupported(f"step 'prep' is {type(prep).__name__}, not a ColumnTransformer")
    if getattr(prep, "sparse_output_", False):
        raise Unsupported("the ColumnTransformer outputs a sparse matrix")
    blocks = []
    for name, transformer, columns in prep.transformers_:
        if transformer == "drop" or (name == "remainder" and not len(columns)):
            continue
        if transformer == "passthrough" or not isinstance(columns, (list, tuple)):
            raise Unsupported(f"transformer {name!r}: passthrough or non-name columns")
        steps = transformer.steps if isinstance(transformer, Pipeline) else [(name, transformer)]
        blocks.append(_block(name, [str(c) for c in columns], steps, feature_dtypes))
    if not blocks:
        raise Unsupported("the ColumnTransformer has no transformers")
    return FastPath(blocks, compile_estimator(estimator))


def _check_frame_step(step: Any) -> None:
    from sklearn.preprocessing import FunctionTransformer

    func = getattr(step, "func", None)
    if not isinstance(step, FunctionTransformer) or getattr(func, "func", None) is None:
        raise Unsupported("the first step is not the frame FunctionTransformer(partial(DataFrame, columns=...))")
    if getattr(func.func, "__name__", "") != "DataFrame":
        raise Unsupported("the first step does not build a DataFrame")


def _block(name: str, columns: List[str], steps: Sequence[Tuple[str, Any]], dtypes: Mapping[str, str]):
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    kind, fill, mean, scale, encoder = None, None, None, None, None
    for step_name, step in steps:
        where = f"transformer {name!r} step {step_name!r}"
        if isinstance(step, FunctionTransformer):
            text = repr(step.func)
            if text == "operator.methodcaller('astype', 'float64')" and kind is None:
                kind = "numeric"
            elif text == "operator.methodcaller('astype', 'string')" and kind is None:
                kind = "string"
            else:
                raise Unsupported(f"{where}: FunctionTransformer({text})")
            if step.kw_args:
                raise Unsupported(f"{where}: FunctionTransformer with kw_args")
        elif isinstance(step, SimpleImputer) and fill is None and mean is None and encoder is None:
            if step.add_indicator:
                raise Unsupported(f"{where}: SimpleImputer(add_indicator=True)")
            statistics = np.asarray(step.statistics_)
            if kind == "numeric":
                statistics = statistics.astype(np.float64)
                if np.isnan(statistics).any() and not getattr(step, "keep_empty_features", False):
                    raise Unsupported(f"{where}: a feature with no training values (the imputer drops it)")
                if step.missing_values == step.missing_values:  # NaN is the only missing value handled
                    raise Unsupported(f"{where}: missing_values={step.missing_values!r}")
            fill = statistics
        elif isinstance(step, StandardScaler) and kind == "numeric" and mean is None and scale is None:
            mean = None if step.mean_ is None or not step.with_mean else np.asarray(step.mean_, dtype=np.float64)
            scale = None if step.scale_ is None or not step.with_std else np.asarray(step.scale_, dtype=np.float64)
        elif isinstance(step, OneHotEncoder) and kind == "string" and encoder is None:
            if step.drop_idx_ is not None or step.sparse_output:
                raise Unsupported(f"{where}: OneHotEncoder with drop or sparse output")
            encoder = step
        else:
            raise Unsupported(f"{where}: {type(step).__name__} here is not reproduced")
    if kind == "numeric" and encoder is None:
        bad = [c for c in columns if dtypes.get(c) not in ("int", "float", "bool")]
        if bad:
            raise Unsupported(f"transformer {name!r}: columns {bad} are not numeric in metadata.json")
        return _Numeric(columns, fill, mean, scale)
    if kind == "string" and encoder is not None:
        if fill is not None and not all(isinstance(v, str) for v in fill):
            raise Unsupported(f"transformer {name!r}: a non-string imputer fill value")
        bad = [c for c in columns if dtypes.get(c) != "string"]
        if bad:
            raise Unsupported(f"transformer {name!r}: columns {bad} are not strings in metadata.json")
        index, unknown, sizes = _onehot_positions(encoder)
        offsets = [int(v) for v in np.cumsum([0] + sizes[:-1])]
        return _OneHot(columns, list(fill) if fill is not None else None, index, unknown, offsets, int(sum(sizes)))
    raise Unsupported(f"transformer {name!r}: not numeric coercion/impute/scale or string coercion/impute/one-hot")


_UNSEEN = "__kfp_tabular_unseen__"


def _onehot_positions(encoder: Any) -> Tuple[List[Dict[str, int]], List[Optional[int]], List[int]]:
    """Ask the fitted encoder where each category (and an unseen value) goes, feature by feature.

    Infrequent categories share one column and unknown values go where ``handle_unknown`` sends them; reading
    the encoder's own output covers both without reimplementing them.
    """
    sizes = [int(n) for n in getattr(encoder, "_n_features_outs", [])]
    categories = encoder.categories_
    if len(sizes) != len(categories):
        raise Unsupported("OneHotEncoder without per-feature output widths")
    base = [str(cats[0]) for cats in categories]
    offsets = np.cumsum([0] + sizes[:-1])
    index, unknown = [], []
    for j, cats in enumerate(categories):
        values = [str(v) for v in cats] + [_UNSEEN]
        rows = np.array([base[:j] + [v] + base[j + 1 :] for v in values], dtype=object)
        try:
            out = np.asarray(encoder.transform(rows))
        except Exception as exc:  # handle_unknown="error" refuses the unseen value
            raise Unsupported(f"OneHotEncoder refuses an unseen category ({type(exc).__name__})") from None
        block = out[:, offsets[j] : offsets[j] + sizes[j]]
        if not ((block.sum(axis=1) <= 1) & np.isin(block, (0.0, 1.0)).all(axis=1)).all():
            raise Unsupported("OneHotEncoder output is not one-hot")
        hot = [int(np.argmax(r)) if r.any() else None for r in block]
        index.append({v: h for v, h in zip(values[:-1], hot[:-1]) if h is not None})
        unknown.append(hot[-1])
    return index, unknown, sizes


def probe_columns(schema: Any, order: Sequence[str], fast: FastPath, rows: int = 64) -> Dict[str, np.ndarray]:
    """Make checked columns that exercise every block.

    Values around the training centre and spread, every category, an unseen one, and missing values; used
    at load time to compare the fast path with the pipeline.
    """
    rng = np.random.default_rng(0)
    numeric = {n: (b, j) for b in fast.blocks if isinstance(b, _Numeric) for j, n in enumerate(b.columns)}
    onehot = {n: (b, j) for b in fast.blocks if isinstance(b, _OneHot) for j, n in enumerate(b.columns)}
    columns: Dict[str, np.ndarray] = {}
    for name in order:
        spec = schema.spec(name)
        if name in onehot:
            block, j = onehot[name]
            values = list(block.index[j]) + [_UNSEEN, None]
            columns[name] = np.array([values[i % len(values)] for i in range(rows)], dtype=object)
            continue
        if spec.dtype == "bool":
            column = rng.integers(0, 2, rows).astype(np.float64)
        else:
            block, j = numeric.get(name, (None, 0))
            centre = float(block.mean[j]) if block is not None and block.mean is not None else 0.0
            spread = float(block.scale[j]) if block is not None and block.scale is not None else 1.0
            column = centre + spread * rng.normal(0.0, 1.5, rows)
            if spec.dtype == "int":
                column = np.round(column)
        column[rng.random(rows) < 0.15] = np.nan
        columns[name] = column
    return columns


def same_predictions(expected: Tuple[Any, Any], got: Tuple[Any, Any], atol: float = 1e-12) -> bool:
    """Labels equal and probabilities (when both have them) within ``atol``."""
    (labels_a, proba_a), (labels_b, proba_b) = expected, got
    if np.asarray(labels_a).tolist() != np.asarray(labels_b).tolist():
        return False
    if (proba_a is None) != (proba_b is None):
        return False
    return proba_a is None or bool(np.allclose(proba_a, proba_b, rtol=0, atol=atol))


class CompiledTrees:
    """A fitted ``HistGradientBoosting{Classifier,Regressor}``'s trees as flat arrays, walked for all trees at once.

    scikit-learn calls one Cython predictor per tree (100 calls for one row, each entering an OpenMP region);
    here every tree advances one level per numpy step. The split rule is the predictor's own (a NaN goes where
    ``missing_go_to_left`` says, else ``x <= num_threshold`` goes left), the leaf values are added to the
    baseline in iteration order (as scikit-learn does, so the sums are the same floats), and the estimator's own
    loss turns the raw scores into probabilities or values. Models with native categorical splits are not
    compiled.
    """

    #: Larger batches go to scikit-learn's predictors (one pass per tree over many rows is faster there).
    MAX_ROWS = 64

    def __init__(self, estimator: Any):
        predictors = getattr(estimator, "_predictors", None)
        categorical = getattr(estimator, "is_categorical_", None)
        if not predictors or (categorical is not None and bool(np.any(categorical))):
            raise Unsupported("not a fitted HistGradientBoosting model without categorical splits")
        self.estimator = estimator
        self.classes_ = getattr(estimator, "classes_", None)
        nodes, roots, tree_class, offset = [], [], [], 0
        for iteration in predictors:
            for k, predictor in enumerate(iteration):
                tree = predictor.nodes
                nodes.append(tree)
                roots.append(offset)
                tree_class.append(k)
                offset += len(tree)
        flat = np.concatenate(nodes)
        starts = np.repeat(np.asarray(roots), [len(t) for t in nodes])
        # A leaf is its own child on both sides (feature 0, threshold +inf: every value "goes left"), so all trees
        # take the same number of steps with no per-step leaf test.
        is_leaf = flat["is_leaf"].astype(bool)
        index = np.arange(len(flat), dtype=np.intp)
        left = np.where(is_leaf, index, flat["left"].astype(np.intp) + starts)
        right = np.where(is_leaf, index, flat["right"].astype(np.intp) + starts)
        #: children[2 * node + went_left]: the right child at even positions, the left one at odd positions.
        self.children = np.stack([right, left], axis=1).reshape(-1).astype(np.intp)
        self.feature = np.where(is_leaf, 0, flat["feature_idx"]).astype(np.intp)
        self.threshold = np.where(is_leaf, np.inf, flat["num_threshold"]).astype(np.float64)
        self.missing_left = np.where(is_leaf, True, flat["missing_go_to_left"]).astype(bool)
        self.value = flat["value"].astype(np.float64)
        self.roots = np.asarray(roots, dtype=np.intp)
        self.tree_class = np.asarray(tree_class)
        self.n_classes = len(predictors[0])
        self.baseline = np.asarray(estimator._baseline_prediction, dtype=np.float64).reshape(-1)
        self.depth = int(flat["depth"].max()) + 1

    def raw(self, x: np.ndarray) -> np.ndarray:
        """Raw scores, shape (rows, trees per iteration), as ``estimator._raw_predict`` computes them."""
        rows = x.shape[0]
        # One row (the common request) walks 1-D arrays; a batch walks (rows, trees) ones.
        node = self.roots.copy() if rows == 1 else np.broadcast_to(self.roots, (rows, len(self.roots))).copy()
        values = x[0] if rows == 1 else x
        row = None if rows == 1 else np.arange(rows)[:, None]
        missing = bool(np.isnan(x).any())
        for _ in range(self.depth):
            value = values[self.feature[node]] if row is None else values[row, self.feature[node]]
            went_left = value <= self.threshold[node]  # False for NaN
            if missing:
                went_left |= np.isnan(value) & self.missing_left[node]
            node = self.children[2 * node + went_left]
        leaves = self.value[node].reshape(rows, -1)
        raw = np.empty((rows, self.n_classes), dtype=np.float64)
        for k in range(self.n_classes):
            terms = np.concatenate([np.full((rows, 1), self.baseline[k]), leaves[:, self.tree_class == k]], axis=1)
            raw[:, k] = np.cumsum(terms, axis=1)[:, -1]  # sequential, in iteration order, like scikit-learn
        return raw

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities, as the estimator's ``predict_proba`` (which serves batches over MAX_ROWS)."""
        if x.shape[0] > self.MAX_ROWS:
            return self.estimator.predict_proba(x)
        return self.estimator._loss.predict_proba(self.raw(x))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Labels (classifier) or values (regressor), as the estimator's ``predict``."""
        if self.classes_ is not None:
            return np.asarray(self.classes_).take(np.argmax(self.predict_proba(x), axis=1))
        if x.shape[0] > self.MAX_ROWS:
            return self.estimator.predict(x)
        return self.estimator._loss.link.inverse(self.raw(x).ravel())


def compile_estimator(estimator: Any) -> Any:
    """Return the estimator as :class:`CompiledTrees` when it is a HistGradientBoosting model, else as it is."""
    if type(estimator).__name__ in ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor"):
        try:
            return CompiledTrees(estimator)
        except Unsupported as exc:
            logger.info("trees not compiled: %s", exc)
    return estimator
