"""Who may call: standard API keys from the config, and the ephemeral ``ek_`` keys this peer mints
with ``POST /v1/realtime/client_secrets`` (each carrying the session it was minted with)."""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

EPHEMERAL_PREFIX: Final = "ek_"
MIN_TTL_S: Final = 10
MAX_TTL_S: Final = 7200
DEFAULT_TTL_S: Final = 600


@dataclass(frozen=True, slots=True)
class Ephemeral:
    value: str
    expires_at: float
    session: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Auth:
    """A successful check: ``ephemeral`` is set when the caller used an ``ek_`` key."""

    ephemeral: Ephemeral | None


class AuthError(Exception):
    """Refused; the message is safe to show (it never contains the key)."""


class KeyStore:
    def __init__(self, api_keys: tuple[str, ...], clock: Callable[[], float] = time.time) -> None:
        self._api_keys = tuple(k for k in api_keys if k)
        self._ephemeral: dict[str, Ephemeral] = {}
        self.clock = clock  # wall clock; replaceable so expiry can be tested without waiting

    @property
    def strict(self) -> bool:
        return bool(self._api_keys)

    def check(self, authorization: str | None, *, allow_ephemeral: bool = True) -> Auth:
        """Check an ``Authorization`` header value."""
        key = _bearer(authorization)
        if key is None:
            raise AuthError(
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
        if key.startswith(EPHEMERAL_PREFIX):
            if not allow_ephemeral:
                raise AuthError("Ephemeral keys cannot be used for this endpoint.")
            return Auth(self._check_ephemeral(key))
        if self._api_keys and not any(hmac.compare_digest(key, k) for k in self._api_keys):
            raise AuthError("Incorrect API key provided.")
        return Auth(None)

    def mint(self, ttl_s: int, session: dict[str, Any]) -> Ephemeral:
        self._purge()
        eph = Ephemeral(EPHEMERAL_PREFIX + secrets.token_urlsafe(24), self.clock() + ttl_s, session)
        self._ephemeral[eph.value] = eph
        return eph

    def _check_ephemeral(self, key: str) -> Ephemeral:
        eph = self._ephemeral.get(key)
        if eph is None:
            raise AuthError("Incorrect API key provided.")
        if self.clock() >= eph.expires_at:
            raise AuthError("Ephemeral key expired. Request a new client secret.")
        return eph

    def _purge(self) -> None:
        # Expired keys are useless; dropping them keeps the store bounded by the mint rate * TTL.
        now = self.clock()
        for value in [v for v, e in self._ephemeral.items() if e.expires_at <= now]:
            del self._ephemeral[value]


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, key = header.strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        return None
    return key
