"""The log's Ed25519 signing key and the signed notes it produces.

The key lives in a PEM file (PKCS #8, unencrypted) at ``Settings.log_key_path``; when the
file does not exist it is generated (mode 0600) and a warning says so, because a new key
means verifiers must be told about it. Its public half is published at
``GET /v1/log/public-key``.

Checkpoints are **signed notes** in the C2SP ``signed-note`` format (the one of Go's
``golang.org/x/mod/sumdb/note``, used by Certificate Transparency's static logs and the
Go checksum database), so off-the-shelf verifiers read them:

* a note is UTF-8 text ending in a newline; a blank line separates it from its
  signature lines ``— <key name> <base64(key id || signature)>\\n``;
* for Ed25519 the key id is the first 4 bytes of
  ``SHA-256(<key name> || "\\n" || 0x01 || <32-byte public key>)`` and the signature is
  Ed25519 over the note text (including its final newline);
* the *verifier key* that names a public key is
  ``<key name>+<hex key id>+<base64(0x01 || public key)>``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from credence.errors import CredenceError
from credence.settings import Settings

log = logging.getLogger("credence.translog")

ALGORITHM_ED25519 = 0x01
"""The signed-note algorithm byte for Ed25519."""

SIGNATURE_DASH = "\u2014"
"""The em dash that starts every signature line of a signed note."""


class LogKeyError(CredenceError):
    """The log's signing key cannot be used (a server configuration problem)."""

    status = 500
    code = "log_key_invalid"


class NoteError(CredenceError):
    """A signed note that is malformed or not signed by the expected key."""

    status = 422
    code = "note_invalid"


def _check_name(name: str) -> None:
    # signed-note: a key name is non-empty and has no spaces or plus signs.
    if not name or any(c.isspace() or c == "+" for c in name):
        raise LogKeyError(
            f"log key name {name!r} must be non-empty, without spaces or '+' "
            "(it is the log origin, CREDENCE_LOG_ORIGIN)"
        )


@dataclass(frozen=True)
class LogKey:
    """A public key that verifies the log's signed notes."""

    name: str
    public_key: bytes
    """The raw 32-byte Ed25519 public key."""

    @property
    def key_id(self) -> bytes:
        """The 4-byte signed-note key id."""
        material = self.name.encode() + b"\n" + bytes([ALGORITHM_ED25519]) + self.public_key
        return hashlib.sha256(material).digest()[:4]

    @property
    def verifier_key(self) -> str:
        """``<name>+<hex key id>+<base64(0x01 || public key)>``, the signed-note form."""
        encoded = base64.b64encode(bytes([ALGORITHM_ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``message``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class LogSigner:
    """The log's private key with its name (the log origin)."""

    private_key: Ed25519PrivateKey
    public: LogKey

    @property
    def name(self) -> str:
        return self.public.name

    def sign(self, message: bytes) -> bytes:
        """The Ed25519 signature of ``message``."""
        return self.private_key.sign(message)


def signer_of(private_key: Ed25519PrivateKey, name: str) -> LogSigner:
    """A signer for ``private_key`` named ``name``."""
    _check_name(name)
    raw = private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return LogSigner(private_key=private_key, public=LogKey(name=name, public_key=raw))


def generate_signer(name: str) -> LogSigner:
    """A fresh in-memory signer (tests, throwaway logs)."""
    return signer_of(Ed25519PrivateKey.generate(), name)


def load_signer(path: str | Path, *, name: str, create: bool = True) -> tuple[LogSigner, bool]:
    """The signer in the PEM file at ``path``, and whether it was just created.

    With ``create`` a missing file is generated (mode 0600) and a warning logged; without
    it a missing file is a :class:`LogKeyError`.
    """
    path = Path(path)
    created = False
    if not path.exists():
        if not create:
            raise LogKeyError(f"no log signing key at {path}")
        created = _create_key_file(path)
    try:
        data = path.read_bytes()
        key = serialization.load_pem_private_key(data, password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise LogKeyError(f"cannot read the log signing key at {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise LogKeyError(f"the log signing key at {path} is not an Ed25519 key")
    if os.name == "posix" and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("the log signing key at %s is readable by others: chmod 600 it", path)
    signer = signer_of(key, name)
    if created:
        log.warning(
            "generated a new log signing key at %s (key id %s); back it up and publish "
            "its verifier key %s",
            path,
            signer.public.key_id.hex(),
            signer.public.verifier_key,
        )
    return signer, created


def _create_key_file(path: Path) -> bool:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: if two processes start at once, one creates and the other reads it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return True


_SIGNERS: dict[tuple[str, str], LogSigner] = {}
_SIGNERS_LOCK = threading.Lock()


def signer_from_settings(settings: Settings) -> LogSigner:
    """The signer named by ``settings`` (``log_key_path``, ``log_origin``), loaded once
    per process (created if missing)."""
    key = (str(Path(settings.log_key_path).resolve()), settings.log_origin)
    with _SIGNERS_LOCK:
        signer = _SIGNERS.get(key)
        if signer is None:
            signer, _ = load_signer(settings.log_key_path, name=settings.log_origin)
            _SIGNERS[key] = signer
    return signer


def parse_verifier_key(text: str) -> LogKey:
    """A :class:`LogKey` from its verifier-key form ``name+hexid+base64key``."""
    parts = text.strip().split("+", 2)  # base64 may contain "+": cut twice only
    if len(parts) != 3:
        raise NoteError("a verifier key has the form <name>+<hex key id>+<base64 key>")
    name, key_hash, encoded = parts
    try:
        raw = base64.b64decode(encoded, validate=True)
    except ValueError:
        raise NoteError("the verifier key's public key is not valid base64") from None
    if len(raw) != 33 or raw[0] != ALGORITHM_ED25519:
        raise NoteError("the verifier key is not an Ed25519 key")
    key = LogKey(name=name, public_key=raw[1:])
    if key.key_id.hex() != key_hash.lower():
        raise NoteError("the verifier key's id does not match its name and key")
    return key


def sign_note(text: str, signer: LogSigner) -> str:
    """``text`` as a signed note: the text, a blank line and one signature line."""
    if not text.endswith("\n"):
        raise ValueError("a note's text ends with a newline")
    signature = signer.sign(text.encode())
    encoded = base64.b64encode(signer.public.key_id + signature).decode()
    return f"{text}\n{SIGNATURE_DASH} {signer.name} {encoded}\n"


def open_note(note: str, key: LogKey) -> str:
    """The text of a signed note, if ``key`` signed it; else :class:`NoteError`.

    Signature lines by other keys are ignored (a note may carry witnesses' cosignatures).
    """
    text, sep, signatures = note.rpartition("\n\n")
    if not sep or not signatures.endswith("\n"):
        raise NoteError("not a signed note: no blank line before the signatures")
    text += "\n"
    for line in signatures[:-1].split("\n"):
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != SIGNATURE_DASH:
            raise NoteError(f"malformed signature line {line!r}")
        _, name, encoded = parts
        try:
            blob = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise NoteError(f"malformed signature line {line!r}") from None
        if name != key.name or blob[:4] != key.key_id:
            continue
        if key.verify(text.encode(), blob[4:]):
            return text
        raise NoteError(f"the signature by {name} (key id {key.key_id.hex()}) is invalid")
    raise NoteError(f"the note has no signature by {key.name} (key id {key.key_id.hex()})")


__all__ = [
    "ALGORITHM_ED25519",
    "LogKey",
    "LogKeyError",
    "LogSigner",
    "NoteError",
    "generate_signer",
    "load_signer",
    "open_note",
    "parse_verifier_key",
    "sign_note",
    "signer_from_settings",
    "signer_of",
]
