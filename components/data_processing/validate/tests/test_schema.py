"""Schema inference: environments, the label, small-count categorical INT features, one statistics pass."""

from __future__ import annotations

import pytest

from kfp_tabular.components.common.errors import DataError
from kfp_tabular.components.data_processing.synthetic_data import core as synthetic
from kfp_tabular.components.data_processing.validate import schema as schemas
from kfp_tabular.components.data_processing.validate import statistics, tfdv_io

LABEL = synthetic.LABEL


def test_infer_schema(data):
    from tensorflow_metadata.proto.v0 import schema_pb2

    stats = statistics.compute_statistics(data["train"])
    schema = schemas.infer_schema(stats, LABEL)
    types = {f.name: f.type for f in schema.feature}
    assert types == {
        "tenure_months": schema_pb2.INT,
        "monthly_charges": schema_pb2.FLOAT,
        "total_charges": schema_pb2.FLOAT,
        "age": schema_pb2.FLOAT,
        "support_calls": schema_pb2.INT,
        "contract_type": schema_pb2.BYTES,
        "payment_method": schema_pb2.BYTES,
        "internet_service": schema_pb2.BYTES,
        "region": schema_pb2.BYTES,
        "paperless_billing": schema_pb2.INT,
        "has_partner": schema_pb2.INT,
        LABEL: schema_pb2.INT,
    }
    assert list(schema.default_environment) == ["TRAINING", "SERVING"]
    label = next(f for f in schema.feature if f.name == LABEL)
    assert list(label.not_in_environment) == ["SERVING"]
    assert all(not f.not_in_environment for f in schema.feature if f.name != LABEL)
    domains = {d.name: set(d.value) for d in schema.string_domain}
    assert domains["payment_method"] == set(synthetic.PAYMENTS)
    categorical = {f.name for f in schema.feature if f.int_domain.is_categorical}
    assert categorical == {"support_calls", "paperless_billing", "has_partner", LABEL}

    import tensorflow_data_validation as tfdv

    # TRAINING: the train data itself is clean; SERVING: data without the label is clean too.
    assert not tfdv.validate_statistics(stats, schema, environment="TRAINING").anomaly_info
    serving = tfdv_io.load_statistics(data["serving_stats"])
    assert not tfdv.validate_statistics(serving, schema, environment="SERVING").anomaly_info
    missing_label = tfdv.validate_statistics(serving, schema, environment="TRAINING").anomaly_info
    assert list(missing_label) == [LABEL]


def test_infer_schema_unknown_label(data):
    stats = statistics.compute_statistics(data["train"])
    with pytest.raises(DataError, match="label_column 'target' is not a column.*tenure_months"):
        schemas.infer_schema(stats, "target")


@pytest.mark.parametrize("backend", ["dataframe", "beam"])
def test_one_pass_gives_the_two_pass_schema_and_statistics(data, backend):
    """Statistics shaped by the footer's integer ranges equal those computed again with the inferred schema."""
    first = statistics.generate_statistics(data["train"], backend)
    two_pass_schema = schemas.infer_schema(first, LABEL)
    two_pass = statistics.generate_statistics(data["train"], backend, schema=two_pass_schema)

    shaping = schemas.categorical_int_schema(statistics.integer_ranges(data["train"], backend))
    one_pass = statistics.generate_statistics(data["train"], backend, schema=shaping)
    assert schemas.infer_schema(one_pass, LABEL) == two_pass_schema
    assert one_pass == two_pass


@pytest.mark.parametrize(
    "low_high, categorical",
    [((0, 1), True), ((0, 20), True), ((-5, 15), True), ((0, 21), False), ((0, 72), False), (None, True)],
)
def test_small_integer_ranges_are_categorical(low_high, categorical):
    assert schemas.is_categorical_int_range(low_high) is categorical
    marked = schemas.categorical_int_schema({"x": low_high})
    assert [f.name for f in marked.feature if f.int_domain.is_categorical] == (["x"] if categorical else [])


@pytest.mark.parametrize("share, fails", [(0.005, False), (0.05, True)])
def test_inferred_domains_tolerate_rare_unseen_values_and_fail_on_real_mass(tmp_path, share, fails):
    """A category only in eval: under 1% of the rows it is reported; with 5% it is an anomaly naming the feature."""
    from kfp_tabular.components.data_processing.validate import core
    from kfp_tabular.components.data_processing.validate.request import ValidateRequest

    train = synthetic.write(synthetic.generate(2000, 41), tmp_path / "train.parquet")
    frame = synthetic.generate(2000, 42)
    frame.loc[frame.index[: int(2000 * share)], "payment_method"] = "crypto"
    evaluation = synthetic.write(frame, tmp_path / "eval.parquet")
    result = core.validate(train, evaluation, ValidateRequest(LABEL, fail_on_anomalies=False))
    found = {(a.split, a.feature, a.kind) for a in result.anomalies}
    if fails:
        assert found == {("eval", "payment_method", "ENUM_TYPE_UNEXPECTED_STRING_VALUES")}
        assert not any("crypto" in note for note in result.notes)
    else:
        assert found == set() and result.ok
        assert (
            "eval: payment_method: 1 value(s) not in the schema's domain (0.5% of values: crypto), tolerated by "
            "min_domain_mass 0.99" in result.notes
        )


@pytest.mark.parametrize("unseen, fails", [(2, False), (4, False), (10, True)])
def test_a_few_unseen_rows_in_a_small_split_are_sampling_not_a_category(tmp_path, unseen, fails):
    """In 100 eval rows 2 unseen values are 2%: fewer than OPEN_DOMAIN_MIN_ROWS rows never fail; 10 rows do."""
    from kfp_tabular.components.data_processing.validate import core
    from kfp_tabular.components.data_processing.validate.request import ValidateRequest

    train = synthetic.write(synthetic.generate(2000, 41), tmp_path / "train.parquet")
    frame = synthetic.generate(100, 42)
    frame.loc[frame.index[:unseen], "payment_method"] = "crypto"
    evaluation = synthetic.write(frame, tmp_path / "eval.parquet")
    result = core.validate(train, evaluation, ValidateRequest(LABEL, fail_on_anomalies=False, drift_gate="none"))
    found = {(a.split, a.feature, a.kind) for a in result.anomalies}
    assert found == ({("eval", "payment_method", "ENUM_TYPE_UNEXPECTED_STRING_VALUES")} if fails else set())
    assert any("crypto" in note and "min_domain_mass 0.955" in note for note in result.notes) is not fails
