"""Shared test data: small seeded churn data sets and serving statistics computed with the curated schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from kfp_tabular.components.data_processing.synthetic_data import core as synthetic
from kfp_tabular.components.data_processing.validate import statistics

CURATED = str(Path(synthetic.__file__).parent / "churn_schema.pbtxt")


@pytest.fixture(scope="session")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    files = {
        "train": synthetic.generate(5000, 1),
        "eval": synthetic.generate(5000, 2),
        "drifted": synthetic.generate(5000, 3, "drifted"),
        "serving": synthetic.generate(2000, 4).drop(columns=[synthetic.LABEL]),
        "serving_drifted": synthetic.generate(2000, 5, "drifted").drop(columns=[synthetic.LABEL]),
    }
    paths = {name: synthetic.write(frame, root / f"{name}.parquet") for name, frame in files.items()}
    for name in ("serving", "serving_drifted"):
        statistics.compute_statistics(paths[name], output_path=str(root / f"{name}_stats.pb"), schema_uri=CURATED)
        paths[f"{name}_stats"] = str(root / f"{name}_stats.pb")
    return paths
