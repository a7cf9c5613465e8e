"""notifications feature: an outbox of messages to subjects, delivered through channels."""
