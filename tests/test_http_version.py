"""The version of a file behind a URL: taken from the file a redirect leads to, by range GET."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from spectralmoe_cli.errors import TransientError
from spectralmoe_cli.net import RetryPolicy, http_version

POLICY = RetryPolicy(retries=1, backoff=0.01, timeout=5)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        return

    def do_HEAD(self) -> None:  # a URL signed for GET refuses HEAD
        self.send_response(403)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        if self.path.startswith("/signed"):
            self.send_response(302)
            self.send_header("Location", "/store/scene.tif")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/store/scene.tif" and self.headers.get("Range") == "bytes=0-0":
            self.send_response(206)
            self.send_header("Content-Range", "bytes 0-0/123456")
            self.send_header("ETag", '"v7"')
            self.send_header("Last-Modified", "Tue, 24 Nov 2026 02:00:00 GMT")
            self.send_header("Content-Length", "1")
            self.end_headers()
            self.wfile.write(b"I")
        else:
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_the_version_is_the_redirect_targets(server):
    assert http_version(f"{server}/signed?sig=abc", POLICY) == (
        "123456", '"v7"', "Tue, 24 Nov 2026 02:00:00 GMT")


def test_a_server_error_is_retried_then_transient(server):
    with pytest.raises(TransientError, match="HTTP 503.*gave up after 2 attempts"):
        http_version(f"{server}/down", POLICY)
