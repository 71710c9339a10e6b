"""Publishing a model directory where KServe can pull it: S3 (MinIO) or a PersistentVolumeClaim.

Published models are immutable and content-addressed: the deploy step publishes under
``<publish_uri>/<first 16 hex of the model file's sha256>``, so a storageUri names exactly one model.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kfp_tabular.components.common.artifacts import atomic_path, sha256_file, sha256_stream
from kfp_tabular.components.common.errors import ConfigError, DataError, DeployError
from kfp_tabular.components.common.model_dir import MODEL_FILE, manifest, upload_order


def _s3_endpoint(s3_endpoint_url: str) -> str:
    if s3_endpoint_url:
        return s3_endpoint_url
    for var in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        if os.environ.get(var):
            return os.environ[var]
    endpoint = os.environ.get("S3_ENDPOINT", "")  # the variable KServe's storage initializer reads
    if endpoint and "://" not in endpoint:
        endpoint = ("https://" if os.environ.get("S3_USE_HTTPS", "1") != "0" else "http://") + endpoint
    return endpoint


def _remote_sha256(fs: Any, path: str) -> str:
    with fs.open(path, "rb") as handle:
        return sha256_stream(handle)


def _publish_s3(model_dir: Path, files: dict[str, str], bucket: str, prefix: str, endpoint: str) -> str:
    import s3fs

    uri = f"s3://{bucket}/{prefix}"
    client_kwargs = {"endpoint_url": endpoint} if endpoint else {}
    fs = s3fs.S3FileSystem(client_kwargs=client_kwargs, skip_instance_cache=True)
    root = f"{bucket}/{prefix}"
    try:
        existing = sorted(fs.find(root))
    except FileNotFoundError:
        existing = []
    except Exception as exc:  # botocore raises many types: name the target and the endpoint
        raise DeployError(f"{uri}: cannot list the target (endpoint {endpoint or 'AWS default'}): {exc}") from exc
    remote = {p[len(root) + 1 :]: _remote_sha256(fs, p) for p in existing}
    if remote == files:
        return uri
    foreign = sorted(rel for rel, digest in remote.items() if files.get(rel) != digest)
    if foreign:
        raise ConfigError(
            f"target_uri: {uri} already holds a different model ({', '.join(foreign)} not in this model or with "
            "other content); published models are immutable so that a storageUri names exactly one model: publish "
            "to a new path"
        )
    # Empty, or what an interrupted publish of this very model left (some of its files, same sha256): upload
    # the rest. Since metadata.json goes last, a reader never sees metadata.json without the model file.
    uploaded: list[str] = []
    try:
        for rel in upload_order(files):
            if rel in remote:
                continue
            fs.put_file(str(model_dir / rel), f"{root}/{rel}")
            uploaded.append(f"{root}/{rel}")
        fs.invalidate_cache()
        for rel in upload_order(files):
            got = _remote_sha256(fs, f"{root}/{rel}")
            if got != files[rel]:
                raise DataError(f"{uri}/{rel}: sha256 after upload is {got}, expected {files[rel]}")
    except BaseException:
        for path in uploaded:
            try:
                fs.rm_file(path)
            except Exception:  # noqa: BLE001 - best effort cleanup; the original error is what matters
                pass
        raise
    return uri


def _publish_pvc(model_dir: Path, files: dict[str, str], claim: str, sub_path: str, mount_root: str) -> str:
    uri = f"pvc://{claim}/{sub_path}"
    if not mount_root:
        raise ConfigError(
            f"pvc_mount_root: needed to publish to {uri}: the local directory where claim {claim!r} is mounted "
            "(kfp-kubernetes mount_pvc mount_path)"
        )
    root = Path(mount_root)
    if not root.is_dir():
        raise ConfigError(f"pvc_mount_root: {mount_root} is not a directory (is claim {claim!r} mounted there?)")
    dest = (root / sub_path).resolve()
    if root.resolve() not in dest.parents:
        raise ConfigError(f"target_uri: path {sub_path!r} of {uri} leaves the claim's mount {mount_root}")
    if dest.exists():
        existing = {p.relative_to(dest).as_posix(): sha256_file(p) for p in dest.rglob("*") if p.is_file()}
        if existing == files:
            return uri
        raise ConfigError(
            f"target_uri: {uri} ({dest}) already holds a different model; published models are immutable: "
            "publish to a new path"
        )
    with atomic_path(dest) as staged:
        staged.mkdir()
        for rel in upload_order(files):
            target = staged / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(model_dir / rel, target)
            got = sha256_file(target)
            if got != files[rel]:
                raise DataError(f"{target}: sha256 after copy is {got}, expected {files[rel]}")
    return uri


def publish_model(model_dir: str, target_uri: str, *, s3_endpoint_url: str = "", pvc_mount_root: str = "") -> str:
    """Copy a model directory to storage KServe can pull from, verify it, and return its storageUri.

    Published models are immutable: publishing the same files to the same place again is a no-op, different
    files are refused. On S3 the model file goes first and ``metadata.json`` last, each read back and
    checked against the source sha256 (objects uploaded by this call are removed again if a check fails).
    An S3 prefix holding some of this model's files with matching sha256 (a publish that was killed midway)
    is completed rather than refused. On a PVC the directory is staged beside the target and renamed into
    place only once every copy checked out.

    Args:
        model_dir: The Model artifact directory (``model.joblib`` + ``metadata.json``).
        target_uri: ``s3://bucket/prefix`` (``minio://`` accepted) or ``pvc://claim/path``.
        s3_endpoint_url: S3-compatible endpoint (MinIO); defaults to ``$AWS_ENDPOINT_URL_S3``,
            ``$AWS_ENDPOINT_URL`` or KServe's ``$S3_ENDPOINT``/``$S3_USE_HTTPS``, else AWS.
        pvc_mount_root: Where the claim is mounted in this pod (needed for ``pvc://``).

    Returns:
        The storageUri for the InferenceService (``s3://...`` or ``pvc://...``).

    Raises:
        DataError: The model directory breaks the contract, or a checksum differs after the copy.
        ConfigError: The target is unsupported, not empty with other files, or the mount is missing.
        DeployError: The object store cannot be reached.
    """
    src = Path(model_dir)
    return _publish(src, manifest(src), target_uri, s3_endpoint_url, pvc_mount_root)


def publish_versioned(
    model_dir: str,
    prefix_uri: str,
    *,
    files: dict[str, str] | None = None,
    s3_endpoint_url: str = "",
    pvc_mount_root: str = "",
) -> str:
    """Publish a model under ``<prefix_uri>/<first 16 hex of its model file's sha256>`` (see :func:`publish_model`).

    Every file of the model directory is hashed once: the same hashes name the version and check the copy.

    Args:
        model_dir: The Model artifact directory.
        prefix_uri: ``s3://bucket/prefix`` (``minio://`` accepted) or ``pvc://claim/path``.
        files: ``model_dir.manifest(model_dir)`` if the caller has it already (it is not computed again).
        s3_endpoint_url: As for :func:`publish_model`.
        pvc_mount_root: As for :func:`publish_model`.

    Returns:
        The storageUri of the published model.
    """
    src = Path(model_dir)
    files = files or manifest(src)
    if not isinstance(prefix_uri, str) or not prefix_uri:
        raise ConfigError(f"publish_uri: expected s3://bucket/prefix or pvc://claim/path, got {prefix_uri!r}")
    target = f"{prefix_uri.rstrip('/')}/{files[MODEL_FILE][:16]}"
    return _publish(src, files, target, s3_endpoint_url, pvc_mount_root)


def _publish(src: Path, files: dict[str, str], target_uri: str, s3_endpoint_url: str, pvc_mount_root: str) -> str:
    if not isinstance(target_uri, str) or not target_uri:
        raise ConfigError(f"target_uri: expected s3://bucket/prefix or pvc://claim/path, got {target_uri!r}")
    parts = urlsplit(target_uri)
    scheme = parts.scheme.lower()
    location = parts.path.strip("/")
    if scheme in ("s3", "minio"):
        if not parts.netloc or not location:
            raise ConfigError(f"target_uri: expected s3://bucket/prefix (not a bucket root), got {target_uri!r}")
        return _publish_s3(src, files, parts.netloc, location, _s3_endpoint(s3_endpoint_url))
    if scheme == "pvc":
        if not parts.netloc or not location:
            raise ConfigError(f"target_uri: expected pvc://claim/path, got {target_uri!r}")
        return _publish_pvc(src, files, parts.netloc, location, pvc_mount_root)
    raise ConfigError(f"target_uri: expected s3://, minio:// or pvc://, got {target_uri!r}")
