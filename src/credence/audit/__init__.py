"""Audited access: who read which file, when, and for what declared purpose."""
