"""Model directory helpers (plain Python, run in the pipeline env): the one model file, metadata, the newest model."""

from __future__ import annotations

import json
import os
import time

import pytest

from kfp_tabular.components.common.errors import DataError
from kfp_tabular.components.deployment.model_server.model_files import (
    find_latest_model,
    find_model_file,
    read_metadata,
)

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


def test_find_latest_model_picks_newest_model_joblib_recursively(tmp_path):
    now = time.time()
    dirs = {}
    for i, rel in enumerate(["run-a/train/model", "run-b/deep/er/model", "run-c/model"]):
        directory = tmp_path / rel
        directory.mkdir(parents=True)
        (directory / "model.joblib").write_bytes(b"x")
        dirs[rel] = directory
    os.utime(dirs["run-a/train/model"] / "model.joblib", (now - 300, now - 300))
    os.utime(dirs["run-b/deep/er/model"] / "model.joblib", (now - 10, now - 10))
    os.utime(dirs["run-c/model"] / "model.joblib", (now - 200, now - 200))
    # a newer directory mtime must not matter, only the model file's
    os.utime(dirs["run-c/model"], (now, now))
    assert find_latest_model(tmp_path) == dirs["run-b/deep/er/model"]
    os.utime(dirs["run-a/train/model"] / "model.joblib", (now, now))
    assert find_latest_model(str(tmp_path)) == dirs["run-a/train/model"]


def test_find_latest_model_skips_hidden_staging_directories(tmp_path):
    visible = tmp_path / "run" / "model"
    visible.mkdir(parents=True)
    (visible / "model.joblib").write_bytes(b"x")
    staged = tmp_path / "run" / ".model.x1.tmp" / "model"
    staged.mkdir(parents=True)
    (staged / "model.joblib").write_bytes(b"half")
    past = time.time() - 100
    os.utime(visible / "model.joblib", (past, past))
    assert find_latest_model(tmp_path) == visible


def test_find_latest_model_only_counts_model_joblib(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "model.pkl").write_bytes(b"x")
    with pytest.raises(DataError, match=r"no model.joblib found .*run `make run` first"):
        find_latest_model(tmp_path)


def test_find_latest_model_missing_root(tmp_path):
    with pytest.raises(DataError) as err:
        find_latest_model(tmp_path / "local_outputs")
    assert "local_outputs: no such directory" in str(err.value)
    assert "run `make run` first" in str(err.value)
