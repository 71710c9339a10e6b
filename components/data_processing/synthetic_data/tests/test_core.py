"""Tests of the seeded churn generator and its command line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from kfp_tabular.components.data_processing.synthetic_data.core import (
    CONTRACTS,
    LABEL,
    PAYMENTS,
    generate,
    main,
    write,
)

FEATURES = [
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "age",
    "support_calls",
    "contract_type",
    "payment_method",
    "internet_service",
    "region",
    "paperless_billing",
    "has_partner",
]


@pytest.fixture(scope="module")
def default() -> pd.DataFrame:
    return generate(20_000, seed=1)


@pytest.fixture(scope="module")
def drifted() -> pd.DataFrame:
    return generate(20_000, seed=1, variant="drifted")


@pytest.fixture(scope="module")
def noise() -> pd.DataFrame:
    return generate(20_000, seed=1, variant="noise")


def test_same_seed_same_data():
    for variant in ("default", "drifted", "noise"):
        pd.testing.assert_frame_equal(generate(500, 9, variant), generate(500, 9, variant))


def test_different_seeds_differ():
    one, two = generate(500, 1), generate(500, 2)
    assert one.columns.tolist() == two.columns.tolist()
    for column in ("monthly_charges", "tenure_months", "contract_type", LABEL):
        assert not one[column].equals(two[column]), column


@pytest.mark.parametrize("rows", [10, 123, 5000])
def test_size_is_selectable(rows):
    assert len(generate(rows, 0)) == rows


def test_schema_types_and_missing_values(default):
    assert default.columns.tolist() == [*FEATURES, LABEL]
    dtypes = default.dtypes.astype(str).to_dict()
    assert dtypes["tenure_months"] == dtypes["support_calls"] == dtypes[LABEL] == "int64"
    assert dtypes["monthly_charges"] == dtypes["total_charges"] == dtypes["age"] == "float64"
    assert dtypes["paperless_billing"] == dtypes["has_partner"] == "bool"
    assert dtypes["contract_type"] == dtypes["payment_method"] == "object"
    missing = default.isna().mean()
    assert set(missing[missing > 0].index) == {"total_charges", "internet_service", "age"}
    assert 0.01 < missing["total_charges"] < 0.03 and 0.02 < missing["internet_service"] < 0.04
    assert 0.04 < missing["age"] < 0.06
    assert set(default[LABEL]) == {0, 1}
    assert 0.2 < default[LABEL].mean() < 0.5
    assert set(default["contract_type"]) == set(CONTRACTS) and set(default["payment_method"]) == set(PAYMENTS)
    assert default["tenure_months"].between(0, 72).all() and default["monthly_charges"].between(15, 160).all()


def test_default_label_depends_on_the_features(default):
    by_contract = default.groupby("contract_type")[LABEL].mean()
    assert by_contract["month-to-month"] - by_contract["two-year"] > 0.2
    assert default[LABEL].corr(default["tenure_months"]) < -0.15


def test_drifted_variant_shifts_features_and_schema(default, drifted):
    assert "has_partner" not in drifted.columns
    assert drifted.columns.tolist() == [c for c in default.columns if c != "has_partner"]
    assert drifted["monthly_charges"].mean() - default["monthly_charges"].mean() > 15
    assert drifted["tenure_months"].mean() < default["tenure_months"].mean() - 5
    assert "crypto" in set(drifted["payment_method"]) and "crypto" not in set(default["payment_method"])
    assert 0.05 < (drifted["payment_method"] == "crypto").mean() < 0.15
    default_mix = default["contract_type"].value_counts(normalize=True)
    drifted_mix = drifted["contract_type"].value_counts(normalize=True)
    assert drifted_mix["month-to-month"] < default_mix["month-to-month"] - 0.1
    # untouched features keep their distribution
    assert (
        abs(drifted["region"].value_counts(normalize=True) - default["region"].value_counts(normalize=True)).max()
        < 0.02
    )


def test_noise_variant_labels_are_independent_of_the_features(default, noise):
    pd.testing.assert_frame_equal(noise[FEATURES], default[FEATURES])
    assert not noise[LABEL].equals(default[LABEL])
    assert abs(noise[LABEL].mean() - 0.3) < 0.02
    by_contract = noise.groupby("contract_type")[LABEL].mean()
    assert by_contract.max() - by_contract.min() < 0.04
    numeric = noise[["tenure_months", "monthly_charges", "support_calls"]]
    assert numeric.corrwith(noise[LABEL]).abs().max() < 0.03


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"variant": "shifted"}, "variant: expected one of default, drifted, noise, got 'shifted'"),
        ({"n_rows": 9}, "n_rows: expected at least 10, got 9"),
        ({"n_rows": -5}, "n_rows: expected at least 10, got -5"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate(**kwargs)


def test_write_csv_and_parquet(tmp_path):
    frame = generate(200, 4)
    assert write(frame, tmp_path / "d.csv") == str(tmp_path / "d.csv")
    write(frame, tmp_path / "nested" / "d.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "nested" / "d.parquet"), frame)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "d.csv"), frame, check_dtype=False)


def test_write_rejects_other_extensions_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match=r"d\.json: expected a \.csv or \.parquet file name"):
        write(generate(20, 0), tmp_path / "d.json")
    assert list(tmp_path.iterdir()) == []


def test_cli_writes_csv_and_parquet(tmp_path, capsys):
    assert main([str(tmp_path / "d.csv"), "--rows", "300", "--seed", "5"]) == 0
    assert "wrote 300 rows x 12 columns (default)" in capsys.readouterr().out
    assert main([str(tmp_path / "d.parquet"), "--rows", "300", "--seed", "5", "--variant", "drifted"]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "d.csv"), generate(300, 5), check_dtype=False)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "d.parquet"), generate(300, 5, "drifted"))


def test_cli_errors(tmp_path, capsys):
    assert main([str(tmp_path / "d.txt"), "--rows", "50"]) == 2
    assert "d.txt: expected a .csv or .parquet file name" in capsys.readouterr().err
    assert main([str(tmp_path / "d.csv"), "--rows", "3"]) == 2
    assert "n_rows: expected at least 10, got 3" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main([str(tmp_path / "d.csv"), "--variant", "weird"])
    assert info.value.code == 2
    assert "invalid choice: 'weird'" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.rglob("*")) == []


def test_module_entry_point(tmp_path):
    out = tmp_path / "m.csv"
    done = subprocess.run(
        [sys.executable, "-m", "kfp_tabular.components.data_processing.synthetic_data", str(out), "--rows", "50"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert len(pd.read_csv(out)) == 50
    failed = subprocess.run(
        [sys.executable, "-m", "kfp_tabular.components.data_processing.synthetic_data", str(tmp_path / "x.tsv")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert failed.returncode == 2 and "expected a .csv or .parquet file name" in failed.stderr
    assert not (tmp_path / "x.tsv").exists()
    np.testing.assert_array_equal(pd.read_csv(out)[LABEL].to_numpy(), generate(50, 42)[LABEL].to_numpy())
