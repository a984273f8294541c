"""Tokens and encryption at rest.

* Bearer tokens are ``secrets.token_urlsafe(32)``; only their SHA-256 is stored.
* Blobs (datasets, models) are encrypted with AES-256-GCM (``cryptography``): a random
  96-bit nonce per blob, the blob's address as associated data (a ciphertext moved to
  another address does not decrypt). The key comes from ``Settings.secret_key``
  (``COOPML_SECRET_KEY``, 64 hex digits or url-safe base64 of 32 bytes) or from
  ``DATA_DIR/secret.key``, created on first start with permissions 0600.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "Cipher",
    "DecryptionError",
    "generate_token",
    "hash_token",
    "load_or_create_key",
    "parse_secret_key",
    "write_private_file",
]

MAGIC = b"CMB1"  # coopml blob, format 1
NONCE_BYTES = 12


class DecryptionError(ValueError):
    """A blob that does not decrypt with this deployment's key (tampered or foreign)."""


def generate_token() -> str:
    """A new bearer token (256 bits, url-safe)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """SHA-256 of a token, hex: what the database stores.

    Examples
    --------
    >>> hash_token("abc")[:16]
    'ba7816bf8f01cfea'
    """
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def parse_secret_key(text: str) -> bytes:
    """A 32-byte key from 64 hex digits or url-safe base64."""
    text = text.strip()
    try:
        key = bytes.fromhex(text) if len(text) == 64 else base64.urlsafe_b64decode(text + "==")
    except (ValueError, binascii.Error):
        key = b""
    if len(key) != 32:
        raise ValueError(
            "COOPML_SECRET_KEY must be 32 bytes as 64 hex digits or url-safe base64; "
            f"got {len(text)} characters"
        )
    return key


def private_directory(path: Path) -> Path:
    """Create ``path`` (and parents) readable by this user only, tightening an existing one.

    ``mkdir(mode=0o700)`` leaves a directory that already exists as it is, so a data
    directory created earlier with 0755 would expose the database and keys; its group
    and other permission bits are cleared here.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        path.chmod(mode & 0o700)
    return path


def write_private_file(path: Path, data: bytes, *more: bytes) -> None:
    """Create ``path`` with permissions 0600 (atomically: temp file + rename), holding
    ``data`` followed by ``more`` (pieces written one after the other, not joined)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            for piece in more:
                fh.write(piece)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_or_create_key(data_dir: Path) -> bytes:
    """The key in ``data_dir/secret.key``, created (0600) when missing."""
    path = data_dir / "secret.key"
    if not path.exists():
        try:
            write_private_file(path, AESGCM.generate_key(bit_length=256).hex().encode())
        except FileExistsError:  # pragma: no cover - a concurrent first start
            pass
    return parse_secret_key(path.read_text())


class Cipher:
    """AES-256-GCM encryption of blobs, and keyed content addresses.

    Examples
    --------
    >>> c = Cipher(bytes(32))
    >>> box = c.encrypt(b"secret rows", b"addr")
    >>> b"secret rows" in box, c.decrypt(box, b"addr")
    (False, b'secret rows')
    """

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError(f"parameter 'key' must be 32 bytes; got {len(key)}")
        self._aead = AESGCM(key)
        self._mac_key = hashlib.sha256(b"coopml-blob-address" + key).digest()

    def address(self, plaintext: bytes | bytearray) -> str:
        """Content address: HMAC-SHA256 of the plaintext under a key derived from the
        secret (equal content, equal address; the address reveals nothing without the key)."""
        return hmac.new(self._mac_key, plaintext, hashlib.sha256).hexdigest()

    def encrypt(self, plaintext: bytes, associated: bytes = b"") -> bytes:
        """``MAGIC || nonce || ciphertext+tag``."""
        return b"".join(self.seal(plaintext, associated))

    def seal(self, plaintext: bytes | bytearray, associated: bytes = b"") -> tuple[bytes, bytes]:
        """:meth:`encrypt` in two pieces, ``MAGIC || nonce`` and ``ciphertext+tag``, to be
        written one after the other: a large blob is never copied to join them."""
        nonce = os.urandom(NONCE_BYTES)
        return MAGIC + nonce, self._aead.encrypt(nonce, plaintext, associated)

    def decrypt(self, blob: bytes, associated: bytes = b"") -> bytes:
        """Inverse of :meth:`encrypt`; raises :class:`DecryptionError` on any tampering."""
        if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + NONCE_BYTES + 16:
            raise DecryptionError("not a coopml encrypted blob")
        nonce = blob[len(MAGIC) : len(MAGIC) + NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, blob[len(MAGIC) + NONCE_BYTES :], associated)
        except InvalidTag:
            raise DecryptionError("blob does not decrypt with this key (tampered?)") from None
