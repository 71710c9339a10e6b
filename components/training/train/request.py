"""The train parameters: one description and one check each (used by the component, the core, CLI and runner).

Standard library only: the component module imports it at decoration time. Hyperparameter *names* are
checked against the estimator when it is built (that needs scikit-learn), in the core.
"""

from __future__ import annotations

import dataclasses

from kfp_tabular.components.common.errors import ConfigError
from kfp_tabular.components.common.params import check_seed, param

ESTIMATORS = ("logistic_regression", "hist_gradient_boosting", "random_forest")
TASKS = ("auto", "classification", "regression")


def _check_int(value, field: str, low: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{field}: expected {what}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class TrainRequest:
    """Which estimator to fit, on which label, how."""

    label_column: str = param("Name of the label column; it is excluded from the features.")
    estimator: str = param(
        "``logistic_regression`` (Ridge for regression), ``hist_gradient_boosting`` or ``random_forest``.",
        "hist_gradient_boosting",
    )
    hyperparameters: dict = param(
        'Constructor arguments for the estimator, e.g. ``{"max_iter": 200}``; names are checked against the estimator.',
        {},
    )
    task: str = param(
        "``auto`` (classification for bool/string labels, or integer or whole-number float labels with at most 20 "
        "values), ``classification`` or ``regression``.",
        "auto",
    )
    seed: int = param("Random seed of the estimator (its ``random_state`` unless the hyperparameters set one).", 42)
    max_categories: int = param(
        "One-hot columns per categorical feature at most (>= 2): the most frequent categories get their own, the "
        "rest share one 'infrequent' column.",
        50,
    )
    min_frequency: int = param(
        "Categories seen in fewer training rows than this share the 'infrequent' column (1: no grouping by rarity).",
        5,
    )
    memory_limit_mb: int = param(
        "Memory the fit may use, in MiB: when the fit of every row is estimated over 80% of it, a seeded "
        "(stratified) sample that fits is fitted instead (a decision), and training is refused only when that "
        "sample would have fewer than 1,000 rows. 0: the container's cgroup limit, else the machine's available "
        "memory.",
        0,
    )
    max_train_rows: int = param(
        "Rows the fit uses at most: a positive number fits a seeded sample (stratified by class for "
        "classification) of that many rows when the split has more (a decision); 0: every row, or as many as fit "
        "in memory (see memory_limit_mb).",
        0,
    )

    def __post_init__(self) -> None:
        if not isinstance(self.label_column, str) or not self.label_column:
            raise ConfigError(f"label_column: expected the name of the label column, got {self.label_column!r}")
        if self.estimator not in ESTIMATORS:
            raise ConfigError(f"estimator: unknown estimator {self.estimator!r}; valid: {', '.join(ESTIMATORS)}")
        if self.task not in TASKS:
            raise ConfigError(f"task: expected one of {', '.join(TASKS)}, got {self.task!r}")
        hyperparameters = {} if self.hyperparameters is None else self.hyperparameters
        if not isinstance(hyperparameters, dict):
            raise ConfigError(
                f"hyperparameters: expected a mapping of name to value, got {type(hyperparameters).__name__}"
            )
        if not all(isinstance(name, str) for name in hyperparameters):
            raise ConfigError(f"hyperparameters: expected names as strings, got {sorted(map(repr, hyperparameters))}")
        object.__setattr__(self, "hyperparameters", dict(hyperparameters))
        check_seed(self.seed)
        _check_int(self.max_categories, "max_categories", 2, "an integer >= 2")
        _check_int(self.min_frequency, "min_frequency", 1, "an integer >= 1 (rows)")
        _check_int(self.memory_limit_mb, "memory_limit_mb", 0, "an integer >= 0 (MiB; 0 for the container's limit)")
        _check_int(self.max_train_rows, "max_train_rows", 0, "an integer >= 0 (rows; 0 for every row that fits)")
