"""The ledger (feature): sources, subjects and records. The write side (registration,
intake with group commit, retraction, erasure) and the read model (the subject's
file); ``ledger.endings`` is the interface through which later features end records."""
