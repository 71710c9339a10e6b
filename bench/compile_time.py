"""Compile: ``kfp-tabular compile`` against compiling a trivial one-step KFP pipeline, each in a fresh interpreter.

- ours: ``python -m kfp_tabular.pipelines.cli compile --output <tmp>`` (imports the five components, builds the
  pipeline, writes the IR YAML);
- baseline: a script defining one ``@dsl.component`` and a one-task ``@dsl.pipeline`` and compiling it with
  ``kfp.compiler.Compiler`` (the cost of importing kfp and compiling anything).

Each is a subprocess, best of ``--repeat`` wall times; it prints both and the ratio ours/trivial.

    .venv/bin/python bench/compile_time.py
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import benchlib as bl

TRIVIAL = """
import sys
from kfp import compiler, dsl

@dsl.component
def hello(name: str) -> str:
    return "hello " + name

@dsl.pipeline(name="trivial")
def trivial(name: str = "world"):
    hello(name=name)

compiler.Compiler().compile(pipeline_func=trivial, package_path=sys.argv[1])
"""


def best(repeat: int, command: list[str], what: str) -> bl.Measured:
    """Run a command ``repeat`` times; return the fastest run."""
    runs = [bl.measure(command).check(what) for _ in range(repeat)]
    return min(runs, key=lambda m: m.seconds)


def compare(repeat: int) -> dict:
    """Time both compilations."""
    with tempfile.TemporaryDirectory(prefix="bench-compile-") as tmp:
        script = Path(tmp) / "trivial.py"
        script.write_text(TRIVIAL, encoding="utf-8")
        ours = best(
            repeat, [bl.PY, "-m", "kfp_tabular.pipelines.cli", "compile", "--output", f"{tmp}/ours.yaml"], "compile"
        )
        trivial = best(repeat, [bl.PY, str(script), f"{tmp}/trivial.yaml"], "trivial compile")
    return {
        "repeat": repeat,
        "ours": {"seconds": ours.seconds, "peak_rss_mb": ours.peak_rss_mb},
        "trivial": {"seconds": trivial.seconds, "peak_rss_mb": trivial.peak_rss_mb},
        "ratio": ours.seconds / trivial.seconds,
    }


def report(result: dict) -> str:
    """Format the result as one line."""
    ours, trivial = result["ours"], result["trivial"]
    return (
        f"compile (best of {result['repeat']}, fresh interpreter): ours {bl.fmt_s(ours['seconds'])} "
        f"(peak {bl.fmt_mb(ours['peak_rss_mb'])}), trivial one-step pipeline {bl.fmt_s(trivial['seconds'])} "
        f"(peak {bl.fmt_mb(trivial['peak_rss_mb'])}): ours/trivial {result['ratio']:.2f}x"
    )


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run, print the report and the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1])
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", default="", help="also write the result as JSON here")
    args = parser.parse_args(argv)
    bl.load_line("start")
    result = compare(args.repeat)
    print(report(result), flush=True)
    end = bl.load_line("end")
    bl.write_result(args.json, {"bench": "compile_time", **result, "load_end": end})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
