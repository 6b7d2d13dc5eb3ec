"""``--datetime`` values, including the relative ranges a nightly cron job needs.

A cron line cannot hold a fixed date, so besides ISO 8601 instants and ranges we accept a
duration ending now (``P1D``, ``PT6H``, ``P2W``) and the calendar words ``today`` and
``yesterday`` (UTC days). Everything is turned into one closed RFC 3339 interval in UTC, the
form every STAC API accepts, so the server never has to understand our shorthand.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone

from ..errors import UsageError

_DURATION = re.compile(
    r"P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?"
)
_OPEN = ("", "..")


def _rfc3339(moment: datetime) -> str:
    text = moment.astimezone(timezone.utc).isoformat(timespec="microseconds")
    return text.replace(".000000", "").replace("+00:00", "Z")


def _duration(text: str) -> timedelta | None:
    match = _DURATION.fullmatch(text.upper())
    if not match or text.upper() in ("P", "PT") or text.upper().endswith("T"):
        return None
    parts = {k: int(v) for k, v in match.groupdict().items() if v}
    return timedelta(**parts) if parts else None


def _instant(text: str, *, end: bool) -> datetime:
    """An ISO date or date-time; a bare date means its first (or, for an end, last) instant."""
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = date.fromisoformat(text)
            if end:
                return datetime.combine(day + timedelta(days=1), time(), timezone.utc) - timedelta(
                    microseconds=1)
            return datetime.combine(day, time(), timezone.utc)
        moment = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--datetime: cannot read {text!r} as a date or date-time; use e.g. 2024-01-31 or "
            f"2024-01-31T12:00:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def parse_datetime(text: str, now: datetime | None = None) -> str:
    """Turn a ``--datetime`` value into a closed ``start/end`` RFC 3339 interval (``..`` = open).

    Accepted: ``P1D`` (the last day up to now; any ISO duration in W, D, H, M, S), ``today``,
    ``yesterday``, a date or date-time, and ``start/end`` ranges of those with either side open
    (``2024-01-01/..``). Years and months are refused: their length depends on the calendar.
    """
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    value = text.strip()
    word = value.lower()
    midnight = datetime.combine(now.date(), time(), timezone.utc)
    if word == "today":
        return f"{_rfc3339(midnight)}/{_rfc3339(now)}"
    if word == "yesterday":
        last = midnight - timedelta(microseconds=1)
        return f"{_rfc3339(midnight - timedelta(days=1))}/{_rfc3339(last)}"
    if value.upper().startswith("P"):
        span = _duration(value)
        if span is None:
            raise UsageError(
                f"--datetime: {text!r} is not a duration we accept; use weeks, days, hours, "
                f"minutes or seconds, e.g. P1D, P2W, PT6H (years and months have no fixed length)"
            )
        return f"{_rfc3339(now - span)}/{_rfc3339(now)}"
    if "/" in value:
        first, _, second = value.partition("/")
        if first in _OPEN and second in _OPEN:
            raise UsageError("--datetime: a range needs at least one end, e.g. 2024-01-01/..")
        start = ".." if first in _OPEN else _rfc3339(_instant(first, end=False))
        stop = ".." if second in _OPEN else _rfc3339(_instant(second, end=True))
        if start != ".." and stop != ".." and (
                _instant(first, end=False) > _instant(second, end=True)):
            raise UsageError(f"--datetime: {text!r} ends before it starts")
        return f"{start}/{stop}"
    if not value:
        raise UsageError("--datetime is empty: give e.g. P1D, yesterday or 2024-01-01/2024-01-31")
    return f"{_rfc3339(_instant(value, end=False))}/{_rfc3339(_instant(value, end=True))}"
