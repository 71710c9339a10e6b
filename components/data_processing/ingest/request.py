"""The ingest parameters: one description and one check each (used by the component, the core, CLI and runner).

Standard library only: the component module imports it at decoration time.
"""

from __future__ import annotations

import dataclasses

from kfp_tabular.components.common.errors import ConfigError
from kfp_tabular.components.common.params import check_seed, param

#: The tasks ingest can be asked for; ``auto`` decides from the label's type and values.
TASKS = ("auto", "classification", "regression")


@dataclasses.dataclass(frozen=True)
class IngestRequest:
    """What to read and how to split it."""

    data_uri: str = param(
        "Local path or URL of a .csv, .csv.gz, .parquet or .pq file (``file://``, ``https://``, ``s3://`` and "
        "``gs://`` with s3fs/gcsfs installed; endpoints and credentials from the environment)."
    )
    label_column: str = param("Name of the label column.")
    eval_fraction: float = param("Share of rows in the eval split, strictly between 0 and 1.", 0.2)
    seed: int = param("Seed of the split; the same data, fraction and seed give the same split.", 42)
    task: str = param(
        "``classification``, ``regression`` or ``auto`` (classification for a bool, string or categorical label, "
        "or an integer label with at most 20 distinct values; regression otherwise).",
        "auto",
    )

    def __post_init__(self) -> None:
        if not isinstance(self.data_uri, str) or not self.data_uri:
            raise ConfigError(f"data_uri: expected a path or URL, got {self.data_uri!r}")
        if not isinstance(self.label_column, str) or not self.label_column:
            raise ConfigError(f"label_column: expected a column name, got {self.label_column!r}")
        fraction = self.eval_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise ConfigError(f"eval_fraction: expected a number strictly between 0 and 1, got {fraction!r}")
        object.__setattr__(self, "eval_fraction", float(fraction))
        check_seed(self.seed)
        if self.task not in TASKS:
            raise ConfigError(f"task: expected one of {', '.join(TASKS)}, got {self.task!r}")
