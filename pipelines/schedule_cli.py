"""``kfp-tabular schedule``: a recurring run of the monitoring (or training) pipeline on a KFP API server.

KFP cannot start a run on an event (kubeflow/pipelines #12834), so the loop is closed on a clock: a recurring run
of the monitoring pipeline every few hours reads the last window of served traffic and retrains when it drifted.

Cron: KFP's scheduler (robfig/cron with seconds) takes **6 fields**, ``second minute hour day-of-month month
day-of-week`` (``0 0 */6 * * *``). The usual 5-field cron (``0 */6 * * *``, minute first) is accepted too and sent
as 6 fields with second ``0``; the expression sent is printed. Descriptors (``@hourly``, ``@daily``, ...) pass
through. Each field is checked (values in range, ``*``, ``?``, ``a-b``, ``/step``, lists, month and weekday names)
so a typo fails here, naming the field, not later in the server's scheduler.

Catch-up is off by default (``no_catchup=True``): a schedule paused or behind runs once when it resumes, not once
per missed interval -- a monitoring run reads "the last window" anyway. ``--catchup`` turns it on.

Only the standard library at import time; kfp is imported when a schedule is created.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from kfp_tabular.components.common.errors import ConfigError

_ROOT = Path(__file__).resolve().parent
#: The committed, compiled pipelines a schedule can run.
PACKAGES = {
    "monitoring": _ROOT / "monitoring" / "monitor_and_retrain" / "pipeline.yaml",
    "training": _ROOT / "training" / "train_and_deploy" / "pipeline.yaml",
}
#: (name, low, high) of KFP's six cron fields.
FIELDS = (
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 6),
)
NAMES = {
    "month": {m: i + 1 for i, m in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split())},
    "day-of-week": {d: i for i, d in enumerate("SUN MON TUE WED THU FRI SAT".split())},
}
DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_ITEM = re.compile(r"^(?P<range>\*|\?|[0-9A-Za-z]+(?:-[0-9A-Za-z]+)?)(?:/(?P<step>[0-9]+))?$")


def _value(text: str, name: str, low: int, high: int, cron: str) -> int:
    names = NAMES.get(name, {})
    if text.upper() in names:
        return names[text.upper()]
    if not text.isdigit() or not low <= int(text) <= high:
        raise ConfigError(f"--cron {cron!r}: {name} {text!r} is not in {low}-{high}")
    return int(text)


def kfp_cron(expression: str) -> str:
    """Return the 6-field cron KFP's scheduler takes for a 5- or 6-field cron (or a descriptor).

    Raises:
        ConfigError: Naming the expression and the field that is wrong.
    """
    cron = " ".join(str(expression).split())
    if cron in DESCRIPTORS:
        return cron
    if cron.startswith("@"):
        raise ConfigError(f"--cron {expression!r}: descriptors are {', '.join(DESCRIPTORS)}; else give a cron")
    fields = cron.split(" ")
    if len(fields) == 5:
        fields = ["0", *fields]  # the usual cron, minute first: KFP's scheduler wants the seconds too
    elif len(fields) != 6:
        raise ConfigError(
            f"--cron {expression!r}: expected 5 fields (minute hour day-of-month month day-of-week) or KFP's 6 "
            f"(second first), got {len(fields)}"
        )
    for value, (name, low, high) in zip(fields, FIELDS):
        for item in value.split(","):
            match = _ITEM.match(item)
            if not match:
                raise ConfigError(f"--cron {expression!r}: {name} {item!r} is not a value, range, * or ? (with /step)")
            part = match.group("range")
            if part == "?" and name not in ("day-of-month", "day-of-week"):
                raise ConfigError(f"--cron {expression!r}: '?' is for day-of-month or day-of-week, not {name}")
            if part not in ("*", "?"):
                ends = [_value(end, name, low, high, expression) for end in part.split("-")]
                if len(ends) == 2 and ends[0] > ends[1]:
                    raise ConfigError(f"--cron {expression!r}: {name} range {part!r} runs backwards")
            step = match.group("step")
            if step is not None and not 1 <= int(step) <= high - low + 1:
                raise ConfigError(f"--cron {expression!r}: {name} step /{step} is not in 1-{high - low + 1}")
    return " ".join(fields)


def check_arguments(pipeline: str, arguments: dict) -> None:
    """Check the run's arguments with the pipeline's own parameter checks (a ConfigError names the first bad one)."""
    if pipeline == "monitoring":
        from kfp_tabular.pipelines.monitoring.monitor_and_retrain.parameters import check_parameters
    else:
        from kfp_tabular.pipelines.training.train_and_deploy.parameters import check_parameters
    check_parameters(arguments)


def create_schedule(
    host: str,
    cron: str,
    pipeline: str = "monitoring",
    arguments: dict | None = None,
    catchup: bool = False,
    name: str = "",
    experiment: str = "kfp-tabular",
    namespace: str = "",
    package: str = "",
    max_concurrency: int = 1,
    service_account: str = "",
) -> dict:
    """Create the recurring run; return ``{"id", "name", "cron", "no_catchup", "experiment_id", "package"}``."""
    if pipeline not in PACKAGES:
        raise ConfigError(f"--pipeline: expected one of {', '.join(PACKAGES)}, got {pipeline!r}")
    if max_concurrency < 1:
        raise ConfigError(f"--max-concurrency: expected a whole number >= 1, got {max_concurrency}")
    expression = kfp_cron(cron)
    arguments = dict(arguments or {})
    check_arguments(pipeline, arguments)
    path = Path(package) if package else PACKAGES[pipeline]
    if not path.is_file():
        raise ConfigError(f"--package: {path} is not a compiled pipeline file")
    from kfp.client import Client

    client = Client(host=host, namespace=namespace or None)
    found = client.create_experiment(experiment, namespace=namespace or None)
    name = name or f"kfp-tabular-{pipeline}"
    recurring = client.create_recurring_run(
        experiment_id=found.experiment_id,
        job_name=name,
        cron_expression=expression,
        max_concurrency=max_concurrency,
        no_catchup=not catchup,
        pipeline_package_path=str(path),
        params=arguments,
        service_account=service_account or None,
    )
    return {
        "id": recurring.recurring_run_id,
        "name": name,
        "cron": expression,
        "no_catchup": not catchup,
        "experiment_id": found.experiment_id,
        "package": str(path),
        "status": str(recurring.status),
    }


def _cmd_schedule(args: argparse.Namespace) -> int:
    from kfp_tabular.pipelines.cli import _parse_params

    made = create_schedule(
        host=args.host,
        cron=args.cron,
        pipeline=args.pipeline,
        arguments=_parse_params(args.param),
        catchup=args.catchup,
        name=args.name,
        experiment=args.experiment,
        namespace=args.namespace,
        package=args.package,
        max_concurrency=args.max_concurrency,
        service_account=args.service_account,
    )
    print(
        f"recurring run {made['id']} ({made['name']}): {args.pipeline} pipeline, cron {made['cron']!r} (KFP's 6 "
        f"fields, second first), catch-up {'off' if made['no_catchup'] else 'on'}, status {made['status']}, "
        f"experiment {made['experiment_id']} on {args.host}"
    )
    return 0


def add_parser(sub) -> None:
    """Register ``schedule`` on ``kfp-tabular``'s sub-command parsers."""
    p = sub.add_parser("schedule", help="create a recurring run (cron) of the monitoring or training pipeline on KFP")
    p.add_argument("--host", required=True, help="KFP API endpoint, e.g. http://localhost:8080")
    p.add_argument(
        "--cron",
        required=True,
        help="5 fields (minute hour day-of-month month day-of-week, sent with second 0) or KFP's 6 (second first), "
        "or @hourly/@daily/...",
    )
    p.add_argument("--pipeline", default="monitoring", choices=tuple(PACKAGES), help="which committed pipeline")
    p.add_argument("--package", default="", help="a compiled pipeline YAML of your own instead of the committed one")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="a pipeline parameter")
    p.add_argument("--catchup", action="store_true", help="run every missed interval after a pause (default: off)")
    p.add_argument("--name", default="", help="the recurring run's name (default: kfp-tabular-<pipeline>)")
    p.add_argument("--experiment", default="kfp-tabular")
    p.add_argument("--namespace", default="", help="Kubeflow profile namespace (multi-user mode)")
    p.add_argument("--max-concurrency", type=int, default=1, help="runs of this schedule at once (default 1)")
    p.add_argument("--service-account", default="", help="ServiceAccount the runs' pods use")
    p.set_defaults(func=_cmd_schedule)
