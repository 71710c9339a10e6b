"""The retrain trigger's parameters (all but its artifacts): one description and one check each.

Standard library only: the monitoring pipeline's CLI and local runner build the same request before anything runs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from kfp_tabular.components.common.errors import ConfigError
from kfp_tabular.components.common.params import param

#: Where the training pipeline runs: ``auto`` (cluster inside a KFP run or with a host, else local), or forced.
MODES = ("auto", "local", "cluster")
#: The label join's key columns in the labels file: ``event_id`` (the CloudEvent id, ``Ce-Id``) and ``instance``
#: (the row's index inside its request; optional when every request carried one row).
EVENT_ID, INSTANCE = "event_id", "instance"
#: Training-pipeline parameters the trigger sets itself (from the lineage record and the new data).
SET_BY_TRIGGER = ("data_uri", "baseline_model_uri", "label_column")


@dataclasses.dataclass(frozen=True)
class RetrainRequest:
    """How to retrain when the monitor says so; checked on construction (``ConfigError`` names the field)."""

    lineage_uri: str = param(
        "The deployed model's lineage record (``common.lineage``; the monitor's): its model directory is the "
        "training run's baseline model, its training statistics the drift baseline, its label column the label, "
        "its training split (``training_data.uri``) the old rows the new ones are added to."
    )
    labels_uri: str = param(
        "Where the served rows' labels arrive (ground truth fed back after the fact): a CSV or Parquet file (local "
        "path or fsspec URL) with ``event_id`` (the inference's CloudEvent id, ``Ce-Id``; send your own request id "
        "as the ``Ce-Id`` header to join on it), ``instance`` (the row's index inside its request; may be left out "
        "when each request carried one row) and the label column. Served rows without a label are not used "
        "(counted); empty: no labels, and a retrain the monitor asks for fails naming this field (served rows "
        "alone carry no label to train on).",
        "",
    )
    include_training_data: bool = param(
        "Retrain on the labelled served rows alone (False) or on the deployed model's training split plus them "
        "(True). Off by default: the training pipeline's eval split is drawn at random from the rows it is given, "
        "and with the training split added part of it is rows the deployed model was fit on, so the baseline's "
        "metrics there are optimistic and the comparison leans toward keeping it.",
        False,
    )
    min_labelled_rows: int = param(
        "Fewest labelled served rows to retrain with; fewer fails the task naming the counts (joined, unlabelled).",
        100,
    )
    mode: str = param(
        f"Where the training pipeline runs, one of {', '.join(MODES)}: ``cluster`` submits it to the KFP API "
        "(kfp.Client) with the committed training pipeline; ``local`` runs it here with kfp.local (run_local: the "
        "local production record under local_output_dir); ``auto``: ``cluster`` when kfp_host is given or the task "
        "runs in a KFP pod (its KFP_POD_NAME and KUBERNETES_SERVICE_HOST environment), else ``local`` (a decision "
        "in the outcome).",
        "auto",
    )
    kfp_host: str = param(
        "KFP API endpoint for ``cluster`` (e.g. http://ml-pipeline.kubeflow.svc.cluster.local:8888); empty: "
        "kfp.Client's in-cluster default.",
        "",
    )
    kfp_namespace: str = param("Kubeflow profile namespace of the submitted run (multi-user mode); empty: none.", "")
    experiment_name: str = param("KFP experiment of the submitted training run.", "kfp-tabular-retrain")
    training_package: str = param(
        "``cluster``: the compiled training pipeline to submit (a local path in the image or an fsspec URL); empty: "
        "the committed pipeline.yaml installed with kfp_tabular, which has no storage wiring -- compile one with "
        "``kfp-tabular compile --storage-secret ... --output ...`` when the tasks need S3/MinIO keys.",
        "",
    )
    local_output_dir: str = param(
        "``local`` mode: run_local's output directory (its ``production/`` record is the model serving, and a "
        "blessed retrained model is promoted there).",
        "",
    )
    training_parameters: dict = param(
        "More training-pipeline parameters (e.g. ``isvc_name``, ``deploy_action``, ``thresholds``, ``tolerance``); "
        f"{', '.join(SET_BY_TRIGGER)} are set by the trigger and refused here. ``drift_gate`` defaults to ``none``: "
        "the new data drifted from the deployed model's training data, which is why it retrains (drift is "
        "still reported).",
        {},
    )

    def __post_init__(self):
        if not isinstance(self.lineage_uri, str) or not self.lineage_uri.strip():
            raise ConfigError(
                f"lineage_uri: expected a local path or URL of a lineage record, got {self.lineage_uri!r}"
            )
        for name in ("labels_uri", "kfp_host", "kfp_namespace", "local_output_dir", "training_package"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name}: expected a string, got {getattr(self, name)!r}")
        if not isinstance(self.experiment_name, str) or not self.experiment_name.strip():
            raise ConfigError(f"experiment_name: expected a non-empty name, got {self.experiment_name!r}")
        if not isinstance(self.include_training_data, bool):
            raise ConfigError(f"include_training_data: expected true or false, got {self.include_training_data!r}")
        rows = self.min_labelled_rows
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
            raise ConfigError(f"min_labelled_rows: expected a whole number >= 1, got {rows!r}")
        if self.mode not in MODES:
            raise ConfigError(f"mode: expected one of {', '.join(MODES)}, got {self.mode!r}")
        if self.kfp_host and not self.kfp_host.startswith(("http://", "https://")):
            raise ConfigError(f"kfp_host: expected an http(s):// URL or empty, got {self.kfp_host!r}")
        if not isinstance(self.training_parameters, dict):
            raise ConfigError(
                f"training_parameters: expected an object of parameters, got {self.training_parameters!r}"
            )
        taken = sorted(set(self.training_parameters) & set(SET_BY_TRIGGER))
        if taken:
            raise ConfigError(f"training_parameters: {', '.join(taken)} are set by the trigger, remove them")

    def training_arguments(self, extra: dict[str, Any]) -> dict[str, Any]:
        """Return the training pipeline's arguments: ``drift_gate=none``, the user's, then the trigger's own."""
        return {"drift_gate": "none", **self.training_parameters, **extra}
