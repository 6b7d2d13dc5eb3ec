"""Item search that gives the same answer from any STAC API, however much of the spec it has.

The cloud filter and the ordering are sent to the server only when its conformance classes say
it understands them (``filter`` as CQL2-JSON, else ``query``; ``sortby``): a server that lacks
them may ignore the field or even answer nothing (rustac's memory backend returns no items for
an unknown ``query``). The same filter is then always applied client-side and the result is
always sorted client-side, newest first, ties by id, so ``--max-items N`` picks the same N items
from either kind of server.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterator

import pystac
from pystac_client import Client, ConformanceClasses
from pystac_client.errors import ClientTypeError
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO

from ..errors import SpectralMoEError, TransientError, UsageError
from ..net import RetryPolicy, describe, http_status, is_transient
from .aoi import Aoi

log = logging.getLogger(__name__)

CLOUD = "eo:cloud_cover"
PAGE_SIZE = 100
NOT_AN_API = "give the URL of a STAC API, not a static catalog"


@dataclass(frozen=True)
class SearchRequest:
    """What to look for; ``datetime`` is a closed interval from ``timerange.parse_datetime``."""

    collection: str
    aoi: Aoi
    datetime: str
    max_cloud: float | None = None
    max_items: int | None = None


@dataclass(frozen=True)
class SearchResult:
    items: list[pystac.Item]
    filtering: str
    sorting: str


def _api_failure(exc: Exception, what: str, refused: str | None = None) -> SpectralMoEError:
    """Classify a failed API call: retryable -> exit 75, anything else -> exit 2."""
    if is_transient(exc):
        return TransientError(f"{what}: {describe(exc)} (safe to rerun)")
    status = http_status(exc)
    detail = f"HTTP {status}" if status else describe(exc)
    return UsageError(f"{refused or what}: {detail}")


def open_catalog(url: str, policy: RetryPolicy) -> Client:
    """A pystac-client ``Client`` whose requests follow ``policy`` (retries, backoff, timeout).

    The timeout is given to ``Client.open`` as well: it passes its own ``timeout`` (``None``,
    wait forever) to the ``StacApiIO`` it is given, which would let a silent catalog hang us.
    """
    io = StacApiIO(max_retries=policy.urllib3(), timeout=policy.timeout)
    try:
        client = Client.open(url, stac_io=io, timeout=policy.timeout)
    except APIError as exc:
        raise _api_failure(exc, f"catalog {url} is unreachable",
                           f"catalog {url} is not a STAC API root") from exc
    except ClientTypeError as exc:  # a static Collection or Item where the API root should be
        raise UsageError(f"catalog {url} is not a STAC API root ({describe(exc)}); {NOT_AN_API}") from exc
    except (ValueError, TypeError, KeyError, pystac.STACError) as exc:
        raise UsageError(f"catalog {url} is not a STAC API ({describe(exc)})") from exc
    if not client.conforms_to(ConformanceClasses.ITEM_SEARCH):
        raise UsageError(f"catalog {url} does not offer STAC item search (no item-search "
                         f"conformance class); {NOT_AN_API}")
    return client


def get_collection(client: Client, collection_id: str) -> pystac.Collection:
    """The collection, or a usage error (exit 2) listing the ones the catalog has."""
    try:
        collection = client.get_collection(collection_id)
    except APIError as exc:
        raise _api_failure(exc, f"reading collection {collection_id!r}") from exc
    if collection is None:
        try:
            known = sorted(c.id for c in client.get_collections())
        except APIError:
            known = []
        listing = ", ".join(known[:20]) + (" ..." if len(known) > 20 else "")
        raise UsageError(f"collection {collection_id!r} not found in {client.get_self_href()} "
                         f"(it has: {listing or 'none listed'})")
    return collection


def item_href(item: pystac.Item, catalog: str, collection: str) -> str:
    """Where the item lives: its ``self`` link, else its address under the API's collections."""
    return item.get_self_href() or (
        f"{catalog.rstrip('/')}/collections/{collection}/items/{item.id}")


def _cloud_ok(item: pystac.Item, max_cloud: float | None) -> bool:
    """The client-side twin of the CQL2 ``eo:cloud_cover <= max``: unknown cover fails it."""
    if max_cloud is None:
        return True
    value = item.properties.get(CLOUD)
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value <= max_cloud


def _moment(item: pystac.Item) -> datetime:
    value = item.datetime or item.common_metadata.start_datetime
    return value or datetime.min.replace(tzinfo=timezone.utc)


def order(items: list[pystac.Item]) -> list[pystac.Item]:
    """Newest first, ties by id: the stable order every run and every server agree on."""
    return sorted(sorted(items, key=lambda i: i.id), key=_moment, reverse=True)


def _server_args(client: Client, request: SearchRequest) -> tuple[dict[str, Any], str, str]:
    args: dict[str, Any] = {}
    filtering = "client-side"
    if request.max_cloud is not None:
        if client.conforms_to(ConformanceClasses.FILTER):
            args["filter"] = {"op": "<=", "args": [{"property": CLOUD}, request.max_cloud]}
            args["filter_lang"] = "cql2-json"
            filtering = "server-side filter (CQL2) + client-side check"
        elif client.conforms_to(ConformanceClasses.QUERY):
            args["query"] = {CLOUD: {"lte": request.max_cloud}}
            filtering = "server-side query + client-side check"
    sorting = "client-side"
    if client.conforms_to(ConformanceClasses.SORT):
        args["sortby"] = [{"field": "properties.datetime", "direction": "desc"},
                          {"field": "id", "direction": "asc"}]
        sorting = "server-side sortby + client-side"
    return args, filtering, sorting


def _pages(client: Client, request: SearchRequest, args: dict[str, Any],
           page_size: int) -> Iterator[pystac.Item]:
    search = client.search(collections=[request.collection], datetime=request.datetime,
                           limit=page_size, **request.aoi.search_args(), **args)
    for page in search.pages_as_dicts():
        for feature in page.get("features", []):
            yield pystac.Item.from_dict(feature, preserve_dict=False)


def search(client: Client, request: SearchRequest, page_size: int = PAGE_SIZE) -> SearchResult:
    """All matching items (every page), filtered and ordered the same way on any server."""
    args, filtering, sorting = _server_args(client, request)
    log.info("searching %s: collection=%s %s datetime=%s; cloud filter %s; order %s",
             client.get_self_href(), request.collection,
             json.dumps(request.aoi.search_args()), request.datetime, filtering, sorting)
    server_sorted = "sortby" in args
    kept: list[pystac.Item] = []
    try:
        for item in _pages(client, request, args, page_size):
            if _cloud_ok(item, request.max_cloud):
                kept.append(item)
            if server_sorted and request.max_items is not None and len(kept) >= request.max_items:
                break
    except (APIError, pystac.STACError) as exc:  # STACError: a link it could not resolve
        raise _api_failure(exc, f"searching collection {request.collection!r} in "
                                f"{client.get_self_href()}") from exc
    items = order(kept)
    if request.max_items is not None:
        items = items[:request.max_items]
    return SearchResult(items=items, filtering=filtering, sorting=sorting)
