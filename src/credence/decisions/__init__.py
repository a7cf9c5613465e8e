"""decisions feature."""
