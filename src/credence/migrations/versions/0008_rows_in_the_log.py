"""The log proves the rows themselves: row sequence numbers and salts, erasure, a new
log that continues the old one.

* every covered table gets ``seq`` (the journal entry that wrote the row) and
  ``salt``; the journal gets ``rows`` (the digests of the rows each entry wrote);
* a record's content columns become nullable (an erased record keeps only its id,
  subject, source, received instant and place in the log); ``record_erasures`` says
  when and why;
* the old log (leaves were whole journal rows, a second JSON copy of each record's
  content) ends here: the hash of each of its leaves goes to ``legacy_leaves``, its
  checkpoints to ``legacy_checkpoints``, and its journal rows are deleted, so nothing of
  what they held remains. The new log's first entry (``log_continued``) records the old
  log's origin, last checkpoint and tree head over every entry it held. The rows
  written before stay as they are; ``credence.migrate.upgrade`` then carries each over
  into the new log with an entry of its own (``carried_over``), in Python, because the
  rows' canonical bytes are the application's.

Not reversible without loss: the downgrade restores the schema but not the old journal.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
import sqlalchemy as sa
from alembic import op

from credence.translog import merkle

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COVERED = (
    "sources",
    "source_record_types",
    "subjects",
    "records",
    "retractions",
    "relying_parties",
    "party_services",
    "principals",
    "api_keys",
    "disputes",
    "dispute_answers",
    "dispute_lapses",
    "statements",
    "repairs",
    "repair_decisions",
    "restriction_warnings",
    "rulebooks",
    "subject_tiers",
)


def _old_leaf(seq: int, kind: str, subject_id: int | None, at: int, data: str) -> bytes:
    """An old journal row's leaf bytes (the format this migration ends)."""
    subject = b"null" if subject_id is None else b"%d" % subject_id
    return b'{"at":%d,"data":%s,"kind":%s,"seq":%d,"subject_id":%s}' % (
        at,
        data.encode(),
        orjson.dumps(kind),
        seq,
        subject,
    )


def upgrade() -> None:
    for table in COVERED:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
            batch.add_column(sa.Column("salt", sa.String(length=32), nullable=True))
    with op.batch_alter_table("records") as batch:
        batch.alter_column("source_ref", existing_type=sa.String(length=128), nullable=True)
        batch.alter_column("record_type", existing_type=sa.String(length=64), nullable=True)
        batch.alter_column("occurred_at", existing_type=sa.BigInteger(), nullable=True)
        batch.alter_column("content_hash", existing_type=sa.String(length=64), nullable=True)
    with op.batch_alter_table("journal") as batch:
        batch.add_column(sa.Column("rows", sa.Text(), server_default="[]", nullable=False))
    op.create_table(
        "record_erasures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("erased_at", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("salt", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["record_id"], ["records.id"], name=op.f("fk_record_erasures_record_id_records")
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["subjects.id"], name=op.f("fk_record_erasures_subject_id_subjects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_erasures")),
        sa.UniqueConstraint("record_id", name=op.f("uq_record_erasures_record_id")),
    )
    op.create_index(
        op.f("ix_record_erasures_subject_id"), "record_erasures", ["subject_id"], unique=False
    )
    op.create_table(
        "legacy_leaves",
        sa.Column(
            "leaf_index", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("leaf_index", name=op.f("pk_legacy_leaves")),
        sa.UniqueConstraint("seq", name=op.f("uq_legacy_leaves_seq")),
    )
    op.create_table(
        "legacy_checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(length=200), nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.String(length=64), nullable=False),
        sa.Column("signed_note", sa.Text(), nullable=False),
        sa.Column("key_id", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_legacy_checkpoints")),
    )
    _end_old_log()


def _end_old_log() -> None:
    """Hash every old journal row into ``legacy_leaves``, move the checkpoints, delete
    the old rows, and write the new log's first entry (if there was an old log)."""
    bind = op.get_bind()
    top = bind.execute(sa.text("SELECT max(seq) FROM journal")).scalar()
    if top is None:
        return
    tree = merkle.MerkleTree()
    batch: list[dict[str, object]] = []
    leaves = sa.text("INSERT INTO legacy_leaves (leaf_index, seq, leaf_hash) VALUES (:i, :s, :h)")
    rows = bind.execute(
        sa.text("SELECT seq, kind, subject_id, at, data FROM journal ORDER BY seq")
    ).yield_per(10_000)
    for seq, kind, subject_id, at, data in rows:
        digest = merkle.leaf_hash(_old_leaf(seq, kind, subject_id, int(at), data))
        batch.append({"i": len(tree), "s": seq, "h": digest})
        tree.append(digest)
        if len(batch) >= 10_000:
            bind.execute(leaves, batch)
            batch = []
    if batch:
        bind.execute(leaves, batch)
    bind.execute(
        sa.text(
            "INSERT INTO legacy_checkpoints "
            "(id, origin, tree_size, root_hash, signed_note, key_id, created_at) "
            "SELECT id, origin, tree_size, root_hash, signed_note, key_id, created_at "
            "FROM checkpoints"
        )
    )
    last = bind.execute(
        sa.text("SELECT origin, signed_note FROM checkpoints ORDER BY id DESC LIMIT 1")
    ).one_or_none()
    at = bind.execute(sa.text("SELECT max(at) FROM journal")).scalar()
    bind.execute(sa.text("DELETE FROM log_leaves"))
    bind.execute(sa.text("DELETE FROM checkpoints"))
    bind.execute(sa.text("DELETE FROM journal"))
    data = orjson.dumps(
        {
            "checkpoint": None if last is None else last[1],
            "entries": len(tree),
            "origin": None if last is None else last[0],
            "root": tree.root().hex(),
        },
        option=orjson.OPT_SORT_KEYS,
    ).decode()
    if bind.dialect.name == "postgresql":
        seq = bind.execute(sa.text("SELECT nextval(pg_get_serial_sequence('journal', 'seq'))"))
        first = int(seq.scalar_one())
    else:
        first = int(top) + 1
    bind.execute(
        sa.text(
            "INSERT INTO journal (seq, kind, subject_id, at, data, rows) "
            "VALUES (:seq, 'log_continued', NULL, :at, :data, '[]')"
        ),
        {"seq": first, "at": int(at or 0), "data": data},
    )


def downgrade() -> None:
    op.drop_table("legacy_checkpoints")
    op.drop_table("legacy_leaves")
    op.drop_index(op.f("ix_record_erasures_subject_id"), table_name="record_erasures")
    op.drop_table("record_erasures")
    with op.batch_alter_table("journal") as batch:
        batch.drop_column("rows")
    for table in COVERED:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("salt")
            batch.drop_column("seq")
