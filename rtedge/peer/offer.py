"""The SDP offer a client POSTs, checked before aiortc sees it (aiortc answers almost anything)."""

from __future__ import annotations

import re
from typing import Final


class InvalidOffer(ValueError):
    """The SDP offer cannot be answered (HTTP 400 ``invalid_offer``)."""


_FINGERPRINT = re.compile(
    r"^a=fingerprint:(sha-1|sha-224|sha-256|sha-384|sha-512) ([0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2})+)$"
)
_FINGERPRINT_BYTES: Final = {
    "sha-1": 20,
    "sha-224": 28,
    "sha-256": 32,
    "sha-384": 48,
    "sha-512": 64,
}
_ICE_CHARS = re.compile(r"^[A-Za-z0-9+/]+$")  # RFC 8839 ice-char
_MEDIA = re.compile(r"^m=(\w+) (\d+)(/\d+)? \S+( \S+)*$")


def check_offer(sdp: str) -> None:
    """Reject what aiortc would accept silently (it parses almost any text as an empty offer,
    and answers an offer whose DTLS fingerprint or ICE credentials are broken, a call that can
    never connect): ``v=0``, an audio or data section, well-formed media lines and ports, a DTLS
    fingerprint of the right length for its hash, and ICE credentials (RFC 8839: ufrag 4-256,
    pwd 22-256 ice-chars) for every section, given there or at session level."""
    lines = [line.strip() for line in sdp.strip().splitlines()]
    if not lines or lines[0] != "v=0":
        raise InvalidOffer("SDP must start with v=0")
    sections: list[list[str]] = [[]]
    for line in lines:
        if line.startswith("m="):
            sections.append([])
        sections[-1].append(line)
    session, media = sections[0], sections[1:]
    kinds = []
    for section in media:
        m = _MEDIA.match(section[0])
        if m is None or not 0 <= int(m.group(2)) <= 65535:
            raise InvalidOffer(f"bad media line {section[0][:60]!r}")
        kinds.append(m.group(1))
    if not any(kind in ("audio", "application") for kind in kinds):
        raise InvalidOffer("SDP has no audio or data channel section")
    fingerprints = [ln for ln in lines if ln.startswith("a=fingerprint:")]
    if not fingerprints:
        raise InvalidOffer("SDP has no DTLS fingerprint")
    for line in fingerprints:
        fp = _FINGERPRINT.match(line)
        if fp is None or len(fp.group(2).split(":")) != _FINGERPRINT_BYTES[fp.group(1).lower()]:
            raise InvalidOffer("SDP has a malformed DTLS fingerprint")
    for section in media:
        for attr, low in (("a=ice-ufrag:", 4), ("a=ice-pwd:", 22)):
            values = [ln[len(attr) :] for ln in section if ln.startswith(attr)] or [
                ln[len(attr) :] for ln in session if ln.startswith(attr)
            ]
            if not values:
                raise InvalidOffer(f"SDP section without {attr[2:-1]}")
            if not all(low <= len(v) <= 256 and _ICE_CHARS.match(v) for v in values):
                raise InvalidOffer(f"SDP has a malformed {attr[2:-1]}")
