"""The transparency log: every ledger entry is a leaf of an RFC 9162 Merkle tree.

* :mod:`~credence.translog.merkle`: hashes, roots and proofs (fast, stored subtrees);
* :mod:`~credence.translog.reference`: the RFC's recursive definitions, for tests;
* :mod:`~credence.translog.keys`: the Ed25519 signing key and signed notes;
* :mod:`~credence.translog.tables`: checkpoints and the log's committed leaf hashes;
* :mod:`~credence.translog.leaves`: what a leaf is (a journal row's canonical bytes);
* :mod:`~credence.translog.tree`: the log's Merkle tree over the journal, cached per
  process;
* :mod:`~credence.translog.checkpoints`: signing, storing and checking checkpoints, and
  the timer that signs them;
* :mod:`~credence.translog.proofs`: inclusion and consistency proofs;
* :mod:`~credence.translog.entries`: one entry as a leaf, and the rows it wrote, opened;
* :mod:`~credence.translog.verify`: the whole log recomputed and checked from storage;
* :mod:`~credence.translog.continuation`: a log continuing an earlier one.

``credence log checkpoint | verify | prove`` is :mod:`credence.cli.log`.

**Threat model.** The log protects against anyone with write access to the database (an
operator, a database administrator, an intruder) changing, removing, inserting or
reordering ledger entries, or the rows they wrote, *after a checkpoint covered them*:

* whoever kept a checkpoint (a subject, a relying party, an auditor, a witness) can ask
  for an inclusion proof of an entry and a consistency proof to any later checkpoint; a
  rewritten history fails one or the other;
* :func:`credence.translog.verify.verify_log` is the log's own audit: it recomputes
  every leaf from the journal and compares it with ``log_leaves`` (naming the entries
  changed, removed, inserted or moved), recomputes every checkpoint's root from
  ``log_leaves`` (so doctoring ``log_leaves`` to match a doctored journal is caught too,
  to the range between two checkpoints), checks every checkpoint's signature and text
  (so rewriting checkpoint rows is caught unless the signing key was stolen as well),
  and checks every covered row against the digest its entry lists.

It does not protect against: an attacker holding both the database and the signing
key (who can rewrite everything consistently; only parties holding older checkpoints
notice, through a failing consistency proof: publish checkpoints widely and keep the key
off the database host); forged appends after the latest checkpoint (the log makes every
append permanent and visible, it cannot tell a legitimate append from a forged one:
that is the access policy's job); showing different checkpoints to different people
(detecting a split view needs witnesses gossiping checkpoints). Leaf hashes are public;
leaf data (digests only) and the opened rows
(:func:`~credence.translog.entries.opened_rows`: salt and canonical bytes) are shown
only to the entry's subject and to operators.
"""
