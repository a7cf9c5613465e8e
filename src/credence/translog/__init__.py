"""The transparency log: every ledger entry is a leaf of an RFC 9162 Merkle tree.

* :mod:`~credence.translog.merkle`: hashes, roots and proofs (fast, stored subtrees);
* :mod:`~credence.translog.reference`: the RFC's recursive definitions, for tests;
* :mod:`~credence.translog.keys`: the Ed25519 signing key and signed notes;
* :mod:`~credence.translog.tables`: checkpoints and the log's committed leaf hashes;
* :mod:`~credence.translog.service`: checkpoints, proofs and verification of the log;
* :mod:`~credence.translog.cli`: ``credence log checkpoint | verify | prove``.
"""
