"""Plaid-style signed webhooks: ES256 JWT in `Plaid-Verification`, keys published as JWKs."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec


def _b64url(n: int) -> str:
    return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()


@dataclass
class SigningKey:
    """One P-256 signing key with its public JWK metadata."""

    kid: str
    private: ec.EllipticCurvePrivateKey
    created_at: int
    expired_at: int | None = None

    def jwk(self) -> dict[str, Any]:
        """The public key as `/webhook_verification_key/get` returns it."""
        nums = self.private.public_key().public_numbers()
        return {
            "alg": "ES256",
            "crv": "P-256",
            "kid": self.kid,
            "kty": "EC",
            "use": "sig",
            "x": _b64url(nums.x),
            "y": _b64url(nums.y),
            "created_at": self.created_at,
            "expired_at": self.expired_at,
        }


def _new_key() -> SigningKey:
    return SigningKey(str(uuid.uuid4()), ec.generate_private_key(ec.SECP256R1()), int(time.time()))


@dataclass
class Delivery:
    """A webhook the bank sent (or tried to): where, what, and the receiver's HTTP status (0 = unreachable)."""

    url: str
    body: bytes
    jwt: str
    status: int

    @property
    def payload(self) -> dict[str, Any]:
        """The decoded JSON body."""
        result: dict[str, Any] = json.loads(self.body)
        return result


@dataclass
class WebhookSender:
    """Signs and posts webhooks; keeps every key it ever used so old signatures stay verifiable."""

    keys: dict[str, SigningKey] = field(default_factory=dict)
    current: SigningKey = field(default_factory=_new_key)
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.keys[self.current.kid] = self.current

    def rotate(self) -> str:
        """Expire the current key and start signing with a fresh one; return the new kid."""
        self.current.expired_at = int(time.time())
        self.current = _new_key()
        self.keys[self.current.kid] = self.current
        return self.current.kid

    def sign(self, body: bytes, iat: int | None = None) -> str:
        """Return the `Plaid-Verification` JWT for a raw body."""
        claims = {
            "iat": int(time.time()) if iat is None else iat,
            "request_body_sha256": hashlib.sha256(body).hexdigest(),
        }
        return jwt.encode(
            claims, self.current.private, algorithm="ES256", headers={"kid": self.current.kid, "typ": "JWT"}
        )

    def send(self, url: str, payload: dict[str, Any], timeout: float = 5.0) -> Delivery:
        """POST a signed webhook now and record the delivery."""
        body = json.dumps(payload, indent=2).encode()
        token = self.sign(body)
        req = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/json", "Plaid-Verification": token}
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status = int(resp.status)
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (urllib.error.URLError, OSError):
            status = 0
        delivery = Delivery(url, body, token, status)
        with self.lock:
            self.deliveries.append(delivery)
        return delivery

    def send_later(self, url: str, payload: dict[str, Any]) -> None:
        """POST a signed webhook from a background thread, so a receiver may call back into the bank."""
        threading.Thread(target=self.send, args=(url, payload), daemon=True, name="demo-bank-webhook").start()
