"""The public transparency log: signed checkpoints, entries and Merkle proofs.

Anyone may read checkpoints, the public key, leaf hashes and proofs (no key needed). An
entry's data is personal when the entry is about a subject: only that subject and those
who may read the subject's file see it; entries about no subject are public.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from credence.access.keys import authenticate
from credence.access.policy import PUBLIC, Action, Caller, allowed, authorize
from credence.api.deps import ContextDep, SessionDep
from credence.api.routing import CommittingRoute
from credence.errors import InvalidInput
from credence.translog import checkpoints, entries, proofs
from credence.translog.keys import LogSigner, signer_from_settings

router = APIRouter(prefix="/v1/log", tags=["transparency log"], route_class=CommittingRoute)

# Sequence numbers and sizes are BIGINT in the store: larger values are the caller's
# mistake (422), not a database error.
MAX_INT = 2**63 - 1

_bearer = HTTPBearer(
    auto_error=False, description="Optional: an API key shows entry data you may read."
)


def get_signer(ctx: ContextDep) -> LogSigner:
    return signer_from_settings(ctx.settings)


SignerDep = Annotated[LogSigner, Depends(get_signer)]


def get_reader(
    ctx: ContextDep,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The caller: the public without a key; a key, when sent, must be valid."""
    if credentials is None:
        return PUBLIC
    return authenticate(session, credentials.credentials, clock=ctx.clock)


ReaderDep = Annotated[Caller, Depends(get_reader)]


class CheckpointOut(BaseModel):
    origin: str
    tree_size: int
    root_hash: str = Field(description="RFC 9162 Merkle tree hash, hex.")
    signed_note: str = Field(description="The checkpoint as signed (C2SP signed note).")
    key_id: str = Field(description="Signed-note key id of the signing key, hex.")
    created_at: datetime


class PublicKeyOut(BaseModel):
    origin: str
    algorithm: str
    public_key: str = Field(description="Raw 32-byte Ed25519 public key, base64.")
    key_id: str = Field(description="Signed-note key id, hex.")
    verifier_key: str = Field(description="Signed-note verifier key: name+id+key.")


class OpenedRowOut(BaseModel):
    table: str
    key: Any
    digest: str
    salt: str
    canonical: str = Field(description="The row's canonical bytes (UTF-8 JSON).")


class EntryDataOut(BaseModel):
    kind: str
    at: datetime
    data: Any = Field(description="The entry's data, parsed; null if it is not JSON.")
    rows: Any = Field(
        default=None,
        description="The rows the entry wrote: [[table, key, digest]], each digest SHA-256 of "
        "the row's salt and canonical bytes.",
    )
    leaf_data: str = Field(description="The leaf's exact bytes (UTF-8): hash them to check.")
    opened: list[OpenedRowOut] = Field(
        default_factory=list,
        description="Each row the entry wrote that still holds what it wrote, opened: "
        "SHA-256(bytes.fromhex(salt) + canonical) is the digest the entry lists.",
    )


class EntryOut(BaseModel):
    seq: int
    leaf_index: int | None = Field(description="Index in the log; null until a checkpoint.")
    leaf_hash: str = Field(description="SHA-256(0x00 || leaf data), hex.")
    entry: EntryDataOut | None = Field(
        description="The entry itself, for its subject and those who may read their file "
        "(and for everyone when it is about no subject); else null."
    )


class InclusionOut(BaseModel):
    seq: int
    leaf_index: int
    tree_size: int
    leaf_hash: str
    root_hash: str
    proof: list[str] = Field(description="RFC 9162 audit path, leaf to root, hex.")


class ConsistencyOut(BaseModel):
    first: int
    second: int
    first_root: str
    second_root: str
    proof: list[str] = Field(description="RFC 9162 consistency proof, hex.")


def _checkpoint_out(cp: checkpoints.Checkpoint) -> CheckpointOut:
    return CheckpointOut(
        origin=cp.origin,
        tree_size=cp.tree_size,
        root_hash=cp.root_hash.hex(),
        signed_note=cp.signed_note,
        key_id=cp.key_id,
        created_at=cp.created_at,
    )


@router.get(
    "/checkpoint",
    response_model=CheckpointOut,
    summary="The latest signed checkpoint (signed now if entries were added since)",
)
def checkpoint(
    caller: ReaderDep, ctx: ContextDep, session: SessionDep, signer: SignerDep
) -> CheckpointOut:
    authorize(caller, Action.LOG_READ)
    cp = checkpoints.signed_now(ctx.engine, ctx.sessions, signer=signer, at=ctx.clock.now())
    return _checkpoint_out(cp)


@router.get(
    "/public-key",
    response_model=PublicKeyOut,
    summary="The key that signs checkpoints",
)
def public_key(caller: ReaderDep, signer: SignerDep) -> PublicKeyOut:
    authorize(caller, Action.LOG_READ)
    key = signer.public
    return PublicKeyOut(
        origin=key.name,
        algorithm="ed25519",
        public_key=base64.b64encode(key.public_key).decode(),
        key_id=key.key_id.hex(),
        verifier_key=key.verifier_key,
    )


@router.get(
    "/entries/{seq}",
    response_model=EntryOut,
    summary="One log entry: its leaf hash for all, its data for those who may read it",
)
def entry(
    seq: Annotated[int, Path(ge=0, le=MAX_INT)], caller: ReaderDep, session: SessionDep
) -> EntryOut:
    authorize(caller, Action.LOG_READ)
    found = entries.entry(session, seq)
    visible = found.subject_id is None or allowed(
        caller, Action.FILE_READ, subject_id=found.subject_id
    )
    return EntryOut(
        seq=found.seq,
        leaf_index=found.leaf_index,
        leaf_hash=found.leaf_hash.hex(),
        entry=EntryDataOut(
            kind=found.kind,
            at=found.at,
            data=_parsed(found.data),
            rows=_parsed(found.rows),
            leaf_data=found.leaf_data.decode(),
            opened=[
                OpenedRowOut(
                    table=r.table, key=r.key, digest=r.digest, salt=r.salt, canonical=r.canonical
                )
                for r in entries.opened_rows(session, found)
            ],
        )
        if visible
        else None,
    )


def _parsed(data: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:  # only a tampered row; verification names it
        return None


def _covered(ctx: ContextDep, signer: LogSigner) -> int:
    """The size of the latest checkpoint, signing one first if entries were added."""
    return checkpoints.signed_now(
        ctx.engine, ctx.sessions, signer=signer, at=ctx.clock.now()
    ).tree_size


def _within(size: int, covered: int, name: str) -> None:
    if size > covered:
        raise InvalidInput(
            f"{name} {size} is beyond the latest checkpoint ({covered}): ask for a "
            "tree size a checkpoint covers",
            code="tree_size_too_large",
        )


@router.get(
    "/proof/inclusion",
    response_model=InclusionOut,
    summary="Inclusion proof of an entry in a checkpointed tree (default: the latest)",
)
def inclusion(
    caller: ReaderDep,
    ctx: ContextDep,
    session: SessionDep,
    signer: SignerDep,
    seq: Annotated[
        int, Query(ge=0, le=MAX_INT, description="The entry (journal sequence number).")
    ],
    tree_size: Annotated[
        int | None,
        Query(ge=1, le=MAX_INT, description="Tree size; default the latest checkpoint's."),
    ] = None,
) -> InclusionOut:
    authorize(caller, Action.LOG_READ)
    covered = _covered(ctx, signer)
    size = covered if tree_size is None else tree_size
    _within(size, covered, "tree_size")
    proof = proofs.prove_inclusion(session, seq, size)
    return InclusionOut(
        seq=proof.seq,
        leaf_index=proof.leaf_index,
        tree_size=proof.tree_size,
        leaf_hash=proof.leaf_hash.hex(),
        root_hash=proof.root_hash.hex(),
        proof=[h.hex() for h in proof.path],
    )


@router.get(
    "/proof/consistency",
    response_model=ConsistencyOut,
    summary="Proof that an earlier tree is a prefix of a later one",
)
def consistency(
    caller: ReaderDep,
    ctx: ContextDep,
    session: SessionDep,
    signer: SignerDep,
    first: Annotated[
        int, Query(ge=1, le=MAX_INT, description="The earlier tree size (at least 1).")
    ],
    second: Annotated[
        int | None,
        Query(ge=0, le=MAX_INT, description="The later tree size; default the latest."),
    ] = None,
) -> ConsistencyOut:
    authorize(caller, Action.LOG_READ)
    covered = _covered(ctx, signer)
    size = covered if second is None else second
    _within(size, covered, "second")
    proof = proofs.prove_consistency(session, first, size)
    return ConsistencyOut(
        first=proof.first,
        second=proof.second,
        first_root=proof.first_root.hex(),
        second_root=proof.second_root.hex(),
        proof=[h.hex() for h in proof.path],
    )
