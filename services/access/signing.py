"""Signed URLs: ``?exp=<unix seconds>&sig=<HMAC-SHA256>[&sub=<subject>]``.

The signature covers a scope, the expiry and the subject it was issued to:

- ``path``: one exact file path under the service root (``/files/<collection>/<item>/<asset>.tif``),
  for asset downloads and streaming (browsers, GDAL ``/vsicurl/``: every range request carries it);
- ``collection``: every raster route of one collection (tile URL templates of a viewer or QGIS).

A signature of one scope never verifies for another, nor for another path or collection; an expired,
tampered or malformed one is refused (403).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlencode

EXPIRES = "exp"
SIGNATURE = "sig"
SUBJECT = "sub"
SIGNED_PARAMETERS = frozenset({EXPIRES, SIGNATURE, SUBJECT})
Scope = Literal["path", "collection"]
_VERSION = b"ncdc-stac-signed-url-v1"


class InvalidSignatureError(Exception):
    """The signed URL is expired, tampered with or malformed."""


@dataclass(frozen=True)
class Signed:
    """A verified signature: until when, and to whom it was issued (``None``: not recorded)."""

    expires: int
    subject: str | None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class UrlSigner:
    """Issue and verify signed URLs with one HMAC key."""

    def __init__(self, key: bytes | None = None, ttl: int = 900) -> None:
        self.key = key or secrets.token_bytes(32)
        self.ttl = ttl

    def _mac(self, scope: Scope, target: str, expires: int, subject: str | None) -> str:
        message = b"\n".join(
            [_VERSION, scope.encode(), target.encode("utf-8"), str(expires).encode(), (subject or "").encode("utf-8")]
        )
        return _b64(hmac.new(self.key, message, hashlib.sha256).digest())

    def sign(
        self, scope: Scope, target: str, subject: str | None = None, ttl: int | None = None, now: float | None = None
    ) -> dict[str, str]:
        """Query parameters granting ``target`` until ``now + ttl`` (default: the configured ttl)."""
        expires = int(now if now is not None else time.time()) + min(ttl or self.ttl, self.ttl)
        params = {EXPIRES: str(expires), SIGNATURE: self._mac(scope, target, expires, subject)}
        if subject:
            params[SUBJECT] = subject
        return params

    def sign_query(self, scope: Scope, target: str, subject: str | None = None, ttl: int | None = None) -> str:
        return urlencode(self.sign(scope, target, subject, ttl))

    def verify(self, scope: Scope, target: str, params: Mapping[str, str], now: float | None = None) -> Signed:
        """The signature in ``params`` for ``target``; raises :class:`InvalidSignatureError`."""
        expires_text, signature = params.get(EXPIRES, ""), params.get(SIGNATURE, "")
        subject = params.get(SUBJECT) or None
        if not (expires_text.isascii() and expires_text.isdigit() and len(expires_text) <= 12) or not signature:
            raise InvalidSignatureError("malformed signed URL")
        expires = int(expires_text)
        expected = self._mac(scope, target, expires, subject)
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            raise InvalidSignatureError("invalid signature")
        if expires < (now if now is not None else time.time()):
            raise InvalidSignatureError("signed URL expired")
        return Signed(expires, subject)


def has_signature(params: Mapping[str, str]) -> bool:
    return SIGNATURE in params or EXPIRES in params
