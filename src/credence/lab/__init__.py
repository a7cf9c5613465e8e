"""The lab (top layer): synthetic cities for the demo and tests, synthetic national
populations on Parquet for the batch engines."""
