"""The retrain trigger: when the monitor's decision says retrain, run the training pipeline on the new data.

kfp 2.13's local runner cannot run ``dsl.If``, so the gate is the trigger itself (as deploy is for the blessing):
it always runs, reads the decision, and when it says no retrain does nothing and records so. When it says retrain:

1. **The new data**: the window's served rows (the monitor's ``served_data``) carry features and the served
   prediction but no label: labels arrive later, as ground truth fed back (``labels_uri``: ``event_id`` -- the
   inference's CloudEvent id --, ``instance``, label), joined here on ``(event_id, instance)``. The labelled rows
   (plus the deployed model's own training split when ``include_training_data``) are written as one Parquet file
   (``<retrain_data>/data.parquet``; ingest tells the format by the name).
2. **The training run**, with that data, the deployed model (the lineage record's ``model_uri``) as
   ``baseline_model_uri`` and its training statistics as ``baseline_statistics_uri``: evaluate blesses the new
   model only when it is not worse than the model serving, and deploy changes nothing otherwise.
   ``cluster``: submitted through the KFP API (``kfp.Client.create_run_from_pipeline_package`` with the committed
   training ``pipeline.yaml`` bundled in this package); ``local``: run here with kfp.local (``kfp-tabular
   run-local`` in a child interpreter -- inside a KFP task kfp's SDK is loaded without its pipeline half --,
   whose production record is promoted only by a blessed model; its output and summary are kept as
   ``<retrain_data>/training-run.{log,json}``).

The outcome (JSON) says what was done: ``action`` ``none`` | ``trained_locally`` | ``submitted``, with the rows,
the run and, locally, the blessing and the promotion.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping

from kfp_tabular.components.common import lineage as lineages
from kfp_tabular.components.common.artifacts import atomic_path, read_json, write_json
from kfp_tabular.components.common.decisions import Decision
from kfp_tabular.components.common.errors import ConfigError, DataError
from kfp_tabular.components.monitoring.collector.rows import RESERVED
from kfp_tabular.components.monitoring.retrain.request import EVENT_ID, INSTANCE, RetrainRequest

logger = logging.getLogger(__name__)

STEP = "retrain"
#: The file of the retraining data inside the ``retrain_data`` artifact (a directory: ingest needs the extension).
DATA_FILE = "data.parquet"
#: The training pipeline compiled and committed beside its pipeline.py, installed with this package.
TRAINING_PACKAGE = "kfp_tabular.pipelines.training.train_and_deploy"
#: Collector columns that are not features: the collector's own (``collector.rows.RESERVED``, the one list).
NOT_FEATURES = RESERVED
#: A multi-user KFP's token for the pipeline's own ServiceAccount (kfp.client.ServiceAccountTokenVolumeCredentials).
KFP_TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"


@dataclasses.dataclass
class RetrainResult:
    """What the trigger did (the ``outcome`` JSON)."""

    action: str
    reason: str
    mode: str = ""
    rows: dict[str, int] = dataclasses.field(default_factory=dict)
    data_uri: str = ""
    arguments: dict[str, Any] = dataclasses.field(default_factory=dict)
    run: dict[str, Any] = dataclasses.field(default_factory=dict)
    blessed: bool | None = None
    blessing_reasons: list[str] = dataclasses.field(default_factory=list)
    promoted_to: str = ""
    decisions: list[Decision] = dataclasses.field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON form (decisions as dicts)."""
        data = dataclasses.asdict(self)
        data["decisions"] = [d.as_dict() for d in self.decisions]
        return data


def read_decision(path: str | os.PathLike) -> dict[str, Any]:
    """Read the monitor's decision JSON; a DataError names the file when it is not one."""
    data = read_json(path, what="monitor decision")
    if not isinstance(data, dict) or not isinstance(data.get("retrain"), bool):
        raise DataError(f"{path}: expected the monitor's decision JSON with a boolean 'retrain', got {data!r:.200}")
    return data


def in_kfp_pod(env: Mapping[str, str]) -> bool:
    """Whether this runs as a task of a KFP run on Kubernetes (KFP's launcher sets KFP_POD_NAME)."""
    return bool(env.get("KFP_POD_NAME") and env.get("KUBERNETES_SERVICE_HOST"))


def choose_mode(request: RetrainRequest, env: Mapping[str, str]) -> tuple[str, list[Decision]]:
    """Return the mode and, for ``auto``, the decision that chose it."""
    if request.mode != "auto":
        return request.mode, []
    if request.kfp_host:
        mode, why = "cluster", f"kfp_host is {request.kfp_host}"
    elif in_kfp_pod(env):
        mode, why = "cluster", f"running in KFP pod {env['KFP_POD_NAME']} (KFP_POD_NAME, KUBERNETES_SERVICE_HOST)"
    else:
        mode, why = "local", "no kfp_host and not in a KFP pod: the training pipeline runs here with kfp.local"
    return mode, [Decision(STEP, "mode", mode, why)]


def _read_table(uri: str, what: str):
    import pandas as pd

    from kfp_tabular.components.common.model_dir import normalize_uri

    uri = normalize_uri(uri)
    lowered = uri.lower()
    try:
        if lowered.endswith((".csv", ".csv.gz")):
            return pd.read_csv(uri)
        return pd.read_parquet(uri)
    except FileNotFoundError as exc:
        raise DataError(f"{uri}: {what} not found") from exc
    except Exception as exc:  # pandas/pyarrow/fsspec raise many unrelated types for a bad file
        raise DataError(
            f"{uri}: {what} could not be read as {'CSV' if '.csv' in lowered else 'Parquet'} ({exc})"
        ) from exc


def join_labels(served, labels, label_column: str, labels_uri: str) -> tuple[Any, dict[str, int]]:
    """Join served rows with their labels on ``(event_id, instance)`` (``event_id`` alone when labels have no instance).

    Returns:
        The labelled served rows (served columns + the label) and counts: served, labelled, unlabelled.

    Raises:
        DataError: A key or label column is missing, or a key is labelled twice (naming it and the file).
    """
    for column in (EVENT_ID, label_column):
        if column not in labels.columns:
            raise DataError(
                f"{labels_uri}: labels need columns {EVENT_ID!r}, {INSTANCE!r} (optional) and the label "
                f"{label_column!r}; column {column!r} is missing (has {', '.join(map(str, labels.columns))})"
            )
    keys = [EVENT_ID, INSTANCE] if INSTANCE in labels.columns else [EVENT_ID]
    if keys == [EVENT_ID] and served.duplicated(EVENT_ID).any():
        event = served.loc[served.duplicated(EVENT_ID), EVENT_ID].iloc[0]
        raise DataError(
            f"{labels_uri}: no {INSTANCE!r} column, but served event {event!r} has several rows: label each row "
            f"with its {INSTANCE!r} (its index in the request)"
        )
    labels = labels[[*keys, label_column]].copy()
    labels[EVENT_ID] = labels[EVENT_ID].astype(str)
    if INSTANCE in keys:
        labels[INSTANCE] = labels[INSTANCE].astype("int64")
    twice = labels.duplicated(keys)
    if twice.any():
        key = labels.loc[twice, keys].iloc[0].tolist()
        raise DataError(f"{labels_uri}: {dict(zip(keys, key))} is labelled more than once")
    served = served.drop(columns=[label_column], errors="ignore").copy()
    served[EVENT_ID] = served[EVENT_ID].astype(str)
    if INSTANCE in keys:
        served[INSTANCE] = served[INSTANCE].astype("int64")
    reused = served.duplicated(keys)
    if reused.any():
        key = served.loc[reused, keys].iloc[0].tolist()
        raise DataError(
            f"served rows: {dict(zip(keys, key))} occurs more than once in the window (a client reused a Ce-Id): "
            "its labels cannot be told apart"
        )
    joined = served.merge(labels, on=keys, how="inner", validate="one_to_one")
    joined = joined[joined[label_column].notna()]
    counts = {"served": len(served), "labelled": len(joined), "unlabelled": len(served) - len(joined)}
    return joined, counts


def build_training_data(
    request: RetrainRequest, record: lineages.LineageRecord, served_path: str, output_dir: str
) -> tuple[dict[str, int], list[Decision]]:
    """Write the retraining data to ``<output_dir>/data.parquet``; return the row counts and the decisions taken."""
    import pandas as pd

    label = record.label_column
    if not request.labels_uri:
        raise ConfigError(
            "labels_uri: the monitor decided to retrain, but served rows carry no label; give the labels file "
            f"(event_id, instance, {label}) the ground truth arrives in"
        )
    served = _read_table(served_path, "the monitor's served rows")
    missing = [c for c in (EVENT_ID,) if c not in served.columns]
    if missing:
        raise DataError(f"{served_path}: served rows lack column(s) {', '.join(missing)} (the collector writes them)")
    labels = _read_table(request.labels_uri, "labels")
    joined, counts = join_labels(served, labels, label, request.labels_uri)
    if counts["labelled"] < request.min_labelled_rows:
        raise DataError(
            f"{request.labels_uri}: {counts['labelled']} of the window's {counts['served']} served rows have a "
            f"label, fewer than min_labelled_rows={request.min_labelled_rows}"
        )
    decisions = []
    if counts["unlabelled"]:
        decisions.append(
            Decision(
                STEP,
                "labels",
                "unlabelled rows left out",
                f"{counts['unlabelled']} of {counts['served']} served rows have no label in {request.labels_uri}",
            )
        )
    if request.include_training_data:
        old = _read_table(record.training_data["uri"], "the deployed model's training split")
        columns = list(old.columns)
        absent = [c for c in columns if c not in joined.columns]
        if absent:
            raise DataError(
                f"{served_path}: served rows lack the training split's column(s) {', '.join(absent)} "
                f"({record.training_data['uri']})"
            )
        frame = pd.concat([old[columns], joined[columns]], ignore_index=True)
        counts["training"] = len(old)
        decisions.append(
            Decision(
                STEP,
                "data",
                "training split + labelled served rows",
                f"{len(old)} rows of {record.training_data['uri']} and {counts['labelled']} labelled served rows",
            )
        )
    else:
        columns = [c for c in joined.columns if c not in NOT_FEATURES]
        frame = joined[columns].reset_index(drop=True)
        counts["training"] = 0
    counts["total"] = len(frame)
    target = Path(output_dir) / DATA_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as staged:
        frame.to_parquet(staged, index=False)
    return counts, decisions


def training_package(request: RetrainRequest, workdir: str) -> str:
    """Return a local path of the training pipeline to submit: ``training_package`` (fetched when a URL) or ours.

    Raises:
        ConfigError: Naming ``training_package`` when it cannot be read.
    """
    if request.training_package:
        if "://" not in request.training_package:
            if not os.path.isfile(request.training_package):
                raise ConfigError(f"training_package: {request.training_package} is not a file")
            return request.training_package
        import fsspec

        from kfp_tabular.components.common.model_dir import normalize_uri

        target = Path(workdir) / "training-pipeline.yaml"
        try:
            with fsspec.open(normalize_uri(request.training_package), "rb") as source:
                target.write_bytes(source.read())
        except (OSError, ValueError, ImportError) as exc:
            raise ConfigError(f"training_package: {request.training_package} cannot be read ({exc})") from exc
        return str(target)
    import importlib.resources

    path = importlib.resources.files(TRAINING_PACKAGE).joinpath("pipeline.yaml")
    if not path.is_file():
        raise ConfigError(f"{path}: the committed training pipeline is not installed with kfp_tabular")
    return str(path)


def submit(
    request: RetrainRequest, arguments: dict[str, Any], run_name: str, env: Mapping[str, str], workdir: str
) -> dict:
    """Submit the training pipeline to the KFP API; return ``{"id", "name", "host", "experiment"}``."""
    from kfp.client import Client

    credentials = None
    if not request.kfp_host and in_kfp_pod(env) and os.path.exists(KFP_TOKEN_PATH):
        from kfp.client import ServiceAccountTokenVolumeCredentials

        credentials = ServiceAccountTokenVolumeCredentials(path=KFP_TOKEN_PATH)
    client = Client(host=request.kfp_host or None, namespace=request.kfp_namespace or None, credentials=credentials)
    run = client.create_run_from_pipeline_package(
        training_package(request, workdir),
        arguments=arguments,
        run_name=run_name,
        experiment_name=request.experiment_name,
        namespace=request.kfp_namespace or None,
    )
    return {
        "id": run.run_id,
        "name": run_name,
        "host": request.kfp_host or "in-cluster",
        "experiment": request.experiment_name,
    }


def clean_env(env: Mapping[str, str]) -> dict[str, str]:
    """Return the environment for a child interpreter with the whole kfp SDK.

    Inside a KFP task kfp's executor sets ``_KFP_RUNTIME=true``, which makes ``import kfp`` skip the pipeline-building
    half of ``kfp.dsl``: the training pipeline cannot be imported (checked, run) in the task's own interpreter.
    """
    return {k: v for k, v in env.items() if k != "_KFP_RUNTIME"}


def check_training_arguments(arguments: dict[str, Any], env: Mapping[str, str]) -> None:
    """Check the training run's arguments with the training pipeline's own checks (in a child interpreter)."""
    code = (
        "import json, sys\n"
        "from kfp_tabular.components.common.errors import KfpTabularError\n"
        "from kfp_tabular.pipelines.training.train_and_deploy.parameters import check_parameters\n"
        "try:\n    check_parameters(json.loads(sys.argv[1]))\n"
        "except KfpTabularError as exc:\n    print(exc, file=sys.stderr)\n    sys.exit(2)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(arguments)], env=clean_env(env), capture_output=True, text=True
    )
    if done.returncode == 2:
        raise ConfigError(f"training_parameters: the training pipeline refuses them: {done.stderr.strip()}")
    if done.returncode != 0:
        raise RuntimeError(f"checking the training pipeline's arguments failed: {done.stderr.strip()[-2000:]}")


def run_locally(
    request: RetrainRequest, arguments: dict[str, Any], workdir: str, env: Mapping[str, str]
) -> dict[str, Any]:
    """Run the training pipeline here with kfp.local (``kfp-tabular run-local`` in a child interpreter).

    Returns:
        The run's summary (run_local's ``RunSummary`` as a dict). Its console output is in
        ``<workdir>/training-run.log``.
    """
    if not request.local_output_dir:
        raise ConfigError("local_output_dir: the local mode needs run_local's output directory (its production record)")
    arguments = dict(arguments)
    data_uri = arguments.pop("data_uri")
    summary_path = Path(workdir) / "training-run.json"
    command = [
        sys.executable,
        "-m",
        "kfp_tabular.pipelines.cli",
        "run-local",
        "--output-dir",
        request.local_output_dir,
        "--data-uri",
        data_uri,
        "--summary-json",
        str(summary_path),
    ]
    for key, value in arguments.items():
        command += ["--param", f"{key}={json.dumps(value)}"]
    log_path = Path(workdir) / "training-run.log"
    logger.info("running the training pipeline locally: %s (output in %s)", " ".join(command), log_path)
    with open(log_path, "w", encoding="utf-8") as log:
        done = subprocess.run(command, env=clean_env(env), stdout=log, stderr=subprocess.STDOUT)
    if not summary_path.is_file():
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"the local training run ended with exit code {done.returncode} and no summary:\n{tail}")
    return read_json(summary_path, what="training run summary")


def retrain(
    request: RetrainRequest,
    decision_path: str,
    served_data_path: str,
    retrain_data_path: str,
    retrain_data_uri: str,
    outcome_path: str,
    run_name: str = "",
    env: Mapping[str, str] | None = None,
) -> RetrainResult:
    """Read the decision; when it says retrain, build the new data and run or submit the training pipeline.

    Args:
        request: The trigger's parameters.
        decision_path: The monitor's decision JSON.
        served_data_path: The monitor's served rows (Parquet).
        retrain_data_path: Output directory: ``data.parquet``, the retraining data.
        retrain_data_uri: That directory's URI as the training run reads it (KFP's artifact URI on a cluster).
        outcome_path: Output: the outcome JSON.
        run_name: Name of the training run (default: derived from the deployed model's sha).
        env: The environment (default: ``os.environ``) -- where it runs decides ``auto``.
    """
    env = os.environ if env is None else env
    decision = read_decision(decision_path)
    if not decision["retrain"]:
        reasons = "; ".join(decision.get("reasons") or []) or "the monitor found no reason"
        result = RetrainResult(
            action="none",
            reason=f"no retrain: {reasons}",
            decisions=[Decision(STEP, "", "nothing done", f"the monitor decided no retrain ({reasons})")],
        )
        Path(retrain_data_path).mkdir(parents=True, exist_ok=True)
        write_json(outcome_path, result.as_dict())
        return result

    record = lineages.read(request.lineage_uri)
    mode, decisions = choose_mode(request, env)
    counts, taken = build_training_data(request, record, served_data_path, retrain_data_path)
    decisions += taken
    from kfp_tabular.components.common.model_dir import normalize_uri

    data_uri = normalize_uri(retrain_data_uri.rstrip("/") + "/" + DATA_FILE)
    arguments = request.training_arguments(
        {
            "data_uri": data_uri,
            "label_column": record.label_column,
            "baseline_model_uri": record.model_uri,
            "baseline_statistics_uri": request.training_parameters.get(
                "baseline_statistics_uri", record.statistics_uri
            ),
        }
    )
    check_training_arguments(arguments, env)
    reasons = "; ".join(decision.get("reasons") or [])
    result = RetrainResult(
        action="",
        reason=f"retrain: {reasons}",
        mode=mode,
        rows=counts,
        data_uri=data_uri,
        arguments=arguments,
        decisions=decisions,
    )
    name = run_name or f"retrain-{record.model_sha256[:12]}"
    if mode == "cluster":
        result.action = "submitted"
        result.run = submit(request, arguments, name, env, retrain_data_path)
        logger.info("submitted training run %s to %s", result.run["id"], result.run["host"])
    else:
        summary = run_locally(request, arguments, retrain_data_path, env)
        result.run = {
            "id": Path(summary["run_dir"]).name,
            "dir": summary["run_dir"],
            "succeeded": summary["succeeded"],
            "log_dir": summary["log_dir"],
        }
        if not summary["succeeded"]:
            write_json(outcome_path, {**result.as_dict(), "action": "failed", "error": summary["error"]})
            raise RuntimeError(
                f"the local training run {summary['run_dir']} failed in task {summary['failed_task'] or '?'}: "
                f"{summary['error']} (logs: {summary['log_dir']})"
            )
        result.action = "trained_locally"
        blessing = summary.get("blessing") or {}
        result.blessed = bool(blessing.get("blessed"))
        result.blessing_reasons = list(blessing.get("reasons") or [])
        result.promoted_to = summary.get("promoted_to") or ""
    write_json(outcome_path, result.as_dict())
    return result
