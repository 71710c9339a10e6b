"""TFX's ingest + validate: CsvExampleGen -> StatisticsGen -> SchemaGen -> ExampleValidator with LocalDagRunner.

Runs in the TFX environment (``bench/tfx_env.sh``), never in the project's: it imports TFX and nothing of ours.
CsvExampleGen splits 80/20 by hash (4:1 buckets, as ingest's eval_fraction=0.2), StatisticsGen uses 100 quantile
buckets (as validate), SchemaGen infers the schema, ExampleValidator checks the eval and train statistics against
it. Beam runs in process (``--runner`` below, FnApiRunner by default, one worker). The last line of the output is a
JSON object: wall seconds of the whole run and per component (from ML Metadata's execution times).

    ~/.cache/kfp-tabular/tfx-1.16/bin/python bench/tfx_pipeline.py data.csv --workdir /tmp/tfx
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def build(csv_path: str, workdir: Path, beam_args: list[str]):
    """Build the four-component TFX pipeline on the CSV (linked into an input directory)."""
    import tensorflow_data_validation as tfdv
    from tfx import v1 as tfx

    input_dir = workdir / "input"
    input_dir.mkdir(parents=True, exist_ok=True)
    link = input_dir / Path(csv_path).name
    if not link.exists():
        os.symlink(os.path.abspath(csv_path), link)
    split = tfx.proto.SplitConfig(
        splits=[
            tfx.proto.SplitConfig.Split(name="train", hash_buckets=4),
            tfx.proto.SplitConfig.Split(name="eval", hash_buckets=1),
        ]
    )
    example_gen = tfx.components.CsvExampleGen(
        input_base=str(input_dir), output_config=tfx.proto.Output(split_config=split)
    )
    statistics_gen = tfx.components.StatisticsGen(
        examples=example_gen.outputs["examples"], stats_options=tfdv.StatsOptions(num_quantiles_histogram_buckets=100)
    )
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"])
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    return tfx.dsl.Pipeline(
        pipeline_name="bench-ingest-validate",
        pipeline_root=str(workdir / "root"),
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(workdir / "metadata.sqlite")
        ),
        components=[example_gen, statistics_gen, schema_gen, example_validator],
        enable_cache=False,
        beam_pipeline_args=beam_args,
    )


def component_seconds(db_path: Path) -> dict[str, float]:
    """Each execution's wall seconds as ML Metadata recorded them (create -> last update), by component type."""
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(db_path)
    store = metadata_store.MetadataStore(config)
    types = {t.id: t.name for t in store.get_execution_types()}
    out = {}
    for execution in store.get_executions():
        name = types.get(execution.type_id, str(execution.type_id)).rsplit(".", 1)[-1]
        out[name] = (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000
    return out


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run, print the report and the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1])
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("csv", help="the CSV to ingest")
    parser.add_argument("--workdir", required=True, help="pipeline root, ML Metadata and the input link go here")
    parser.add_argument("--runner", default="FnApiRunner", help="Beam runner (default FnApiRunner: in process)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    from tfx import v1 as tfx

    workdir = Path(args.workdir)
    pipeline = build(args.csv, workdir, [f"--runner={args.runner}", "--direct_num_workers=1"])
    imported = time.perf_counter() - started
    tfx.orchestration.LocalDagRunner().run(pipeline)
    total = time.perf_counter() - started
    try:
        components = component_seconds(workdir / "metadata.sqlite")
    except Exception as exc:  # the per-component split is a detail; the total is the measurement
        components = {"error": f"{type(exc).__name__}: {exc}"}
    anomalies = sorted(str(p.relative_to(workdir)) for p in (workdir / "root").rglob("SchemaDiff.pb"))
    print(
        json.dumps(
            {
                "seconds_in_process": total,
                "import_and_build_seconds": imported,
                "components": components,
                "anomalies_files": anomalies,
                "runner": args.runner,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
