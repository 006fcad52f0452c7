"""The test Prometheus is handed over only once it answers its API: it listens while it still opens its TSDB."""

import sys
import textwrap

import pytest

from localservices import Prometheus, ServiceFailed

# Answers every path like a Prometheus still starting (plain-text 503) for `warmup` seconds, then like a ready one.
STARTING_PROMETHEUS = textwrap.dedent("""
    import http.server, json, sys, time
    port, warmup = int(sys.argv[1]), float(sys.argv[2])
    started = time.monotonic()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            ready = time.monotonic() - started > warmup
            body = (json.dumps({"status": "success", "data": {"result": []}}) if ready
                    else "Service Unavailable").encode()
            self.send_response(200 if ready else 503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
""")


class StartingPrometheus(Prometheus):
    def __init__(self, warmup: float) -> None:
        super().__init__({})
        self.warmup = warmup

    def command(self) -> list[str]:
        return [sys.executable, "-c", STARTING_PROMETHEUS, str(self.port), str(self.warmup)]


def test_a_started_prometheus_answers_queries_at_once():
    with StartingPrometheus(warmup=1.0).start() as server:
        assert server.query("up") == []


def test_a_prometheus_that_never_gets_ready_fails_to_start_saying_so():
    with pytest.raises(ServiceFailed, match="prometheus was not ready within 2 s"):
        StartingPrometheus(warmup=3600).start(timeout=2)
