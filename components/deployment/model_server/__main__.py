"""``python -m kfp_tabular.components.deployment.model_server``: serve one model directory with KServe.

Every option of ``kserve.model_server.parser`` is accepted (``--http_port``, ``--workers``, ...). REST binds
``--host`` (default 127.0.0.1, this machine only; the cluster runtime passes ``--host 0.0.0.0``), which
KServe 0.21 itself cannot do (see ``server.HostModelServer``). gRPC is off unless ``--enable_grpc true``
(then give a free ``--grpc_port``; KServe binds it to ``[::]``).
"""

from __future__ import annotations

import argparse
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    """Build the command line: KServe's model server options plus the model to serve."""
    from kserve import model_server
    from kserve.utils.utils import strtobool

    from kfp_tabular.components.deployment.model_server.logger import LOGGER_MODES
    from kfp_tabular.components.deployment.model_server.schema import DEFAULT_POLICY, KINDS
    from kfp_tabular.components.deployment.model_server.server import (
        DEFAULT_HOST,
        DEFAULT_MAX_BODY_BYTES,
        ENV_PREDICT_PROBA,
    )

    parser = argparse.ArgumentParser(
        prog="python -m kfp_tabular.components.deployment.model_server",
        parents=[model_server.parser],
        description="Serve a kfp-tabular model directory (model.joblib + metadata.json) over KServe V1 and V2.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model_dir", help="directory holding exactly one *.joblib/*.pkl/*.pickle model file")
    source.add_argument(
        "--latest_under",
        metavar="ROOT",
        help=(
            "serve the local production model ROOT/production/current.json names, else the newest blessed run's "
            "model below ROOT/runs (e.g. ROOT=./local_outputs after `make run`)"
        ),
    )
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help="address the REST server binds: 127.0.0.1 for this machine only, 0.0.0.0 for all interfaces (in a pod)",
    )
    parser.add_argument(
        "--predict_proba",
        type=strtobool,
        default=None,
        help=f"V1 predictions are class probabilities instead of labels (default: ${ENV_PREDICT_PROBA} or false)",
    )
    parser.add_argument(
        "--schema_policy",
        default="default",
        help=(
            "what a value the training schema rules out gets: 'reject' (HTTP 400 naming each field), 'flag' "
            "(served, counted in /metrics and listed in the response's parameters), or kind=action pairs over "
            f"the defaults ({', '.join(f'{k}={DEFAULT_POLICY[k]}' for k in KINDS)})"
        ),
    )
    parser.add_argument(
        "--max_body_bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help="largest inference request body served; larger ones get HTTP 413",
    )
    parser.add_argument(
        "--model_threads",
        type=int,
        default=1,
        help="BLAS/OpenMP threads per predict (1 serves single rows fastest; 0 leaves the libraries' default)",
    )
    parser.add_argument(
        "--fast_path",
        type=strtobool,
        default=True,
        help="serve through the numpy path derived from model.joblib when it predicts the same on probe rows",
    )
    logging_group = parser.add_argument_group(
        "payload logging", "send KServe logger CloudEvents of each inference (our emulation of KServe's logger agent)"
    )
    logging_group.add_argument(
        "--logger_url", default=None, help="where to POST the events (e.g. the collector's URL); unset: no logging"
    )
    logging_group.add_argument(
        "--logger_mode", default="all", choices=LOGGER_MODES, help="log requests, responses or both"
    )
    logging_group.add_argument("--logger_source", default=None, help="ce-source (default: this server's URL)")
    logging_group.add_argument(
        "--logger_inference_service", default=None, help="ce-inferenceservicename (default: --model_name)"
    )
    logging_group.add_argument(
        "--logger_namespace", default=os.environ.get("POD_NAMESPACE", ""), help="ce-namespace (default: $POD_NAMESPACE)"
    )
    logging_group.add_argument("--logger_endpoint", default="default", help="ce-endpoint: default, or canary")
    logging_group.add_argument("--logger_component", default="predictor", help="ce-component")
    logging_group.add_argument(
        "--logger_queue_size", type=int, default=1000, help="events waiting to be sent; more are dropped (counted)"
    )
    logging_group.add_argument("--logger_workers", type=int, default=2, help="sender threads per server process")
    logging_group.add_argument("--logger_timeout", type=float, default=2.0, help="seconds per event sent")
    parser.set_defaults(enable_grpc=False)
    return parser


def logger_settings(args: argparse.Namespace):
    """Build the payload logger's settings from the command line; None when ``--logger_url`` is not set."""
    from kfp_tabular.components.deployment.model_server.logger import LoggerSettings

    if not args.logger_url:
        return None
    host = f"[{args.host}]" if ":" in args.host else args.host
    return LoggerSettings(
        url=args.logger_url,
        mode=args.logger_mode,
        source=args.logger_source or f"http://{host}:{args.http_port}/",
        inference_service=args.logger_inference_service or args.model_name,
        namespace=args.logger_namespace,
        component=args.logger_component,
        endpoint=args.logger_endpoint,
        queue_size=args.logger_queue_size,
        workers=args.logger_workers,
        timeout=args.logger_timeout,
    )


def _log_to_stderr() -> None:
    """Log this package at INFO on stderr (client errors one line each), beside KServe's own loggers."""
    import logging

    logger = logging.getLogger("kfp_tabular")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def main(argv: list[str] | None = None) -> int:
    """Load the model and run the server until it is stopped; return 2 when the model cannot be loaded."""
    from kfp_tabular.components.common.errors import ConfigError, DataError
    from kfp_tabular.components.deployment.model_server.model_files import select_local_model
    from kfp_tabular.components.deployment.model_server.server import HostModelServer, TabularModel

    args = build_parser().parse_args(argv)
    _log_to_stderr()
    try:
        payload_logger = logger_settings(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.model_dir:
            model_dir = args.model_dir
        else:
            choice = select_local_model(args.latest_under)
            model_dir = choice.model_dir
            print(f"model: {model_dir}: {choice.reason}", file=sys.stderr, flush=True)
        model = TabularModel(
            args.model_name,
            model_dir,
            predict_proba=args.predict_proba,
            schema_policy=args.schema_policy,
            model_threads=args.model_threads or None,
            fast_path=bool(args.fast_path),
        )
        model.load()
    except (DataError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"serving {model_dir} as '{args.model_name}' on http://{host}:{args.http_port} "
        f"(V1 /v1/models/{args.model_name}:predict, V2 /v2/models/{args.model_name}/infer)",
        file=sys.stderr,
        flush=True,
    )
    if payload_logger is not None:
        print(f"payload logging ({payload_logger.mode}) to {payload_logger.url}", file=sys.stderr, flush=True)
    server = HostModelServer(
        host=args.host,
        max_body_bytes=args.max_body_bytes,
        payload_logger=payload_logger,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        workers=args.workers,
        max_threads=args.max_threads,
        max_asyncio_workers=args.max_asyncio_workers,
        enable_grpc=args.enable_grpc,
        enable_docs_url=args.enable_docs_url,
        enable_latency_logging=args.enable_latency_logging,
        access_log_format=args.access_log_format,
        event_loop=args.event_loop,
        timeout_keep_alive=args.timeout_keep_alive,
    )
    server.start([model])
    return 0


if __name__ == "__main__":
    sys.exit(main())
