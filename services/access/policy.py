"""Who may read a collection's data: pure rules from the Collection document, no I/O.

A Collection carries ``ncdc:share_type`` (``open-access`` | ``login-access`` | ``apply-access``),
``ncdc:protected_to`` (UTC end of an embargo), ``ncdc:protected`` and its managers as contacts with the
role ``custodian``. :func:`rule_from_collection` reads them into an :class:`AccessRule`;
:func:`decide` answers for one principal at one moment:

- admins read everything;
- during an embargo (``ncdc:protected_to`` in the future, or ``ncdc:protected: true`` without a date)
  only the collection's managers (matched by verified e-mail) and admins read the data;
- otherwise ``open-access`` is for everyone, ``login-access`` for any authenticated principal and
  ``apply-access`` for principals granted the collection (and its managers);
- an unknown share type is treated as ``apply-access`` (deny by default).

Anonymous callers who would need to sign in get 401, signed-in callers without the right get 403.
Metadata (Collections, Items, thumbnails) is never restricted: the rules apply to data only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

SHARE_TYPE = "ncdc:share_type"
PROTECTED = "ncdc:protected"
PROTECTED_TO = "ncdc:protected_to"
MANAGER_ROLE = "custodian"


class ShareType(StrEnum):
    OPEN = "open-access"
    LOGIN = "login-access"
    APPLY = "apply-access"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a JWT subject or an API key."""

    subject: str
    email: str | None = None
    """Verified e-mail, lower case (``None`` when the token does not vouch for it)."""
    roles: frozenset[str] = frozenset()
    grants: frozenset[str] = frozenset()
    """Collection ids granted to this principal (apply-access)."""
    admin: bool = False
    via: Literal["jwt", "api-key"] = "jwt"


@dataclass(frozen=True)
class AccessRule:
    """Access to a collection's data, read from its Collection document."""

    collection_id: str
    share_type: ShareType = ShareType.APPLY
    embargo_until: datetime | None = None
    """End of the embargo (UTC); ``datetime.max`` for ``ncdc:protected`` without an end date."""
    managers: frozenset[str] = frozenset()
    """E-mails (lower case) of the custodian contacts."""
    public_paths: frozenset[str] = field(default_factory=frozenset)
    """Paths inside the collection folder that are metadata (collection-level thumbnails, overviews)."""

    @property
    def restricted(self) -> bool:
        """Whether anyone may be refused the data at some time (not open, or under an embargo)."""
        return self.share_type is not ShareType.OPEN or self.embargo_until is not None

    def embargoed(self, now: datetime) -> bool:
        return self.embargo_until is not None and now < self.embargo_until


@dataclass(frozen=True)
class Decision:
    """``status`` 200 when allowed, 401 when the caller must authenticate, 403 when refused."""

    status: Literal[200, 401, 403]
    reason: str

    @property
    def allowed(self) -> bool:
        return self.status == 200


ALLOW_OPEN = Decision(200, "open access")
FOREVER = datetime.max.replace(tzinfo=UTC)


def _utc(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return FOREVER  # an embargo date we cannot read protects until someone fixes it
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _manager_emails(contacts: Any) -> frozenset[str]:
    emails: set[str] = set()
    for contact in contacts if isinstance(contacts, list) else []:
        if not isinstance(contact, Mapping) or MANAGER_ROLE not in (contact.get("roles") or []):
            continue
        for email in contact.get("emails") or []:
            value = email.get("value") if isinstance(email, Mapping) else None
            if isinstance(value, str) and "@" in value:
                emails.add(value.strip().lower())
    return frozenset(emails)


def _public_paths(assets: Any) -> frozenset[str]:
    paths: set[str] = set()
    for asset in assets.values() if isinstance(assets, Mapping) else []:
        if not isinstance(asset, Mapping) or not {"thumbnail", "overview"} & set(asset.get("roles") or []):
            continue
        href = asset.get("href")
        if isinstance(href, str) and "://" not in href and not href.startswith("/"):
            parts = [p for p in href.split("/") if p not in ("", ".")]
            if parts and ".." not in parts:
                paths.add("/".join(parts))
    return frozenset(paths)


def rule_from_collection(collection: Mapping[str, Any]) -> AccessRule:
    """The access rule of a Collection document (a dict as read from ``collection.json``)."""
    try:
        share_type = ShareType(collection.get(SHARE_TYPE, ShareType.OPEN.value))
    except ValueError:
        share_type = ShareType.APPLY
    embargo = _utc(collection.get(PROTECTED_TO))
    if embargo is None and collection.get(PROTECTED) is True:
        embargo = FOREVER
    return AccessRule(
        collection_id=str(collection.get("id", "")),
        share_type=share_type,
        embargo_until=embargo,
        managers=_manager_emails(collection.get("contacts")),
        public_paths=_public_paths(collection.get("assets")),
    )


def is_manager(rule: AccessRule, principal: Principal | None) -> bool:
    return principal is not None and principal.email is not None and principal.email in rule.managers


def decide(rule: AccessRule, principal: Principal | None, now: datetime) -> Decision:  # noqa: PLR0911
    """May ``principal`` (``None``: anonymous) read the data of ``rule``'s collection at ``now`` (aware)?"""
    if principal is not None and principal.admin:
        return Decision(200, "admin")
    if is_manager(rule, principal):
        return Decision(200, "collection manager")
    if rule.embargoed(now):
        until = "further notice" if rule.embargo_until == FOREVER else f"{rule.embargo_until:%Y-%m-%dT%H:%M:%SZ}"
        reason = f"the data of this collection are under embargo until {until}"
        return Decision(401 if principal is None else 403, reason)
    if rule.share_type is ShareType.OPEN:
        return ALLOW_OPEN
    if principal is None:
        return Decision(401, f"{rule.share_type.value}: authentication required")
    if rule.share_type is ShareType.LOGIN:
        return Decision(200, "authenticated")
    if rule.collection_id in principal.grants:
        return Decision(200, "granted")
    return Decision(403, "apply-access: this collection has not been granted to you")


def granted(rules: Iterable[AccessRule], principal: Principal | None, now: datetime) -> list[str]:
    """Ids of the collections among ``rules`` whose data ``principal`` may read."""
    return [r.collection_id for r in rules if decide(r, principal, now).allowed]
