"""``kfp-tabular``: compile, run locally, submit to Kubeflow, and watch, promote or roll back a rollout.

Only the standard library is imported at module level, so ``--help`` is instant; each sub-command imports
what it needs (compile and submit import kfp, never TensorFlow).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from kfp_tabular.components.common.errors import ConfigError, KfpTabularError

DEFAULT_YAML = Path(__file__).resolve().parent / "training" / "train_and_deploy" / "pipeline.yaml"


def _parse_params(pairs: list[str]) -> dict:
    """``key=value`` pairs; values are JSON when they parse as JSON (numbers, booleans, lists, dicts)."""
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: --param expects key=value, got {pair!r}")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


def import_kfp_sdk_only() -> None:
    """Import kfp without ``kfp.Client`` (and the Kubernetes client it pulls in), which compile and run-local never use.

    ``import kfp`` imports its API client eagerly -- and with it the ``kubernetes`` package: 1.4 of the 1.8 s that
    ``import kfp`` takes here. kfp skips those imports when ``_KFP_RUNTIME=true`` (the flag its own executor sets in
    a task's container); it is set for the top-level ``import kfp`` only, so ``kfp.dsl`` and ``kfp.compiler``, imported
    afterwards, are complete. Nothing is lost: ``from kfp.client import Client`` still imports the client on demand.
    A no-op when kfp is already imported.
    """
    if "kfp" in sys.modules:
        return
    previous = os.environ.get("_KFP_RUNTIME")
    os.environ["_KFP_RUNTIME"] = "true"
    try:
        import kfp  # noqa: F401
    finally:
        if previous is None:
            del os.environ["_KFP_RUNTIME"]
        else:
            os.environ["_KFP_RUNTIME"] = previous


def compile_pipeline(output: str | Path = DEFAULT_YAML, digests: dict[str, str] | None = None, **storage) -> Path:
    """Compile the pipeline to IR YAML and return the path.

    Args:
        output: Where to write the YAML.
        digests: ``{image: "sha256:..."}``: name each of these images as ``image@sha256:...`` (see
            ``images.pin_images``); None keeps the readable tags (the committed pipeline).
        **storage: Cluster storage wiring for ``build_pipeline`` (storage_secret, model_store_pvc,
            model_store_mount); none gives the committed pipeline.
    """
    import_kfp_sdk_only()
    from kfp import compiler

    from kfp_tabular.pipelines.training.train_and_deploy.pipeline import build_pipeline

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline_func=build_pipeline(**storage), package_path=str(output))
    if digests:
        from kfp_tabular.components.common.images import pin_images

        output.write_text(pin_images(output.read_text(encoding="utf-8"), digests), encoding="utf-8")
    return output


def _cmd_compile(args: argparse.Namespace) -> int:
    storage = {"storage_secret": args.storage_secret, "model_store_pvc": args.model_store_pvc}
    if args.model_store_mount:
        storage["model_store_mount"] = args.model_store_mount
    if any(storage.values()) and Path(args.output).resolve() == DEFAULT_YAML.resolve():
        raise ConfigError("--output: give a path of your own; the committed pipeline.yaml has no storage wiring")
    digests = None
    if args.pin_digests:
        from kfp_tabular.components.common.images import built_digests

        if Path(args.output).resolve() == DEFAULT_YAML.resolve():
            raise ConfigError("--output: give a path of your own; the committed pipeline.yaml names readable tags")
        digests = built_digests(args.image_digests or None)
    path = compile_pipeline(args.output, digests=digests, **storage)
    print(f"compiled {path}")
    return 0


def _cmd_run_local(args: argparse.Namespace) -> int:
    from kfp_tabular.pipelines.training.train_and_deploy.console import third_party_warnings_to

    import_kfp_sdk_only()  # kfp.local runs the pipeline; kfp's API client is never used

    # Other packages' import-time warnings (google.api_core's Python-version FutureWarning) go to the run's log.
    with third_party_warnings_to() if not args.verbose else contextlib.nullcontext():
        from kfp_tabular.pipelines.training.train_and_deploy.run_local import format_summary, run_local

    params = _parse_params(args.param)
    summary = run_local(
        output_dir=args.output_dir,
        data_uri=args.data_uri,
        rows=args.rows,
        seed=args.seed,
        use_production_baseline=not args.no_baseline,
        runner=args.runner,
        console="verbose" if args.verbose else "tasks",
        warm=False if args.no_warm else None,
        **params,
    )
    print(format_summary(summary))
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(summary.as_dict(), indent=2, default=str), encoding="utf-8")
    return 0 if summary.succeeded else 1


def _cmd_submit(args: argparse.Namespace) -> int:
    from kfp_tabular.pipelines.training.train_and_deploy.parameters import check_parameters

    arguments = _parse_params(args.param)
    check_parameters(arguments)
    from kfp.client import Client

    client = Client(host=args.host, namespace=args.namespace or None)
    run = client.create_run_from_pipeline_package(
        str(args.package),
        arguments=arguments,
        run_name=args.run_name,
        experiment_name=args.experiment,
        service_account=args.service_account or None,
        enable_caching=False if args.no_cache else None,
    )
    print(f"submitted run {run.run_id} to {args.host}")
    return 0


def _cmd_rollout(args: argparse.Namespace) -> int:
    from kfp_tabular.components.deployment.kserve.client import load_api_client
    from kfp_tabular.components.deployment.kserve.status import get_status
    from kfp_tabular.components.deployment.promote.core import promote
    from kfp_tabular.components.deployment.rollback.core import rollback

    api_client = load_api_client(args.kubeconfig or "", args.context or "")
    try:
        if args.command == "promote":
            status = promote(args.name, args.namespace, api_client=api_client, timeout_seconds=args.timeout)
        elif args.command == "rollback":
            status = rollback(args.name, args.namespace, api_client=api_client, timeout_seconds=args.timeout)
        else:
            status = get_status(args.name, args.namespace, api_client=api_client)
    finally:
        api_client.close()
    print(json.dumps(status.as_dict(), indent=2, default=str))
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from kfp_tabular.components.data_processing.synthetic_data import core

    return core.main([args.output, "--rows", str(args.rows), "--seed", str(args.seed), "--variant", args.variant])


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of ``kfp-tabular``."""
    parser = argparse.ArgumentParser(prog="kfp-tabular", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("compile", help="compile the pipeline to IR YAML")
    p.add_argument("--output", default=str(DEFAULT_YAML), help="where to write the YAML (default: the committed one)")
    p.add_argument("--storage-secret", default="", help="Secret with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY for S3")
    p.add_argument("--model-store-pvc", default="", help="PVC mounted in the deploy task for publish_uri=pvc://")
    p.add_argument("--model-store-mount", default="", help="mount path of that PVC (default /mnt/model-store)")
    p.add_argument(
        "--pin-digests",
        action="store_true",
        help="name each image by the digest `make images` recorded (name@sha256:...), so a rebuilt image under "
        "the same tag is never served from KFP's cache",
    )
    p.add_argument("--image-digests", default="", help="digests file (default: $KFP_TABULAR_CACHE/images/digests.json)")
    p.set_defaults(func=_cmd_compile)

    p = sub.add_parser("run-local", help="run the pipeline on this machine with kfp.local")
    p.add_argument("--data-uri", default=None, help="CSV/Parquet to use (default: the bundled churn data)")
    p.add_argument("--rows", type=int, default=50_000, help="rows of the bundled default data")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--output-dir", default="local_outputs")
    p.add_argument("--no-baseline", action="store_true", help="ignore the local production model")
    p.add_argument(
        "--no-warm",
        action="store_true",
        help="a fresh interpreter per task, started when the task starts (as KFP_TABULAR_WARM=0)",
    )
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="any pipeline parameter")
    p.add_argument("--summary-json", default="", help="also write the run summary as JSON here")
    p.add_argument(
        "--runner",
        default="subprocess",
        choices=("subprocess", "docker"),
        help="subprocess: this environment; docker: every task in the pipeline image (podman's Docker API)",
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="stream everything kfp.local and the tasks print (by default: one line per task; either way each "
        "task's output is in <run directory>/logs/<task>.log)",
    )
    p.set_defaults(func=_cmd_run_local)

    p = sub.add_parser("submit", help="submit the compiled pipeline to a Kubeflow Pipelines API server")
    p.add_argument("--host", required=True, help="KFP API endpoint, e.g. http://localhost:8080")
    p.add_argument("--package", default=str(DEFAULT_YAML), help="compiled pipeline YAML")
    p.add_argument("--experiment", default="kfp-tabular")
    p.add_argument("--run-name", default=None)
    p.add_argument("--namespace", default="", help="Kubeflow profile namespace (multi-user mode)")
    p.add_argument("--service-account", default="", help="ServiceAccount the run's pods use")
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="run every step again (the cache key of ingest is the data_uri string, not the data's content)",
    )
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=_cmd_submit)

    for name, text in (
        ("promote", "send all traffic to the canary model (removes canaryTrafficPercent)"),
        ("rollback", "send all traffic back to the previous model and revert the canary"),
        ("status", "show the InferenceService's revisions and traffic"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--name", required=True, help="InferenceService name")
        p.add_argument("--namespace", required=True)
        p.add_argument("--kubeconfig", default="", help="default: in-cluster config, else ~/.kube/config")
        p.add_argument("--context", default="")
        p.add_argument("--timeout", type=int, default=600, help="seconds to wait for the traffic change")
        p.set_defaults(func=_cmd_rollout)

    from kfp_tabular.pipelines.rollout import cli as rollout_cli

    rollout_cli.add_parser(sub)

    from kfp_tabular.pipelines import schedule_cli

    schedule_cli.add_parser(sub)  # kfp-tabular schedule: a recurring run (cron) on a KFP API server

    from kfp_tabular.pipelines import lineage_cli

    lineage_cli.add_parser(sub)  # kfp-tabular lineage: a deployed model's chain back to its data and run

    p = sub.add_parser("generate-data", help="write the seeded churn dataset (default, drifted or noise)")
    p.add_argument("output")
    p.add_argument("--rows", type=int, default=50_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--variant", default="default", choices=("default", "drifted", "noise"))
    p.set_defaults(func=_cmd_generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``kfp-tabular``: bad input ends in one line naming the field, exit code 2."""
    from kfp_tabular.pipelines.rollout.cli import FlagError

    args = build_parser().parse_args(argv)
    command = args.command + (f" {args.rollout_command}" if args.command == "rollout" else "")
    try:
        return args.func(args)
    except (KfpTabularError, FlagError) as exc:
        print(f"kfp-tabular {command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
