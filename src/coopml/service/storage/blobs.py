"""Content-addressed, encrypted blob store (datasets and models).

A blob's address is a keyed hash of its plaintext (:meth:`Cipher.address`); its file
``blobs/<aa>/<address>`` holds the AES-GCM ciphertext, bound to the address. Writes go
to a temporary file in the same folder, are fsynced and renamed into place
(``os.replace``), so a reader sees either no blob or the whole blob, never a torn one.
"""

from __future__ import annotations

import re
from pathlib import Path

from coopml.service.security import Cipher, write_private_file

__all__ = ["BlobStore"]

_ADDRESS = re.compile(r"^[0-9a-f]{64}$")


class BlobStore:
    """Encrypted blobs under ``root``.

    Examples
    --------
    >>> import tempfile
    >>> store = BlobStore(Path(tempfile.mkdtemp()), Cipher(bytes(32)))
    >>> address = store.put(b"a,b\\n1,2\\n")
    >>> store.get(address)
    b'a,b\\n1,2\\n'
    """

    def __init__(self, root: Path, cipher: Cipher) -> None:
        self.root = Path(root)
        self.cipher = cipher
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, address: str) -> Path:
        """File of a blob."""
        if not _ADDRESS.match(address):
            raise ValueError(f"not a blob address: {address!r}")
        return self.root / address[:2] / address

    def put(self, data: bytes) -> str:
        """Store ``data`` encrypted; returns its address (idempotent)."""
        address = self.cipher.address(data)
        target = self.path(address)
        if target.exists():
            return address
        write_private_file(target, self.cipher.encrypt(data, address.encode()))
        return address

    def get(self, address: str) -> bytes:
        """The decrypted blob; raises ``FileNotFoundError`` or ``DecryptionError``."""
        return self.cipher.decrypt(self.path(address).read_bytes(), address.encode())

    def exists(self, address: str) -> bool:
        """Whether the blob is stored."""
        return self.path(address).exists()
