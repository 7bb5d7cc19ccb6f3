"""Transactions (pgstac backend only): stac-fastapi's Transaction extensions, every route for admins only.

Off by default: the API is read-only and ``ncdc-stac ingest`` loads publications. With
``NCDC_STAC_BACKEND=pgstac`` and ``NCDC_STAC_PGSTAC_ENABLE_TRANSACTIONS_EXTENSIONS=true``
(stac-fastapi-pgstac's own switch, read with our prefix by ``services.api.pgstac.PgstacApiSettings``), the API
gains stac-fastapi-pgstac's ``TransactionsClient`` routes (``POST /collections``, ``PUT`` / ``PATCH`` /
``DELETE /collections/{id}``, ``POST /collections/{id}/items``, ``PUT`` / ``PATCH`` / ``DELETE
/collections/{id}/items/{item}``) and ``POST /collections/{id}/bulk_items``, and a write pool is opened.

Every one of those routes depends on :func:`services.access.require_admin`: 401 for an anonymous caller (or
invalid credentials), 403 for a caller who is not an admin (role ``NCDC_STAC_ADMIN_ROLE``, or listed in
``NCDC_STAC_ADMIN_SUBJECTS`` / ``NCDC_STAC_ADMIN_EMAILS``). Signed URLs never make an admin. The routes only
work inside the service (``services.app.create_app``), where access control is installed; anywhere else they
fail closed.

Writes go to pgstac only: the published files (``/files``, the static catalog, items.parquet) and the access
rules read from them do not change; data of a collection created here stay unpublished until ``ncdc-stac
publish``.
"""

from __future__ import annotations

from collections.abc import Iterable

import attr
from fastapi import Depends
from stac_fastapi.extensions import BulkTransactionExtension, TransactionExtension
from stac_fastapi.types.extension import ApiExtension

from services.access import require_admin

TRANSACTION_EXTENSIONS = (TransactionExtension, BulkTransactionExtension)


def admin_only(extensions: Iterable[ApiExtension]) -> list[ApiExtension]:
    """``extensions`` with every transaction extension's routes requiring an admin (others as they are)."""
    admin = [Depends(require_admin)]
    return [
        attr.evolve(extension, route_dependencies=[*admin, *(extension.route_dependencies or [])])
        if isinstance(extension, TRANSACTION_EXTENSIONS)
        else extension
        for extension in extensions
    ]
