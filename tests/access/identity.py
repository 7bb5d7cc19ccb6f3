"""A local identity provider for the tests: RSA / EC keys made here, their JWKS, and signed tokens."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISSUER = "https://id.example.org/realms/ncdc"
AUDIENCE = "ncdc-stac"


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@dataclass
class LocalIssuer:
    """Issues JWTs with its own keys; ``jwks`` is what the service is configured with."""

    rsa: rsa.RSAPrivateKey = field(default_factory=rsa_key)
    ec: ec.EllipticCurvePrivateKey = field(default_factory=ec_key)
    issuer: str = ISSUER
    audience: str = AUDIENCE

    @property
    def jwks(self) -> dict[str, Any]:
        rsa_jwk = RSAAlgorithm.to_jwk(self.rsa.public_key(), as_dict=True)
        ec_jwk = ECAlgorithm.to_jwk(self.ec.public_key(), as_dict=True)
        return {
            "keys": [
                {**rsa_jwk, "kid": "rsa-1", "use": "sig", "alg": "RS256"},
                {**ec_jwk, "kid": "ec-1", "use": "sig", "alg": "ES256"},
            ]
        }

    def token(
        self,
        subject: str,
        email: str | None = None,
        roles: Sequence[str] = (),
        grants: Sequence[str] = (),
        lifetime: int = 300,
        algorithm: str = "RS256",
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "iat": now,
            "exp": now + lifetime,
            "roles": list(roles),
        }
        if email:
            payload["email"] = email
            payload["email_verified"] = True
        if grants:
            payload["ncdc_grants"] = list(grants)
        payload.update(claims)
        key: Any = self.rsa if algorithm.startswith("RS") else self.ec
        kid = "rsa-1" if algorithm.startswith("RS") else "ec-1"
        return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": kid})

    def bearer(self, subject: str, **kwargs: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(subject, **kwargs)}"}
