from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thumbsvc.signing import PathSigner


def test_first_key_signs_and_every_key_verifies() -> None:
    new, old = PathSigner(["new", "old"]), PathSigner(["old"])
    payload = "300x200/photos/cat.jpg"
    assert new.sign(payload) != old.sign(payload)
    assert new.verify(payload, new.sign(payload))
    assert new.verify(payload, old.sign(payload))  # rotation: old URLs keep working
    assert not old.verify(payload, new.sign(payload))  # a retired-key server refuses new signatures


@pytest.mark.parametrize(
    "signature",
    ["", "x", "A" * 43, "é", "../../etc/passwd"],
)
def test_wrong_signatures_fail(signature: str) -> None:
    assert not PathSigner(["k"]).verify("300x200/a.jpg", signature)


def test_signature_depends_on_salt_and_payload() -> None:
    signer = PathSigner(["k"])
    assert signer.sign("300x200/a.jpg") != signer.sign("300x201/a.jpg")
    assert len(signer.sign("300x200/a.jpg")) == 43  # HMAC-SHA256, base64url without padding


def test_empty_keys_are_refused() -> None:
    with pytest.raises(ValueError):
        PathSigner([])
    with pytest.raises(ValueError):
        PathSigner([""])


@given(st.text(max_size=80), st.text(max_size=80))
def test_a_signature_only_verifies_its_own_payload(payload: str, other: str) -> None:
    signer = PathSigner(["k1", "k2"])
    signature = signer.sign(payload)
    assert signer.verify(payload, signature)
    assert signer.verify(other, signature) == (other == payload)


def test_signatures_are_plain_itsdangerous_signatures() -> None:
    import hashlib

    from itsdangerous import Signer

    from thumbsvc.signing import SALT

    reference = Signer(["old", "new"], salt=SALT, key_derivation="hmac", digest_method=hashlib.sha256)
    signer = PathSigner(["new", "old"])
    for _ in range(2):  # the second round uses the cached derived key
        assert signer.sign("300x200/a.jpg") == reference.get_signature("300x200/a.jpg").decode()
        assert signer.verify(
            "300x200/a.jpg",
            Signer(["old"], salt=SALT, key_derivation="hmac", digest_method=hashlib.sha256)
            .get_signature("300x200/a.jpg")
            .decode(),
        )


# One thumbnail, one URL (issue 14): base64 decoding is lenient, so the signature text itself is compared.

PAYLOAD = "300x200/fit:cover/photos/cat.jpg"
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def spellings(signature: str) -> list[str]:
    """Other texts that decode (leniently) to the same MAC: padding, the other alphabet, stray bits and characters."""
    last = ALPHABET.index(signature[-1])
    # 32 bytes in 43 characters: the last carries 4 bits of the MAC and 2 unused ones.
    flipped = [ALPHABET[last ^ bits] for bits in (1, 2, 3)]
    return [
        signature + "=",
        signature + "==",
        signature + "=" * 300,
        signature.replace("-", "+").replace("_", "/"),
        *(signature[:-1] + char for char in flipped),
        signature[:10] + "." + signature[10:],
        signature[:10] + "%" + signature[10:],
        " " + signature,
        signature + "\n",
    ]


@pytest.mark.parametrize("keys", [["k"], ["new", "k"], ["k", "old"]])
def test_only_the_canonical_spelling_of_a_signature_verifies(keys: list[str]) -> None:
    signature = PathSigner(["k"]).sign(PAYLOAD)
    signer = PathSigner(keys)
    assert signer.verify(PAYLOAD, signature)
    alternatives = [text for text in spellings(signature) if text != signature]
    assert len(alternatives) >= 10
    for text in alternatives:
        assert not signer.verify(PAYLOAD, text), text


def test_the_alternatives_are_real_itsdangerous_spellings() -> None:
    # The attack this guards against: itsdangerous alone accepts these (so the test above can fail).
    from itsdangerous.encoding import base64_decode

    signature = PathSigner(["k"]).sign(PAYLOAD)
    decoded = [text for text in spellings(signature)[:7] if base64_decode(text) == base64_decode(signature)]
    assert len(decoded) >= 6  # padding (3), alphabet (only when the MAC has '-' or '_'), flipped bits (3)


@given(st.text(max_size=60), st.text(alphabet=ALPHABET + "=+/"))
def test_no_text_but_the_signature_verifies(payload: str, noise: str) -> None:
    signer = PathSigner(["k1", "k2"])
    signature = signer.sign(payload)
    for text in (noise, signature + noise, noise + signature):
        assert signer.verify(payload, text) == (text in (signature, PathSigner(["k2"]).sign(payload)))
