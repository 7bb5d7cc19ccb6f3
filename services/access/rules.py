"""Access rules of the published collections, read from ``<root>/<collection>/collection.json``.

Rules are cached per :class:`CollectionRules` instance (one per app) and re-read when a
``collection.json`` changes (modification time or size; an object's ETag), so a republished record takes
effect at once (within ``NCDC_STAC_S3_METADATA_TTL`` for object storage).
:func:`classify` tells a published file's kind from its path: metadata (public) or data (restricted by
the collection's rule).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Literal

from ncdc_stac.storage import Root, open_root
from services.access.policy import AccessRule, rule_from_collection

log = logging.getLogger("ncdc_stac.access")
COLLECTION_FILE = "collection.json"
ITEMS_PARQUET = "items.parquet"
CATALOG_FILE = "catalog.json"
THUMBNAIL = "thumbnail.png"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,199}$")
FileKind = Literal["metadata", "data", "refused"]


def valid_collection_id(collection_id: str) -> bool:
    return bool(_ID.match(collection_id)) and ".." not in collection_id


def path_parts(path: str) -> list[str] | None:
    """Segments of a decoded URL path below the files mount; ``None`` when it must not be served.

    Refused: empty, ``.`` or ``..`` segments, hidden files (``.publish-state.json``), backslashes, NULs.
    """
    parts = path.strip("/").split("/")
    for part in parts:
        if not part or part.startswith(".") or "\\" in part or "\x00" in part:
            return None
    return parts


def classify(parts: Sequence[str], rule: AccessRule | None = None) -> FileKind:
    """Whether ``<root>/<parts...>`` is public metadata or a collection's data.

    Metadata: ``catalog.json``, ``<c>/collection.json``, ``<c>/items.parquet``, item documents
    ``<c>/<item>/<item>.json``, ``thumbnail.png`` anywhere in a collection, and the collection's own
    thumbnail / overview assets. Any other file at the root is refused.
    """
    if len(parts) == 1:
        return "metadata" if parts[0] == CATALOG_FILE else "refused"
    rest = list(parts[1:])
    if rest in ([COLLECTION_FILE], [ITEMS_PARQUET]) or rest[-1] == THUMBNAIL:
        return "metadata"
    if len(rest) == 2 and rest[1] == f"{rest[0]}.json":
        return "metadata"
    if rule is not None and "/".join(rest) in rule.public_paths:
        return "metadata"
    return "data"


class CollectionRules:
    """``collection id -> AccessRule`` from a publication root, cached until the file changes."""

    def __init__(self, root: Root | Path) -> None:
        self.root = open_root(root)
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[Hashable, AccessRule]] = {}

    def get(self, collection_id: str) -> AccessRule | None:
        """The rule of a collection, ``None`` when it is not published (or its document is unreadable)."""
        if not valid_collection_id(collection_id):
            return None
        key = f"{collection_id}/{COLLECTION_FILE}"
        stamp = self.root.stamp(key)
        if stamp is None:
            return None
        with self._lock:
            cached = self._cache.get(collection_id)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            document = json.loads(self.root.read(key))
            if not isinstance(document, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as error:
            log.warning("collection %s: unreadable collection.json (%s); its data are refused", collection_id, error)
            return None
        rule = rule_from_collection({**document, "id": collection_id})
        with self._lock:
            self._cache[collection_id] = (stamp, rule)
        return rule

    def all(self) -> list[AccessRule]:
        """Rules of every published collection."""
        rules = (self.get(folder) for folder in self.root.collection_folders())
        return [rule for rule in rules if rule is not None]
