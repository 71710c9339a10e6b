"""The label rules (labels.py): the task from the values, the positive class, and the light import."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from kfp_tabular.components.common.errors import ConfigError, DataError
from kfp_tabular.components.data_processing.ingest.labels import infer_task, positive_class


@pytest.mark.parametrize(
    ("values", "task", "whole"),
    [
        ([0, 1], "classification", False),
        (list(range(20)), "classification", False),
        (list(range(21)), "regression", False),
        ([1.0, 0.0], "classification", True),
        (np.array([0.0, 1.0, np.nan]), "classification", True),  # missing values are ignored
        ([float(v) for v in range(20)], "classification", True),
        ([float(v) for v in range(21)], "regression", False),
        ([0.5, 1.0], "regression", False),
        ([True, False], "classification", False),
        (np.array([True, False]), "classification", False),
        (["yes", "no", None], "classification", False),
        (pd.Series(pd.Categorical([1, 2, 3] * 10)), "classification", False),
        (pd.Series(range(100)), "regression", False),
    ],
)
def test_auto_task(values, task, whole):
    decided = infer_task(values)
    assert (decided.task, decided.whole_floats) == (task, whole)
    assert decided.reason


def test_the_reason_gives_the_numbers():
    assert infer_task([1.0, 0.0]).reason.startswith("float label whose 2 distinct values (0.0, 1.0) are all whole")
    assert "21 distinct values (more than 20)" in infer_task(list(range(21))).reason


@pytest.mark.parametrize(
    ("values", "task", "match"),
    [
        ([1, "yes"], "auto", r"label column 'y' mixes numbers \(1\) and text \('yes'\)"),
        ([1.0, float("inf")], "auto", r"label column 'y' holds infinite values \(inf\)"),
        (["a", "b"], "regression", "label column 'y' holds text; regression needs a numeric label"),
        ([True, False], "regression", "holds booleans; regression needs a numeric label"),
        ([2.5], "regression", "has the single value 2.5; regression needs at least 2"),
        ([0.5, 1.0], "classification", r"holds non-integer numbers \(0.5\); classification needs discrete"),
        ([None, float("nan")], "auto", "label column 'y' has no values"),
    ],
)
def test_labels_that_do_not_allow_the_task(values, task, match):
    with pytest.raises(DataError, match=match):
        infer_task(values, task, "y")


def test_an_unknown_task_is_a_config_error():
    with pytest.raises(ConfigError, match="task: expected one of auto, classification, regression, got 'x'"):
        infer_task([0, 1], "x")


def test_positive_class_is_the_minority_by_default():
    assert positive_class({"Yes": 90, "No": 10}, "", "churn")[0] == "No"
    assert positive_class({0: 30, 1: 70}, "", "y")[0] == 0
    value, reason = positive_class({False: 5, True: 5}, "", "y")
    assert value is True and "balanced" in reason  # a tie: the larger value, as before
    assert "10.0% of rows" in positive_class({"Yes": 90, "No": 10}, "", "churn")[1]


@pytest.mark.parametrize(
    ("counts", "requested", "expected"),
    [
        ({"Yes": 90, "No": 10}, "Yes", "Yes"),
        ({0: 90, 1: 10}, "0", 0),
        ({True: 90, False: 10}, "true", True),
        ({True: 90, False: 10}, "False", False),
    ],
)
def test_positive_class_as_requested(counts, requested, expected):
    value, reason = positive_class(counts, requested, "y")
    assert value == expected and type(value) is type(expected) and "set by positive_class" in reason


@pytest.mark.parametrize(
    ("counts", "requested", "match"),
    [
        (
            {"Yes": 9, "No": 1},
            "yes",
            r"positive_class: 'yes' is not a value of label column 'y' \(its values: 'No', 'Yes'\)",
        ),
        ({"a": 1, "b": 1, "c": 1}, "a", "'y' is a label with 3 classes; positive_class applies to binary labels only"),
        ({}, "1", "'y' is a regression label; positive_class applies to binary labels only"),
    ],
)
def test_positive_class_errors_name_it(counts, requested, match):
    with pytest.raises(ConfigError, match=match):
        positive_class(counts, requested, "y")


def test_no_positive_class_for_multiclass_or_regression():
    assert positive_class({"a": 1, "b": 1, "c": 1}, "", "y") is None
    assert positive_class({}, "", "y") is None


def test_labels_module_is_light():
    code = (
        "import sys\n"
        "from kfp_tabular.components.data_processing.ingest.labels import infer_task\n"
        "assert infer_task([1.0, 0.0]).task == 'classification'\n"
        "heavy = {'pandas', 'numpy', 'sklearn', 'pyarrow'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
