"""Reading one revision's request, latency and prediction metrics from Prometheus over a window.

:class:`PrometheusReader` sends instant queries to Prometheus's HTTP API (``/api/v1/query``) evaluated at the
window's end over a ``[<N>s]`` range as long as the window, one query per quantity, from PromQL templates with
``{selector}`` (the revision's label matchers) and ``{window}`` placeholders (:data:`TEMPLATES`, overridable).

Counts (:func:`counted`) are exact differences between the last scrape before the window and the last scrape in
it, per series: no ``increase()`` extrapolation (which over-counts traffic confined inside a short window by up
to ``w / (w - 2.2 s)``), series born inside the window counted from zero (``increase()`` misses what a series'
first sample holds: all of a burst, a revision's first 5xx), ``increase()`` only for a series reset in the window
(a restarted server). docs/rollouts.md ("Counting over a window") has the measurements. Standard library only.
"""

from __future__ import annotations

import dataclasses
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from kfp_tabular.components.common.errors import ConfigError, DeployError

ROLES = ("stable", "canary")
#: Upper bounds (``le``) of ``kfp_tabular_prediction_score``'s buckets: 20 of width 0.05 over [0, 1], then +Inf.
#: ``RevisionMetrics.score_counts[i]`` counts the predictions in ``(BIN_EDGES[i-1], BIN_EDGES[i]]``.
BIN_EDGES: tuple[float, ...] = (*(round(0.05 * i, 2) for i in range(1, 21)), math.inf)


@dataclasses.dataclass(frozen=True)
class Window:
    """An analysis window in unix seconds (``start`` < ``end``)."""

    start: float
    end: float

    def __post_init__(self) -> None:
        """Check the bounds."""
        for name in ("start", "end"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"window.{name}: expected unix seconds, got {value!r}")
        if self.end <= self.start:
            raise ConfigError(f"window: expected end > start, got start={self.start} end={self.end}")

    @property
    def seconds(self) -> float:
        """The window's length in seconds."""
        return self.end - self.start

    def promql_range(self) -> str:
        """Return the window's length as a PromQL range (``60s``, or ``1500ms`` when not whole seconds)."""
        millis = max(1, round(self.seconds * 1000))
        return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


@dataclasses.dataclass(frozen=True)
class RevisionMetrics:
    """What one revision (stable or canary) did in a window."""

    role: str
    selector: str
    requests: float
    server_errors: float
    client_errors: float
    p99_seconds: float | None
    score_counts: tuple[float, ...]

    @property
    def success_rate(self) -> float | None:
        """1 - server_errors / requests; None without requests (4xx are the client's)."""
        if not self.requests:
            return None
        return max(0.0, 1.0 - self.server_errors / self.requests)

    @property
    def predictions(self) -> float:
        """The number of predictions counted in the score bins."""
        return float(sum(self.score_counts))

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (with the success rate)."""
        out = dataclasses.asdict(self)
        out["score_counts"] = list(self.score_counts)
        out["success_rate"] = self.success_rate
        return out


@dataclasses.dataclass(frozen=True)
class QueryTemplates:
    """PromQL of each quantity with ``{selector}`` and ``{window}`` placeholders (replaced literally).

    ``score_buckets`` must return one sample per bucket labelled ``le`` (cumulative, as Prometheus histograms);
    an empty ``score_buckets`` means predictions are not measured (the drift check then says so).
    """

    requests: str
    server_errors: str
    client_errors: str
    p99: str
    score_buckets: str

    def __post_init__(self) -> None:
        """Each query is a string; all but score_buckets use {selector} and {window}."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, str):
                raise ConfigError(f"prometheus_queries.{field.name}: expected a PromQL string, got {value!r}")
            if field.name == "score_buckets" and not value:
                continue
            for placeholder in ("{selector}", "{window}"):
                if placeholder not in value:
                    raise ConfigError(
                        f"prometheus_queries.{field.name}: expected a PromQL string containing {placeholder}, "
                        f"got {value!r}"
                    )

    def render(self, name: str, selector: str, window: str) -> str:
        """Return the query ``name`` for a selector and a PromQL range."""
        return getattr(self, name).replace("{selector}", selector).replace("{window}", window)


def counted(metric: str, matchers: str = "", by: str = "") -> str:
    """Return PromQL summing a counter's growth over ``{window}``, exactly where it can be.

    Per series, the first of:

    1. ``x - x offset {window}`` when the series was not reset (``resets()`` 0, difference not negative): the
       exact number of increments between the last scrape before the window and the last scrape in it;
    2. ``increase(x[{window}])`` for a series that existed at the start and was reset (a restarted server);
    3. ``max_over_time(x[{window}])`` for a series born inside the window (it started at zero): ``increase()``
       would miss what its first sample held, all of a burst (a revision's first 5xx).

    ``metric{{selector}<matchers>}`` is summed ``by`` the labels given (``le`` for histogram buckets).
    """
    x = metric + "{{selector}" + matchers + "}"
    before = f"{x} offset {{window}}"
    group = f" by ({by})" if by else ""
    return (
        f"sum{group} ((({x} - {before}) >= 0 and resets({x}[{{window}}]) == 0)"
        f" or (increase({x}[{{window}}]) and {before})"
        f" or (max_over_time({x}[{{window}}]) unless {before}))"
    )


def _p99(bucket_metric: str, scale: str = "") -> str:
    return f"histogram_quantile(0.99, {counted(bucket_metric, by='le')}){scale}"


TEMPLATES: dict[str, QueryTemplates] = {
    # Our model server's own metrics (components/deployment/model_server/metrics.py): every mode, revisions told
    # apart by model_sha256. Latency is the whole HTTP exchange measured in the server.
    "kfp-tabular": QueryTemplates(
        requests=counted("kfp_tabular_requests_total"),
        server_errors=counted("kfp_tabular_requests_total", ',outcome="server_error"'),
        client_errors=counted("kfp_tabular_requests_total", ',outcome="client_error"'),
        p99=_p99("kfp_tabular_request_seconds_bucket"),
        score_buckets=counted("kfp_tabular_prediction_score_bucket", by="le"),
    ),
    # KServe Knative mode: requests, status classes and latency from Knative's queue-proxy sidecar (measured in
    # front of the server, so crashes and timeouts count; latency in milliseconds), selector e.g.
    # 'namespace_name="ns",revision_name="name-predictor-00002"'; predicted scores from our server's histogram,
    # whose series the scrape must label with the same namespace_name/revision_name (docs/rollouts.md).
    "kserve-knative": QueryTemplates(
        requests=counted("revision_app_request_count"),
        server_errors=counted("revision_app_request_count", ',response_code_class="5xx"'),
        client_errors=counted("revision_app_request_count", ',response_code_class="4xx"'),
        p99=_p99("revision_app_request_latencies_bucket", " / 1000"),
        score_buckets=counted("kfp_tabular_prediction_score_bucket", by="le"),
    ),
}
# KServe Standard (raw Deployment) mode has no queue-proxy: our server's metrics are the source, as kfp-tabular.
TEMPLATES["kserve-standard"] = TEMPLATES["kfp-tabular"]


def templates_from_json(text: str, field: str = "prometheus_queries") -> QueryTemplates:
    """Return the templates a ``prometheus_queries`` parameter names.

    Empty -> ``kfp-tabular``; a template name (``kserve-knative``) -> that one; a JSON object -> ``kfp-tabular``
    (or the ``"base"`` it names) with the given queries replaced, e.g. ``{"p99": "..."}``.
    """
    if not isinstance(text, str):
        raise ConfigError(f"{field}: expected a template name or a JSON object of PromQL strings, got {text!r}")
    text = text.strip()
    if not text:
        return TEMPLATES["kfp-tabular"]
    if text in TEMPLATES:
        return TEMPLATES[text]
    names = [f.name for f in dataclasses.fields(QueryTemplates)]
    try:
        given = json.loads(text)
    except json.JSONDecodeError:
        raise ConfigError(
            f"{field}: expected one of {', '.join(TEMPLATES)} or a JSON object with keys from {', '.join(names)}, "
            f"got {text[:200]!r}"
        ) from None
    if not isinstance(given, dict):
        raise ConfigError(f"{field}: expected a JSON object with keys from {', '.join(names)}, got {text[:200]!r}")
    base = given.pop("base", "kfp-tabular")
    if base not in TEMPLATES:
        raise ConfigError(f"{field}.base: expected one of {', '.join(TEMPLATES)}, got {base!r}")
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ConfigError(f"{field}: unknown keys {', '.join(unknown)}; expected keys from {', '.join(names)}")
    return dataclasses.replace(TEMPLATES[base], **given)


class PrometheusReader:
    """Reads :class:`RevisionMetrics` from a Prometheus server's HTTP API.

    Args:
        url: Prometheus's base URL, e.g. ``http://127.0.0.1:9090`` (a path prefix is kept).
        templates: The PromQL of each quantity.
        timeout: Seconds per HTTP request.
        bin_edges: The ``le`` values ``score_buckets`` returns; a bucket outside them is an error.
    """

    def __init__(
        self,
        url: str,
        templates: QueryTemplates = TEMPLATES["kfp-tabular"],
        timeout: float = 10,
        bin_edges: tuple[float, ...] = BIN_EDGES,
    ) -> None:
        parts = urllib.parse.urlsplit(url or "")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"prometheus_url: expected an http(s) URL such as http://127.0.0.1:9090, got {url!r}")
        if not isinstance(templates, QueryTemplates):
            raise ConfigError(f"prometheus_queries: expected QueryTemplates, got {type(templates).__name__}")
        self.url = url.rstrip("/")
        self.templates = templates
        self.timeout = timeout
        self.bin_edges = tuple(bin_edges)

    def __repr__(self) -> str:
        return f"PrometheusReader({self.url!r})"

    def read(self, role: str, selector: str, window: Window) -> RevisionMetrics:
        """One revision's metrics over ``window`` (instant queries at ``window.end``).

        Raises:
            ConfigError: ``role`` is not stable/canary, or ``selector`` is empty.
            DeployError: Prometheus is unreachable, answers an HTTP error or a non-success status, or a count is
                not a number (naming the URL and the query).
        """
        if role not in ROLES:
            raise ConfigError(f"role: expected one of {', '.join(ROLES)}, got {role!r}")
        if not isinstance(selector, str) or not selector.strip():
            raise ConfigError(f"{role} selector: expected PromQL label matchers such as 'model_sha256=\"...\"'")
        rng = window.promql_range()
        counts = {name: self._count(name, selector, rng, window.end) for name in ("requests", "server_errors")}
        counts["client_errors"] = self._count("client_errors", selector, rng, window.end)
        p99 = self._p99(selector, rng, window.end) if counts["requests"] > 0 else None
        scores = self._scores(selector, rng, window.end) if self.templates.score_buckets else ()
        return RevisionMetrics(role=role, selector=selector, p99_seconds=p99, score_counts=scores, **counts)

    # -- queries -----------------------------------------------------------------------------------------------

    def query(self, promql: str, at: float) -> list[dict[str, Any]]:
        """Run an instant query; the result as a list of ``{"metric": {...}, "value": float}``.

        Raises:
            DeployError: Naming the URL and the query, on any failure.
        """
        endpoint = f"{self.url}/api/v1/query"
        body = urllib.parse.urlencode({"query": promql, "time": f"{at:.3f}"}).encode()
        request = urllib.request.Request(
            endpoint, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        where = f"Prometheus {endpoint}, query {promql!r}"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = _error_detail(exc.read())
            raise DeployError(f"{where}: HTTP {exc.code} {exc.reason}{detail}") from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeployError(f"{where}: unreachable ({reason})") from exc
        try:
            payload = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DeployError(f"{where}: expected a JSON answer, got {raw[:200]!r}") from exc
        if not isinstance(payload, dict) or payload.get("status") != "success":
            status = payload.get("status") if isinstance(payload, dict) else None
            raise DeployError(f"{where}: status {status!r}{_error_detail(raw)}")
        data = payload.get("data") or {}
        kind, result = data.get("resultType"), data.get("result")
        try:
            if kind == "scalar":
                return [{"metric": {}, "value": float(result[1])}]
            if kind == "vector":
                return [{"metric": item.get("metric", {}), "value": float(item["value"][1])} for item in result]
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            raise DeployError(f"{where}: unexpected result {str(result)[:200]}") from exc
        raise DeployError(f"{where}: expected an instant vector or scalar, got result type {kind!r}")

    def _render(self, name: str, selector: str, rng: str) -> str:
        return self.templates.render(name, selector, rng)

    def _count(self, name: str, selector: str, rng: str, at: float) -> float:
        promql = self._render(name, selector, rng)
        samples = self.query(promql, at)
        total = 0.0
        for sample in samples:
            value = sample["value"]
            if not math.isfinite(value) or value < 0:
                raise DeployError(
                    f"Prometheus {self.url}/api/v1/query, query {promql!r}: expected a count >= 0, got {value}"
                )
            total += value
        return total  # no series: nothing was counted in the window

    def _p99(self, selector: str, rng: str, at: float) -> float | None:
        promql = self._render("p99", selector, rng)
        samples = self.query(promql, at)
        values = [s["value"] for s in samples if not math.isnan(s["value"])]
        if len(values) > 1:
            raise DeployError(
                f"Prometheus {self.url}/api/v1/query, query {promql!r}: expected one p99, got {len(values)} series "
                "(aggregate with sum by (le))"
            )
        return values[0] if values else None  # NaN: no observations in the window

    def _scores(self, selector: str, rng: str, at: float) -> tuple[float, ...]:
        promql = self._render("score_buckets", selector, rng)
        where = f"Prometheus {self.url}/api/v1/query, query {promql!r}"
        cumulative: dict[float, float] = {}
        for sample in self.query(promql, at):
            le_text = sample["metric"].get("le")
            try:
                le = float(le_text)
            except (TypeError, ValueError):
                raise DeployError(f"{where}: expected samples labelled le, got labels {sample['metric']}") from None
            if le not in self.bin_edges:
                raise DeployError(f"{where}: bucket le={le_text} is not one of the bins {self.bin_edges}")
            value = sample["value"]
            if not math.isfinite(value):
                raise DeployError(f"{where}: bucket le={le_text} is {value}, expected a count")
            cumulative[le] = cumulative.get(le, 0.0) + value
        if not cumulative:
            return tuple(0.0 for _ in self.bin_edges)
        missing = [edge for edge in self.bin_edges if edge not in cumulative]
        if missing:
            raise DeployError(f"{where}: buckets le={missing} missing (expected all of {self.bin_edges})")
        counts, previous = [], 0.0
        for edge in self.bin_edges:
            # Extrapolation scales each bucket series separately: rounding can make a cumulative count dip.
            counts.append(max(0.0, cumulative[edge] - previous))
            previous = max(previous, cumulative[edge])
        return tuple(counts)


def _error_detail(raw: bytes) -> str:
    try:
        payload = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError):
        text = raw.decode("utf-8", "replace").strip()[:300] if isinstance(raw, bytes) else ""
        return f": {text}" if text else ""
    if isinstance(payload, dict) and payload.get("error"):
        return f": {payload.get('errorType', 'error')}: {payload['error']}"
    return ""
