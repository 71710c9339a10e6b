"""Schema (TFX's SchemaGen/ImportSchemaGen): inference, categorical small counts, environments, open domains.

An inferred schema has the default environments ``TRAINING`` and ``SERVING``, with the label kept out of
``SERVING``. INT features with a small integer range (counts, flags, codes) are categorical, so they are
summarised and compared value by value. Its string domains are open (``min_domain_mass``
:data:`OPEN_DOMAIN_MIN_MASS`): a rare unseen value is reported, one with real mass is an anomaly. Drift and skew
thresholds come from the request, or from a curated schema's own comparators.
"""

from __future__ import annotations

from kfp_tabular.components.common.errors import ConfigError, DataError
from kfp_tabular.components.data_processing.validate import tfdv_io
from kfp_tabular.components.data_processing.validate.statistics import feature_name, feature_names

TRAINING = "TRAINING"
SERVING = "SERVING"

#: An INT feature whose values span at most this many integers is a code or a count, not a measurement.
MAX_CATEGORICAL_INT_RANGE = 20
#: Inferred string domains are open: values outside the domain fail validation only when they carry more than
#: 1 - this share of a feature's values (TFDV's ``distribution_constraints.min_domain_mass``); rarer ones are
#: reported. The model ignores unknown categories by design.
OPEN_DOMAIN_MIN_MASS = 0.99
#: ... and never when they are fewer than this many rows: in a small split one row is more than 1%.
OPEN_DOMAIN_MIN_ROWS = 5


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
    :func:`categorical_int_schema`), are marked categorical. String domains get ``min_domain_mass``
    :data:`OPEN_DOMAIN_MIN_MASS`.

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
    _open_domains(schema)
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


def drift_thresholds(schema, numeric: float, categorical: float, skew: bool, label_column: str) -> dict:
    """Feature -> (numeric threshold, categorical threshold) for every top-level feature compared.

    The defaults are the request's (Jensen-Shannon distance, L-infinity distance). A comparator the (curated)
    schema defines for a feature wins: ``infinity_norm.threshold`` is that feature's L-infinity threshold,
    ``jensen_shannon_divergence.threshold`` (a divergence) becomes the distance threshold ``sqrt(threshold)``.
    Skew (``skew=True``) reads ``skew_comparator`` and leaves out the label and features outside SERVING.
    """
    from tensorflow_metadata.proto.v0 import schema_pb2

    field = "skew_comparator" if skew else "drift_comparator"
    found = {}
    for feature in schema.feature:
        if feature.type == schema_pb2.STRUCT:
            continue
        if skew and (feature.name == label_column or not in_environment(feature, SERVING)):
            continue
        own_numeric, own_categorical = numeric, categorical
        if feature.HasField(field):
            comparator = getattr(feature, field)
            if comparator.infinity_norm.HasField("threshold"):
                own_categorical = comparator.infinity_norm.threshold
            if comparator.jensen_shannon_divergence.HasField("threshold"):
                own_numeric = comparator.jensen_shannon_divergence.threshold**0.5
        found[feature.name] = (own_numeric, own_categorical)
    return found


def _open_domains(schema) -> None:
    """Let every string domain of an inferred schema tolerate rare unseen values (``min_domain_mass``)."""
    for feature in schema.feature:
        if (feature.domain or feature.HasField("string_domain")) and not feature.HasField("distribution_constraints"):
            feature.distribution_constraints.min_domain_mass = OPEN_DOMAIN_MIN_MASS


def for_split(schema, stats):
    """Return ``schema`` as it validates ``stats``: open domains sized for the split's rows.

    An inferred (open) domain tolerates unseen values up to 1 - ``OPEN_DOMAIN_MIN_MASS`` of the split's values,
    and always fewer than ``OPEN_DOMAIN_MIN_ROWS`` rows of them: in 88 eval rows one unseen value is 1.1%, which
    is sampling, not a category with real mass. The schema the run writes keeps ``OPEN_DOMAIN_MIN_MASS``.
    """
    rows = stats.datasets[0].num_examples
    if rows <= 0:
        return schema
    mass = min(OPEN_DOMAIN_MIN_MASS, 1.0 - (OPEN_DOMAIN_MIN_ROWS - 0.5) / rows)
    sized = type(schema)()
    sized.CopyFrom(schema)
    for feature in sized.feature:
        constraints = feature.distribution_constraints
        if feature.HasField("distribution_constraints") and constraints.min_domain_mass == OPEN_DOMAIN_MIN_MASS:
            constraints.min_domain_mass = mass
    return sized


def unseen_values(stats, schema, split: str) -> list[str]:
    """Describe values outside a string domain that its ``min_domain_mass`` tolerates (no anomaly), one note each.

    Above the tolerance TFDV reports ``ENUM_TYPE_UNEXPECTED_STRING_VALUES`` (an anomaly); below it the values are
    only reported here, with their share of the feature's values.
    """
    domains = {d.name: set(d.value) for d in schema.string_domain}
    summaries = {feature_name(f): f for f in stats.datasets[0].features}
    notes = []
    for feature in schema.feature:
        mass = feature.distribution_constraints.min_domain_mass if feature.HasField("distribution_constraints") else 1
        known = set(feature.string_domain.value) if feature.HasField("string_domain") else domains.get(feature.domain)
        stats_feature = summaries.get(feature.name)
        if known is None or mass >= 1.0 or stats_feature is None or not stats_feature.HasField("string_stats"):
            continue
        string_stats = stats_feature.string_stats
        counts = {b.label: b.sample_count for b in string_stats.rank_histogram.buckets}
        total = string_stats.common_stats.tot_num_values or string_stats.common_stats.num_non_missing
        unseen = {value: count for value, count in counts.items() if value not in known}
        share = sum(unseen.values()) / total if total else 0.0
        if unseen and share <= 1.0 - mass:
            shown = ", ".join(sorted(unseen, key=lambda v: -unseen[v])[:5]) + (", ..." if len(unseen) > 5 else "")
            notes.append(
                f"{split}: {feature.name}: {len(unseen)} value(s) not in the schema's domain ({100 * share:.2g}% of "
                f"values: {shown}), tolerated by min_domain_mass {mass:g}"
            )
    return notes


def check_comparable(current, other, uri: str, field: str, label_column: str = "") -> None:
    """Refuse statistics whose features were summarized differently (numeric vs categorical) from ours.

    A categorical INT feature of the schema has value counts only when the schema was given to statistics
    generation; comparing those with a numeric summary would report drift that is not there. The label is not
    refused (a curated schema may keep an integer label numeric where an inferred one counts its classes): drift
    leaves it out with a note in the report.
    """

    def kinds(stats):
        return {feature_name(f): f.WhichOneof("stats") for f in stats.datasets[0].features}

    ours, theirs = kinds(current), kinds(other)
    shared = (ours.keys() & theirs.keys()) - {label_column}
    differ = sorted(name for name in shared if ours[name] != theirs[name])
    if differ:
        detail = ", ".join(f"{name} ({theirs[name]} there, {ours[name]} here)" for name in differ)
        raise DataError(
            f"{uri} ({field}): statistics not comparable with this run's for {detail}; compute them with the "
            "same schema (compute_statistics(..., schema_uri=...))"
        )
