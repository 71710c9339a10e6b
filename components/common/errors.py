"""Errors raised on bad input: each names the file, column or field and what was expected."""


class KfpTabularError(Exception):
    """Base class for every error kfp-tabular raises on purpose."""


class DataError(KfpTabularError, ValueError):
    """The input data is missing, unreadable or not the shape that was expected."""


class ValidationFailed(KfpTabularError):
    """TFDV found anomalies (or drift) and the component was told to fail on them."""


class ConfigError(KfpTabularError, ValueError):
    """A parameter is out of range or names something that does not exist."""


class DeployError(KfpTabularError):
    """A deployment did not become ready; the InferenceService was rolled back."""
