"""The collector writing to S3 (moto's server) through a counting proxy: one PUT of a whole object per batch.

Every request the collector's s3fs makes passes through the proxy, which records its method and path: each
batch object is created by exactly one PUT, never a multipart upload or a temporary key, so a reader listing
the prefix at any moment (this test reads concurrently) sees whole batches only.
"""

from __future__ import annotations

import http.client
import http.server
import json
import threading
import urllib.parse

import pytest

from kfp_tabular.components.monitoring.collector import batch_files, read_window
from tests.support.s3 import s3

from .conftest import good_pair_events

pytestmark = pytest.mark.serve


class CountingProxy(http.server.ThreadingHTTPServer):
    """Forward every request to ``target`` and record ``(method, path, query)``."""

    daemon_threads = True

    def __init__(self, target: str):
        self.target = urllib.parse.urlsplit(target)
        self.seen: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Forward)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Forward(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _forward(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        with self.server.lock:
            self.server.seen.append((self.command, urllib.parse.unquote(parts.path), parts.query))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        conn = http.client.HTTPConnection(self.server.target.hostname, self.server.target.port, timeout=60)
        try:
            conn.request(self.command, self.path, body=body, headers={k: v for k, v in self.headers.items()})
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward


def test_s3_batches_are_one_put_each_and_readers_see_whole_batches(processes, moto_s3):
    fs = s3(moto_s3)
    fs.mkdir("served-bucket")
    proxy = CountingProxy(moto_s3)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    options = {"client_kwargs": {"endpoint_url": proxy.url}}
    sink = "s3://served-bucket/served"
    collector = processes.collector(
        sink, roll_rows=6, roll_seconds=3600, args=["--storage-options", json.dumps(options)]
    )
    reading = {"client_kwargs": {"endpoint_url": moto_s3}, "skip_instance_cache": True, "use_listings_cache": False}
    stop, seen, problems = threading.Event(), [], []

    def reader() -> None:
        while not stop.is_set():
            try:
                seen.append(read_window(sink, storage_options=reading).num_rows)
            except Exception as exc:
                problems.append(repr(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(40):
            good_pair_events(collector.url, f"s{i}", rows=3)  # 120 rows: 20 batches of 6
    finally:
        stop.set()
        thread.join()
    assert collector.stop() == 0
    proxy.shutdown()
    assert problems == []
    assert seen == sorted(seen) and all(n % 6 == 0 for n in seen)
    files = batch_files(sink, storage_options=reading)
    assert len(files) == 20
    assert read_window(sink, storage_options=reading).num_rows == 120
    writes = [(m, p, q) for m, p, q in proxy.seen if m in ("PUT", "POST", "DELETE")]
    assert all(m == "PUT" and not q for m, p, q in writes), writes  # no multipart (POST ?uploads), no copy
    put_keys = sorted(p for _, p, _ in writes)
    assert put_keys == sorted("/" + f.removeprefix("s3://") for f in files)  # one PUT per batch, no temporary key
