"""The rollout scenarios: real candidate models trained on the bundled churn data, and what each must end in.

No fault is injected anywhere: every candidate is a real model directory (``model.joblib`` + ``metadata.json``,
the contract of ``common/model_dir.py``) served by our unchanged model server, and it misbehaves, or not,
because of what it is:

- ``good``: the stable recipe (train core, logistic regression) on another sample with another seed ->
  promoted through every step;
- ``shifted``: the same recipe trained on relabelled data (``churned`` flipped), so its scores mirror
  stable's -> rolled back at step 1 on ``prediction_drift``;
- ``errors``: trained on rows that all have ``internet_service``, its one-hot encoder refit with
  ``handle_unknown="error"``: a real row with a missing ``internet_service`` (about 2% of the rows) is imputed
  to a category it never saw and the pipeline raises; the server's schema check only flags the null (the
  default policy), the model's failure is a 500 -> rolled back on ``success_rate``;
- ``slow``: k-nearest neighbours, brute force, Minkowski p=1.5 over 15,000 training rows: every prediction
  scans them all, so its time grows with the rows of a request (stable's barely does) -> rolled back on
  ``p99_seconds``;
- ``no-traffic``: the good candidate, but no request arrives -> inconclusive windows, rolled back at the limit,
  never promoted;
- ``blue-green`` / ``blue-green-shifted``: the good / shifted candidate checked alone on the splitter's preview
  port (a bounded replay of eval rows) while stable keeps 100% of the live traffic -> promoted at once / rolled
  back on ``prediction_drift`` without ever serving live traffic.

The stable model is the train component's core (``components.training.train.core.train``, logistic
regression) with the curated churn schema on ``synthetic_data.generate``'s default variant, refit with dense
one-hot output so the server serves it through its numpy fast path (~6 ms a request instead of ~40 ms through
the pandas pipeline on this machine: the rig leaves the cores to the candidates and to whatever else runs).
``good`` and ``shifted`` are made the same way. ``errors`` and ``slow`` start from a train-core
model on their data and refit the same pipeline with one change (the encoder's ``handle_unknown``, the
estimator); their ``metadata.json`` keeps train's input schema and records the change (``scenario``) and the
new ``model_sha256``. Models are built once per recipe and cached under ``$KFP_TABULAR_CACHE/rollout-models``
(or the directory given), keyed by the recipe, its sizes and seeds and scikit-learn's version.

Needs the pipeline env (pandas, pyarrow, scikit-learn); no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

__all__ = [
    "SCENARIOS",
    "Scenario",
    "build_models",
    "eval_rows",
    "models_dir",
]

logger = logging.getLogger(__name__)

#: Bump when a recipe changes: the cache key includes it.
RECIPE_VERSION = "4"
LABEL = "churned"
TRAIN_ROWS = 20_000
SLOW_TRAIN_ROWS = 15_000
EVAL_ROWS = 2_000
EVAL_SEED = 99


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One scenario: which candidate, whether traffic flows, and what must come out.

    Attributes:
        name: The scenario's name (``good``, ``shifted``, ...).
        candidate: The candidate model's name in :func:`build_models`'s result.
        traffic: Whether the load generator runs during the rollout.
        verdict: The expected final verdict (``promoted`` or ``rolled_back``).
        failed_check: The check whose failure rolls back (None: none fails; ``inconclusive`` for no data).
        story: One line on what the candidate is.
        strategy: ``canary`` or ``blue-green`` (the candidate checked alone on the preview URL, then 100%).
    """

    name: str
    candidate: str
    traffic: bool
    verdict: str
    failed_check: Optional[str]
    story: str
    strategy: str = "canary"


SCENARIOS: Dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("good", "good", True, "promoted", None, "same recipe, another sample and seed"),
        Scenario(
            "shifted", "shifted", True, "rolled_back", "prediction_drift", "trained on flipped labels: scores mirror"
        ),
        Scenario(
            "errors",
            "errors",
            True,
            "rolled_back",
            "success_rate",
            'one-hot handle_unknown="error", never saw a missing internet_service',
        ),
        Scenario("slow", "slow", True, "rolled_back", "p99_seconds", "KNN brute force, Minkowski p=1.5, 15k rows"),
        Scenario("no-traffic", "good", False, "rolled_back", "inconclusive", "a good candidate nobody calls"),
        Scenario(
            "blue-green",
            "good",
            True,
            "promoted",
            None,
            "the good candidate checked alone on nginx's preview port, then 100% at once",
            strategy="blue-green",
        ),
        Scenario(
            "blue-green-shifted",
            "shifted",
            True,
            "rolled_back",
            "prediction_drift",
            "the shifted candidate on the preview port: never takes live traffic",
            strategy="blue-green",
        ),
    )
}


def models_dir(base: Optional[os.PathLike] = None) -> Path:
    """Return where built models are cached: ``base``, else ``$KFP_TABULAR_CACHE/rollout-models``, else ~/.cache."""
    if base is not None:
        return Path(base)
    cache = os.environ.get("KFP_TABULAR_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "kfp-tabular")
    return Path(cache) / "rollout-models"


def _schema_path() -> str:
    from kfp_tabular.components.data_processing.synthetic_data.core import curated_schema_path

    return curated_schema_path()


def _data(rows: int, seed: int, edit: Optional[Callable] = None):
    from kfp_tabular.components.data_processing.synthetic_data.core import generate

    frame = generate(rows, seed=seed)
    return edit(frame) if edit is not None else frame


def _flip_labels(frame):
    frame[LABEL] = 1 - frame[LABEL]
    return frame


def _without_missing_internet(frame):
    return frame[frame["internet_service"].notna()].reset_index(drop=True)


def _train(workdir: Path, name: str, frame, seed: int) -> Path:
    """Train core on ``frame`` (logistic regression) into ``workdir/name``; return the model directory."""
    from kfp_tabular.components.training.train.core import train
    from kfp_tabular.components.training.train.request import TrainRequest

    data = workdir / f"{name}.parquet"
    frame.to_parquet(data, index=False)
    model_dir = workdir / name
    train(
        TrainRequest(label_column=LABEL, estimator="logistic_regression", seed=seed),
        data,
        _schema_path(),
        model_dir,
        source_data_uri=f"synthetic_data.generate (rollout scenario {name})",
    )
    return model_dir


def _refit(model_dir: Path, frame, change: str, edit: Callable, estimator_fields: Optional[dict] = None) -> None:
    """Refit ``model_dir``'s pipeline with ``edit(pipeline)`` applied; rewrite model.joblib and metadata.json."""
    import joblib

    from kfp_tabular.components.common.artifacts import sha256_file
    from kfp_tabular.components.common.model_dir import METADATA_FILE, MODEL_FILE

    meta = json.loads((model_dir / METADATA_FILE).read_text())
    pipeline = joblib.load(model_dir / MODEL_FILE)
    edit(pipeline)
    pipeline.fit(frame[meta["feature_order"]], frame[LABEL])
    joblib.dump(pipeline, model_dir / MODEL_FILE)
    meta.update(estimator_fields or {})
    meta["scenario"] = change
    meta["model_sha256"] = sha256_file(model_dir / MODEL_FILE)
    (model_dir / METADATA_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _use_dense(pipeline) -> None:
    pipeline.set_params(prep__sparse_threshold=0.0, prep__categorical__onehot__sparse_output=False)


DENSE = "refit with dense one-hot output (train encodes sparse for logistic regression): the server's numpy fast path"


def _use_onehot_error(pipeline) -> None:
    pipeline.set_params(prep__categorical__onehot__handle_unknown="error")


def _use_slow_knn(pipeline) -> None:
    from sklearn.neighbors import KNeighborsClassifier

    # dense encoding: brute-force Minkowski distances need a dense matrix
    pipeline.set_params(
        prep__sparse_threshold=0.0,
        prep__categorical__onehot__sparse_output=False,
        model=KNeighborsClassifier(n_neighbors=25, algorithm="brute", metric="minkowski", p=1.5),
    )


def _recipes() -> Dict[str, Callable[[Path], Path]]:
    def dense(name: str, frame, seed: int) -> Callable[[Path], Path]:
        def build(work: Path) -> Path:
            model_dir = _train(work, name, frame, seed=seed)
            _refit(model_dir, frame, DENSE, _use_dense)
            return model_dir

        return build

    def stable(work: Path) -> Path:
        return dense("stable", _data(TRAIN_ROWS, 1), 42)(work)

    def good(work: Path) -> Path:
        return dense("good", _data(TRAIN_ROWS, 2), 7)(work)

    def shifted(work: Path) -> Path:
        return dense("shifted", _data(TRAIN_ROWS, 3, _flip_labels), 42)(work)

    def errors(work: Path) -> Path:
        frame = _data(TRAIN_ROWS, 4, _without_missing_internet)
        model_dir = _train(work, "errors", frame, seed=42)
        _refit(
            model_dir,
            frame,
            'one-hot encoder refit with handle_unknown="error" on rows that all have internet_service',
            _use_onehot_error,
        )
        return model_dir

    def slow(work: Path) -> Path:
        frame = _data(SLOW_TRAIN_ROWS, 5)
        model_dir = _train(work, "slow", frame, seed=42)
        _refit(
            model_dir,
            frame,
            "estimator replaced by KNeighborsClassifier(n_neighbors=25, algorithm='brute', metric='minkowski', p=1.5)",
            _use_slow_knn,
            {
                "estimator": "k_neighbors",
                "estimator_class": "sklearn.neighbors._classification.KNeighborsClassifier",
                "hyperparameters": {"n_neighbors": 25, "algorithm": "brute", "metric": "minkowski", "p": 1.5},
            },
        )
        return model_dir

    return {"stable": stable, "good": good, "shifted": shifted, "errors": errors, "slow": slow}


def _key(name: str) -> str:
    import sklearn

    text = json.dumps(
        [RECIPE_VERSION, name, TRAIN_ROWS, SLOW_TRAIN_ROWS, sklearn.__version__, Path(_schema_path()).read_text()]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_models(names: Sequence[str], base: Optional[os.PathLike] = None, log=print) -> Dict[str, Path]:
    """Build (or reuse from the cache) the named models; return ``{name: model directory}``.

    Args:
        names: Some of ``stable``, ``good``, ``shifted``, ``errors``, ``slow``.
        base: Cache directory (default :func:`models_dir`).
        log: Called with one line per model built or reused.
    """
    import tempfile

    from kfp_tabular.components.common.model_dir import METADATA_FILE

    recipes = _recipes()
    unknown = [n for n in names if n not in recipes]
    if unknown:
        from kfp_tabular.components.common.errors import ConfigError

        raise ConfigError(f"models: unknown model(s) {unknown}; expected some of {', '.join(recipes)}")
    root = models_dir(base)
    root.mkdir(parents=True, exist_ok=True)
    built: Dict[str, Path] = {}
    for name in names:
        final = root / f"{name}-{_key(name)}"
        if (final / METADATA_FILE).is_file():
            log(f"model {name}: cached {final}")
        else:
            with tempfile.TemporaryDirectory(dir=root, prefix=f".{name}-") as work:
                model_dir = recipes[name](Path(work))
                (Path(work) / f"{name}.parquet").unlink()
                os.replace(model_dir, final)
            log(f"model {name}: built {final}")
        built[name] = final
    return built


def eval_rows(feature_order: Sequence[str], rows: int = EVAL_ROWS, seed: int = EVAL_SEED) -> List[list]:
    """Return eval rows of the default churn data as V1 ``instances`` (lists in ``feature_order``, None for missing).

    The rows come from the same generator as the training data, with a seed no model was trained on.
    """
    return _instances(_data(rows, seed), feature_order)


def eval_rows_from_file(path: os.PathLike, feature_order: Sequence[str]) -> List[list]:
    """Return the rows of an eval Parquet or CSV file as V1 ``instances`` in ``feature_order``.

    Raises:
        DataError: The file lacks a feature column (naming the file and the columns).
    """
    import pandas as pd

    from kfp_tabular.components.common.errors import DataError

    path = Path(path)
    frame = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    missing = [c for c in feature_order if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing feature column(s) {missing}; the file has {list(frame.columns)}")
    return _instances(frame, feature_order)


def _instances(frame, feature_order: Sequence[str]) -> List[list]:
    import math

    out = []
    for record in frame[list(feature_order)].itertuples(index=False, name=None):
        row = []
        for value in record:
            value = value.item() if hasattr(value, "item") else value
            if isinstance(value, float) and math.isnan(value):
                value = None
            row.append(value)
        out.append(row)
    return out
