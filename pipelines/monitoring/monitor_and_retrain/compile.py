"""Compile the monitoring pipeline to its committed IR YAML (``make compile``), or with storage wiring to your file.

``python -m kfp_tabular.pipelines.monitoring.monitor_and_retrain.compile [--output X] [--storage-secret S]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kfp_tabular.components.common.errors import ConfigError

DEFAULT_YAML = Path(__file__).resolve().parent / "pipeline.yaml"


def compile_pipeline(output: str | Path = DEFAULT_YAML, storage_secret: str = "") -> Path:
    """Compile the pipeline (with ``storage_secret``'s S3 keys given to both steps when set); return the path."""
    from kfp_tabular.pipelines.cli import import_kfp_sdk_only

    import_kfp_sdk_only()
    from kfp import compiler

    from kfp_tabular.pipelines.monitoring.monitor_and_retrain.pipeline import build_pipeline

    output = Path(output)
    if storage_secret and output.resolve() == DEFAULT_YAML.resolve():
        raise ConfigError("--output: give a path of your own; the committed pipeline.yaml has no storage wiring")
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline_func=build_pipeline(storage_secret=storage_secret), package_path=str(output))
    return output


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--output``, ``--storage-secret``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(DEFAULT_YAML))
    parser.add_argument("--storage-secret", default="", help="Secret with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
    args = parser.parse_args(argv)
    try:
        print(f"compiled {compile_pipeline(args.output, args.storage_secret)}")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
