"""The model directory contract as the server uses it (the one model file, metadata) and the local model choice."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time

import pytest

from kfp_tabular.components.common.errors import DataError
from kfp_tabular.components.common.model_dir import find_model_file, read_metadata
from kfp_tabular.components.deployment.model_server.model_files import find_latest_model, select_local_model

GOOD_META = {
    "features": [
        {"name": "a", "dtype": "int", "kind": "numeric"},
        {"name": "b", "dtype": "string", "kind": "categorical"},
    ],
    "feature_order": ["a", "b"],
    "task": "classification",
    "classes": [0, 1],
}


def write_meta(directory, meta):
    directory.mkdir(parents=True, exist_ok=True)
    text = meta if isinstance(meta, str) else json.dumps(meta)
    (directory / "metadata.json").write_text(text, encoding="utf-8")


@pytest.mark.parametrize("name", ["model.joblib", "model.pkl", "clf.pickle"])
def test_find_model_file_accepts_each_extension(tmp_path, name):
    (tmp_path / name).write_bytes(b"x")
    (tmp_path / "metadata.json").write_text("{}")
    assert find_model_file(tmp_path) == tmp_path / name


def test_find_model_file_ignores_a_directory_named_like_a_model(tmp_path):
    (tmp_path / "old.joblib").mkdir()
    (tmp_path / "model.joblib").write_bytes(b"x")
    assert find_model_file(tmp_path).name == "model.joblib"


def test_find_model_file_missing_directory(tmp_path):
    with pytest.raises(DataError, match=r"nope: model directory not found"):
        find_model_file(tmp_path / "nope")


def test_find_model_file_none_lists_what_is_there(tmp_path):
    (tmp_path / "metadata.json").write_text("{}")
    (tmp_path / "model.onnx").write_bytes(b"x")
    with pytest.raises(DataError) as err:
        find_model_file(tmp_path)
    message = str(err.value)
    assert str(tmp_path) in message and "found none" in message
    assert "metadata.json, model.onnx" in message


def test_find_model_file_empty_directory(tmp_path):
    with pytest.raises(DataError, match="holds: nothing"):
        find_model_file(tmp_path)


def test_find_model_file_two_files_named(tmp_path):
    (tmp_path / "model.joblib").write_bytes(b"x")
    (tmp_path / "model.pkl").write_bytes(b"x")
    with pytest.raises(DataError) as err:
        find_model_file(tmp_path)
    assert str(tmp_path) in str(err.value)
    assert "found 2: model.joblib, model.pkl" in str(err.value)


def test_read_metadata_absent_is_none(tmp_path):
    assert read_metadata(tmp_path) is None


def test_read_metadata_good(tmp_path):
    write_meta(tmp_path, GOOD_META)
    assert read_metadata(tmp_path) == GOOD_META


def test_read_metadata_only_feature_order_is_required(tmp_path):
    write_meta(tmp_path, {"feature_order": ["x"]})
    assert read_metadata(tmp_path) == {"feature_order": ["x"]}


@pytest.mark.parametrize(
    "meta, fragment",
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ({"task": "classification"}, "'feature_order'"),
        ({"feature_order": []}, "'feature_order'"),
        ({"feature_order": ["a", 3]}, "'feature_order'"),
        ({"feature_order": ["a", "b", "a"]}, "more than once: a"),
        ({**GOOD_META, "features": "a,b"}, "'features'"),
        ({**GOOD_META, "features": GOOD_META["features"][:1]}, "no entry for feature_order column(s) b"),
        (
            {**GOOD_META, "features": [GOOD_META["features"][0], {"name": "b", "dtype": "category"}]},
            "column 'b': expected dtype one of int, float, bool, string, got 'category'",
        ),
        ({**GOOD_META, "task": "ranking"}, "'task'"),
        ({**GOOD_META, "classes": "0,1"}, "'classes'"),
    ],
)
def test_read_metadata_rejects_bad_fields_naming_file_and_field(tmp_path, meta, fragment):
    write_meta(tmp_path, meta)
    with pytest.raises(DataError) as err:
        read_metadata(tmp_path)
    assert str(tmp_path / "metadata.json") in str(err.value)
    assert fragment in str(err.value)


def make_run(root, name, blessed, mtime, blessing_extra=None, model_bytes=b"model"):
    """runs/<name>/train/model/model.joblib (mtime set) and, unless blessed is None, evaluate/blessing."""
    model_dir = root / "runs" / name / "train" / "model"
    model_dir.mkdir(parents=True)
    (model_dir / "model.joblib").write_bytes(model_bytes)
    os.utime(model_dir / "model.joblib", (mtime, mtime))
    if blessed is not None:
        blessing = root / "runs" / name / "evaluate" / "blessing"
        blessing.parent.mkdir(parents=True)
        body = {
            "blessed": blessed,
            "reasons": ["roc_auc 0.61 < 0.7"] if blessed is False else [],
            "model_sha256": hashlib.sha256(model_bytes).hexdigest(),
        }
        blessing.write_text(json.dumps({**body, **(blessing_extra or {})}), encoding="utf-8")
    return model_dir


def make_production(root, name, mtime=None):
    """production/<name>/model/model.joblib and production/current.json naming it."""
    model_dir = root / "production" / name / "model"
    model_dir.mkdir(parents=True)
    (model_dir / "model.joblib").write_bytes(b"production")
    if mtime is not None:
        os.utime(model_dir / "model.joblib", (mtime, mtime))
    record = {"run": name, "model_dir": str(model_dir), "promoted_at": "2026-11-26T10:00:00+00:00"}
    (root / "production" / "current.json").write_text(json.dumps(record), encoding="utf-8")
    return model_dir


def test_production_model_is_preferred_over_newer_blessed_runs(tmp_path):
    now = time.time()
    production = make_production(tmp_path, "run-1", mtime=now - 500)
    make_run(tmp_path, "run-2", True, now - 10)
    make_run(tmp_path, "run-3", False, now)
    choice = select_local_model(tmp_path)
    assert choice.model_dir == production
    assert str(tmp_path / "production" / "current.json") in choice.reason
    assert "production model" in choice.reason and "run-1" in choice.reason
    assert find_latest_model(str(tmp_path)) == production


def test_find_latest_model_logs_which_model_and_why(tmp_path, caplog):
    production = make_production(tmp_path, "run-1")
    with caplog.at_level(logging.INFO, logger="kfp_tabular.components.deployment.model_server.model_files"):
        assert find_latest_model(tmp_path) == production
    assert f"serving {production}: the local production model named by" in caplog.text


@pytest.mark.parametrize(
    "record, why",
    [
        ("{half written", "is not valid JSON"),
        ("[]", "is not a JSON object"),
        ({"run": "x"}, "has no 'model_dir'"),
        ({"model_dir": "gone"}, "gone: model directory not found"),
        ({"model_dir": "empty"}, "found none"),
    ],
)
def test_unusable_production_record_falls_back_to_the_newest_blessed_run(tmp_path, record, why):
    (tmp_path / "empty").mkdir()
    if isinstance(record, dict) and "model_dir" in record:
        record = {"model_dir": str(tmp_path / record["model_dir"])}
    (tmp_path / "production").mkdir()
    text = record if isinstance(record, str) else json.dumps(record)
    (tmp_path / "production" / "current.json").write_text(text, encoding="utf-8")
    blessed = make_run(tmp_path, "run-1", True, time.time())
    choice = select_local_model(tmp_path)
    assert choice.model_dir == blessed
    assert "the newest of 1 blessed run(s)" in choice.reason
    assert why in choice.reason


def test_newer_not_blessed_and_failed_runs_are_ignored(tmp_path):
    now = time.time()
    make_run(tmp_path, "run-1", True, now - 300)
    blessed = make_run(tmp_path, "run-2", True, now - 200)
    make_run(tmp_path, "run-3", False, now - 100)  # evaluated, not blessed
    make_run(tmp_path, "run-4", None, now)  # failed after train: no blessing
    make_run(tmp_path, "run-5", True, now, model_bytes=b"other", blessing_extra={"model_sha256": "0" * 64})
    choice = select_local_model(tmp_path)
    assert choice.model_dir == blessed
    assert "the newest of 2 blessed run(s)" in choice.reason
    assert "3 newer run(s) ignored as failed or not blessed" in choice.reason
    assert "production/current.json does not exist" in choice.reason


def test_newest_blessed_run_by_model_file_mtime_in_nested_run_folders(tmp_path):
    now = time.time()
    a = make_run(tmp_path, "pipeline-a/run-1", True, now - 100)
    b = make_run(tmp_path, "run-2", True, now - 50)
    os.utime(a, (now, now))  # the directory's mtime does not count, only the model file's
    assert select_local_model(tmp_path).model_dir == b
    os.utime(a / "model.joblib", (now, now))
    assert select_local_model(tmp_path).model_dir == a


def test_models_outside_runs_train_model_and_hidden_staging_folders_are_not_candidates(tmp_path):
    now = time.time()
    blessed = make_run(tmp_path, "run-1", True, now - 100)
    # each of these is newer and has a blessed evaluate/blessing beside it, so only its place keeps it out
    staged = make_run(tmp_path, "run-2", True, now)
    staged.rename(staged.parent / ".model.x1.tmp")
    make_run(tmp_path, ".run-3.tmp", True, now)
    for where in ("scratch", "runs/run-4/tune"):
        model_dir = tmp_path / where / "model"
        model_dir.mkdir(parents=True)
        (model_dir / "model.joblib").write_bytes(b"model")
        blessing = tmp_path / where / ".." / "evaluate" / "blessing"
        blessing.parent.mkdir(parents=True, exist_ok=True)
        blessing.write_text('{"blessed": true}', encoding="utf-8")
    choice = select_local_model(tmp_path)
    assert choice.model_dir == blessed
    assert "the newest of 1 blessed run(s)" in choice.reason


SHA = hashlib.sha256(b"model").hexdigest()


@pytest.mark.parametrize(
    "blessing, fragment",
    [
        ("{oops", "evaluate/blessing cannot be used (" + "{path}: expected a blessing in JSON, got invalid JSON"),
        ('"yes"', "evaluate/blessing cannot be used ({path}: expected a blessing JSON object, got str)"),
        (
            json.dumps({"blessed": "true", "model_sha256": SHA}),
            "evaluate/blessing cannot be used ({path}: field 'blessed' must be true or false, got 'true')",
        ),
        ('{"blessed": true}', "evaluate/blessing cannot be used ({path}: field 'model_sha256' must be the 64-hex"),
        (
            json.dumps({"blessed": False, "reasons": ["roc_auc 0.61 < 0.7"], "model_sha256": SHA}),
            "not blessed (roc_auc 0.61 < 0.7)",
        ),
        (json.dumps({"blessed": False, "model_sha256": SHA}), "not blessed (the evaluator gave no reason)"),
    ],
)
def test_no_blessed_model_error_says_why_each_run_was_passed_over(tmp_path, blessing, fragment):
    model_dir = make_run(tmp_path, "run-1", None, time.time())
    path = tmp_path / "runs" / "run-1" / "evaluate" / "blessing"
    path.parent.mkdir()
    path.write_text(blessing, encoding="utf-8")
    failed = make_run(tmp_path, "run-2", None, time.time())
    with pytest.raises(DataError) as err:
        find_latest_model(tmp_path)
    message = str(err.value)
    assert message.startswith(f"no blessed model under {tmp_path}: run `make run` first, or pass --model_dir")
    assert f"{model_dir}: {fragment.format(path=path)}" in message
    assert f"{failed}: no evaluate/blessing (the run failed or stopped before evaluate)" in message


def test_a_blessing_for_another_model_is_passed_over_saying_so(tmp_path):
    model_dir = make_run(tmp_path, "run-1", True, time.time(), blessing_extra={"model_sha256": "0" * 64})
    with pytest.raises(DataError) as err:
        find_latest_model(tmp_path)
    assert f"{model_dir}: evaluate/blessing is for another model than model.joblib: the blessing is for model " in str(
        err.value
    )


def test_no_blessed_model_when_runs_hold_no_model(tmp_path):
    (tmp_path / "runs" / "run-1" / "train" / "model").mkdir(parents=True)
    (tmp_path / "runs" / "run-1" / "train" / "model" / "metadata.json").write_text("{}")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "model.joblib").write_bytes(b"x")
    with pytest.raises(DataError) as err:
        find_latest_model(tmp_path)
    message = str(err.value)
    assert f"no blessed model under {tmp_path}: run `make run` first, or pass --model_dir" in message
    assert "run-1/train/model: expected exactly one" in message


def test_no_blessed_model_in_an_empty_root(tmp_path):
    with pytest.raises(DataError) as err:
        find_latest_model(tmp_path)
    assert f"{tmp_path / 'runs'} holds no <run>/train/model with a model file" in str(err.value)


def test_missing_root(tmp_path):
    with pytest.raises(DataError) as err:
        find_latest_model(tmp_path / "local_outputs")
    message = str(err.value)
    assert f"no blessed model under {tmp_path / 'local_outputs'} (the directory does not exist)" in message
    assert "run `make run` first, or pass --model_dir" in message
