"""The deploy step's lineage: the record of the model it deploys, written as an artifact and beside it; its card.

Where the record goes:

* always the deploy step's ``lineage`` output artifact (its URI is the ``kfp-tabular.dev/lineage-uri`` annotation
  when the model is not published: ``minio://`` on a cluster, a local path under kfp.local);
* when the model is published under ``publish_uri``: also ``<publish_uri>/lineage/<sha16>/<run key>.json``, outside
  the versioned model directory ``<publish_uri>/<sha16>`` (whose one-model-file rule and checksummed manifest stay
  as they are), one immutable file per run that deployed that model (a retrained model can hash the same: each run
  keeps its own record). That URI is then the annotation, so the record lives as long as the published model does.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from urllib.parse import urlsplit

from kfp_tabular.components.common import artifacts, blessing, lineage, model_card, model_dir
from kfp_tabular.components.common.errors import ConfigError, DataError, DeployError


@dataclasses.dataclass(frozen=True)
class LineageInputs:
    """What the deploy step knows about the model's origin (the validate step's outputs, the train split, the run).

    Attributes:
        statistics_uri: Validate's train statistics artifact URI.
        schema_uri: Validate's schema artifact URI.
        training_data_uri: The train split artifact URI (ingest's ``train_data``).
        schema_path: The schema on this machine (for the model card's features; "" to leave them out).
        lineage_path: Where to write the record (the ``lineage`` artifact's path).
        lineage_uri: That artifact's URI (what the annotation names when the model is not published).
        model_card_path: Where to write the card's Markdown ("" : not written).
        model_card_html_path: Where to write its HTML ("" : not written).
    """

    statistics_uri: str
    schema_uri: str
    training_data_uri: str
    lineage_path: str
    lineage_uri: str = ""
    schema_path: str = ""
    model_card_path: str = ""
    model_card_html_path: str = ""


def run_key(run: dict, created_at: str) -> str:
    """Return a file-name-safe key for a run: its id, else its name, else the record's creation time."""
    raw = str(run.get("id") or run.get("name") or created_at)
    return re.sub(r"[^A-Za-z0-9._-]+", "-", raw).strip("-.") or "run"


def build_record(
    inputs: LineageInputs,
    *,
    blessing_path: str,
    model_path: str,
    model_uri: str,
    run: dict,
    storage_uri: str,
) -> lineage.LineageRecord:
    """Build the model's lineage record from its metadata.json and blessing (``lineage.build``)."""
    metadata = model_dir.read_metadata(model_path) or {}
    if "model_sha256" not in metadata:
        metadata = {**metadata, "model_sha256": model_dir.manifest(model_path)[model_dir.MODEL_FILE]}
    verdict = blessing.read(blessing_path)
    baseline_sha = None
    if verdict.baseline_model_dir:
        baseline_sha = _baseline_sha(verdict.baseline_model_dir)
    return lineage.build(
        metadata,
        verdict,
        model_uri=model_uri,
        statistics_uri=inputs.statistics_uri,
        schema_uri=inputs.schema_uri,
        training_data_uri=inputs.training_data_uri,
        run=run,
        storage_uri=storage_uri,
        baseline_sha256=baseline_sha,
    )


def _baseline_sha(baseline_dir: str) -> str | None:
    """Return the baseline model's sha256 from its metadata.json if readable here (None otherwise: not guessed)."""
    try:
        if "://" in baseline_dir:
            import fsspec

            with fsspec.open(model_dir.normalize_uri(baseline_dir.rstrip("/") + "/metadata.json"), "rb") as handle:
                meta = json.loads(handle.read())
        else:
            meta = model_dir.read_metadata(baseline_dir) or {}
    except Exception:  # noqa: BLE001 - the record says null: unknown, rather than failing a deploy on it
        return None
    sha = meta.get("model_sha256") if isinstance(meta, dict) else None
    return sha if isinstance(sha, str) and len(sha) == 64 else None


def publish_record(
    record: lineage.LineageRecord, publish_uri: str, *, s3_endpoint_url: str = "", pvc_mount_root: str = ""
) -> str:
    """Write the record at ``<publish_uri>/lineage/<sha16>/<run key>.json`` once; return that URI.

    Raises:
        ConfigError: The target exists with other content (records are immutable), or the PVC mount is missing.
        DeployError: The object store cannot be written.
    """
    rel = f"lineage/{record.model_sha256[:16]}/{run_key(record.run, record.created_at)}.json"
    uri = f"{publish_uri.rstrip('/')}/{rel}"
    data = (json.dumps(record.as_dict(), indent=2, sort_keys=True) + "\n").encode()
    parts = urlsplit(publish_uri)
    if parts.scheme == "pvc":
        if not pvc_mount_root or not Path(pvc_mount_root).is_dir():
            raise ConfigError(f"pvc_mount_root: needed to write the lineage record to {uri}, got {pvc_mount_root!r}")
        target = Path(pvc_mount_root) / parts.path.strip("/") / rel
        if target.exists():
            if target.read_bytes() != data:
                raise ConfigError(f"publish_uri: {uri} already holds another lineage record (records are immutable)")
            return uri
        target.parent.mkdir(parents=True, exist_ok=True)
        with artifacts.atomic_path(target) as staged:
            staged.write_bytes(data)
        return uri
    import s3fs

    from kfp_tabular.components.deployment.kserve.publish import _s3_endpoint

    endpoint = _s3_endpoint(s3_endpoint_url)
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint} if endpoint else {}, skip_instance_cache=True)
    key = f"{parts.netloc}/{parts.path.strip('/')}/{rel}"
    s3_uri = f"s3://{key}"
    try:
        if fs.exists(key):
            if fs.cat_file(key) != data:
                raise ConfigError(f"publish_uri: {s3_uri} already holds another lineage record (records are immutable)")
            return s3_uri
        fs.pipe_file(key, data)  # one PUT: readers see the whole record or none
    except ConfigError:
        raise
    except Exception as exc:  # botocore raises many types: name the target and the endpoint
        where = endpoint or "AWS default"
        raise DeployError(f"{s3_uri}: cannot write the lineage record (endpoint {where}): {exc}") from exc
    return s3_uri


def write_outputs(
    record: lineage.LineageRecord, inputs: LineageInputs, serving: model_card.Serving, metadata: dict | None = None
) -> None:
    """Write the record (the lineage artifact) and the model card (Markdown + HTML)."""
    lineage.write(inputs.lineage_path, record)
    features = None
    if inputs.schema_path:
        try:
            features = model_card.schema_features(inputs.schema_path)
        except DataError as exc:
            serving = dataclasses.replace(serving, note=f"{serving.note} (schema features not shown: {exc})".strip())
    model_card.write(record, inputs.model_card_path, inputs.model_card_html_path, serving, features, metadata)
