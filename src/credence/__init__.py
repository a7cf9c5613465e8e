"""Credence: an open, accountable social-credit engine.

Every weight is published, every score explained, every record disputable and every
decision bound to the purpose of the service that asks for it.
"""

__version__ = "0.1.0"
