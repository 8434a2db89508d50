"""A software WebAuthn authenticator for tests: an EC P-256 (ES256) key made with
``cryptography``, "none" attestation encoded with ``cbor2``, and the JSON a browser's
``PublicKeyCredential.toJSON()`` gives, so the server's code sees what a browser sends.

``create(options_json)`` answers ``navigator.credentials.create`` options and
``get(options_json)`` answers ``navigator.credentials.get`` options. The origin, the
user-verification flag and the signature counter can be set per call, to make the
answers a server must refuse.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40


class SoftAuthenticator:
    """One discoverable credential (a passkey) on a software authenticator."""

    def __init__(self, origin: str, *, user_verifying: bool = True,
                 aaguid: bytes = bytes(16)) -> None:
        self.origin = origin
        self.user_verifying = user_verifying
        self.aaguid = aaguid
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.sign_count = 0
        self.user_handle: bytes | None = None
        self.rp_id: str | None = None
        # A synced passkey: backup eligible and backed up (flags BE and BS).
        self.backed_up = False

    @property
    def id(self) -> str:
        return bytes_to_base64url(self.credential_id)

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"),
                            -3: numbers.y.to_bytes(32, "big")})

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge,
                           "origin": origin or self.origin, "crossOrigin": False}).encode()

    def _auth_data(self, rp_id: str, flags: int, sign_count: int, attested: bytes = b"") -> bytes:
        return (hashlib.sha256(rp_id.encode()).digest() + bytes([flags])
                + struct.pack(">I", sign_count) + attested)

    def _flags(self, verified: bool | None) -> int:
        return (UP | (UV if (self.user_verifying if verified is None else verified) else 0)
                | (BE | BS if self.backed_up else 0))

    def create(self, options_json: str, *, origin: str | None = None,
               user_verified: bool | None = None) -> dict[str, Any]:
        """The registration response (``toJSON()`` form) to creation options."""
        options = json.loads(options_json)
        self.rp_id = options["rp"]["id"]
        self.user_handle = base64url_to_bytes(options["user"]["id"])
        attested = (self.aaguid + struct.pack(">H", len(self.credential_id))
                    + self.credential_id + self._cose_key())
        auth_data = self._auth_data(self.rp_id, self._flags(user_verified) | AT,
                                    self.sign_count, attested)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        return {"id": self.id, "rawId": self.id, "type": "public-key",
                "authenticatorAttachment": "platform", "clientExtensionResults": {},
                "response": {"clientDataJSON": bytes_to_base64url(client_data),
                             "attestationObject": bytes_to_base64url(attestation),
                             "transports": ["internal", "hybrid"]}}

    def get(self, options_json: str, *, origin: str | None = None,
            user_verified: bool | None = None, sign_count: int | None = None,
            rp_id: str | None = None) -> dict[str, Any]:
        """The assertion (``toJSON()`` form) to request options; the counter goes up by
        one unless ``sign_count`` is given."""
        options = json.loads(options_json)
        self.sign_count = self.sign_count + 1 if sign_count is None else sign_count
        auth_data = self._auth_data(rp_id or options.get("rpId") or self.rp_id or "",
                                    self._flags(user_verified), self.sign_count)
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(),
                                  ec.ECDSA(hashes.SHA256()))
        response = {"clientDataJSON": bytes_to_base64url(client_data),
                    "authenticatorData": bytes_to_base64url(auth_data),
                    "signature": bytes_to_base64url(signature)}
        if self.user_handle is not None:
            response["userHandle"] = bytes_to_base64url(self.user_handle)
        return {"id": self.id, "rawId": self.id, "type": "public-key",
                "authenticatorAttachment": "platform", "clientExtensionResults": {},
                "response": response}
