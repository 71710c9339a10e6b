"""Send a few sample rows to a running model server in each request shape and print the answers (``make predict``).

The feature columns come from the server's V2 model metadata (``GET /v2/models/<name>``, which lists the
trained ``feature_order``); the rows come from the bundled churn data generator. Three requests carry the same
rows: V1 lists in feature order, V1 records (column: value), and V2 with ``content_type: pd``. The exit status
is 0 when all three give the same predictions, 1 when a request fails or they disagree, 2 when no server answers.
Plain standard library HTTP: runs in either environment::

    python -m kfp_tabular.components.deployment.model_server.predict_sample --url http://localhost:8080
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_UNREACHABLE = 0, 1, 2


class ServerUnreachable(Exception):
    """Nothing answered at the server URL."""


class RequestFailed(Exception):
    """The server answered with an error status."""


def http_json(url: str, body: Any = None, timeout: float = 30.0) -> Any:
    """GET (``body`` None) or POST JSON to ``url`` and return the decoded JSON answer.

    Args:
        url: Full URL.
        body: JSON-serializable request body; None sends a GET.
        timeout: Seconds to wait for the answer.

    Returns:
        The decoded JSON response.

    Raises:
        ServerUnreachable: The connection failed (nothing listening, DNS, timeout).
        RequestFailed: The server answered with an HTTP error; the message holds the status and body.
    """
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")
        raise RequestFailed(f"{'POST' if data else 'GET'} {url} returned HTTP {exc.code}: {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ServerUnreachable(f"no model server answered at {url} ({reason})") from exc


def sample_records(feature_order: list[str], n_rows: int = 3, seed: int = 7) -> list[dict[str, Any]]:
    """Rows of the churn generator restricted to ``feature_order``, as JSON-ready dicts (missing -> None).

    Args:
        feature_order: The columns the model takes, in order.
        n_rows: Number of rows (1 or more).
        seed: Generator seed; use one the model was not trained on.

    Returns:
        One dict per row with the columns in ``feature_order``.

    Raises:
        ValueError: A column in ``feature_order`` is not produced by the generator, or ``n_rows`` < 1.
    """
    from kfp_tabular.components.data_processing.synthetic_data.core import generate

    if n_rows < 1:
        raise ValueError(f"n_rows: expected at least 1, got {n_rows}")
    frame = generate(max(n_rows, 10), seed=seed)
    unknown = [name for name in feature_order if name not in frame.columns]
    if unknown:
        raise ValueError(f"the model expects column(s) the churn sample data does not have: {', '.join(unknown)}")
    frame = frame[feature_order].head(n_rows).astype(object)
    frame = frame.where(frame.notna(), None)
    return [{name: _plain(row[name]) for name in feature_order} for _, row in frame.iterrows()]


def build_requests(records: list[dict[str, Any]], inputs: list[dict[str, Any]]) -> dict[str, tuple[str, dict]]:
    """Build the three request bodies for the same rows, keyed by a label, each with its URL path suffix.

    Args:
        records: Rows as dicts (from ``sample_records``).
        inputs: The V2 metadata ``inputs`` of the model (name and datatype per feature, in order).

    Returns:
        ``{label: (path, body)}`` where ``path`` is ``v1`` or ``v2``.
    """
    order = [spec["name"] for spec in inputs]
    v2_inputs = [
        {
            "name": spec["name"],
            "shape": [len(records)],
            "datatype": spec.get("datatype") or "BYTES",
            "data": [record[spec["name"]] for record in records],
        }
        for spec in inputs
    ]
    return {
        "V1 instances as lists in feature order": ("v1", {"instances": [[r[n] for n in order] for r in records]}),
        "V1 instances as records": ("v1", {"instances": records}),
        "V2 one input per column, content_type pd": (
            "v2",
            {"parameters": {"content_type": "pd"}, "inputs": v2_inputs},
        ),
    }


def labels_of(path: str, response: dict) -> list:
    """Return the predicted labels in a V1 or V2 response of the model server."""
    if path == "v1":
        return response.get("labels", response.get("predictions"))
    for output in response.get("outputs", []):
        if output.get("name") == "predict":
            return output.get("data")
    return response.get("outputs", [{}])[0].get("data")


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m kfp_tabular.components.deployment.model_server.predict_sample",
        description="Send sample churn rows to a running kfp-tabular model server (V1 lists, V1 records, V2 pd).",
    )
    parser.add_argument("--url", default="http://localhost:8080", help="server base URL (default %(default)s)")
    parser.add_argument("--model_name", default="churn", help="served model name (default %(default)s)")
    parser.add_argument("--rows", type=int, default=3, help="number of sample rows (default %(default)s)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the sample rows (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default %(default)s)")
    args = parser.parse_args(argv)
    base = args.url.rstrip("/")

    try:
        meta = http_json(f"{base}/v2/models/{args.model_name}", timeout=args.timeout)
    except ServerUnreachable as exc:
        print(f"error: {exc}; start one with `make serve` (after `make run`)", file=sys.stderr)
        return EXIT_UNREACHABLE
    except RequestFailed as exc:
        print(f"error: model '{args.model_name}' is not served at {base}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    inputs = meta.get("inputs") or []
    if not inputs:
        print(
            f"error: {base}/v2/models/{args.model_name} lists no inputs: the model directory has no "
            "metadata.json, so the feature order is unknown",
            file=sys.stderr,
        )
        return EXIT_FAILED
    try:
        records = sample_records([spec["name"] for spec in inputs], args.rows, args.seed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED

    urls = {
        "v1": f"{base}/v1/models/{args.model_name}:predict",
        "v2": f"{base}/v2/models/{args.model_name}/infer",
    }
    answers = {}
    for label, (path, body) in build_requests(records, inputs).items():
        print(f"== {label}: POST {urls[path]}")
        print(f"request:  {json.dumps(body)}")
        try:
            response = http_json(urls[path], body, timeout=args.timeout)
        except (ServerUnreachable, RequestFailed) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_UNREACHABLE if isinstance(exc, ServerUnreachable) else EXIT_FAILED
        print(f"response: {json.dumps(response)}")
        answers[label] = labels_of(path, response)

    distinct = {json.dumps(value) for value in answers.values()}
    if len(distinct) != 1:
        print("error: the request shapes gave different predictions for the same rows:", file=sys.stderr)
        for label, value in answers.items():
            print(f"  {label}: {value}", file=sys.stderr)
        return EXIT_FAILED
    print(f"all {len(answers)} request shapes agree: predicted {next(iter(answers.values()))}")
    return EXIT_OK


def _plain(value: Any) -> Any:
    """Numpy scalars -> Python scalars, so json can encode them."""
    return value.item() if hasattr(value, "item") else value


if __name__ == "__main__":
    sys.exit(main())
