"""One retry policy for every network call: the STAC API (requests) and asset reads (GDAL).

A nightly job must ride out a flaky server, yet never spin forever: transient failures (5xx,
429, timeouts, refused or reset connections) are retried with exponential backoff a bounded
number of times, then surface as ``TransientError`` (exit 75) so cron can simply run again.
Anything else (a 404, a corrupt file) is not retried: waiting would not fix it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

import urllib3
from urllib3 import Retry

from .errors import TransientError, exception_chain

T = TypeVar("T")

RETRY_STATUS = (429, 500, 502, 503, 504)
_HTTP_CODE = re.compile(r"HTTP response code:\s*(\d{3})")


@dataclass(frozen=True)
class RetryPolicy:
    """``retries`` extra attempts, waiting ``backoff`` s, then 2x, 4x ... (capped at 60 s)."""

    retries: int = 4
    backoff: float = 1.0
    timeout: float = 30.0

    def delay(self, attempt: int) -> float:
        return min(self.backoff * 2 ** attempt, 60.0)

    def urllib3(self) -> Retry:
        """The same policy for requests/pystac-client; POST searches are idempotent, so retried."""
        return Retry(total=self.retries, connect=self.retries, read=self.retries,
                     status=self.retries, other=0, allowed_methods=None,
                     status_forcelist=RETRY_STATUS, backoff_factor=self.backoff, backoff_max=60.0,
                     raise_on_status=True)

    def gdal_env(self) -> dict[str, str | int]:
        """GDAL options for /vsicurl/ reads: we own the retries, and failures are never cached.

        GDAL remembers a failed HEAD for the life of the process; without ``NON_CACHED`` a
        retry would be answered from that memory instead of asking the server again.
        """
        return {
            "GDAL_HTTP_MAX_RETRY": 0,
            "GDAL_HTTP_TIMEOUT": max(1, round(self.timeout)),
            "GDAL_HTTP_CONNECTTIMEOUT": max(1, round(min(self.timeout, 10.0))),
            "CPL_VSIL_CURL_NON_CACHED": "/vsicurl/",
            "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
            "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
        }

    def call(self, fn: Callable[[], T], what: str,
             retry_also: Callable[[Exception], bool] = lambda exc: False) -> T:
        """Run ``fn``; retry it while it fails transiently, then raise ``TransientError``.

        ``retry_also`` picks failures that may be transient without saying so; they are retried
        too, but re-raised as they are once the retries are spent.
        """
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except Exception as exc:
                transient, last = is_transient(exc), attempt == self.retries
                if not transient and (last or not retry_also(exc)):
                    raise
                if last:
                    raise TransientError(
                        f"{what}: {describe(exc)} (gave up after {self.retries + 1} attempts; "
                        f"safe to rerun)") from exc
                time.sleep(self.delay(attempt))
        raise AssertionError("unreachable")


def http_status(exc: BaseException) -> int | None:
    """The HTTP status behind a GDAL or pystac-client error, if there was one."""
    for err in exception_chain(exc):
        code = getattr(err, "status_code", None)
        if isinstance(code, int):
            return code
        match = _HTTP_CODE.search(str(err))
        if match:
            return int(match.group(1))
    return None


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: a retryable status, or a connection that failed, timed out or broke."""
    status = http_status(exc)
    if status is not None:
        return status in RETRY_STATUS
    text = " ".join(str(err) for err in exception_chain(exc)).lower()
    return any(word in text for word in (
        "curl error", "max retries exceeded", "connection refused", "connection reset",
        "connection aborted", "timed out", "timeout", "failed to connect", "remotedisconnected",
        "temporarily unavailable", "too many", "error responses"))


def describe(exc: BaseException) -> str:
    """The most telling line of a chained error, for a one-line message."""
    status = http_status(exc)
    if status is not None:
        return f"HTTP {status}"
    for err in reversed(exception_chain(exc)):
        text = str(err).strip().splitlines()[0] if str(err).strip() else ""
        if text and "see previous exception" not in text.lower():
            return text[:300]
    return type(exc).__name__


def http_version(url: str, policy: RetryPolicy) -> tuple[str, ...]:
    """What changes when the file behind an http(s) URL is replaced: its size, ETag and
    Last-Modified, from a one-byte range request (a URL signed for GET may refuse HEAD)."""
    follow = Retry(total=None, connect=0, read=0, status=0, other=0, redirect=5)  # retries: ours
    pool = urllib3.PoolManager(timeout=policy.timeout, retries=follow)

    def probe() -> tuple[str, ...]:
        response = pool.request("GET", url, headers={"Range": "bytes=0-0"}, preload_content=True)
        if response.status >= 400:
            raise OSError(f"HTTP response code: {response.status}")
        size = response.headers.get("Content-Range", "").rpartition("/")[2] or \
            response.headers.get("Content-Length", "")
        return (size, response.headers.get("ETag", ""), response.headers.get("Last-Modified", ""))

    return policy.call(probe, f"asking {url} for its version")
