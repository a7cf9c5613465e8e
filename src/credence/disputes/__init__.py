"""disputes feature: due process for records (disputes with deadlines, statements,
certified reinsertion) and credit repair."""

# Importing the package reports disputes' and repairs' endings to the ledger.
from credence.disputes import endings as _endings  # noqa: F401
