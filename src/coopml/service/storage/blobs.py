"""Content-addressed, encrypted blob store (datasets and models).

A blob's address is a keyed hash of its plaintext (:meth:`Cipher.address`); its file
``blobs/<aa>/<address>`` holds the AES-GCM ciphertext, bound to the address. Writes go
to a temporary file in the same folder, are fsynced and renamed into place
(``os.replace``), so a reader sees either no blob or the whole blob, never a torn one.

Equal content shares one blob, so a blob is erased (:meth:`BlobStore.delete`) only when
nothing references it any more; :meth:`BlobStore.lock` (a thread lock and a file lock,
across processes) makes "store a blob and commit its reference" and "check that nothing
references a blob and erase it" exclude each other.
"""

from __future__ import annotations

import contextlib
import fcntl
import re
import threading
from collections.abc import Iterator
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
        self._thread_lock = threading.Lock()
        #: Next to the store, not in it (the store holds blob files only).
        self.lock_path = self.root.parent / f".{self.root.name}.lock"

    def path(self, address: str) -> Path:
        """File of a blob."""
        if not _ADDRESS.match(address):
            raise ValueError(f"not a blob address: {address!r}")
        return self.root / address[:2] / address

    def address(self, data: bytes | bytearray) -> str:
        """The address ``data`` is (or would be) stored at."""
        return self.cipher.address(data)

    def put(self, data: bytes | bytearray) -> str:
        """Store ``data`` encrypted; returns its address (idempotent). Needs about the
        size of ``data`` again in memory (the ciphertext), no more."""
        address = self.cipher.address(data)
        target = self.path(address)
        if target.exists():
            return address
        header, body = self.cipher.seal(data, address.encode())
        write_private_file(target, header, body)
        return address

    def delete(self, address: str) -> bool:
        """Erase a blob (call under :meth:`lock`, after checking that nothing references
        it); whether it existed."""
        path = self.path(address)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive access to the store's references (threads and processes; not
        reentrant)."""
        with self._thread_lock, open(self.lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def get(self, address: str) -> bytes:
        """The decrypted blob; raises ``FileNotFoundError`` or ``DecryptionError``."""
        return self.cipher.decrypt(self.path(address).read_bytes(), address.encode())

    def exists(self, address: str) -> bool:
        """Whether the blob is stored."""
        return self.path(address).exists()
