import datetime
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from kfp_tabular.components.common.artifacts import sha256_file
from kfp_tabular.components.common.errors import ConfigError, DataError
from kfp_tabular.components.training.train import core
from kfp_tabular.components.training.train.request import ESTIMATORS, TrainRequest

LABEL = "churned"
FAST = {
    "logistic_regression": {},
    "hist_gradient_boosting": {"max_iter": 40},
    "random_forest": {"n_estimators": 25, "max_depth": 8},
}
DESIGN_KEYS = {
    "features",
    "feature_order",
    "label_column",
    "task",
    "classes",
    "estimator",
    "hyperparameters",
    "sklearn_version",
    "training_data_hash",
    "source_data_hash",
    "source_data_uri",
    "model_sha256",
    "created_at",
}


def fit(data, schema, label, model_dir, estimator="hist_gradient_boosting", hyperparameters=None, **kwargs):
    """Train through the request, as the component does (``task``/``seed`` go to the request, the rest to train)."""
    options = {key: kwargs.pop(key) for key in ("task", "seed") if key in kwargs}
    request = TrainRequest(label, estimator, {} if hyperparameters is None else hyperparameters, **options)
    return core.train(request, data, schema, model_dir, **kwargs)


@pytest.fixture(scope="module")
def models(churn, tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    out = {}
    for name, params in FAST.items():
        result = fit(str(churn.train), str(churn.schema), LABEL, str(root / name), name, params)
        out[name] = (result, root / name)
    return out


def json_rows(frame, order):
    """Rows as a JSON client sends them: ordered lists of Python scalars, None for missing."""
    rows = [
        [None if pd.isna(v) else (v.item() if hasattr(v, "item") else v) for v in row]
        for row in frame[order].itertuples(index=False)
    ]
    return json.loads(json.dumps(rows))


def edit_schema(src: Path, dst: Path, edit) -> Path:
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = text_format.Parse(src.read_text(), schema_pb2.Schema())
    edit(schema)
    dst.write_text(text_format.MessageToString(schema))
    return dst


def feature(schema, name):
    return next(f for f in schema.feature if f.name == name)


# --- training each estimator, metadata ------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", sorted(FAST))
def test_each_estimator_trains_and_writes_the_model_directory(models, churn, estimator):
    result, model_dir = models[estimator]
    assert sorted(os.listdir(model_dir)) == ["metadata.json", "model.joblib"]
    metadata = json.loads((model_dir / "metadata.json").read_text())
    assert metadata == result.metadata
    assert result.model_sha256 == metadata["model_sha256"] == sha256_file(model_dir / "model.joblib")
    assert metadata["estimator"] == estimator
    assert metadata["task"] == "classification"
    assert metadata["classes"] == [0, 1]
    model = joblib.load(model_dir / "model.joblib")
    assert [name for name, _ in model.steps] == ["frame", "prep", "model"]
    assert (
        type(model.named_steps["model"]).__name__
        == {
            "logistic_regression": "LogisticRegression",
            "hist_gradient_boosting": "HistGradientBoostingClassifier",
            "random_forest": "RandomForestClassifier",
        }[estimator]
    )
    # Real signal in the data: the model ranks held-out churners above non-churners.
    from sklearn.metrics import roc_auc_score

    proba = model.predict_proba(churn.eval_frame.drop(columns=[LABEL]))[:, 1]
    assert roc_auc_score(churn.eval_frame[LABEL], proba) > 0.75
    assert set(result.metrics) == {"rows", "metrics_sample_rows", "accuracy", "log_loss", "roc_auc"}
    assert result.metrics["rows"] == 3000
    assert 0.5 < result.metrics["accuracy"] <= 1.0


def test_metadata_follows_the_design_contract(models, churn):
    result, _ = models["logistic_regression"]
    metadata = result.metadata
    assert DESIGN_KEYS <= set(metadata)
    assert LABEL not in metadata["feature_order"]
    assert metadata["feature_order"] == [c for c in churn.train_frame.columns if c != LABEL]
    assert metadata["feature_order"] == [f["name"] for f in metadata["features"]]
    by_name = {f["name"]: f for f in metadata["features"]}
    frame = churn.train_frame
    seen = {"required": True, "nullable": False}
    tenure = frame["tenure_months"]
    assert by_name["tenure_months"] == {
        **{"name": "tenure_months", "dtype": "int", "kind": "numeric"},
        **seen,
        **{"min": float(tenure.min()), "max": float(tenure.max())},
    }
    charges = frame["monthly_charges"]
    assert by_name["monthly_charges"] == {
        **{"name": "monthly_charges", "dtype": "float", "kind": "numeric"},
        **seen,
        **{"min": float(charges.min()), "max": float(charges.max())},
    }
    assert by_name["paperless_billing"] == {"name": "paperless_billing", "dtype": "bool", "kind": "numeric", **seen}
    assert by_name["contract_type"] == {
        **{"name": "contract_type", "dtype": "string", "kind": "categorical"},
        **seen,
        "domain": sorted(frame["contract_type"].astype(str).unique()),
    }
    assert metadata["label_column"] == LABEL
    import sklearn

    assert metadata["sklearn_version"] == sklearn.__version__
    assert metadata["training_data_hash"] == sha256_file(churn.train)
    assert metadata["hyperparameters"] == {"max_iter": 1000, "random_state": 42}
    assert datetime.datetime.fromisoformat(metadata["created_at"]).tzinfo is not None


def test_training_data_hash_is_the_split_file_and_the_source_is_recorded_apart(churn, tmp_path):
    """training_data_hash: the bytes the model was fit on; source_data_hash/uri: what ingest split them from."""
    from kfp_tabular.components.data_processing.ingest.core import ingest
    from kfp_tabular.components.data_processing.ingest.request import IngestRequest

    source = tmp_path / "churn.csv"
    churn.train_frame.to_csv(source, index=False)
    split = ingest(IngestRequest(str(source), LABEL), tmp_path / "train.parquet", tmp_path / "eval.parquet")
    result = fit(
        tmp_path / "train.parquet",
        churn.schema,
        LABEL,
        tmp_path / "m",
        "logistic_regression",
        source_data_hash=split.content_hash,
        source_data_uri=split.source_uri,
    )
    metadata = json.loads((tmp_path / "m" / "metadata.json").read_text())
    assert metadata["training_data_hash"] == sha256_file(tmp_path / "train.parquet")
    assert metadata["source_data_hash"] == sha256_file(source) != metadata["training_data_hash"]
    assert metadata["source_data_uri"] == str(source)
    assert result.metadata == metadata


def test_without_a_known_source_the_source_fields_are_null(models, churn):
    metadata = models["logistic_regression"][0].metadata
    assert metadata["training_data_hash"] == sha256_file(churn.train)
    assert metadata["source_data_hash"] is None and metadata["source_data_uri"] is None


def test_same_seed_same_predictions_other_seed_differs(churn, tmp_path):
    x = churn.eval_frame.drop(columns=[LABEL])
    params = FAST["random_forest"]
    predictions = []
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        fit(str(churn.train), str(churn.schema), LABEL, str(tmp_path / name), "random_forest", params, seed=seed)
        predictions.append(joblib.load(tmp_path / name / "model.joblib").predict_proba(x))
    assert np.array_equal(predictions[0], predictions[1])
    assert not np.array_equal(predictions[0], predictions[2])


# --- input shapes and coercion --------------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", sorted(FAST))
def test_lists_records_and_shuffled_frames_predict_the_same(models, churn, estimator):
    result, model_dir = models[estimator]
    model = joblib.load(model_dir / "model.joblib")
    order = result.metadata["feature_order"]
    frame = churn.eval_frame.drop(columns=[LABEL]).head(300)
    assert frame.isna().any().sum() >= 3  # rows with missing values are part of the check
    expected = model.predict_proba(frame)
    rows = json_rows(frame, order)
    assert any(v is None for row in rows for v in row)
    records = json.loads(json.dumps([dict(zip(order, row)) for row in rows]))
    shuffled = frame[list(reversed(order))]
    np.testing.assert_array_equal(model.predict_proba(rows), expected)
    np.testing.assert_array_equal(model.predict_proba(records), expected)
    np.testing.assert_array_equal(model.predict_proba(shuffled), expected)
    np.testing.assert_array_equal(model.predict_proba(np.array(rows, dtype=object)), expected)
    np.testing.assert_array_equal(model.predict(rows), model.predict(frame))


def test_bools_as_ints_and_none_as_nan_are_the_same_input(models, churn):
    result, model_dir = models["logistic_regression"]
    model = joblib.load(model_dir / "model.joblib")
    order = result.metadata["feature_order"]
    rows = json_rows(churn.eval_frame.head(50), order)
    flag = order.index("paperless_billing")
    age = order.index("age")
    as_ints = [list(row) for row in rows]
    for row in as_ints:
        row[flag] = int(row[flag])
    with_nan = [list(row) for row in rows]
    for row in with_nan:
        row[age] = None
    frame_nan = churn.eval_frame.head(50).drop(columns=[LABEL]).assign(age=np.nan)
    np.testing.assert_array_equal(model.predict_proba(as_ints), model.predict_proba(rows))
    np.testing.assert_array_equal(model.predict_proba(with_nan), model.predict_proba(frame_nan))


@pytest.mark.parametrize("estimator", sorted(FAST))
def test_unknown_categories_are_ignored(models, churn, estimator):
    _, model_dir = models[estimator]
    model = joblib.load(model_dir / "model.joblib")
    frame = churn.eval_frame.drop(columns=[LABEL]).head(100)
    crypto = model.predict_proba(frame.assign(payment_method="crypto", region="atlantis"))
    barter = model.predict_proba(frame.assign(payment_method="barter", region="mars"))
    # Two different unseen values are both ignored (all-zero one-hot), so they predict the same...
    np.testing.assert_array_equal(crypto, barter)
    assert np.isfinite(crypto).all()
    # ...and differ from a known value, so the column does matter.
    assert not np.array_equal(crypto, model.predict_proba(frame.assign(payment_method="electronic-check")))


def test_numeric_looking_categories_sent_as_numbers_match_their_strings(churn, tmp_path, schema_writer):
    codes = {"north": "1", "south": "2", "east": "3", "west": "4"}
    frame = churn.train_frame.assign(region=churn.train_frame["region"].map(codes))
    frame.to_parquet(tmp_path / "codes.parquet", index=False)
    schema = schema_writer(frame, tmp_path / "codes.pbtxt")
    result = fit(str(tmp_path / "codes.parquet"), str(schema), LABEL, str(tmp_path / "m"), "logistic_regression")
    region = next(f for f in result.metadata["features"] if f["name"] == "region")
    assert (region["dtype"], region["kind"], region["domain"]) == ("string", "categorical", ["1", "2", "3", "4"])
    model = joblib.load(tmp_path / "m" / "model.joblib")
    order = result.metadata["feature_order"]
    rows = json_rows(frame.head(40), order)
    as_numbers = [[int(v) if i == order.index("region") else v for i, v in enumerate(row)] for row in rows]
    assert isinstance(as_numbers[0][order.index("region")], int)
    np.testing.assert_array_equal(model.predict_proba(as_numbers), model.predict_proba(rows))
    unknown = [[("9" if i == order.index("region") else v) for i, v in enumerate(row)] for row in rows]
    assert not np.array_equal(model.predict_proba(unknown), model.predict_proba(rows))


# --- tasks ----------------------------------------------------------------------------------------------------


def test_regression_uses_ridge_for_logistic_regression(churn, tmp_path):
    result = fit(str(churn.train), str(churn.schema), "monthly_charges", str(tmp_path / "m"), "logistic_regression")
    assert result.metadata["task"] == "regression"
    assert result.metadata["classes"] is None
    assert "monthly_charges" not in result.metadata["feature_order"]
    assert LABEL in result.metadata["feature_order"]  # the label of the schema is a feature for another target
    model = joblib.load(tmp_path / "m" / "model.joblib")
    assert type(model.named_steps["model"]).__name__ == "Ridge"
    assert set(result.metrics) == {"rows", "metrics_sample_rows", "rmse", "mae", "r2"}
    assert result.metrics["r2"] > 0.5
    rows = json_rows(churn.eval_frame.head(20), result.metadata["feature_order"])
    np.testing.assert_array_equal(model.predict(rows), model.predict(churn.eval_frame.head(20)))


def test_auto_task_integer_label_with_many_values_is_regression(churn, tmp_path):
    result = fit(
        str(churn.train),
        str(churn.schema),
        "tenure_months",
        str(tmp_path / "m"),
        "hist_gradient_boosting",
        {"max_iter": 20},
    )
    assert result.metadata["task"] == "regression"
    assert type(joblib.load(tmp_path / "m" / "model.joblib").named_steps["model"]).__name__ == (
        "HistGradientBoostingRegressor"
    )


def test_support_calls_label_few_integers_is_classification_unless_told(churn, tmp_path):
    auto = fit(
        str(churn.train),
        str(churn.schema),
        "support_calls",
        str(tmp_path / "a"),
        "random_forest",
        FAST["random_forest"],
    )
    assert auto.metadata["task"] == "classification"
    assert auto.metadata["classes"] == sorted(churn.train_frame["support_calls"].unique().tolist())
    told = fit(
        str(churn.train),
        str(churn.schema),
        "support_calls",
        str(tmp_path / "b"),
        "random_forest",
        FAST["random_forest"],
        task="regression",
    )
    assert told.metadata["task"] == "regression"


def test_multiclass_string_label(churn, tmp_path):
    result = fit(str(churn.train), str(churn.schema), "contract_type", str(tmp_path / "m"), "logistic_regression")
    assert result.metadata["task"] == "classification"
    assert result.metadata["classes"] == ["month-to-month", "one-year", "two-year"]
    model = joblib.load(tmp_path / "m" / "model.joblib")
    assert model.predict_proba(churn.eval_frame.head(5)).shape == (5, 3)


def test_bool_label_is_classification(churn, tmp_path):
    frame = churn.train_frame.assign(churned=churn.train_frame[LABEL].astype(bool))
    frame.to_parquet(tmp_path / "bool.parquet", index=False)
    result = fit(str(tmp_path / "bool.parquet"), str(churn.schema), LABEL, str(tmp_path / "m"), "logistic_regression")
    assert result.metadata["classes"] == [False, True]


# --- schema handling ------------------------------------------------------------------------------------------


def test_the_curated_churn_schema_defines_the_inputs(churn, tmp_path):
    from kfp_tabular.components.data_processing import synthetic_data

    curated = Path(synthetic_data.__file__).parent / "churn_schema.pbtxt"
    result = fit(str(churn.train), str(curated), LABEL, str(tmp_path / "m"), "logistic_regression")
    assert result.metadata["feature_order"] == [c for c in churn.train_frame.columns if c != LABEL]
    kinds = {f["name"]: (f["dtype"], f["kind"]) for f in result.metadata["features"]}
    assert kinds["has_partner"] == ("bool", "numeric") and kinds["region"] == ("string", "categorical")


def test_extra_data_columns_are_ignored_and_logged(churn, tmp_path, caplog):
    frame = churn.train_frame.assign(customer_id=np.arange(len(churn.train_frame)))
    frame.to_parquet(tmp_path / "extra.parquet", index=False)
    with caplog.at_level(logging.INFO, logger=core.__name__):
        result = fit(
            str(tmp_path / "extra.parquet"), str(churn.schema), LABEL, str(tmp_path / "m"), "logistic_regression"
        )
    assert "customer_id" not in result.metadata["feature_order"]
    assert any("ignoring" in r.getMessage() and "customer_id" in r.getMessage() for r in caplog.records)


def test_deprecated_schema_features_are_not_inputs(churn, tmp_path):
    from tensorflow_metadata.proto.v0 import schema_pb2

    def deprecate(schema):
        feature(schema, "region").lifecycle_stage = schema_pb2.LifecycleStage.DEPRECATED

    schema = edit_schema(churn.schema, tmp_path / "s.pbtxt", deprecate)
    result = fit(str(churn.train), str(schema), LABEL, str(tmp_path / "m"), "logistic_regression")
    assert "region" not in result.metadata["feature_order"]
    assert len(result.metadata["feature_order"]) == 10


def test_int_schema_feature_with_bool_data_is_bool(churn, tmp_path):
    def plain_int(schema):
        feature(schema, "has_partner").ClearField("bool_domain")

    schema = edit_schema(churn.schema, tmp_path / "s.pbtxt", plain_int)
    specs = core.schema_features(schema, LABEL)
    assert next(s for s in specs if s.name == "has_partner").dtype == "int"
    result = fit(str(churn.train), str(schema), LABEL, str(tmp_path / "m"), "logistic_regression")
    by_name = {f["name"]: f for f in result.metadata["features"]}
    assert (by_name["has_partner"]["dtype"], by_name["has_partner"]["kind"]) == ("bool", "numeric")


def test_reading_the_schema_and_training_never_import_tensorflow(churn, tmp_path):
    script = (
        "import sys\n"
        "from kfp_tabular.components.training.train import core\n"
        "from kfp_tabular.components.training.train.request import TrainRequest\n"
        f"core.train(TrainRequest('churned', 'logistic_regression'), {str(churn.train)!r}, {str(churn.schema)!r}, "
        f"{str(tmp_path / 'm')!r})\n"
        "loaded = sorted(m for m in sys.modules if m == 'tensorflow' or m.startswith(('tensorflow.', "
        "'tensorflow_data_validation', 'tfx_bsl')))\n"
        "print(loaded)\n"
        "assert 'tensorflow_metadata.proto.v0.schema_pb2' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


# --- errors ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, match",
    [
        ({"estimator": "xgboost"}, "estimator: unknown estimator 'xgboost'; valid: " + ", ".join(ESTIMATORS)),
        ({"task": "clustering"}, "task: expected one of auto, classification, regression, got 'clustering'"),
        ({"label_column": ""}, "label_column: expected the name of the label column"),
        ({"hyperparameters": ["n_estimators"]}, "hyperparameters: expected a mapping of name to value, got list"),
        ({"hyperparameters": {1: 2}}, "hyperparameters: expected names as strings"),
        ({"seed": -1}, "seed: expected an integer between 0 and 2\\*\\*32 - 1, got -1"),
        ({"seed": True}, "seed: expected an integer"),
    ],
)
def test_bad_parameters_are_refused_by_the_request_naming_the_field(fields, match):
    with pytest.raises(ConfigError, match=match):
        TrainRequest(**{"label_column": LABEL, **fields})


def test_request_defaults_and_copies():
    given = {"max_iter": 5}
    request = TrainRequest(LABEL, hyperparameters=given)
    given["max_iter"] = 6
    assert request.hyperparameters == {"max_iter": 5}
    assert TrainRequest(LABEL).hyperparameters == {} and TrainRequest(LABEL, hyperparameters=None).hyperparameters == {}
    assert (TrainRequest(LABEL).estimator, TrainRequest(LABEL).task, TrainRequest(LABEL).seed) == (
        "hist_gradient_boosting",
        "auto",
        42,
    )


def test_unknown_hyperparameter_lists_the_valid_ones(churn, tmp_path):
    with pytest.raises(ConfigError, match="n_trees") as info:
        fit(str(churn.train), str(churn.schema), LABEL, str(tmp_path / "m"), "random_forest", {"n_trees": 5})
    assert "n_estimators" in str(info.value) and "RandomForestClassifier" in str(info.value)


def test_invalid_hyperparameter_value_is_a_config_error(churn, tmp_path):
    with pytest.raises(ConfigError, match="max_iter"):
        fit(str(churn.train), str(churn.schema), LABEL, str(tmp_path / "m"), "hist_gradient_boosting", {"max_iter": -3})
    assert not (tmp_path / "m").exists()


def test_hyperparameters_rejected_in_combination_are_a_config_error(churn, tmp_path):
    with pytest.raises(ConfigError, match="penalty") as info:
        fit(str(churn.train), str(churn.schema), LABEL, str(tmp_path / "m"), "logistic_regression", {"penalty": "l1"})
    assert "lbfgs" in str(info.value)
    assert not (tmp_path / "m").exists()


def test_json_floats_become_ints_only_where_the_estimator_needs_them(churn, tmp_path):
    result = fit(
        str(churn.train),
        str(churn.schema),
        LABEL,
        str(tmp_path / "m"),
        "random_forest",
        {"n_estimators": 10.0, "max_depth": 4.0, "max_samples": 1.0},
    )
    params = result.metadata["hyperparameters"]
    assert params["n_estimators"] == 10 and isinstance(params["n_estimators"], int)
    assert params["max_depth"] == 4 and isinstance(params["max_depth"], int)
    assert params["max_samples"] == 1.0 and isinstance(params["max_samples"], float)  # a fraction: stays a float
    forest = joblib.load(tmp_path / "m" / "model.joblib").named_steps["model"]
    assert len(forest.estimators_) == 10


def test_schema_features_missing_from_the_data_name_the_columns_and_file(churn, tmp_path):
    data = tmp_path / "partial.parquet"
    churn.train_frame.drop(columns=["region", "age"]).to_parquet(data, index=False)
    with pytest.raises(DataError) as info:
        fit(str(data), str(churn.schema), LABEL, str(tmp_path / "m"))
    message = str(info.value)
    assert "'region'" in message and "'age'" in message and str(data) in message
    assert not (tmp_path / "m").exists()


def test_missing_label_column_is_a_data_error(churn, tmp_path, schema_writer):
    data = tmp_path / "nolabel.parquet"
    churn.train_frame.drop(columns=[LABEL]).to_parquet(data, index=False)
    schema = schema_writer(churn.train_frame.drop(columns=[LABEL]), tmp_path / "s.pbtxt")
    with pytest.raises(DataError, match=f"label column '{LABEL}' not found") as info:
        fit(str(data), str(schema), LABEL, str(tmp_path / "m"))
    assert str(data) in str(info.value)


def test_unreadable_schema_and_data_are_data_errors(churn, tmp_path):
    with pytest.raises(DataError, match="schema file not found"):
        fit(str(churn.train), str(tmp_path / "none.pbtxt"), LABEL, str(tmp_path / "m"))
    bad = tmp_path / "bad.pbtxt"
    bad.write_text("feature { name: 'x' type: NOT_A_TYPE }")
    with pytest.raises(DataError, match="pbtxt"):
        fit(str(churn.train), str(bad), LABEL, str(tmp_path / "m"))
    with pytest.raises(DataError, match="Parquet file not found"):
        fit(str(tmp_path / "none.parquet"), str(churn.schema), LABEL, str(tmp_path / "m"))
    not_parquet = tmp_path / "data.parquet"
    not_parquet.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="Parquet format"):
        fit(str(not_parquet), str(churn.schema), LABEL, str(tmp_path / "m"))


def test_struct_and_empty_schemas_are_data_errors(churn, tmp_path):
    from tensorflow_metadata.proto.v0 import schema_pb2

    def struct(schema):
        feature(schema, "region").type = schema_pb2.FeatureType.STRUCT

    schema = edit_schema(churn.schema, tmp_path / "s.pbtxt", struct)
    with pytest.raises(DataError, match="'region' has type STRUCT"):
        fit(str(churn.train), str(schema), LABEL, str(tmp_path / "m"))

    def only_label(schema):
        keep = [f for f in schema.feature if f.name == LABEL]
        del schema.feature[:]
        schema.feature.extend(keep)

    schema = edit_schema(churn.schema, tmp_path / "l.pbtxt", only_label)
    with pytest.raises(DataError, match="no feature besides the label"):
        fit(str(churn.train), str(schema), LABEL, str(tmp_path / "m"))


@pytest.mark.parametrize(
    "change, label, task, match",
    [
        (lambda f: f.assign(monthly_charges=["n/a"] * len(f)), LABEL, "auto", "'monthly_charges' should be numeric"),
        (
            lambda f: f.assign(tenure_months=np.where(np.arange(len(f)) == 3, np.inf, f["tenure_months"])),
            LABEL,
            "auto",
            "infinite",
        ),
        (lambda f: f.assign(churned=f[LABEL].astype(float).where(np.arange(len(f)) > 4)), LABEL, "auto", "5 missing"),
        (lambda f: f.assign(churned=0), LABEL, "auto", "single class"),
        (lambda f: f, "monthly_charges", "classification", "non-integer floats"),
        (lambda f: f, "contract_type", "regression", "regression needs a numeric label"),
    ],
    ids=["text-in-numeric", "infinite", "missing-labels", "one-class", "float-classes", "text-regression"],
)
def test_bad_data_is_a_data_error_naming_the_file(churn, tmp_path, change, label, task, match):
    data = tmp_path / "bad.parquet"
    change(churn.train_frame.copy()).to_parquet(data, index=False)
    with pytest.raises(DataError, match=match) as info:
        fit(str(data), str(churn.schema), label, str(tmp_path / "m"), "logistic_regression", task=task)
    assert str(data) in str(info.value)
    assert not (tmp_path / "m").exists()


def test_a_failed_write_leaves_no_model_directory(churn, tmp_path, monkeypatch):
    def broken_dump(obj, filename, *args, **kwargs):
        Path(filename).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(joblib, "dump", broken_dump)
    with pytest.raises(OSError, match="disk full"):
        fit(str(churn.train), str(churn.schema), LABEL, str(tmp_path / "m"), "logistic_regression")
    assert os.listdir(tmp_path) == []
