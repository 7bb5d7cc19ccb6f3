"""Authentication: bearer JWTs checked against a JWKS, and static API keys, into a :class:`Principal`.

A JWT is accepted when its signature verifies with a key of the configured JWKS (file, inline, or URL:
the URL is fetched with a short timeout, off the event loop, and cached), its algorithm is one of the
configured asymmetric ones, it has not expired, and its ``iss`` / ``aud`` match the settings. The
principal's e-mail is taken only when the token does not say ``email_verified: false``; roles and grants
come from configurable claims, grants also from ``NCDC_STAC_GRANTS`` / ``NCDC_STAC_GRANTS_FILE``.

API keys are looked up by their SHA-256 digest (keys themselves are never stored).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import anyio.to_thread
import jwt
from pydantic import TypeAdapter

from services.access.policy import Principal
from services.access.settings import AccessSettings, ApiKey

API_KEY_HEADER = "x-api-key"
T = TypeVar("T")


class AuthenticationError(Exception):
    """Credentials were presented but are not valid (answered 401, never treated as anonymous)."""


def hash_api_key(key: str) -> str:
    """The digest under which an API key is configured (``NCDC_STAC_API_KEYS``)."""
    return hashlib.sha256(key.encode()).hexdigest()


class JsonFile(Generic[T]):
    """A JSON file parsed with ``parse``, re-read when its modification time or size changes."""

    def __init__(self, path: Path, parse: Callable[[Any], T]) -> None:
        self.path = path
        self.parse = parse
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._value: T | None = None

    def get(self) -> T:
        stat = self.path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if self._stamp != stamp or self._value is None:
                self._value = self.parse(json.loads(self.path.read_bytes()))
                self._stamp = stamp
            return self._value


_API_KEYS = TypeAdapter(dict[str, ApiKey])
_GRANTS = TypeAdapter(dict[str, list[str]])


def _claim(claims: Mapping[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _strings(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list | tuple):
        return frozenset(v for v in value if isinstance(v, str))
    return frozenset()


@dataclass(frozen=True)
class Credentials:
    bearer: str | None = None
    api_key: str | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Credentials:
        """From ``Authorization: Bearer ...`` and ``X-API-Key`` (header names lower case)."""
        authorization = headers.get("authorization", "").strip()
        scheme, _, token = authorization.partition(" ")
        if authorization and scheme.lower() != "bearer":
            raise AuthenticationError("only the Bearer authorization scheme is supported")
        if authorization and not token.strip():
            raise AuthenticationError("empty bearer token")
        return cls(bearer=token.strip() or None, api_key=headers.get(API_KEY_HEADER, "").strip() or None)

    @property
    def present(self) -> bool:
        return self.bearer is not None or self.api_key is not None


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


class Authenticator:
    """Credentials -> :class:`Principal` (or ``None`` for an anonymous caller), per the settings."""

    def __init__(self, settings: AccessSettings) -> None:
        self.settings = settings
        jwks: dict[str, Any] | None = settings.auth_jwks
        if settings.auth_jwks_file is not None:
            jwks = json.loads(settings.auth_jwks_file.read_bytes())
        self._jwks = jwt.PyJWKSet.from_dict(jwks) if jwks else None
        self._jwks_client = (
            jwt.PyJWKClient(settings.auth_jwks_url, cache_keys=True, lifespan=300, timeout=settings.auth_jwks_timeout)
            if settings.auth_jwks_url
            else None
        )
        self._api_keys_file = (
            JsonFile(settings.api_keys_file, _API_KEYS.validate_python) if settings.api_keys_file else None
        )
        self._grants_file = JsonFile(settings.grants_file, _GRANTS.validate_python) if settings.grants_file else None
        for source in (self._api_keys_file, self._grants_file):
            if source is not None:
                source.get()  # a missing or malformed file is a configuration error: fail at start
        self._admin_emails = frozenset(e.strip().lower() for e in settings.admin_emails)
        self._admin_subjects = frozenset(settings.admin_subjects)

    @property
    def jwt_enabled(self) -> bool:
        return self._jwks is not None or self._jwks_client is not None

    async def authenticate(self, headers: Mapping[str, str]) -> Principal | None:
        """The principal of a request's headers; ``None`` without credentials; raises on bad credentials."""
        credentials = Credentials.from_headers(headers)
        if credentials.bearer is not None and credentials.api_key is not None:
            raise AuthenticationError("send either a bearer token or an API key, not both")
        if credentials.api_key is not None:
            return self.from_api_key(credentials.api_key)
        if credentials.bearer is None:
            return None
        if not looks_like_jwt(credentials.bearer):
            return self.from_api_key(credentials.bearer)
        if self._jwks_client is not None:  # may fetch the key set: off the event loop
            return await anyio.to_thread.run_sync(self.from_jwt, credentials.bearer)
        return self.from_jwt(credentials.bearer)

    # API keys

    def _api_key_table(self) -> Mapping[str, ApiKey]:
        table = dict(self.settings.api_keys)
        if self._api_keys_file is not None:
            table.update(self._api_keys_file.get())
        return table

    def from_api_key(self, key: str) -> Principal:
        spec = self._api_key_table().get(hash_api_key(key))
        if spec is None:
            raise AuthenticationError("unknown API key")
        return self._principal(spec.subject, spec.email, frozenset(spec.roles), frozenset(spec.grants), "api-key")

    # JWTs

    def _candidate_keys(self, token: str) -> list[jwt.PyJWK]:
        """Keys that may have signed ``token``: the one named by its ``kid``, else those fitting its ``alg``."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise AuthenticationError("malformed token") from error
        kid, algorithm = header.get("kid"), str(header.get("alg", ""))
        if algorithm not in self.settings.auth_algorithms:
            raise AuthenticationError(f"token algorithm {algorithm!r} is not accepted")
        if self._jwks is not None:
            keys = [
                k
                for k in self._jwks.keys
                if (k.key_id == kid if kid is not None else k.algorithm_name == algorithm)
                and k.public_key_use in (None, "sig")
            ]
            if keys:
                return keys
        if self._jwks_client is None:
            if self._jwks is not None:
                raise AuthenticationError("token signed with an unknown key")
            raise AuthenticationError("bearer tokens are not accepted by this service")
        try:
            return [self._jwks_client.get_signing_key_from_jwt(token)]
        except jwt.PyJWTError as error:
            raise AuthenticationError("token signed with an unknown key") from error

    def _decode(self, token: str, key: jwt.PyJWK) -> dict[str, Any]:
        settings = self.settings
        return jwt.decode(
            token,
            key=key,
            algorithms=settings.auth_algorithms,
            audience=settings.auth_audience,
            issuer=settings.auth_issuer,
            leeway=settings.auth_leeway,
            options={
                "require": ["exp", "sub"] + (["iss"] if settings.auth_issuer else []),
                "verify_aud": settings.auth_audience is not None,
            },
        )

    def from_jwt(self, token: str) -> Principal:
        keys = self._candidate_keys(token)
        claims: dict[str, Any] | None = None
        for key in keys:
            try:
                claims = self._decode(token, key)
                break
            except jwt.InvalidSignatureError as error:
                if key is keys[-1]:
                    raise AuthenticationError("invalid token signature") from error
            except jwt.ExpiredSignatureError as error:
                raise AuthenticationError("token expired") from error
            except jwt.PyJWTError as error:
                raise AuthenticationError(f"invalid token: {error}") from error
        if claims is None:
            raise AuthenticationError("invalid token")
        settings = self.settings
        email = claims.get("email")
        if not isinstance(email, str) or "@" not in email or claims.get("email_verified") is False:
            email = None
        roles = _strings(_claim(claims, settings.auth_roles_claim))
        grants = _strings(_claim(claims, settings.auth_grants_claim))
        return self._principal(str(claims["sub"]), email, roles, grants, "jwt")

    # Both

    def grants_of(self, subject: str, email: str | None) -> frozenset[str]:
        """Collection ids configured for a user (by subject or e-mail)."""
        table: dict[str, list[str]] = dict(self.settings.grants)
        if self._grants_file is not None:
            table.update(self._grants_file.get())
        found = set(table.get(subject, []))
        if email:
            found.update(*(ids for user, ids in table.items() if user.lower() == email))
        return frozenset(found)

    def _principal(
        self, subject: str, email: str | None, roles: frozenset[str], grants: frozenset[str], via: Any
    ) -> Principal:
        email = email.strip().lower() if email else None
        admin = (
            self.settings.admin_role in roles
            or subject in self._admin_subjects
            or (email is not None and email in self._admin_emails)
        )
        return Principal(
            subject=subject,
            email=email,
            roles=roles,
            grants=grants | self.grants_of(subject, email),
            admin=admin,
            via=via,
        )
