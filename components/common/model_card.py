"""A model card per deployed model, from its lineage record: Markdown (the KFP UI renders it) and self-contained HTML.

The card says what the model is and where it came from, in the order a reviewer asks: where it serves, the data
it was trained on (URI, sha256, rows), the schema's features, its metrics against the thresholds, the blessing
and the baseline it beat, the evaluation's prediction distribution, and the run that produced it. Everything comes
from the lineage record (``common.lineage``) plus, optionally, the schema's features (:func:`schema_features`)
and the model's ``metadata.json`` (row counts, estimator); nothing is computed again.

Standard library only, except :func:`schema_features` (tensorflow_metadata, imported inside).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from kfp_tabular.components.common import artifacts
from kfp_tabular.components.common.chart_svg import esc
from kfp_tabular.components.common.errors import DataError


@dataclasses.dataclass(frozen=True)
class Serving:
    """Where the model serves (empty strings when it is not deployed, e.g. a rendered manifest or a local run)."""

    isvc_name: str = ""
    namespace: str = ""
    storage_uri: str = ""
    url: str = ""
    note: str = ""


def schema_features(schema_uri: str) -> list[dict[str, Any]]:
    """Read a TFDV schema (pbtxt, local path or fsspec URL) and return its features: name, type, presence, domain.

    Raises:
        DataError: The schema cannot be read or parsed (naming the file).
    """
    try:
        from google.protobuf import text_format
        from tensorflow_metadata.proto.v0 import schema_pb2
    except ImportError as exc:  # the serve env has no TFDV
        raise DataError(f"{schema_uri}: reading a schema needs tensorflow_metadata ({exc})") from exc
    try:
        if "://" in schema_uri:
            import fsspec

            from kfp_tabular.components.common.model_dir import normalize_uri

            with fsspec.open(normalize_uri(schema_uri), "r", encoding="utf-8") as handle:
                text = handle.read()
        else:
            with open(schema_uri, encoding="utf-8") as handle:
                text = handle.read()
        schema = text_format.Parse(text, schema_pb2.Schema())
    except (OSError, ValueError, text_format.ParseError) as exc:
        raise DataError(f"{schema_uri}: schema cannot be read ({type(exc).__name__}: {exc})") from exc
    features = []
    for feature in schema.feature:
        presence = feature.presence.min_fraction if feature.HasField("presence") else None
        domain = feature.WhichOneof("domain_info") or ""
        values = ""
        if domain == "domain":
            values = feature.domain
        elif domain == "string_domain":
            values = ", ".join(list(feature.string_domain.value)[:8]) + (
                " ..." if len(feature.string_domain.value) > 8 else ""
            )
        elif domain in ("int_domain", "float_domain"):
            values = _bounds(getattr(feature, domain))
        for inline in schema.string_domain:
            if domain == "domain" and inline.name == feature.domain:
                values = ", ".join(list(inline.value)[:8]) + (" ..." if len(inline.value) > 8 else "")
        features.append(
            {
                "name": feature.name,
                "type": schema_pb2.FeatureType.Name(feature.type),
                "min_fraction": presence,
                "values": values,
            }
        )
    return features


def _bounds(domain: Any) -> str:
    """Return a numeric domain's bounds as an interval; an absent bound is open (protobuf reads it as 0)."""
    low = f"{domain.min:g}" if domain.HasField("min") else ""
    high = f"{domain.max:g}" if domain.HasField("max") else ""
    if low and high:
        return f"[{low}, {high}]"
    return f">= {low}" if low else f"<= {high}" if high else ""


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None or value == "":
        return "-"
    return str(value)


def _rows(meta: dict) -> str:
    """Return the train split's rows, and how many were fitted when train sampled (metadata.json)."""
    split, fitted = meta.get("source_rows"), meta.get("train_rows")
    if split is None:
        return _fmt(fitted)
    return _fmt(split) if fitted in (None, split) else f"{split} ({fitted} fitted)"


def _threshold_rows(record: Any) -> list[tuple[str, str, str, str, str]]:
    """(metric, value, threshold, baseline, verdict) for each metric of the record."""
    blessing = record.blessing or {}
    thresholds = blessing.get("thresholds") or {}
    baseline = blessing.get("baseline_metrics") or {}
    rows = []
    for name in sorted(set(record.metrics) | set(thresholds)):
        value = record.metrics.get(name)
        bound = thresholds.get(name)
        verdict = "-"
        if isinstance(value, (int, float)) and isinstance(bound, (int, float)):
            lower_is_better = name in ("rmse", "mae", "mse", "log_loss", "brier")
            verdict = "pass" if (value <= bound if lower_is_better else value >= bound) else "FAIL"
        rows.append((name, _fmt(value), _fmt(bound), _fmt(baseline.get(name)), verdict))
    return rows


def _sections(
    record: Any, serving: Serving, features: list[dict] | None, metadata: dict | None
) -> list[tuple[str, list[str], list[tuple]]]:
    """Return the card's sections: (title, lines, table rows with a header row first), one source for both formats."""
    meta = metadata or {}
    blessing = record.blessing or {}
    sections: list[tuple[str, list[str], list[tuple]]] = []
    where = [
        ("InferenceService", f"{serving.namespace}/{serving.isvc_name}" if serving.isvc_name else "not deployed"),
        ("storage URI", serving.storage_uri or record.storage_uri or "-"),
    ]
    if serving.url:
        where.append(("URL", serving.url))
    sections.append(("Where it serves", [serving.note] if serving.note else [], [("what", "value"), *where]))
    model = [
        ("model sha256", record.model_sha256),
        ("model URI", record.model_uri),
        ("task", record.task),
        ("label", record.label_column),
        ("classes", ", ".join(map(str, record.classes)) if record.classes else "-"),
        ("positive class", _fmt(record.positive_class)),
    ]
    if meta.get("estimator"):
        model.append(("estimator", str(meta["estimator"])))
    sections.append(("Model", [], [("what", "value"), *model]))
    data = [
        (
            "training data",
            record.training_data.get("uri") or "-",
            record.training_data.get("hash") or "-",
            _rows(meta),
        ),
        ("source data", record.source_data.get("uri") or "-", record.source_data.get("hash") or "-", "-"),
    ]
    lines = [f"statistics: {record.statistics_uri}", f"schema: {record.schema_uri}"]
    sections.append(("Data", lines, [("data", "URI", "sha256", "rows"), *data]))
    if features is not None:
        rows = [(f["name"], f["type"], _fmt(f.get("min_fraction")), f.get("values") or "-") for f in features]
        sections.append(
            (
                f"Schema ({len(features)} features)",
                [],
                [("feature", "type", "presence (min fraction)", "domain"), *rows],
            )
        )
    verdict = "BLESSED" if blessing.get("blessed") else "NOT BLESSED"
    reasons = [f"blessing: {verdict}"] + [f"- {r}" for r in blessing.get("reasons") or []]
    if blessing.get("tolerance") is not None:
        reasons.append(f"tolerance against the baseline: {_fmt(blessing.get('tolerance'))}")
    sections.append(
        (
            "Metrics, thresholds and blessing",
            reasons,
            [("metric", "value", "threshold", "baseline", "threshold check"), *_threshold_rows(record)],
        )
    )
    if record.baseline_model:
        base = [("baseline model", record.baseline_model.get("uri") or "-", record.baseline_model.get("sha256") or "-")]
        sections.append(("Baseline", [], [("what", "URI", "sha256"), *base]))
    else:
        sections.append(("Baseline", ["no baseline model: judged on the thresholds alone"], []))
    dist = record.prediction_distribution
    if dist:
        edges, counts = dist["edges"], dist["counts"]
        bounds = ["-inf", *[_fmt(e) for e in edges]]
        uppers = [*[_fmt(e) for e in edges], "+inf"]
        rows = [(f"({lo}, {hi}]", str(c)) for lo, hi, c in zip(bounds, uppers, counts)]
        lines = [f"{dist.get('kind')}: {dist.get('what', '')}, {dist.get('rows', sum(counts))} eval rows"]
        sections.append(("Prediction distribution at evaluation", lines, [("bin", "count"), *rows]))
    run = record.run or {}
    sections.append(
        (
            "Run",
            [f"lineage record written {record.created_at}"],
            [
                ("what", "value"),
                ("run id", _fmt(run.get("id"))),
                ("run name", _fmt(run.get("name"))),
                ("pipeline", _fmt(run.get("pipeline"))),
            ],
        )
    )
    return sections


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(
    record: Any, serving: Serving = Serving(), features: list[dict] | None = None, metadata: dict | None = None
) -> str:
    """Return the model card as Markdown."""
    out = [f"# Model card: {record.label_column} {record.task} model {record.model_sha256[:16]}", ""]
    for title, lines, table in _sections(record, serving, features, metadata):
        out += [f"## {title}", ""]
        out += [line for line in lines] + ([""] if lines else [])
        if table:
            header, *rows = table
            out.append("| " + " | ".join(header) + " |")
            out.append("|" + "|".join("---" for _ in header) + "|")
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def to_html(
    record: Any, serving: Serving = Serving(), features: list[dict] | None = None, metadata: dict | None = None
) -> str:
    """Return the model card as one self-contained HTML page (``report_html``), with the distribution drawn."""
    from kfp_tabular.components.common import charts, report_html

    blessing = record.blessing or {}
    strip = [
        (
            "blessed" if blessing.get("blessed") else "not blessed",
            "yes" if blessing.get("blessed") else "no",
            "ok" if blessing.get("blessed") else "bad",
        ),
        ("metrics", len(record.metrics), "info"),
        ("serving", serving.isvc_name or "not deployed", "info"),
    ]
    body = [report_html.summary_strip(strip)]
    for title, lines, table in _sections(record, serving, features, metadata):
        body.append(f"<h2>{esc(title)}</h2>")
        body += [f"<p>{esc(line)}</p>" for line in lines]
        if title.startswith("Prediction distribution") and record.prediction_distribution:
            dist = record.prediction_distribution
            edges = [float(e) for e in dist["edges"]]
            step = (edges[-1] - edges[0]) / max(len(edges) - 1, 1) or 1.0
            lo = 0.0 if dist.get("kind") == "score" and edges[0] >= 0 else edges[0] - step
            hi = 1.0 if dist.get("kind") == "score" and edges[-1] <= 1 else edges[-1] + step
            svg = charts.histogram(
                {"evaluation": ([lo, *edges, hi], list(dist["counts"]))},
                title="prediction distribution at evaluation",
                x_label=str(dist.get("what", "")),
            )
            body.append(report_html.figure(svg, "the evaluation's predictions over the bins the monitor compares"))
        if table:
            header, *rows = table
            body.append("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
            body += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows]
            body.append("</table>")
    title = f"Model card: {record.label_column} {record.task} model {record.model_sha256[:16]}"
    run = record.run.get("name") or record.run.get("id") or "-"
    return report_html.page(title, "".join(body), subtitle=f"run {run}")


def write(
    record: Any,
    markdown_path: str | os.PathLike,
    html_path: str | os.PathLike,
    serving: Serving = Serving(),
    features: list[dict] | None = None,
    metadata: dict | None = None,
) -> None:
    """Write the card as Markdown and HTML (each atomically; a path "" is skipped)."""
    if markdown_path:
        artifacts.write_text(markdown_path, to_markdown(record, serving, features, metadata))
    if html_path:
        artifacts.write_text(html_path, to_html(record, serving, features, metadata))
