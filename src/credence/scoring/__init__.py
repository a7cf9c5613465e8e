"""Scoring (feature): from record to total. The one counting rule (``counting``), the
formula (``formula``) and the engines that apply them: online, batch over the ledger,
columnar over Parquet, Spark."""
