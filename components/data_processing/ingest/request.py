"""The ingest parameters: one description and one check each (used by the component, the core, CLI and runner).

Standard library only: the component module imports it at decoration time. Whether a marked column exists is
known once the data is read: the core checks it (ConfigError naming the parameter and the column).
"""

from __future__ import annotations

import dataclasses

from kfp_tabular.components.common.errors import ConfigError
from kfp_tabular.components.common.params import check_seed, param

#: The tasks ingest can be asked for; ``auto`` decides from the label's type and values.
TASKS = ("auto", "classification", "regression")
#: The column-mark parameters, in the order they are applied (a column may be in one list only).
MARK_FIELDS = ("drop_columns", "id_columns", "text_columns", "datetime_columns", "categorical_columns")
#: The smallest ``min_rows`` accepted: each split needs at least 2 rows.
MIN_ROWS_FLOOR = 4


@dataclasses.dataclass(frozen=True)
class IngestRequest:
    """What to read, which columns are features, and how to split it."""

    data_uri: str = param(
        "Local path or URL of a .csv, .csv.gz, .parquet or .pq file (``file://``, ``https://``, ``s3://`` and "
        "``gs://`` with s3fs/gcsfs installed; endpoints and credentials from the environment)."
    )
    label_column: str = param("Name of the label column.")
    eval_fraction: float = param("Share of rows in the eval split, strictly between 0 and 1.", 0.2)
    seed: int = param("Seed of the split; the same data, fraction and seed give the same split.", 42)
    task: str = param(
        "``classification``, ``regression`` or ``auto`` (classification for a bool, string or categorical label, "
        "or an integer or whole-number float label with at most 20 distinct values; regression otherwise).",
        "auto",
    )
    drop_columns: list = param("Columns to leave out of the features (the label cannot be dropped).", [])
    id_columns: list = param("Row identifier columns: dropped (IDs are also detected: unique per row).", [])
    text_columns: list = param("Free-text columns: dropped (free text is also detected: long, mostly unique).", [])
    datetime_columns: list = param(
        "Date/time columns: replaced by <name>_year, _month, _day_of_week (and _hour when times are present); "
        "text columns whose values parse as dates and Parquet datetime columns are detected.",
        [],
    )
    categorical_columns: list = param(
        "Columns to treat as categories: cast to text (e.g. integer codes, or a column mixing numbers and text).",
        [],
    )
    positive_class: str = param(
        "The positive class of a binary label, as text (``yes``, ``1``, ``true``): what precision, recall, F1 and "
        "ROC AUC measure. Empty: the minority class.",
        "",
    )
    min_rows: int = param("Fewest rows the table may have (each class of a classification label needs at least 5).", 50)

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
        owner: dict[str, str] = {}
        for field in MARK_FIELDS:
            names = getattr(self, field)
            names = [] if names is None else names
            if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and n for n in names):
                raise ConfigError(f"{field}: expected a list of column names, got {names!r}")
            if self.label_column in names:
                raise ConfigError(
                    f"{field}: lists the label column {self.label_column!r}; the label is never a feature"
                )
            for name in names:
                if name in owner and owner[name] != field:
                    raise ConfigError(
                        f"{field}: column {name!r} is also listed in {owner[name]}; give each column one role"
                    )
                owner[name] = field
            object.__setattr__(self, field, list(dict.fromkeys(names)))
        if not isinstance(self.positive_class, str):
            raise ConfigError(f"positive_class: expected a class label as text, or empty, got {self.positive_class!r}")
        rows = self.min_rows
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < MIN_ROWS_FLOOR:
            raise ConfigError(f"min_rows: expected an integer >= {MIN_ROWS_FLOOR}, got {rows!r}")
