"""HTTP signaling for one call: get a key, POST the SDP offer, read the answer and call id, hang up.

Three ways in (PROTOCOL.md §1): a ``token_url`` backend hands out ephemeral keys; a standard key
mints one at ``/client_secrets`` and then POSTs raw SDP; or the standard key POSTs multipart
``sdp`` + ``session`` (the unified interface, rtAV's way). Failures are sorted into what the
supervisor must do about them: wait long (auth), wait as told (rate limit), or back off.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from yarl import URL

from rtedge.logs import event as log_event
from rtedge.settings import RealtimeSettings

log = logging.getLogger(__name__)

FailureKind = Literal["auth", "rate_limited", "server", "network", "rejected"]


class SignalingError(Exception):
    """A failed signaling step. The message never holds a key: ``redact`` ran over it."""

    def __init__(
        self,
        kind: FailureKind,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Answer:
    sdp: str
    call_id: str | None
    location: str | None = None  # the call's URL (``Location``), absolute


def calls_base(url: str) -> str:
    return url.rstrip("/")


def client_secrets_url(calls_url: str) -> str:
    base = calls_base(calls_url)
    root = base.removesuffix("/calls")
    return f"{root}/client_secrets"


def call_id_from_headers(headers: Any) -> str | None:
    location = headers.get("Location")
    if location:
        tail: str = location.rstrip("/").split("/")[-1]
        if tail:
            return tail
    session_id = headers.get("X-Session-Id")
    return str(session_id) if session_id else None


class Signaling:
    def __init__(self, settings: RealtimeSettings, http: aiohttp.ClientSession) -> None:
        self._settings = settings
        self._http = http
        self._location: str | None = None
        self._secrets: list[str] = []
        if settings.api_key is not None:
            self._secrets.append(settings.api_key.get_secret_value())

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, "***")
                # Services echo a key partly masked ("sk-abc***xyz"): hide the recognisable ends.
                if len(secret) > 12:
                    text = text.replace(secret[:8], "***").replace(secret[-4:], "***")
        return text

    @property
    def _timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=self._settings.connect_timeout_s)

    async def create_call(self, offer_sdp: str, session: dict[str, Any]) -> Answer:
        s = self._settings
        if s.token_url:
            key = await self._ephemeral_from_backend(session)
            return await self._post_raw_sdp(offer_sdp, key)
        if s.signaling_mode == "raw":
            # the configured key itself, or none at all (api_key = "")
            key = s.api_key.get_secret_value() if s.api_key is not None else ""
            return await self._post_raw_sdp(offer_sdp, key)
        if s.api_key is None:
            raise SignalingError(
                "auth", "no realtime.api_key, api_key_file, credential or token_url configured"
            )
        if s.signaling_mode == "unified":
            return await self._post_multipart(offer_sdp, session, s.api_key.get_secret_value())
        key = await self._ephemeral_from_service(session)
        return await self._post_raw_sdp(offer_sdp, key)

    async def hangup(self, call_id: str, reason: str) -> None:
        """End the call at the service: ``POST {calls}/{id}/hangup`` (OpenAI); with raw
        signaling, where that endpoint does not exist, ``DELETE`` on the call's ``Location``
        (WHIP-style servers).
        Best effort: the session ends with the connection anyway."""
        raw = self._settings.signaling_mode == "raw"
        key = self._settings.api_key
        log_event(
            log, logging.INFO, "hangup", "hanging up call %s: %s", call_id, reason, reason=reason
        )
        if key is None and not raw:
            return  # only a standard key may hang up
        secret = key.get_secret_value() if key is not None else ""
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        url = f"{calls_base(self._settings.url)}/{call_id}/hangup"
        status = await self._hangup_request("POST", url, headers, call_id)
        # Only servers reached with raw signaling may lack the endpoint; OpenAI's 404 means the
        # call has already ended, and a DELETE there would be one more refused request.
        if raw and status in (404, 405, 501):
            location = self._location or f"{calls_base(self._settings.url)}/{call_id}"
            await self._hangup_request("DELETE", location, headers, call_id)

    async def _hangup_request(
        self, method: str, url: str, headers: dict[str, str], call_id: str
    ) -> int | None:
        try:
            async with self._http.request(
                method, url, headers=headers, timeout=aiohttp.ClientTimeout(total=2.0)
            ) as resp:
                if (
                    resp.status == 404
                    and method == "POST"
                    and self._settings.signaling_mode != "raw"
                ):
                    # OpenAI saw the connection close first: nothing to say
                    log.debug("hangup of %s: the service had already ended it", call_id)
                elif resp.status >= 400:
                    log.info("hangup (%s) of %s answered %d", method, call_id, resp.status)
                return resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("hangup (%s) of %s failed: %s", method, call_id, self.redact(str(exc)))
            return None

    async def _ephemeral_from_backend(self, session: dict[str, Any]) -> str:
        assert self._settings.token_url is not None
        headers = {}
        if self._settings.api_key is not None:
            headers["Authorization"] = f"Bearer {self._settings.api_key.get_secret_value()}"
        data = await self._post_json(self._settings.token_url, {"session": session}, headers)
        return self._remember(_secret_value(data))

    async def _ephemeral_from_service(self, session: dict[str, Any]) -> str:
        assert self._settings.api_key is not None
        headers = {"Authorization": f"Bearer {self._settings.api_key.get_secret_value()}"}
        body = {"expires_after": {"anchor": "created_at", "seconds": 600}, "session": session}
        data = await self._post_json(client_secrets_url(self._settings.url), body, headers)
        return self._remember(_secret_value(data))

    def _remember(self, value: str | None) -> str:
        if not value:
            raise SignalingError("server", "client secret reply has no key")
        self._secrets.append(value)
        return value

    async def _post_json(
        self, url: str, body: dict[str, Any], headers: dict[str, str]
    ) -> dict[str, Any]:
        try:
            async with self._http.post(
                url, json=body, headers=headers, timeout=self._timeout
            ) as resp:
                text = await resp.text()
                self._raise_for(resp, text, "client secret")
                try:
                    data = json.loads(text)
                except ValueError:
                    raise SignalingError(
                        "server", "client secret reply is not JSON", status=resp.status
                    ) from None
                if not isinstance(data, dict):
                    raise SignalingError("server", "client secret reply is not an object")
                return data
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._network_error(exc, "client secret") from None

    async def _post_raw_sdp(self, offer_sdp: str, key: str) -> Answer:
        headers = {"Content-Type": "application/sdp"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return await self._post_offer(offer_sdp, headers=headers, data=offer_sdp)

    async def _post_multipart(self, offer_sdp: str, session: dict[str, Any], key: str) -> Answer:
        # Text-only FormData is sent urlencoded unless told otherwise (TESTING.md).
        form = aiohttp.FormData(default_to_multipart=True)
        form.add_field("sdp", offer_sdp, content_type="application/sdp")
        form.add_field("session", json.dumps(session), content_type="application/json")
        return await self._post_offer(
            offer_sdp, headers={"Authorization": f"Bearer {key}"}, data=form
        )

    async def _post_offer(self, offer_sdp: str, *, headers: dict[str, str], data: Any) -> Answer:
        try:
            async with self._http.post(
                calls_base(self._settings.url), data=data, headers=headers, timeout=self._timeout
            ) as resp:
                text = await resp.text()
                self._raise_for(resp, text, "call")
                if "v=0" not in text:
                    raise SignalingError("server", "answer is not SDP", status=resp.status)
                location = resp.headers.get("Location")
                if location:
                    self._location = str(resp.url.join(URL(location)))
                return Answer(
                    sdp=text, call_id=call_id_from_headers(resp.headers), location=self._location
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._network_error(exc, "call") from None

    def _network_error(self, exc: BaseException, what: str) -> SignalingError:
        if isinstance(exc, TimeoutError | asyncio.TimeoutError):
            return SignalingError("network", f"{what}: no answer within the connect timeout")
        return SignalingError("network", self.redact(f"{what}: {type(exc).__name__}: {exc}"))

    def _raise_for(self, resp: aiohttp.ClientResponse, body: str, what: str) -> None:
        status = resp.status
        if status < 400:
            return
        detail = self.redact(_error_message(body))
        msg = f"{what}: HTTP {status}" + (f": {detail}" if detail else "")
        if status in (401, 403):
            raise SignalingError("auth", msg, status=status)
        if status == 429:
            raise SignalingError(
                "rate_limited",
                msg,
                status=status,
                retry_after=_retry_after(resp.headers.get("Retry-After")),
            )
        if status >= 500:
            raise SignalingError("server", msg, status=status)
        raise SignalingError("rejected", msg, status=status)


def _secret_value(data: dict[str, Any]) -> str | None:
    # OpenAI: {"value": "ek_..."}; rtAV: {"client_secret": "ek_..."} (or legacy {"value": ...}).
    for key in ("value", "client_secret"):
        value = data.get(key)
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and isinstance(value.get("value"), str):
            return str(value["value"])
    return None


def _error_message(body: str) -> str:
    try:
        data = json.loads(body)
        message = data["error"]["message"]
        code = data["error"].get("code")
        text = f"{message} ({code})" if code else str(message)
    except (ValueError, KeyError, TypeError):
        text = body.strip().splitlines()[0] if body.strip() else ""
    return text[:200]


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
