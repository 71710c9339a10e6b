"""Schema (TFX's SchemaGen/ImportSchemaGen): inference, categorical small counts, environments, comparators.

An inferred schema has the default environments ``TRAINING`` and ``SERVING``, with the label kept out of
``SERVING``. INT features with a small integer range (counts, flags, codes) are categorical, so they are
summarised and compared value by value. Comparators (drift, skew) are set on a copy of the schema used for
validation only.
"""

from __future__ import annotations

from kfp_tabular.components.common.errors import ConfigError, DataError
from kfp_tabular.components.data_processing.validate import tfdv_io
from kfp_tabular.components.data_processing.validate.statistics import feature_name, feature_names

TRAINING = "TRAINING"
SERVING = "SERVING"

#: An INT feature whose values span at most this many integers is a code or a count, not a measurement.
MAX_CATEGORICAL_INT_RANGE = 20


def is_categorical_int_range(low_high: tuple[int, int] | None) -> bool:
    """Tell whether an INT feature with these smallest and largest values is categorical.

    ``None`` (no values) counts as the range 0..0, as TFDV's numeric statistics of an empty column read.
    """
    low, high = low_high or (0, 0)
    return high - low <= MAX_CATEGORICAL_INT_RANGE


def categorical_int_schema(ranges: dict[str, tuple[int, int] | None]):
    """Build a partial schema that only marks the INT columns with a small range categorical.

    Given to statistics generation, it makes those features' statistics value counts (what a schema inferred
    from them and a curated schema would ask for) in the one pass over the data; other features are summarised
    as without a schema.

    Args:
        ranges: Column -> (smallest, largest) value of the integer and boolean columns
            (:func:`~kfp_tabular.components.data_processing.validate.statistics.integer_ranges`).
    """
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = schema_pb2.Schema()
    for name, low_high in ranges.items():
        if is_categorical_int_range(low_high):
            feature = schema.feature.add(name=name, type=schema_pb2.INT)
            feature.int_domain.is_categorical = True
    return schema


def schema_feature(schema, name: str):
    """Return the schema's top-level feature called ``name``, or None."""
    return next((feature for feature in schema.feature if feature.name == name), None)


def check_label_in_schema(schema, label_column: str, schema_uri: str) -> None:
    """Refuse a curated schema without the label (it is kept out of SERVING and compared for label shift)."""
    if schema_feature(schema, label_column) is None:
        raise ConfigError(
            f"schema_uri {schema_uri!r} defines no feature {label_column!r} (label_column); features: "
            f"{', '.join(f.name for f in schema.feature)}"
        )


def infer_schema(statistics, label_column: str | None = None):
    """Infer a schema from (train) statistics, with TRAINING and SERVING environments.

    Both environments are default environments; the label is marked ``not_in_environment: "SERVING"``, so serving
    data without the label validates cleanly in ``SERVING`` while train/eval data must carry it (``TRAINING``).
    INT features with a small range, or already summarised as categorical (statistics computed with
    :func:`categorical_int_schema`), are marked categorical.

    Args:
        statistics: A ``DatasetFeatureStatisticsList`` (one dataset).
        label_column: The label feature; ``None`` or empty for unlabeled data.

    Returns:
        The inferred ``Schema``.

    Raises:
        DataError: ``label_column`` is not a feature of the statistics.
    """
    schema = tfdv_io.tfdv().infer_schema(statistics)
    for env in (TRAINING, SERVING):
        if env not in schema.default_environment:
            schema.default_environment.append(env)
    if label_column:
        label = schema_feature(schema, label_column)
        if label is None:
            raise DataError(
                f"label_column {label_column!r} is not a column of the data; columns: "
                f"{', '.join(feature_names(statistics))}"
            )
        if SERVING not in label.not_in_environment:
            label.not_in_environment.append(SERVING)
    _mark_categorical_ints(schema, statistics)
    return schema


def _mark_categorical_ints(schema, statistics) -> list[str]:
    """Mark INT features with a small integer range (counts, flags, codes) categorical; return their names.

    TFDV's Jensen-Shannon divergence bins a small count into equal-width buckets that follow the sample's
    maximum, so two samples of one distribution measured 0.17-0.28 at 800-2,000 rows (TFDV #216). A
    categorical INT is compared value by value with the L-infinity distance instead, which is stable.

    An INT feature whose statistics are already value counts (``string_stats``) is categorical too; TFDV infers
    a string domain from those counts, which is dropped: the values are integers.
    """
    from tensorflow_metadata.proto.v0 import schema_pb2

    summaries = {feature_name(f): f for f in statistics.datasets[0].features}
    marked, inferred_domains = [], set()
    for feature in schema.feature:
        stats = summaries.get(feature.name)
        if feature.type != schema_pb2.INT or stats is None:
            continue
        kind = stats.WhichOneof("stats")
        if kind == "string_stats" or (
            kind == "num_stats" and is_categorical_int_range((stats.num_stats.min, stats.num_stats.max))
        ):
            if feature.domain:
                inferred_domains.add(feature.domain)
            feature.int_domain.is_categorical = True
            marked.append(feature.name)
    if inferred_domains:
        kept = [domain for domain in schema.string_domain if domain.name not in inferred_domains]
        del schema.string_domain[:]
        schema.string_domain.extend(kept)
    return marked


def in_environment(feature, env: str) -> bool:
    """Tell whether the schema feature belongs to environment ``env``."""
    if env in feature.not_in_environment:
        return False
    return not feature.in_environment or env in feature.in_environment


def environment(schema, env: str) -> str | None:
    """``env`` when the schema declares it (TFDV refuses unknown environments), else None."""
    return env if env in schema.default_environment else None


def with_comparators(schema, numeric_threshold: float, categorical_threshold: float, skew: bool, label_column: str):
    """Copy the schema and give every top-level feature a drift (and skew) comparator.

    BYTES and categorical INT features get the L-infinity distance (TFDV's categorical comparator); other INT and
    FLOAT features get the approximate Jensen-Shannon divergence (L-infinity on numeric statistics is always 0,
    TFDV issue #147). A comparator the (curated) schema defines for a feature is kept: per-feature tuning wins
    over the defaults. Skew comparators are only set on features that exist in the SERVING environment, never on
    the label (it is not served, whatever the schema's environments say).
    """
    from tensorflow_metadata.proto.v0 import schema_pb2

    copy = type(schema)()
    copy.CopyFrom(schema)
    for feature in copy.feature:
        if feature.type == schema_pb2.STRUCT:
            continue
        served = skew and feature.name != label_column and in_environment(feature, SERVING)
        fields = ["drift_comparator"] + (["skew_comparator"] if served else [])
        for field in fields:
            if feature.HasField(field):
                continue
            comparator = getattr(feature, field)
            if feature.type == schema_pb2.BYTES or (
                feature.type == schema_pb2.INT and feature.int_domain.is_categorical
            ):
                comparator.infinity_norm.threshold = categorical_threshold
            else:
                comparator.jensen_shannon_divergence.threshold = numeric_threshold
    return copy


def check_comparable(current, other, uri: str, field: str) -> None:
    """Refuse statistics whose features were summarized differently (numeric vs categorical) from ours.

    A categorical INT feature of the schema has value counts only when the schema was given to statistics
    generation; comparing those with a numeric summary would report drift that is not there.
    """

    def kinds(stats):
        return {feature_name(f): f.WhichOneof("stats") for f in stats.datasets[0].features}

    ours, theirs = kinds(current), kinds(other)
    differ = sorted(name for name in ours.keys() & theirs.keys() if ours[name] != theirs[name])
    if differ:
        detail = ", ".join(f"{name} ({theirs[name]} there, {ours[name]} here)" for name in differ)
        raise DataError(
            f"{uri} ({field}): statistics not comparable with this run's for {detail}; compute them with the "
            "same schema (compute_statistics(..., schema_uri=...))"
        )
