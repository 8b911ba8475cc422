"""Sign and verify thumbnail paths with rotating keys (itsdangerous, HMAC-SHA256).

A signature is accepted in exactly one spelling: the unpadded URL-safe base64 of the MAC
that itsdangerous writes. Its own check decodes the text first, and base64 decoding is
lenient (``=`` padding, ``+``/``/`` for ``-``/``_``, stray characters and the unused low
bits of the last character are all ignored), so one thumbnail would have many URLs, each
a new CDN cache key that reaches the service. So the received text is compared with the
text of the signature computed for each key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Any

from itsdangerous import Signer
from itsdangerous.encoding import base64_encode

SALT = "thumbsvc.url.v1"


class _KeyCachingSigner(Signer):
    """An itsdangerous Signer that derives each key once instead of on every signature."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._derived: dict[bytes | None, bytes] = {}

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        raw = secret_key.encode("utf-8") if isinstance(secret_key, str) else secret_key
        derived = self._derived.get(raw)
        if derived is None:
            derived = self._derived[raw] = super().derive_key(secret_key)
        return derived


class PathSigner:
    """Sign with the first key; verify against every key, in constant time.

    ``keys`` is newest first, as in ``THUMBSVC_KEY=new,old``.
    """

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys or any(not key for key in keys):
            raise ValueError("at least one non-empty key is needed")
        # itsdangerous signs with the last key of its list and verifies with all of them.
        self._signer = _KeyCachingSigner(
            list(reversed(keys)),
            salt=SALT,
            key_derivation="hmac",
            digest_method=hashlib.sha256,
        )

    def sign(self, payload: str) -> str:
        """Return the URL-safe signature of ``payload``."""
        return self._signer.get_signature(payload).decode("ascii")

    def verify(self, payload: str, signature: str) -> bool:
        """Return whether ``signature`` is, character for character, the signature of exactly ``payload``
        by one of our keys.

        Every key is compared, in constant time, whichever matches: the time taken tells nothing
        about the text or which key signed it.
        """
        try:
            received = signature.encode("ascii")
        except UnicodeEncodeError:
            return False
        value = payload.encode("utf-8")
        signer = self._signer
        matched = False
        for key in signer.secret_keys:
            expected = base64_encode(signer.algorithm.get_signature(signer.derive_key(key), value))
            matched |= hmac.compare_digest(expected, received)
        return matched
