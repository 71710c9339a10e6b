"""The parameters of ``validate_data`` (all but its artifacts): one description and one check each.

The component builds a :class:`ValidateRequest` first thing and hands it to ``core.validate``; the CLI and the
local runner build the same request from a pipeline's arguments before anything runs. Standard library and
light modules only: importing it imports no TFDV, Beam or pandas.
"""

from __future__ import annotations

import dataclasses

from kfp_tabular.components.common.errors import ConfigError
from kfp_tabular.components.common.params import param
from kfp_tabular.components.data_processing.validate.statistics import BACKENDS, check_backend

#: ``drift_gate`` values (kept in sync with ``drift.GATES``; this module imports nothing heavy).
DRIFT_GATES = ("baseline", "all", "none")


def _number(name: str, value, high: float, what: str = "") -> float:
    """Check a number in (0, high]; a ConfigError names the field otherwise."""
    expected = f"{name}: expected a number in (0, {high:g}]{what}, got {value!r}"
    if isinstance(value, bool):
        raise ConfigError(expected)
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(expected) from exc
    if not 0.0 < number <= high:
        raise ConfigError(expected)
    return number


def _threshold(name: str, value) -> float:
    what = " (Jensen-Shannon distance and L-infinity distance lie in [0, 1]; 1.0 never flags)"
    return _number(name, value, 1.0, what)


@dataclasses.dataclass(frozen=True)
class ValidateRequest:
    """What to validate against and when to fail; checked on construction (``ConfigError`` names the field)."""

    label_column: str = param(
        "The label column: must be a column of the train data (and a feature of a curated schema); kept out of "
        "the schema's SERVING environment."
    )
    schema_uri: str = param(
        "Curated TFDV schema (``.pbtxt``) as a local path or fsspec URL (``gs://``, ``s3://``), passed on "
        "unchanged; empty: infer one from the train statistics.",
        "",
    )
    baseline_statistics_uri: str = param(
        "Binary TFDV statistics (local path or fsspec URL) to measure eval drift against, e.g. the previous "
        "production run's eval statistics, computed with the same schema; empty: compare eval with train.",
        "",
    )
    serving_statistics_uri: str = param(
        "Binary TFDV serving statistics (local path or fsspec URL), computed with the same schema; when given, "
        "train-vs-serving skew is measured and the serving statistics are validated in the SERVING environment.",
        "",
    )
    numeric_drift_threshold: float = param(
        "Jensen-Shannon distance (square root of the divergence, base 2) above which a numeric (INT/FLOAT) feature "
        "drifted or skewed, in (0, 1]; a feature is flagged only when its distance is also beyond sampling noise "
        "(see drift_alpha). For features whose schema sets no comparator of its own.",
        0.03,
    )
    categorical_drift_threshold: float = param(
        "L-infinity distance (largest change of one value's share) above which a categorical feature (BYTES, "
        "categorical INT) drifted or skewed, in (0, 1]; flagged only when also beyond sampling noise. For features "
        "whose schema sets no comparator of its own.",
        0.05,
    )
    drift_alpha: float = param(
        "False-positive rate of each drift/skew comparison, in (0, 0.5]: a feature is flagged only when sampling "
        "noise at these sample sizes reaches its distance with probability below drift_alpha / (features "
        "compared) (Bonferroni).",
        0.01,
    )
    drift_gate: str = param(
        f"Which flagged drift fails the run, one of {', '.join(DRIFT_GATES)}: ``baseline``: drift against "
        "baseline_statistics_uri and skew against serving_statistics_uri (eval-vs-train on the run's own random "
        "split is reported only); ``all``: eval-vs-train too; ``none``: drift is only reported. Schema anomalies "
        "fail the run in every case.",
        "baseline",
    )
    fail_on_anomalies: bool = param(
        "Fail (after writing every output) on anomalies or on gating drift/skew (drift_gate); False only logs a "
        "warning.",
        True,
    )
    statistics_backend: str = param(
        f"How statistics are computed, one of {', '.join(BACKENDS)}: ``dataframe``: TFDV in memory, one process "
        "(fastest while the data fits); ``beam``: a Beam pipeline streaming the file in batches, memory bounded "
        "(in-process FnApiRunner unless ``beam_pipeline_args`` name a runner); ``auto``: ``dataframe`` when the "
        "larger split's size in memory, estimated from its Parquet footer, fits memory_budget_mb, else ``beam`` "
        "(the choice and both numbers are a decision in the statistics artifacts' metadata). All give the same "
        "statistics.",
        "auto",
    )
    memory_budget_mb: int = param(
        "Memory (MB) the ``dataframe`` backend may use when statistics_backend is ``auto``; 0: half the task's "
        "memory: the container's limit (a KFP pod's memory limit) when there is one, else the machine's available "
        "memory.",
        0,
    )
    beam_pipeline_args: list = param(
        'Beam options for the ``beam`` backend, e.g. ``["--runner=DataflowRunner", "--project=p", ...]``; '
        "remote runners need ``--temp_location``. Ignored, with a warning, by ``dataframe``.",
        [],
    )

    def __post_init__(self):
        if not isinstance(self.label_column, str) or not self.label_column:
            raise ConfigError(f"label_column: expected the name of the label column, got {self.label_column!r}")
        for name in ("schema_uri", "baseline_statistics_uri", "serving_statistics_uri"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name}: expected a path or URL (a string), got {getattr(self, name)!r}")
        for name in ("numeric_drift_threshold", "categorical_drift_threshold"):
            object.__setattr__(self, name, _threshold(name, getattr(self, name)))
        object.__setattr__(self, "drift_alpha", _number("drift_alpha", self.drift_alpha, 0.5))
        if self.drift_gate not in DRIFT_GATES:
            raise ConfigError(f"drift_gate: expected one of {', '.join(DRIFT_GATES)}, got {self.drift_gate!r}")
        if not isinstance(self.fail_on_anomalies, bool):
            raise ConfigError(f"fail_on_anomalies: expected true or false, got {self.fail_on_anomalies!r}")
        budget = self.memory_budget_mb
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
            raise ConfigError(f"memory_budget_mb: expected a whole number of MB >= 0 (0: automatic), got {budget!r}")
        args = check_backend(self.statistics_backend, self.beam_pipeline_args, field="statistics_backend")
        object.__setattr__(self, "beam_pipeline_args", args)
