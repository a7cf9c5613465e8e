"""Export (feature): the ledger written as the batch layout
(:mod:`credence.scoring.layout`), tied to a signed checkpoint of the log, for the
columnar and Spark engines."""
