"""``kfp-tabular lineage``: trace a deployed model back to the data and the run that produced it.

* ``--name N [--namespace NS] [--kubeconfig K]``: reads the InferenceService, and for each model it serves (the
  stable one, and a canary when there is one) the predictor's annotations ``kfp-tabular.dev/model-sha256``,
  ``run-id`` and ``lineage-uri`` (written by the deploy step), then the lineage record at that URI (``s3://``,
  ``minio://``, ``gs://``, a local path; ``pvc://`` through ``--pvc-root``, where the claim is mounted here);
* ``--local [--output-dir D]``: the local production model of ``run-local`` (``<D>/production/current.json``),
  whose record is ``<D>/production/<run>/lineage.json``.

Prints the chain: revision -> model sha256 -> training data hash/URI -> statistics, schema -> metrics, blessing ->
baseline -> run; ``--json`` prints the records. A record must be about the model the annotation (or current.json)
names: a different sha256 is an error, not a silent mismatch. Errors are one line naming the flag, annotation or
field. Only the standard library at module level.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    """Add ``lineage`` to the sub-parsers of ``kfp-tabular``."""
    p = sub.add_parser(
        "lineage",
        help="trace a deployed model: revision -> model sha256 -> training data -> statistics, schema -> metrics, "
        "blessing -> baseline -> run",
    )
    p.add_argument("--name", default="", help="InferenceService name (cluster)")
    p.add_argument("--namespace", default="kfp-tabular", help="its namespace")
    p.add_argument("--kubeconfig", default="", help="default: in-cluster config, else ~/.kube/config")
    p.add_argument("--context", default="", help="kubeconfig context (default: the current one)")
    p.add_argument("--pvc-root", default="", help="where the pvc:// claim of a lineage-uri is mounted on this machine")
    p.add_argument("--local", action="store_true", help="the local production model of run-local instead")
    p.add_argument("--output-dir", default="local_outputs", help="run-local's output directory (with --local)")
    p.add_argument("--json", action="store_true", help="print the served models and their lineage records as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``kfp-tabular lineage``; bad input raises FlagError/DataError (one line, exit code 2)."""
    from kfp_tabular.pipelines.rollout.cli import FlagError

    if args.local and args.name:
        raise FlagError("--local: give either --local (the local production model) or --name (a cluster's)")
    if not args.local and not args.name:
        raise FlagError("--name: the InferenceService to trace is required (or --local for run-local's model)")
    served = local_lineage(args.output_dir) if args.local else cluster_lineage(args)
    if args.json:
        print(json.dumps(served, indent=2, sort_keys=True, default=str))
    else:
        print(format_chain(served))
    return 0


def local_lineage(output_dir: str) -> list[dict]:
    """Return the local production model's entry and lineage record (``run-local``'s ``production/``).

    Raises:
        FlagError: ``--output-dir`` holds no production model.
        DataError: Its lineage record is missing, malformed, or about another model.
    """
    from kfp_tabular.components.common import lineage
    from kfp_tabular.components.common.errors import DataError
    from kfp_tabular.pipelines.rollout.cli import FlagError

    current = Path(output_dir) / "production" / "current.json"
    if not current.is_file():
        raise FlagError(f"--output-dir: {current} does not exist: no blessed run-local model in {output_dir}")
    try:
        entry = json.loads(current.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DataError(f"{current}: not JSON ({exc})") from exc
    model_dir = entry.get("model_dir") if isinstance(entry, dict) else None
    if not isinstance(model_dir, str) or not model_dir:
        raise DataError(f"{current}: field 'model_dir' is missing")
    where = Path(model_dir).parent / lineage.FILE_NAME
    if not where.is_file():
        raise DataError(
            f"{where}: no lineage record for the production model of run {entry.get('run')!r} (promoted before "
            "run-local wrote lineage records): run run-local again"
        )
    record = lineage.read(where)
    sha = entry.get("model_sha256")
    if sha and sha != record.model_sha256:
        raise DataError(
            f"{where}: field 'model_sha256' is {record.model_sha256}, but {current} names model {sha}: the record "
            "is about another model"
        )
    card = Path(model_dir).parent / "model_card.md"
    return [
        {
            "where": f"local production ({current})",
            "role": "production",
            "revision": entry.get("run", ""),
            "traffic": None,
            "annotations": {},
            "lineage_uri": str(where),
            "model_card": str(card) if card.is_file() else "",
            "record": record.as_dict(),
        }
    ]


def served_predictors(obj: dict) -> list[dict]:
    """Return each model an InferenceService serves: role, revision, traffic percent and predictor spec."""
    from kfp_tabular.components.deployment.kserve.isvc import (
        KNATIVE,
        PREVIOUS_PREDICTOR_ANNOTATION,
        STATE_CANARY,
        annotations_of,
        canaries_of,
        mode_of,
        predictor_of,
        rollout_state,
    )
    from kfp_tabular.components.deployment.kserve.status import status_from_object

    status = status_from_object(obj)
    predictor = predictor_of(obj)
    if mode_of(obj) == KNATIVE:
        stable_revision = status.latest_rolledout_revision or status.latest_ready_revision
        if rollout_state(obj) != STATE_CANARY:
            return [{"role": "stable", "revision": stable_revision, "traffic": 100, "predictor": predictor}]
        percent = status.canary_traffic_percent
        try:
            recorded = json.loads(annotations_of(obj).get(PREVIOUS_PREDICTOR_ANNOTATION) or "{}")
        except ValueError:
            recorded = {}
        return [
            {
                "role": "stable",
                "revision": stable_revision,
                "traffic": None if percent is None else 100 - percent,
                "predictor": recorded if isinstance(recorded, dict) else {},
            },
            {"role": "canary", "revision": status.latest_created_revision, "traffic": percent, "predictor": predictor},
        ]
    canaries = canaries_of(obj)
    percent = (canaries[0].get("trafficPercent") if canaries else None) or 0
    out = [
        {
            "role": "stable",
            "revision": predictor.get("name") or "predictor",
            "traffic": 100 - percent,
            "predictor": predictor,
        }
    ]
    if canaries:
        canary = canaries[0].get("predictor") or {}
        out.append(
            {"role": "canary", "revision": canary.get("name") or "canary", "traffic": percent, "predictor": canary}
        )
    return out


def _readable(uri: str, pvc_root: str) -> str:
    """Return where this machine reads a lineage URI (``pvc://claim/path`` -> ``<pvc_root>/path``)."""
    from kfp_tabular.pipelines.rollout.cli import FlagError

    if not uri.startswith("pvc://"):
        return uri
    if not pvc_root:
        raise FlagError(f"--pvc-root: the lineage record {uri} is on a PersistentVolumeClaim: give where it is mounted")
    claim_path = uri[len("pvc://") :].split("/", 1)
    return str(Path(pvc_root) / (claim_path[1] if len(claim_path) > 1 else ""))


def cluster_lineage(args: argparse.Namespace) -> list[dict]:
    """Return each served model's annotations and lineage record (``--name``).

    Raises:
        ConfigError, DeployError: The cluster cannot be reached or the InferenceService does not exist.
        DataError: A predictor lacks the annotations, or its record is missing, malformed or about another model.
    """
    from kfp_tabular.components.common.errors import ConfigError
    from kfp_tabular.components.deployment.kserve.client import load_api_client, require
    from kfp_tabular.components.deployment.kserve.request import check_name, check_namespace
    from kfp_tabular.pipelines.rollout.cli import _as_flag_error

    flags = {"name": "--name", "namespace": "--namespace", "kubeconfig_path": "--kubeconfig"}
    try:
        check_name(args.name)
        check_namespace(args.namespace)
        api = load_api_client(args.kubeconfig, args.context)
    except ConfigError as exc:
        raise _as_flag_error(exc, flags) from exc
    try:
        obj = require(api, args.namespace, args.name)
    finally:
        api.close()
    return served_lineage(obj, args.pvc_root)


def served_lineage(obj: dict, pvc_root: str = "") -> list[dict]:
    """Return each model an InferenceService object serves with its annotations and lineage record.

    The monitoring side's entry point: ``[{"role": "stable"|"canary", "revision", "traffic", "annotations",
    "lineage_uri", "record"}, ...]``, stable first.

    Raises:
        DataError: A predictor lacks the lineage-uri annotation, or its record is missing, malformed or about
            another model than the predictor's model-sha256 annotation names.
    """
    from kfp_tabular.components.common import lineage
    from kfp_tabular.components.common.errors import DataError
    from kfp_tabular.components.deployment.kserve.isvc import (
        LINEAGE_URI_ANNOTATION,
        MODEL_SHA_ANNOTATION,
        PREDICTOR_ANNOTATION_KEYS_WE_OWN,
        ns_name,
    )

    where = f"InferenceService {ns_name(obj)}"
    served = []
    for entry in served_predictors(obj):
        annotations = (entry["predictor"].get("annotations") or {}) if isinstance(entry["predictor"], dict) else {}
        ours = {key: annotations.get(key, "") for key in PREDICTOR_ANNOTATION_KEYS_WE_OWN}
        uri = ours[LINEAGE_URI_ANNOTATION]
        if not uri:
            raise DataError(
                f"{where}: the {entry['role']} predictor has no {LINEAGE_URI_ANNOTATION} annotation (deployed "
                "before lineage was recorded, or not by kfp-tabular's deploy step): its lineage is unknown"
            )
        record = lineage.read(_readable(uri, pvc_root))
        sha = ours[MODEL_SHA_ANNOTATION]
        if sha and sha != record.model_sha256:
            raise DataError(
                f"{uri}: field 'model_sha256' is {record.model_sha256}, but {where}'s {entry['role']} predictor "
                f"serves {sha} ({MODEL_SHA_ANNOTATION}): the record is about another model"
            )
        served.append(
            {
                "where": where,
                "role": entry["role"],
                "revision": entry["revision"],
                "traffic": entry["traffic"],
                "annotations": ours,
                "lineage_uri": uri,
                "model_card": "",
                "record": record.as_dict(),
            }
        )
    return served


def _metrics(metrics: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(metrics.items()))


def format_chain(served: list[dict]) -> str:
    """Format each served model's chain, one arrow a link."""
    lines = []
    for entry in served:
        record = entry["record"]
        training, source = record["training_data"], record["source_data"]
        blessing = record.get("blessing") or {}
        baseline = record.get("baseline_model")
        run = record.get("run") or {}
        traffic = "" if entry["traffic"] is None else f", {entry['traffic']}% of the traffic"
        verdict = "BLESSED" if blessing.get("blessed") else "NOT BLESSED"
        lines += [
            f"{entry['where']}: {entry['role']} model{traffic}",
            f"  revision        {entry['revision'] or '-'}",
            f"  -> model        sha256 {record['model_sha256']}",
            f"                  {record['model_uri']} (serving from {record.get('storage_uri') or '-'})",
            f"  -> training data sha256 {training.get('hash') or 'unknown'}  {training.get('uri')}",
            f"                  source {source.get('uri') or 'unknown'} (sha256 {source.get('hash') or 'unknown'})",
            f"  -> statistics   {record['statistics_uri']}",
            f"     schema       {record['schema_uri']}",
            f"  -> metrics      {_metrics(record.get('metrics') or {}) or '-'}",
            f"     blessing     {verdict}: " + ("; ".join(blessing.get("reasons") or []) or "no reasons given"),
            "  -> baseline     "
            + (
                f"{baseline.get('uri')} (sha256 {baseline.get('sha256') or 'unknown'})"
                if baseline
                else "none (judged on the thresholds alone)"
            ),
            f"  -> run          {run.get('id') or '-'} ({run.get('name') or '-'}, "
            f"pipeline {run.get('pipeline') or '-'})",
            f"  lineage record  {entry['lineage_uri']} (written {record.get('created_at')})",
        ]
        if entry.get("model_card"):
            lines.append(f"  model card      {entry['model_card']}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
