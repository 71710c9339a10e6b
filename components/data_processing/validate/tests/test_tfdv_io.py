"""Reading TFDV protos: errors name the file and the parameter."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kfp_tabular.components.common.errors import ConfigError, DataError
from kfp_tabular.components.data_processing.synthetic_data import core as synthetic
from kfp_tabular.components.data_processing.validate import tfdv_io

CURATED = str(Path(synthetic.__file__).parent / "churn_schema.pbtxt")


def test_load_statistics_errors(tmp_path):
    with pytest.raises(ConfigError, match="baseline.*nope.pb.*not found"):
        tfdv_io.load_statistics(str(tmp_path / "nope.pb"), "baseline")
    garbage = tmp_path / "garbage.pb"
    garbage.write_bytes(b"\xff\xff\xff\xff not a proto")
    with pytest.raises(DataError, match="garbage.pb.*DatasetFeatureStatisticsList"):
        tfdv_io.load_statistics(str(garbage))


def test_load_schema_curated():
    schema = tfdv_io.load_schema(CURATED)
    assert [f.name for f in schema.feature] == list(synthetic.generate(10, 0).columns)
    label = next(f for f in schema.feature if f.name == synthetic.LABEL)
    assert (label.int_domain.min, label.int_domain.max, list(label.not_in_environment)) == (0, 1, ["SERVING"])
    text, parsed = tfdv_io.read_schema(CURATED)
    assert text == Path(CURATED).read_text() and text.startswith("# Curated TFDV schema") and parsed == schema


@pytest.mark.parametrize(
    "name, content, error, match",
    [
        ("missing.pbtxt", None, ConfigError, r"schema_uri '.*/missing.pbtxt': not found"),
        ("broken.pbtxt", 'feature { name: "a" type: NOPE }\n', DataError, "broken.pbtxt.*text format"),
        ("empty.pbtxt", "# nothing here\n", DataError, "empty.pbtxt.*no features"),
        ("binary.pbtxt", b"\xff\xfe\x00", DataError, "binary.pbtxt.*UTF-8"),
    ],
)
def test_load_schema_errors(tmp_path, name, content, error, match):
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content)
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(error, match=match):
        tfdv_io.load_schema(str(path))


def test_load_schema_unreachable_url():
    with pytest.raises(ConfigError, match=re.escape("memory://bucket/schema.pbtxt")):
        tfdv_io.load_schema("memory://bucket/schema.pbtxt")
