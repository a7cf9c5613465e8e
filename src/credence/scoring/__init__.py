"""scoring feature."""
