"""A realistic, seeded customer-churn dataset: the bundled default data of kfp-tabular.

Mixed types (integers, floats, categoricals, booleans), missing values in three columns, and a binary
label ``churned`` that depends on the features through a logistic model, so a classifier has real signal.

Variants:
- ``default``: the reference distribution.
- ``drifted``: what validation must catch: monthly charges and tenure shifted, the contract mix changed,
  a payment method never seen before ("crypto"), and the ``has_partner`` column missing.
- ``noise``: the default features with labels drawn independently of them (a model must not be blessed).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

LABEL = "churned"
VARIANTS = ("default", "drifted", "noise")

CONTRACTS = ["month-to-month", "one-year", "two-year"]
PAYMENTS = ["electronic-check", "mailed-check", "bank-transfer", "credit-card"]
INTERNET = ["dsl", "fiber-optic", "none"]
REGIONS = ["north", "south", "east", "west"]


def curated_schema_path() -> str:
    """Path of the curated, version-controlled TFDV schema of this dataset (``churn_schema.pbtxt``)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "churn_schema.pbtxt")


def generate(n_rows: int = 50_000, seed: int = 42, variant: str = "default"):
    """Return the churn dataset as a pandas DataFrame.

    Args:
        n_rows: Number of rows (at least 10).
        seed: Seed of the random generator; the same seed, size and variant give identical data.
        variant: One of ``default``, ``drifted``, ``noise``.

    Returns:
        A DataFrame with 11 feature columns (10 for ``drifted``) and the label column ``churned`` (0/1).
    """
    import pandas as pd

    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {', '.join(VARIANTS)}, got {variant!r}")
    if int(n_rows) < 10:
        raise ValueError(f"n_rows: expected at least 10, got {n_rows}")
    n = int(n_rows)
    rng = np.random.default_rng(seed)
    drifted = variant == "drifted"

    contract_p = [0.35, 0.3, 0.35] if drifted else [0.55, 0.25, 0.2]
    contract = rng.choice(CONTRACTS, size=n, p=contract_p)
    tenure_scale = 14.0 if drifted else 24.0
    tenure = np.clip(rng.exponential(tenure_scale, size=n) + np.where(contract == "two-year", 18, 0), 0, 72)
    tenure = tenure.round().astype("int64")
    internet = rng.choice(INTERNET, size=n, p=[0.35, 0.45, 0.2])
    base_charge = np.select([internet == "fiber-optic", internet == "dsl"], [80.0, 55.0], 22.0)
    charge_shift = 25.0 if drifted else 0.0
    monthly = np.round(np.clip(base_charge + charge_shift + rng.normal(0, 12, size=n), 15, 160), 2)
    total = np.round(monthly * np.maximum(tenure, 1) * rng.uniform(0.95, 1.05, size=n), 2)
    age = np.clip(rng.normal(44, 14, size=n), 18, 90).round().astype("int64")
    support_calls = rng.poisson(np.where(internet == "fiber-optic", 2.2, 1.2)).astype("int64")
    payment_p = [0.3, 0.2, 0.2, 0.2, 0.1] if drifted else [0.35, 0.2, 0.22, 0.23]
    payments = PAYMENTS + (["crypto"] if drifted else [])
    payment = rng.choice(payments, size=n, p=payment_p)
    region = rng.choice(REGIONS, size=n, p=[0.3, 0.25, 0.25, 0.2])
    paperless = rng.random(n) < 0.6
    partner = rng.random(n) < 0.48

    logit = (
        -1.1
        + 1.3 * (contract == "month-to-month")
        - 0.9 * (contract == "two-year")
        - 0.045 * tenure
        + 0.018 * (monthly - 65)
        + 0.35 * support_calls
        + 0.55 * (payment == "electronic-check")
        + 0.45 * (internet == "fiber-optic")
        + 0.25 * paperless
        - 0.3 * partner
        - 0.008 * (age - 44)
    )
    if variant == "noise":
        label = (rng.random(n) < 0.3).astype("int64")
    else:
        label = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype("int64")

    frame = pd.DataFrame(
        {
            "tenure_months": tenure,
            "monthly_charges": monthly,
            "total_charges": total,
            "age": age,
            "support_calls": support_calls,
            "contract_type": contract,
            "payment_method": payment,
            "internet_service": internet,
            "region": region,
            "paperless_billing": paperless,
            "has_partner": partner,
            LABEL: label,
        }
    )
    # Missing values, as real exports have them: new customers have no total yet, some fields were skipped.
    frame["total_charges"] = frame["total_charges"].mask(rng.random(n) < 0.02)
    frame["internet_service"] = frame["internet_service"].mask(rng.random(n) < 0.03)
    frame["age"] = frame["age"].astype("float64").mask(rng.random(n) < 0.05)
    if drifted:
        frame = frame.drop(columns=["has_partner"])
    return frame


def write(frame, path: str | os.PathLike) -> str:
    """Write a frame as CSV or Parquet (chosen by the file extension), atomically; return the path."""
    from kfp_tabular.components.common.artifacts import atomic_path

    path = os.fspath(path)
    with atomic_path(path) as staged:
        if path.endswith(".parquet"):
            frame.to_parquet(staged, index=False)
        elif path.endswith(".csv"):
            frame.to_csv(staged, index=False)
        else:
            raise ValueError(f"{path}: expected a .csv or .parquet file name")
    return path


def main(argv: list[str] | None = None) -> int:
    """Command line: write a dataset to a file."""
    parser = argparse.ArgumentParser(
        prog="python -m kfp_tabular.components.data_processing.synthetic_data",
        description="Write the seeded customer-churn dataset (the bundled default data) to CSV or Parquet.",
    )
    parser.add_argument("output", help="file to write, .csv or .parquet")
    parser.add_argument("--rows", type=int, default=50_000, help="number of rows (default 50000)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--variant", choices=VARIANTS, default="default", help="which distribution")
    args = parser.parse_args(argv)
    try:
        frame = generate(args.rows, args.seed, args.variant)
        write(frame, args.output)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(frame)} rows x {frame.shape[1]} columns ({args.variant}) to {args.output}")
    return 0
