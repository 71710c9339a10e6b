"""A STAND-IN for the KFP API server's v2beta1 REST endpoints that ``kfp.Client`` 2.13 calls (tests only).

The real KFP API server (Go, backed by MySQL, Argo and Kubernetes) cannot run on this machine; this stand-in
answers the few requests ``kfp.Client`` makes for ``create_run_from_pipeline_package``, ``create_recurring_run``,
``upload_pipeline`` and ``get_run``, and records every request (method, path, query, JSON body) so a test can
check exactly what the client sent: the cron expression, catch-up, the pipeline spec and the parameters. It
validates nothing the real server would validate (the pipeline spec is stored as sent, a cron is not parsed):
what it proves is what our code and kfp.Client put on the wire, not that a real server accepts it.

Endpoints (JSON in snake_case, as the real server's grpc-gateway writes it):

- ``GET  /apis/v2beta1/healthz``                     ``{"multi_user": false}``
- ``GET  /apis/v2beta1/experiments?filter=...``       experiments whose display_name matches the filter's value
- ``POST /apis/v2beta1/experiments``                  creates one
- ``POST /apis/v2beta1/runs``                         creates a run (state ``PENDING``)
- ``GET  /apis/v2beta1/runs/<id>``                    that run
- ``POST /apis/v2beta1/recurringruns``                creates a recurring run (status ``ENABLED``/``DISABLED``)
- ``GET  /apis/v2beta1/recurringruns/<id>``           that recurring run
- ``POST /apis/v2beta1/pipelines/upload``             multipart upload: a pipeline (its name and the YAML's size)
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import threading
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "/apis/v2beta1"


@dataclasses.dataclass
class Recorded:
    """One request the stand-in received."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


class FakeKfpApi:
    """The stand-in server on 127.0.0.1 (a thread); use as a context manager. ``host`` is its URL."""

    def __init__(self):
        self.requests: list[Recorded] = []
        self.experiments: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}
        self.recurring_runs: dict[str, dict] = {}
        self.pipelines: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        """The server's URL (``kfp.Client(host=...)``)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "FakeKfpApi":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def bodies(self, method: str, path: str) -> list[Any]:
        """The JSON bodies of the requests with this method and path (after ``/apis/v2beta1``)."""
        return [r.body for r in self.requests if r.method == method and r.path == PREFIX + path]

    # --- the endpoints ------------------------------------------------------------------------------------
    def _now(self) -> str:
        return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _route(self, method: str, path: str, query: dict, body: Any) -> tuple[int, Any]:
        if not path.startswith(PREFIX):
            return 404, {"error": f"not a v2beta1 path: {path}"}
        rest = path[len(PREFIX) :]
        if method == "GET" and rest == "/healthz":
            return 200, {"multi_user": False, "commit_sha": "stand-in", "tag_name": "2.x-stand-in"}
        if rest == "/experiments" and method == "GET":
            wanted = _filter_value(query.get("filter", [""])[0])
            found = [e for e in self.experiments.values() if wanted is None or e["display_name"] == wanted]
            return 200, {"experiments": found, "total_size": len(found)} if found else {}
        if rest == "/experiments" and method == "POST":
            experiment = {
                **body,
                "experiment_id": str(uuid.uuid4()),
                "created_at": self._now(),
                "storage_state": "AVAILABLE",
            }
            self.experiments[experiment["experiment_id"]] = experiment
            return 200, experiment
        if rest == "/runs" and method == "POST":
            run = {**body, "run_id": str(uuid.uuid4()), "state": "PENDING", "created_at": self._now()}
            self.runs[run["run_id"]] = run
            return 200, run
        if rest.startswith("/runs/") and method == "GET":
            run = self.runs.get(rest.split("/")[2])
            return (200, run) if run else (404, {"error": f"run {rest} not found", "code": 5})
        if rest == "/recurringruns" and method == "POST":
            status = "ENABLED" if body.get("mode") == "ENABLE" else "DISABLED"
            recurring = {**body, "recurring_run_id": str(uuid.uuid4()), "status": status, "created_at": self._now()}
            self.recurring_runs[recurring["recurring_run_id"]] = recurring
            return 200, recurring
        if rest.startswith("/recurringruns/") and method == "GET":
            recurring = self.recurring_runs.get(rest.split("/")[2])
            return (200, recurring) if recurring else (404, {"error": f"recurring run {rest} not found", "code": 5})
        if rest == "/pipelines/upload" and method == "POST":
            name = query.get("name", [""])[0] or "pipeline"
            pipeline = {"pipeline_id": str(uuid.uuid4()), "display_name": name, "created_at": self._now()}
            self.pipelines[pipeline["pipeline_id"]] = {**pipeline, "size": body.get("size", 0)}
            return 200, pipeline
        return 404, {"error": f"the stand-in does not serve {method} {path}", "code": 12}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _serve(self, method: str) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Type", "").startswith("multipart/"):
                    body: Any = {"size": len(raw)}
                else:
                    try:
                        body = json.loads(raw) if raw else None
                    except ValueError:
                        body = {"unparsed": raw.decode("utf-8", "replace")}
                with fake._lock:
                    fake.requests.append(Recorded(method, url.path, query, body))
                    status, answer = fake._route(method, url.path, query, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._serve("GET")

            def do_POST(self):
                self._serve("POST")

        return Handler


def _filter_value(text: str) -> str | None:
    """The string value of a v2beta1 list filter (``{"predicates": [{"string_value": ...}]}``), None for none."""
    if not text:
        return None
    try:
        predicates = json.loads(text).get("predicates", [])
    except (ValueError, AttributeError):
        return None
    for predicate in predicates:
        for key in ("string_value", "stringValue"):  # kfp.Client 2.13 sends the camelCase proto JSON name
            if key in predicate:
                return predicate[key]
    return None
