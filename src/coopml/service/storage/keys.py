"""The blob key: where it comes from, its fingerprint, and rotation.

:func:`rotate_key` gives the deployment a new AES-256-GCM key and re-encrypts every blob
under it; the old key is then retired (the key file is replaced; an external key is
replaced by the operator). Blob addresses do not change: a blob keeps its file name
and its associated data, only its ciphertext changes (addresses of blobs stored after
the rotation are keyed hashes under the new key, so identical content uploaded before
and after is stored twice).

Crash safety. Everything is staged in ``DATA_DIR/key-rotation/`` before anything is
switched:

1. ``new.key`` (0600) is written, then every blob is re-encrypted under it into
   ``key-rotation/blobs/`` (each checked to decrypt). The live store is untouched: an
   interruption here leaves the deployment as it was; running the command again
   resumes, ``--abort`` throws the staging away.
2. ``key-rotation/COMMITTED`` is written: the switch point. From here on the new key
   is the deployment's; the service refuses to start until the rotation is finished
   (blobs would be a mix of both keys).
3. Each staged blob replaces its live one (``os.replace``, atomic per file); a blob
   stored after staging is re-encrypted now. Every blob is checked to decrypt under
   the new key; then the new key replaces ``secret.key`` (or is written to
   ``--new-key-file`` for an external key) and ``key-rotation/`` is removed. An
   interruption anywhere in 3 is finished by running the command again.

The service and every worker must be stopped during a rotation: a running process
keeps the old key in memory.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from coopml.service.security import (
    Cipher,
    DecryptionError,
    load_or_create_key,
    parse_secret_key,
    write_private_file,
)
from coopml.service.settings import Settings

__all__ = [
    "ROTATION_DIR",
    "KeyRotationError",
    "RotationReport",
    "abort_rotation",
    "assert_no_pending_rotation",
    "blob_files",
    "current_key",
    "key_fingerprint",
    "key_is_external",
    "rotate_key",
]

ROTATION_DIR = "key-rotation"
_ADDRESS_CHARS = frozenset("0123456789abcdef")


class KeyRotationError(RuntimeError):
    """A rotation cannot start or go on (the message says why and what to do)."""


def key_fingerprint(key: bytes) -> str:
    """A short public identifier of a key (reveals nothing about it).

    Examples
    --------
    >>> key_fingerprint(bytes(32))
    '73c585f7cc1a743e'
    """
    return hashlib.sha256(b"coopml-key-fingerprint\x00" + key).hexdigest()[:16]


def key_is_external(settings: Settings) -> bool:
    """Whether the key comes from the settings (``COOPML_SECRET_KEY``), not the key file."""
    return settings.secret_key is not None


def current_key(settings: Settings, *, create: bool = False) -> bytes:
    """The deployment's key: the settings' (``COOPML_SECRET_KEY``), else
    ``DATA_DIR/secret.key`` (created when missing only with ``create``)."""
    if settings.secret_key is not None:
        return settings.secret_key
    path = settings.data_dir / "secret.key"
    if not path.exists():
        if create:
            return load_or_create_key(settings.data_dir)
        raise KeyRotationError(f"no key: {path} does not exist and COOPML_SECRET_KEY is unset")
    return parse_secret_key(path.read_text())


def blob_files(root: Path) -> Iterator[tuple[str, Path]]:
    """``(address, file)`` of every blob under ``root`` (temporary files skipped)."""
    if not root.is_dir():
        return
    for sub in sorted(root.iterdir()):
        if not sub.is_dir() or len(sub.name) != 2:
            continue
        for path in sorted(sub.iterdir()):
            name = path.name
            if (
                path.is_file()
                and len(name) == 64
                and set(name) <= _ADDRESS_CHARS
                and name[:2] == sub.name
            ):
                yield name, path


def assert_no_pending_rotation(data_dir: Path) -> None:
    """Raise when a key rotation passed its switch point and was not finished."""
    if (data_dir / ROTATION_DIR / "COMMITTED").exists():
        raise KeyRotationError(
            f"a key rotation in {data_dir} was interrupted after its switch point; finish "
            f"it first: coopml keys rotate --data-dir {data_dir}"
        )


@dataclass(frozen=True)
class RotationReport:
    """What a rotation did."""

    n_blobs: int
    old_fingerprint: str
    new_fingerprint: str
    key_file: Path
    resumed: bool


def _decrypts(cipher: Cipher, path: Path, address: str) -> bool:
    try:
        cipher.decrypt(path.read_bytes(), address.encode())
    except DecryptionError:
        return False
    return True


def _reencrypt(old: Cipher, new: Cipher, src: Path, dst: Path, address: str) -> None:
    try:
        plain = old.decrypt(src.read_bytes(), address.encode())
    except DecryptionError:
        raise KeyRotationError(
            f"blob {address} ({src}) decrypts with neither the current key nor the new "
            "one (tampered, or from another deployment); nothing was switched"
        ) from None
    write_private_file(dst, new.encrypt(plain, address.encode()))
    if not _decrypts(new, dst, address):  # pragma: no cover - a broken disk
        raise KeyRotationError(f"re-encrypted blob {address} does not read back")


def rotate_key(
    settings: Settings,
    *,
    new_key_file: Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> RotationReport:
    """Re-encrypt every blob under a new key and retire the old key (see the module
    docstring for the steps and what an interruption leaves behind).

    ``new_key_file``: where the new key goes when the current one is external
    (``COOPML_SECRET_KEY``); required then (set the variable to its contents before
    restarting). With a key file (``DATA_DIR/secret.key``) the new key replaces it.
    """
    data_dir = settings.data_dir
    blobs = data_dir / "blobs"
    state = data_dir / ROTATION_DIR
    external = key_is_external(settings)
    if external and new_key_file is None:
        raise KeyRotationError(
            "the key comes from COOPML_SECRET_KEY, which this command cannot change: pass "
            "--new-key-file PATH (the new key is written there, mode 0600), then set "
            "COOPML_SECRET_KEY to its contents before restarting the service"
        )
    key_file = new_key_file if external and new_key_file is not None else data_dir / "secret.key"
    current = current_key(settings)
    resumed = state.exists()
    new_path = state / "new.key"
    if resumed and new_path.exists():
        new_key = parse_secret_key(new_path.read_text())
    else:
        if (state / "COMMITTED").exists():  # pragma: no cover - new.key deleted by hand
            raise KeyRotationError(f"{new_path} is missing after the switch point")
        new_key = AESGCM.generate_key(bit_length=256)
        write_private_file(new_path, new_key.hex().encode())
    committed = (state / "COMMITTED").exists()
    old_cipher, new_cipher = Cipher(current), Cipher(new_key)
    all_blobs = list(blob_files(blobs))
    total = len(all_blobs)
    if new_key == current:  # key already switched; only the clean-up was left
        old_cipher = new_cipher
    if not committed:
        # 1. stage every blob under the new key; the live store is untouched
        for i, (address, path) in enumerate(all_blobs, 1):
            staged = state / "blobs" / address[:2] / address
            if not (staged.exists() and _decrypts(new_cipher, staged, address)):
                _reencrypt(old_cipher, new_cipher, path, staged, address)
            if progress:
                progress("staged", i, total)
        # 2. the switch point
        write_private_file(state / "COMMITTED", b"new key and every staged blob are written\n")
    # 3. install: staged blobs replace live ones; blobs stored since staging are
    # re-encrypted here (the old key is still at hand until the key file is replaced)
    all_blobs = list(blob_files(blobs))
    total = len(all_blobs)
    for i, (address, path) in enumerate(all_blobs, 1):
        staged = state / "blobs" / address[:2] / address
        if staged.exists():
            staged.replace(path)
        elif not _decrypts(new_cipher, path, address):
            _reencrypt(old_cipher, new_cipher, path, path, address)
        if progress:
            progress("installed", i, total)
    for address, path in blob_files(blobs):
        if not _decrypts(new_cipher, path, address):  # pragma: no cover - defensive
            raise KeyRotationError(f"blob {address} does not decrypt under the new key")
    write_private_file(key_file, new_key.hex().encode() + b"\n")
    shutil.rmtree(state)
    return RotationReport(
        n_blobs=total,
        old_fingerprint=key_fingerprint(current),
        new_fingerprint=key_fingerprint(new_key),
        key_file=key_file,
        resumed=resumed,
    )


def abort_rotation(data_dir: Path) -> bool:
    """Throw away a staged rotation that has not reached its switch point; returns
    whether there was one. Raises after the switch point (finish it instead)."""
    state = data_dir / ROTATION_DIR
    if not state.exists():
        return False
    assert_no_pending_rotation(data_dir)
    shutil.rmtree(state)
    return True
