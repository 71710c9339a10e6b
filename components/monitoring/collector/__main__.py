r"""``python -m kfp_tabular.components.monitoring.collector``: receive KServe payload-logger events, write Parquet.

Example (the model server emits to it with ``--logger_url http://127.0.0.1:8090``)::

    python -m kfp_tabular.components.monitoring.collector --sink ./local_outputs/served \
        --roll-rows 10000 --roll-seconds 60 --port 8090 --model-metadata churn=./local_outputs/.../model
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Dict, List, Optional, Sequence, Tuple

from kfp_tabular.components.monitoring.collector.pairing import MODES
from kfp_tabular.components.monitoring.collector.settings import DEFAULT_MAX_BODY_BYTES


def build_parser() -> argparse.ArgumentParser:
    """Build the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m kfp_tabular.components.monitoring.collector",
        description="Receive KServe's payload-logger CloudEvents, pair requests with responses, write Parquet batches.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--sink", required=True, help="where batches go: a local directory, s3://bucket/prefix, gs://..."
    )
    parser.add_argument("--roll-rows", type=int, default=10_000, help="write a batch when it holds this many rows")
    parser.add_argument("--roll-seconds", type=float, default=60.0, help="... or when its first row is this old")
    parser.add_argument("--port", type=int, default=8090, help="HTTP port")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 in a pod)")
    parser.add_argument("--mode", choices=MODES, default="all", help="what the logger sends (its logger mode)")
    parser.add_argument("--pair-ttl", type=float, default=60.0, help="seconds a request waits for its response")
    parser.add_argument("--max-pending", type=int, default=10_000, help="events waiting for their pair, at most")
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES, help="largest event body")
    parser.add_argument(
        "--max-buffered-rows", type=int, default=1_000_000, help="rows waiting for the sink before events get 503"
    )
    parser.add_argument(
        "--model-sha",
        action="append",
        default=[],
        metavar="NAME=SHA256",
        help="model_sha256 of rows from model NAME when its events carry no modelsha256 extension (KServe's agent)",
    )
    parser.add_argument(
        "--model-metadata",
        action="append",
        default=[],
        metavar="NAME=URI",
        help="a model directory or its metadata.json (local or fsspec URL): names positional instances (V1 "
        "lists, a V2 matrix) by its feature_order and gives its model_sha256; one entry applies to every model",
    )
    parser.add_argument("--storage-options", default="{}", help="JSON object passed to fsspec for the sink")
    return parser


def _pairs(values: Sequence[str], option: str) -> List[Tuple[str, str]]:
    pairs = []
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise ValueError(f"{option} {value!r}: expected NAME=VALUE")
        pairs.append((name, rest))
    return pairs


def read_model_metadata(uri: str) -> Dict:
    """``metadata.json`` of a model directory (or the file itself), local or fsspec."""
    import fsspec

    path = uri if uri.endswith(".json") else uri.rstrip("/") + "/metadata.json"
    try:
        with fsspec.open(path, "rb") as handle:
            meta = json.loads(handle.read())
    except FileNotFoundError:
        raise ValueError(f"--model-metadata: {path} does not exist (expected a model directory or metadata.json)")
    except ValueError as exc:
        raise ValueError(f"--model-metadata: {path} is not JSON ({exc})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("feature_order"), list):
        raise ValueError(f"--model-metadata: {path} has no 'feature_order' list (a kfp-tabular metadata.json)")
    return meta


def settings_from(args: argparse.Namespace):
    """Build the collector's Settings from parsed arguments (ValueError naming the option when one is wrong)."""
    from kfp_tabular.components.monitoring.collector.settings import Settings

    for option in ("roll_rows", "max_pending", "max_body_bytes", "max_buffered_rows"):
        if getattr(args, option) < 1:
            raise ValueError(f"--{option.replace('_', '-')}: expected a positive integer, got {getattr(args, option)}")
    for option in ("roll_seconds", "pair_ttl"):
        if not getattr(args, option) > 0:
            raise ValueError(f"--{option.replace('_', '-')}: expected a positive number, got {getattr(args, option)}")
    try:
        storage_options = json.loads(args.storage_options)
    except ValueError as exc:
        raise ValueError(f"--storage-options: expected a JSON object ({exc})") from None
    if not isinstance(storage_options, dict):
        raise ValueError("--storage-options: expected a JSON object")
    model_sha, feature_order = {}, {}
    for name, uri in _pairs(args.model_metadata, "--model-metadata"):
        meta = read_model_metadata(uri)
        feature_order[name] = [str(n) for n in meta["feature_order"]]
        if meta.get("model_sha256"):
            model_sha[name] = str(meta["model_sha256"])
    for name, sha in _pairs(args.model_sha, "--model-sha"):
        model_sha[name] = sha
    return Settings(
        sink=args.sink,
        roll_rows=args.roll_rows,
        roll_seconds=args.roll_seconds,
        host=args.host,
        port=args.port,
        mode=args.mode,
        pair_ttl=args.pair_ttl,
        max_pending=args.max_pending,
        max_body_bytes=args.max_body_bytes,
        max_buffered_rows=args.max_buffered_rows,
        model_sha=model_sha,
        feature_order=feature_order,
        storage_options=storage_options,
    )


def main(argv: Optional[List[str]] = None) -> int:
    """Run the collector; 2 on a bad option, 1 when rows could not be written at shutdown."""
    from kfp_tabular.components.monitoring.collector.server import serve

    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"))
    log = logging.getLogger("kfp_tabular")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        settings = settings_from(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"collector: http://{settings.host}:{settings.port} -> {settings.sink} (batches of {settings.roll_rows} rows "
        f"or {settings.roll_seconds:g} s, mode {settings.mode}, pair TTL {settings.pair_ttl:g} s)",
        file=sys.stderr,
        flush=True,
    )
    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
