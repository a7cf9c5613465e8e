"""lab feature."""
