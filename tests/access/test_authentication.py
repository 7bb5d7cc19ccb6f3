"""Bearer JWTs against a local JWKS (inline, file, loopback URL) and static API keys."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from services.access import AccessSettings, ApiKey, Authenticator, hash_api_key
from services.access.policy import Principal
from services.access.principals import AuthenticationError
from tests.access.conftest import APPLY, GRANTED, SCRIPT_KEY, World, build_settings
from tests.access.identity import LocalIssuer
from tests.live import serve


def authenticate(authenticator: Authenticator, headers: dict[str, str]) -> Principal | None:
    lowered = {k.lower(): v for k, v in headers.items()}
    return asyncio.run(authenticator.authenticate(lowered))


def test_rs256_and_es256_tokens(world: World, issuer: LocalIssuer) -> None:
    authenticator = world.access.authenticator
    for algorithm in ("RS256", "ES256"):
        headers = issuer.bearer("u1", email="U1@Example.org", roles=["reader"], grants=["x"], algorithm=algorithm)
        principal = authenticate(authenticator, headers)
        assert principal == Principal(
            subject="u1", email="u1@example.org", roles=frozenset({"reader"}), grants=frozenset({"x"}), via="jwt"
        )


def test_token_without_kid_finds_its_key_by_algorithm(world: World, issuer: LocalIssuer) -> None:
    claims = {"iss": issuer.issuer, "aud": issuer.audience, "sub": "nokid", "exp": int(time.time()) + 60}
    for key, algorithm in ((issuer.ec, "ES256"), (issuer.rsa, "RS256")):
        token = jwt.encode(claims, key, algorithm=algorithm)
        principal = authenticate(world.access.authenticator, {"Authorization": f"Bearer {token}"})
        assert principal is not None and principal.subject == "nokid"


def test_grants_from_settings_by_email_and_admin_role(world: World, issuer: LocalIssuer) -> None:
    authenticator = world.access.authenticator
    principal = authenticate(authenticator, issuer.bearer("u2", email=GRANTED))
    assert principal is not None and APPLY in principal.grants and not principal.admin
    admin = authenticate(authenticator, issuer.bearer("u3", roles=["admin"]))
    assert admin is not None and admin.admin


def test_unverified_email_is_ignored(world: World, issuer: LocalIssuer) -> None:
    headers = issuer.bearer("u4", email=GRANTED, email_verified=False)
    principal = authenticate(world.access.authenticator, headers)
    assert principal is not None and principal.email is None and not principal.grants


def _forged(issuer: LocalIssuer) -> dict[str, str]:
    now = int(time.time())
    claims = {"iss": issuer.issuer, "aud": issuer.audience, "sub": "x", "exp": now + 300}
    public_pem = issuer.jwks["keys"][0]["n"]
    return {
        "alg none": jwt.encode(claims, "", algorithm="none"),
        "HS256 with public key material": jwt.encode(claims, public_pem * 2, algorithm="HS256"),
        "other key": LocalIssuer().token("x"),
        "unknown kid": jwt.encode(claims, issuer.rsa, algorithm="RS256", headers={"kid": "nope"}),
    }


INVALID = [
    *("expired", "wrong issuer", "wrong audience", "no exp", "no sub", "alg none", "HS256 with public key material"),
    *("other key", "unknown kid", "garbage", "both credentials", "empty bearer", "basic"),
]


@pytest.mark.parametrize("case", INVALID)
def test_invalid_tokens_are_rejected(world: World, issuer: LocalIssuer, case: str) -> None:
    tokens: dict[str, Any] = {
        "expired": issuer.token("x", lifetime=-120),
        "wrong issuer": issuer.token("x", iss="https://evil.example.org"),
        "wrong audience": issuer.token("x", aud="another-service"),
        "no exp": jwt.encode({"iss": issuer.issuer, "aud": issuer.audience, "sub": "x"}, issuer.rsa, "RS256"),
        "no sub": jwt.encode(
            {"iss": issuer.issuer, "aud": issuer.audience, "exp": int(time.time()) + 60}, issuer.rsa, "RS256"
        ),
        "garbage": "eyJhbGciOi.broken.token",
        **_forged(issuer),
    }
    headers = {
        "both credentials": {"Authorization": f"Bearer {issuer.token('x')}", "X-API-Key": SCRIPT_KEY},
        "empty bearer": {"Authorization": "Bearer "},
        "basic": {"Authorization": "Basic eDp5"},
    }.get(case) or {"Authorization": f"Bearer {tokens[case]}"}
    with pytest.raises(AuthenticationError):
        authenticate(world.access.authenticator, headers)


def test_leeway_accepts_small_clock_skew(world: World, issuer: LocalIssuer) -> None:
    assert authenticate(world.access.authenticator, issuer.bearer("x", lifetime=-5)) is not None


def test_api_keys_by_header_or_bearer(world: World) -> None:
    authenticator = world.access.authenticator
    for headers in ({"X-API-Key": SCRIPT_KEY}, {"Authorization": f"Bearer {SCRIPT_KEY}"}):
        principal = authenticate(authenticator, headers)
        assert principal is not None and principal.subject == "script" and principal.via == "api-key"
        assert principal.grants == {APPLY}
    with pytest.raises(AuthenticationError):
        authenticate(authenticator, {"X-API-Key": SCRIPT_KEY + "x"})
    assert authenticate(authenticator, {}) is None


def test_jwks_and_key_files_are_read_and_followed(tmp_path: Path, issuer: LocalIssuer) -> None:
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(issuer.jwks))
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(json.dumps({hash_api_key("k1"): {"subject": "from-file"}}))
    grants_file = tmp_path / "grants.json"
    grants_file.write_text(json.dumps({"u5": ["c1"]}))
    settings = build_settings(
        tmp_path, issuer, auth_jwks=None, auth_jwks_file=jwks_file, api_keys_file=keys_file, grants_file=grants_file
    )
    authenticator = Authenticator(settings)
    principal = authenticate(authenticator, issuer.bearer("u5"))
    assert principal is not None and principal.grants == {"c1"}
    grants_file.write_text(json.dumps({"u5": ["c1", "c2"]}))
    principal = authenticate(authenticator, issuer.bearer("u5"))
    assert principal is not None and principal.grants == {"c1", "c2"}, "grants file re-read when it changes"
    key_principal = authenticate(authenticator, {"X-API-Key": "k1"})
    assert key_principal is not None and key_principal.subject == "from-file"


def test_jwks_url_is_fetched_off_the_event_loop(tmp_path: Path, issuer: LocalIssuer) -> None:
    jwks_app = FastAPI()
    fetched: list[int] = []

    @jwks_app.get("/jwks.json")
    def keys() -> dict[str, Any]:
        fetched.append(1)
        return issuer.jwks

    with serve(jwks_app) as url:
        settings = build_settings(tmp_path, issuer, auth_jwks=None, auth_jwks_url=f"{url}/jwks.json")
        authenticator = Authenticator(settings)
        for _ in range(3):
            principal = authenticate(authenticator, issuer.bearer("u6", algorithm="ES256"))
            assert principal is not None and principal.subject == "u6"
    assert len(fetched) == 1, "the key set is cached"


def test_without_a_jwks_tokens_are_refused(tmp_path: Path, issuer: LocalIssuer) -> None:
    authenticator = Authenticator(build_settings(tmp_path, issuer, auth_jwks=None))
    with pytest.raises(AuthenticationError, match="not accepted"):
        authenticate(authenticator, issuer.bearer("x"))


def test_settings_validation(tmp_path: Path) -> None:
    AccessSettings(root=tmp_path, api_keys={hash_api_key("k"): ApiKey(subject="s")})
    for bad in (
        {"cors_allow_credentials": True},
        {"signing_key": "short"},
        {"auth_algorithms": ["RS256", "HS256"]},
    ):
        with pytest.raises(ValidationError):
            AccessSettings(root=tmp_path, **bad)


def test_settings_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NCDC_STAC_API_KEYS", json.dumps({hash_api_key("k"): {"subject": "env", "roles": ["admin"]}}))
    monkeypatch.setenv("NCDC_STAC_GRANTS", json.dumps({"a@example.org": ["c"]}))
    monkeypatch.setenv("NCDC_STAC_AUTH_ISSUER", "https://id.example.org")
    monkeypatch.setenv("NCDC_STAC_ADMIN_EMAILS", '["boss@example.org"]')
    settings = AccessSettings(root=tmp_path)
    assert settings.api_keys[hash_api_key("k")].roles == ["admin"]
    assert settings.grants == {"a@example.org": ["c"]} and settings.admin_emails == ["boss@example.org"]
    assert settings.auth_issuer == "https://id.example.org"
