"""Real servers on 127.0.0.1 for the fetch tests: nginx (assets, with Range), rustac (STAC API)
and a small HTTP proxy that can inject faults, record requests, or add CQL2 filtering.

nginx and rustac are the real programs, started and stopped by the tests' fixtures. The proxy
is test code standing in front of them, not a mock of ours: it forwards every request to the
real server, except the ones a test asks it to break.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

FILTER_CLASSES = [
    "https://api.stacspec.org/v1.0.0/item-search#filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "https://api.stacspec.org/v1.0.0/item-search#sort",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen | None = None, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)


def rustac_binary() -> str | None:
    beside = Path(sys.executable).with_name("rustac")
    return str(beside) if beside.exists() else shutil.which("rustac")


def missing_servers() -> str | None:
    """Why the real servers cannot start here (and how to get them), or None when they can."""
    missing = [name for name, found in (("nginx", nginx_binary()), ("rustac", rustac_binary()))
               if found is None]
    if not missing:
        return None
    return (f"{' and '.join(missing)} not found: the fetch and STAC tests need nginx (Debian "
            "nginx-light; .ci/run installs it) and rustac (pip: rustac, in the test extra)")


# for tests that start the servers themselves rather than through conftest's ``servers``
servers_needed = pytest.mark.skipif(missing_servers() is not None,
                                    reason=missing_servers() or "nginx and rustac are here")


@dataclass
class LoggedRequest:
    method: str
    path: str
    status: int
    range: str
    bytes: int


class Nginx:
    """nginx serving ``root`` on a free port, logging method, path, status and Range header."""

    def __init__(self, root: Path, workdir: Path):
        self.root, self.workdir = root, workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "access.log"
        workdir.mkdir(parents=True, exist_ok=True)
        user = "user root;\n" if os.geteuid() == 0 else ""
        temps = "".join(f"  {name}_temp_path {workdir / name};\n"
                        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (workdir / "nginx.conf").write_text(
            f"{user}worker_processes 1;\nerror_log {workdir / 'error.log'};\n"
            f"pid {workdir / 'nginx.pid'};\nevents {{ worker_connections 64; }}\nhttp {{\n"
            "  log_format ranges '$request_method $uri $status \"$http_range\" "
            "$body_bytes_sent';\n"
            f"  access_log {self.log} ranges;\n{temps}"
            f"  types {{ image/tiff tif; application/json json; }}\n"
            f"  server {{ listen 127.0.0.1:{self.port}; root {root}; }}\n}}\n")
        self.process = subprocess.Popen(
            [nginx_binary(), "-p", str(workdir), "-c", str(workdir / "nginx.conf"),
             "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for_port(self.port, self.process)

    def requests(self) -> list[LoggedRequest]:
        time.sleep(0.1)
        if not self.log.exists():
            return []
        out = []
        for line in self.log.read_text().splitlines():
            match = re.fullmatch(r'(\S+) (\S+) (\d+) "([^"]*)" (\d+)', line)
            if match:
                out.append(LoggedRequest(match.group(1), match.group(2), int(match.group(3)),
                                         match.group(4), int(match.group(5))))
        return out

    def stop(self) -> None:
        stop(self.process)


class Rustac:
    """``rustac serve`` with the in-memory backend (no filter, query or sort), from JSON files."""

    def __init__(self, hrefs: list[Path]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [rustac_binary(), "serve", "--addr", f"127.0.0.1:{self.port}",
             *map(str, hrefs)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for_port(self.port, self.process)

    def stop(self) -> None:
        stop(self.process)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_ProxyServer"

    def log_message(self, *args: Any) -> None:
        return

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.command != "HEAD" or "content-length" not in {k.lower() for k in headers or {}}:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _forward(self, body: bytes | None) -> tuple[int, dict[str, str], bytes]:
        upstream = urlsplit(self.server.proxy.upstream)
        conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() in ("range", "content-type", "accept")}
        conn.request(self.command, self.path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        keep = ("content-type", "content-range", "accept-ranges", "last-modified", "etag",
                "content-length")
        out = {k: v for k, v in response.getheaders() if k.lower() in keep}
        conn.close()
        return response.status, out, data

    def _handle(self) -> None:
        proxy = self.server.proxy
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        fault = proxy.take_fault(self.path)
        proxy.record(self.command, self.path, body, fault)
        if proxy.silent:
            proxy.released.wait()  # accepted, read, and never answered: until the proxy stops
            self.close_connection = True
            return
        if fault is not None:
            self._send(fault, b'{"code":"injected","description":"fault injected by the test"}',
                       {"Content-Type": "application/json"})
            return
        if proxy.cql2 and self.path.split("?")[0].rstrip("/") == "/search" and body:
            self._filtered_search(json.loads(body))
            return
        status, headers, data = self._forward(body)
        if self.command != "HEAD":
            headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
        if "json" in headers.get("Content-Type", headers.get("content-type", "")):
            data = data.replace(proxy.upstream.encode(), proxy.url.encode())
            if self.path.split("?")[0].rstrip("/") == "/search":
                proxy.returned.append([f["id"] for f in json.loads(data).get("features", [])])
        if proxy.cql2 and self.path.split("?")[0] in ("/", "/conformance") and status == 200:
            doc = json.loads(data)
            doc["conformsTo"] = doc.get("conformsTo", []) + FILTER_CLASSES
            data = json.dumps(doc).encode()
        self._send(status, data, headers)

    def _filtered_search(self, request: dict[str, Any]) -> None:
        """Filter and sort on the server side, as a filter-capable STAC API does."""
        import cql2

        expr = request.pop("filter", None)
        request.pop("filter-lang", None)
        sortby = request.pop("sortby", None)
        request["limit"] = 10000
        status, headers, data = self._forward(json.dumps(request).encode())
        headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
        page = json.loads(data.replace(self.server.proxy.upstream.encode(),
                                       self.server.proxy.url.encode()))
        features = page.get("features", [])
        if expr is not None:
            parsed = cql2.parse_json(json.dumps(expr))
            features = [f for f in features if _matches(parsed, f)]
        for key in reversed(sortby or []):
            field = key["field"].removeprefix("properties.")
            features.sort(key=lambda f: f.get(field) or f["properties"].get(field) or "",
                          reverse=key.get("direction") == "desc")
        self.server.proxy.returned.append([f["id"] for f in features])
        page.update(features=features, numberReturned=len(features),
                    links=[link for link in page.get("links", []) if link.get("rel") != "next"])
        self._send(status, json.dumps(page).encode(), headers)

    do_GET = do_HEAD = do_POST = _handle


def _matches(expr: Any, feature: dict[str, Any]) -> bool:
    """SQL-like: a comparison with a missing property is not true (as pgstac answers)."""
    try:
        return bool(expr.matches(feature))
    except Exception:
        return False


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    proxy: "FaultProxy"


class FaultProxy:
    """An HTTP proxy to ``upstream`` that a test can make fail, and that records requests.

    ``fail(n, status, prefix)`` answers the next ``n`` requests under ``prefix`` with
    ``status``; ``down`` answers every request with 503; ``silent`` reads every request and
    never answers (a hung server). ``cql2=True`` adds the filter and sort conformance classes
    and filters and sorts searches with the ``cql2`` library. The upstream's URL in JSON
    answers is replaced by the proxy's, so paging stays on the proxy.
    """

    def __init__(self, upstream: str, cql2: bool = False):
        self.upstream = upstream
        self.cql2 = cql2
        self.down = False
        self.silent = False
        self.released = threading.Event()
        self.faults: list[tuple[str, int]] = []
        self.log: list[dict[str, Any]] = []
        self.returned: list[list[str]] = []
        self._lock = threading.Lock()
        self.server = _ProxyServer(("127.0.0.1", 0), _Handler)
        self.server.proxy = self
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def fail(self, count: int, status: int = 500, prefix: str = "/") -> None:
        with self._lock:
            self.faults += [(prefix, status)] * count

    def answer_again(self) -> None:
        """End ``silent``: requests held unanswered are let go, new ones are served."""
        self.silent = False
        held, self.released = self.released, threading.Event()
        held.set()

    def take_fault(self, path: str) -> int | None:
        with self._lock:
            if self.down:
                return 503
            for i, (prefix, status) in enumerate(self.faults):
                if path.startswith(prefix):
                    del self.faults[i]
                    return status
        return None

    def record(self, method: str, path: str, body: bytes | None, fault: int | None) -> None:
        with self._lock:
            self.log.append({"method": method, "path": path, "fault": fault,
                             "body": json.loads(body) if body else None})

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
