"""stac-api-validator against the service on uvicorn (loopback), for each backend, offline.

The validator (``stac_api_validator.validations.validate_api``, run in-process) and the libraries it drives
(stac-validator, stac-check, pystac, pystac-client) fetch JSON schemas from the internet. Here:

* a request for a schema URL (the hosts of ``../shared/stac-schemas``: ``schemas.stacspec.org``,
  ``stac-extensions.github.io``, ``geojson.org``, ``json-schema.org``, ``proj.org``) is answered from the kit, at
  urllib3's connection pool (``requests``, pystac's ``urllib3.PoolManager``) and urllib's opener (stac-validator's
  link checks, pystac without urllib3); a schema URL the kit lacks is answered 404 and fails the test by name;
* requests to the API go to the real server on 127.0.0.1;
* anything else - stac-validator opens every link and asset href of the documents it checks (a license page, an
  ``https://example.org`` asset, the data center's site) - is refused before a packet leaves the machine: name
  resolution and ``connect`` accept loopback only. stac-validator records those links as unreachable, which is
  informational (it never makes a document invalid).

One test per (backend, conformance class the validator can check). Validator errors that are not API defects
are allowed only through :data:`ALLOWED`, each with its reason and matched by its message; any other error
fails the test. What the validator cannot check is skipped with the reason.
"""

from __future__ import annotations

import email.message
import importlib.util
import io
import ipaddress
import json
import re
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.response import addinfourl

import httpx
import pytest
import urllib3
import urllib3.connectionpool

from tests.conftest import SCHEMA_KIT, require

# --- offline HTTP ------------------------------------------------------------------------------------------

KIT_HOSTS = frozenset(p.name for p in SCHEMA_KIT.iterdir() if p.is_dir()) if SCHEMA_KIT.is_dir() else frozenset()
"""Hosts whose URLs are answered from the kit (it has one folder per host)."""
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


@dataclass
class Offline:
    """What happened to the requests that did not go to the API."""

    kit: Path
    served: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)
    api_errors: list[str] = field(default_factory=list)
    """Answers >= 400 of the API (urllib3 requests), to explain a validator crash."""

    def schema(self, url: str) -> bytes | None:
        """The kit's copy of a schema URL (``None``: not in the kit; recorded)."""
        parts = urlsplit(url)
        path = (self.kit / f"{parts.hostname}{parts.path}".rstrip("/")).resolve()
        if self.kit.resolve() in path.parents and path.is_file():
            self.served.add(url.split("#", maxsplit=1)[0])
            return path.read_bytes()
        self.missing.add(url)
        return None


def is_kit_url(url: str) -> bool:
    """Whether ``url`` is on one of the kit's hosts."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and (parts.hostname or "") in KIT_HOSTS


def is_loopback(host: str | None) -> bool:
    """``None`` (the local host), localhost names and 127.0.0.0/8, ::1."""
    if host is None or host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0]).is_loopback
    except ValueError:
        return False


def _urllib3_response(url: str, method: str, content: bytes | None, kwargs: dict[str, Any]) -> urllib3.HTTPResponse:
    return urllib3.HTTPResponse(
        body=io.BytesIO(content if content is not None else b"not in the schema kit"),
        headers={"Content-Type": "application/schema+json" if content is not None else "text/plain"},
        status=200 if content is not None else 404,
        reason="OK" if content is not None else "Not Found",
        preload_content=kwargs.get("preload_content", True),
        decode_content=kwargs.get("decode_content", True),
        request_method=method,
        request_url=url,
    )


class _KitHandler(urllib.request.HTTPHandler, urllib.request.HTTPSHandler):
    """urllib handler answering kit URLs; other URLs go the usual way (and meet the socket guard)."""

    def __init__(self, offline: Offline) -> None:
        urllib.request.HTTPHandler.__init__(self)
        urllib.request.HTTPSHandler.__init__(self)
        self.offline = offline

    def _answer(self, request: urllib.request.Request) -> addinfourl | None:
        url = request.get_full_url()
        if not is_kit_url(url):
            return None
        content = self.offline.schema(url)
        headers = email.message.Message()
        headers["Content-Type"] = "application/schema+json"
        if content is None:
            raise urllib.error.HTTPError(url, 404, "not in the schema kit", headers, io.BytesIO(b""))
        response = addinfourl(io.BytesIO(content), headers, url, 200)
        response.msg = "OK"  # type: ignore[attr-defined]  # read by urllib's HTTPErrorProcessor
        return response

    def http_open(self, req: urllib.request.Request) -> Any:
        return self._answer(req) or super().http_open(req)

    def https_open(self, req: urllib.request.Request) -> Any:
        return self._answer(req) or super().https_open(req)


@contextmanager
def offline(kit: Path) -> Iterator[Offline]:
    """Schema URLs from ``kit``, loopback as usual, every other host refused (no DNS query, no connection)."""
    state = Offline(kit)
    patch = pytest.MonkeyPatch()
    real_getaddrinfo = socket.getaddrinfo
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_urlopen = urllib3.connectionpool.HTTPConnectionPool.urlopen

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if not is_loopback(name):
            state.refused.add(str(name))
            raise socket.gaierror(socket.EAI_NONAME, f"offline test: {name} is not resolved")
        return real_getaddrinfo(host, *args, **kwargs)

    def guard(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(str(address[0])):
            state.refused.add(str(address[0]))
            raise ConnectionRefusedError(f"offline test: no connection to {address[0]}")

    def connect(sock: socket.socket, address: Any) -> None:
        guard(sock, address)
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        guard(sock, address)
        return real_connect_ex(sock, address)

    def urlopen(
        pool: urllib3.connectionpool.HTTPConnectionPool, method: str, url: str, *args: Any, **kwargs: Any
    ) -> Any:
        port = f":{pool.port}" if pool.port not in (None, 80, 443) else ""
        full = url if "://" in url else f"{pool.scheme}://{pool.host}{port}{url}"
        if is_kit_url(full):
            return _urllib3_response(full, method, state.schema(full), kwargs)
        response = real_urlopen(pool, method, url, *args, **kwargs)
        if response.status >= 400:
            state.api_errors.append(f"{method} {full} -> {response.status}")
        return response

    previous_opener = urllib.request._opener  # type: ignore[attr-defined]
    patch.setattr(socket, "getaddrinfo", getaddrinfo)
    patch.setattr(socket.socket, "connect", connect)
    patch.setattr(socket.socket, "connect_ex", connect_ex)
    patch.setattr(urllib3.connectionpool.HTTPConnectionPool, "urlopen", urlopen)
    urllib.request.install_opener(urllib.request.build_opener(_KitHandler(state)))
    try:
        yield state
    finally:
        urllib.request._opener = previous_opener  # type: ignore[attr-defined]
        patch.undo()


def test_offline_guard() -> None:
    """Kit URLs answered, unknown schema URLs 404 and recorded, other hosts refused without a DNS query."""
    require(SCHEMA_KIT.is_dir(), f"STAC schema kit not found at {SCHEMA_KIT}")
    import requests

    opener = urllib.request._opener  # type: ignore[attr-defined]
    with offline(SCHEMA_KIT) as net:
        geojson = requests.get("https://geojson.org/schema/Feature.json", timeout=5)
        assert geojson.status_code == 200
        assert geojson.json()["title"] == "GeoJSON Feature"
        with urllib.request.urlopen("http://json-schema.org/draft-07/schema#") as answer:
            assert json.load(answer)["$schema"].startswith("http://json-schema.org/draft-07/schema")
        assert requests.get("https://schemas.stacspec.org/v9.9.9/nothing.json", timeout=5).status_code == 404
        with pytest.raises(requests.ConnectionError):
            requests.get("https://example.org/", timeout=5)
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen("https://creativecommons.org/licenses/by/4.0/", timeout=5)
        with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
            sock.connect(("192.0.2.1", 80))
    assert net.served == {"https://geojson.org/schema/Feature.json", "http://json-schema.org/draft-07/schema"}
    assert net.missing == {"https://schemas.stacspec.org/v9.9.9/nothing.json"}
    assert net.refused == {"example.org", "creativecommons.org", "192.0.2.1"}
    assert urllib.request._opener is opener  # type: ignore[attr-defined]
    assert socket.getaddrinfo("127.0.0.1", 80)


# --- what the validator checks -----------------------------------------------------------------------------

CONFORMANCE: dict[str, tuple[str, ...]] = {
    "core": (r"https://api\.stacspec\.org/v1\.0\.0/core",),
    "browseable": (r"https://api\.stacspec\.org/.+/browseable",),
    "children": (r"https://api\.stacspec\.org/.+/children",),
    "collections": (r"https://api\.stacspec\.org/v1\.0\.0/collections",),
    "features": (r"https://api\.stacspec\.org/v1\.0\.0/ogcapi-features",),
    "item-search": (r"https://api\.stacspec\.org/v1\.0\.0/item-search",),
    "item-search#filter": (r"https://api\.stacspec\.org/.+/item-search#filter",),
    "features#filter": (
        r"https://api\.stacspec\.org/.+/ogcapi-features#filter",
        r"http://www\.opengis\.net/spec/ogcapi-features-3/1\.0/conf/features-filter",
    ),
    "item-search#sort": (r"https://api\.stacspec\.org/.+/item-search#sort",),
    "item-search#fields": (r"https://api\.stacspec\.org/.+/item-search#fields",),
    "item-search#query": (r"https://api\.stacspec\.org/.+/item-search#query",),
    "features#sort": (r"https://api\.stacspec\.org/.+/ogcapi-features#sort",),
    "features#fields": (r"https://api\.stacspec\.org/.+/ogcapi-features#fields",),
    "features#query": (r"https://api\.stacspec\.org/.+/ogcapi-features#query",),
    "transaction": (r"https://api\.stacspec\.org/.+/ogcapi-features/extensions/transaction",),
}
"""The classes ``validate_api`` takes -> the conformance URIs by which the API advertises them.

They are the CLI's ``--conformance`` choices, except that the CLI's ``filter`` only runs inside ``item-search``;
in-process ``item-search#filter`` runs the same checks alone, and ``features#filter`` (not a CLI choice) checks
the collections' queryables link."""

NO_CHECKS = dict.fromkeys(
    ("features#sort", "features#fields", "features#query"),
    "stac-api-validator 0.6.8 has no checks for this class (validate_api only logs 'not yet supported')",
)
COMMON = frozenset(
    {
        "core",
        "collections",
        "features",
        "item-search",
        "item-search#filter",
        "features#filter",
        "item-search#sort",
        "item-search#fields",
        "features#sort",
        "features#fields",
    }
)
ADVERTISED = {"duckdb": COMMON, "pgstac": COMMON}
"""What each backend advertises today: a class added or dropped is noticed here, and then validated below."""

JSON_SCHEMA_DIALECTS = (
    "https://json-schema.org/draft/2020-12/schema",
    "https://json-schema.org/draft/2019-09/schema",
    "http://json-schema.org/draft-07/schema#",
)
"""The validator accepts 2019-09 and draft-07 (it never reads the body, see test_queryables); the embedded backend
writes 2020-12 like stac-fastapi's own queryables, pgstac draft-07."""
GEOMETRY = {"type": "Polygon", "coordinates": [[[74, 30], [80, 30], [80, 36], [74, 36], [74, 30]]]}
"""Intersects the western glaciers of the HMA test collection."""
FIELDS_NESTED_PROPERTY = "properties.ncdc:mean_velocity"
QUERY = {
    # the HMA test items: ncdc:mean_velocity 0.0 .. 29.0, ncdc:name "冰川 0" .. "冰川 29"
    "query_comparison_field": "ncdc:mean_velocity",
    "query_eq_value": "5",
    "query_neq_value": "5",
    "query_lt_value": "10",
    "query_lte_value": "10",
    "query_gt_value": "20",
    "query_gte_value": "20",
    "query_substring_field": "ncdc:name",
    "query_starts_with_value": "冰川",
    "query_ends_with_value": "9",
    "query_contains_value": "川 1",
    "query_in_field": "ncdc:name",
    "query_in_values": "冰川 1,冰川 2",
}


@dataclass(frozen=True)
class Allowed:
    """A validator error that is not an API defect: the validator's bug, or a check stricter than the spec."""

    pattern: str
    """Regex searched in the error message."""
    reason: str


_FIELDS_HINTS = (
    "Fields extension: 'It is recommended that implementations provide exactly the include and exclude sets "
    "specified by the request, but this is not required. [...] Implementations are still considered compliant "
    "if fields not specified as part of include are in the response'. "
)
ALLOWED: dict[str, tuple[Allowed, ...]] = {
    "item-search#filter": (
        Allowed(
            r"^\[Item Search - Filter Ext\] : (GET|POST) \S+ params=.*eo:cloud_cover.* "
            r"had unexpected status code 400 instead of 200",
            "validator assumption: its CQL2 comparison examples hard-code eo:cloud_cover. The embedded backend's "
            "queryables list the publication's properties with additionalProperties: false, and the Filter "
            "extension says 'if any term is used in expression that is not defined as a queryable an error must "
            "be returned' (OAFeat Part 3): 400 is the right answer. The same examples on real properties are in "
            "tests/api/test_search.py.",
        ),
    ),
    "item-search#sort": (
        Allowed(
            r"^\[Item Search - Sort Ext\] : POST \S+ params=None body=\{.*\"collections\": \"[^\"]*\"\} "
            r"had unexpected status code 400 instead of 200",
            "validator bug: validate_sort POSTs 'collections' as a string, where the Item Search POST body "
            "requires an array of strings, so 400 is the right answer (it then checks the previous GET's body, "
            "not the POST's). test_post_sortby below runs the POST checks it meant.",
        ),
    ),
    "item-search#query": (
        Allowed(
            r"^\[Item Search - Query Ext\] : POST \S+ params=None body=\{.*\"collections\": \"[^\"]*\"\} "
            r"had unexpected status code 400 instead of 200",
            "validator bug: validate_query POSTs 'collections' as a string (as validate_sort does)",
        ),
        Allowed(
            r"^\[Item Search - Query Ext\] : (GET|POST) search with Query '\{\"ncdc:name\": \{\"in\": .*"
            r"had non-matching results",
            "validator bug: the 'in' check compares the query values with set(property value), i.e. with the "
            "characters of a string property; it holds only for array properties, which the test items lack",
        ),
    ),
    "item-search#fields": (
        Allowed(
            r"^\[Item Search - Fields Ext\] : POST \S+ params=None body=\{\"fields\": null\} "
            r"had unexpected status code 200 instead of 400",
            'stricter than the spec: the Fields extension defines no behaviour for "fields": null; both '
            "backends (stac-fastapi request models) treat it as absent",
        ),
        Allowed(
            r"^\[Item Search - Fields Ext\] : .* response contained more than 5 extra fields ",
            _FIELDS_HINTS + "The validator fails any item of more than 5 keys; the embedded backend always "
            "keeps type, stac_version, id, collection and links (a minimal, linkable entity), so one included "
            "field makes 6.",
        ),
        Allowed(
            r"^\[Item Search - Fields Ext\] : POST \{'fields': \{'exclude': \['properties'\], "
            r"'include': \['properties\.[^']+'\]\}\} response contained fewer than 5 fields ",
            _FIELDS_HINTS + "For include=[properties.x] + exclude=[properties] the validator both wants at "
            "least 5 keys (validate_exclude_field) and at most 5 (validate_include_field); pgstac answers "
            "exactly what was asked plus id, collection, links (4 keys).",
        ),
        Allowed(
            r"^\[Item Search - Fields Ext\] : POST \{'fields': \{'exclude': \['geometry'\], "
            r"'include': (\[\]|None)\}\} response contained 'properties\.[^']+', but should have been excluded",
            _FIELDS_HINTS + "With exclude=[geometry] and include empty/null the validator expects only the "
            "default set (so no other property), while for exclude=[geometry] alone it expects the other "
            "properties present; both backends subtract the excludes from the whole item in both cases.",
        ),
    ),
}


def _advertised(conforms_to: list[str]) -> set[str]:
    return {
        name
        for name, patterns in CONFORMANCE.items()
        if any(re.fullmatch(p, uri) for p in patterns for uri in conforms_to)
    }


@pytest.fixture(scope="module")
def validations() -> Any:
    require(
        importlib.util.find_spec("stac_api_validator") is not None,
        "stac-api-validator is not installed (pip install -e '.[test]')",
    )
    require(SCHEMA_KIT.is_dir(), f"STAC schema kit not found at {SCHEMA_KIT}")
    from stac_api_validator import validations as module

    return module


@pytest.fixture(scope="module")
def advertised(live_url: str) -> set[str]:
    landing = httpx.get(f"{live_url}/stac/", timeout=30).raise_for_status().json()
    return _advertised(landing["conformsTo"])


def test_advertised_classes(advertised: set[str], backend: str) -> None:
    """The classes each backend advertises: every one is validated below (or skipped with the reason)."""
    assert advertised == ADVERTISED.get(backend, advertised)
    assert advertised <= set(CONFORMANCE)


def _validate(validations: Any, live_url: str, ids: dict[str, str], conformance: str) -> tuple[Any, Any]:
    """``validate_api`` for one class, as the CLI would run it with these options."""
    result: tuple[Any, Any] = validations.validate_api(
        root_url=f"{live_url}/stac/",
        ccs_to_validate=[conformance],
        collection=ids["hma"],
        geometry=json.dumps(GEOMETRY),
        auth_bearer_token=None,
        auth_query_parameter=None,
        fields_nested_property=FIELDS_NESTED_PROPERTY,
        validate_pagination=True,
        query_config=validations.QueryConfig(**QUERY),
        transaction_collection=None,
        headers=None,
        open_assets_urls=True,
        stac_check_config=None,
    )
    return result


@pytest.mark.parametrize("conformance", [c for c in CONFORMANCE if c not in ("browseable", "children", "transaction")])
def test_stac_api_validator(
    validations: Any, live_url: str, ids: dict[str, str], advertised: set[str], backend: str, conformance: str
) -> None:
    if conformance not in advertised:
        pytest.skip(f"the {backend} backend does not advertise {conformance}")
    if conformance in NO_CHECKS:
        pytest.skip(NO_CHECKS[conformance])
    with offline(SCHEMA_KIT) as net:
        try:
            warnings, errors = _validate(validations, live_url, ids, conformance)
        except Exception as crash:  # the validator's checks index the body of answers they expected to be 200
            pytest.fail(f"stac-api-validator crashed: {crash!r}; the API's last error answers: {net.api_errors[-3:]}")
    allowed = ALLOWED.get(conformance, ())
    unexplained = [str(e) for e in errors if not any(re.search(a.pattern, str(e)) for a in allowed)]
    report = {
        "errors": unexplained,
        "schema URLs missing from the kit": sorted(net.missing),
        "hosts refused (not loopback)": sorted(net.refused),
        "warnings": [str(w) for w in warnings],
    }
    assert not unexplained, json.dumps(report, indent=1, ensure_ascii=False)
    assert not net.missing, json.dumps(report, indent=1, ensure_ascii=False)


def test_queryables(live_url: str, ids: dict[str, str]) -> None:
    """The queryables checks the validator means to run: it drops ``application/schema+json`` bodies unread."""
    landing = httpx.get(f"{live_url}/stac/", timeout=30).raise_for_status().json()
    collection = httpx.get(f"{live_url}/stac/collections/{ids['hma']}", timeout=30).raise_for_status().json()
    for links in (landing["links"], collection["links"]):
        url = next(link["href"] for link in links if link["rel"] == "http://www.opengis.net/def/rel/ogc/1.0/queryables")
        response = httpx.get(url, headers={"Accept": "application/schema+json"}, timeout=30)
        assert response.status_code == 200, url
        assert response.headers["content-type"].split(";")[0] == "application/schema+json"
        schema = response.json()
        assert schema["$schema"] in JSON_SCHEMA_DIALECTS
        assert schema["$id"] == url
        assert schema["type"] == "object"


@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_post_sortby(live_url: str, ids: dict[str, str], direction: str) -> None:
    """The POST checks validate_sort means to run (see ALLOWED), with ``collections`` as an array."""
    body = {
        "sortby": [{"field": "properties.datetime", "direction": direction}],
        "limit": 100,
        "collections": [ids["hma"]],
    }
    response = httpx.post(f"{live_url}/stac/search", json=body, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].split(";")[0] == "application/geo+json"
    datetimes = [f["properties"]["datetime"] for f in response.json()["features"]]
    assert len(datetimes) == 30
    assert datetimes == sorted(datetimes, reverse=direction == "desc")
