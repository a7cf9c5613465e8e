"""One typed settings object, read from the environment (prefix ``CREDENCE_``).

Every setting is documented here; ``tests/test_settings.py`` fails when one is not.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DB_URL = "sqlite:///credence.db"


class Settings(BaseSettings):
    """Runtime configuration of Credence."""

    model_config = SettingsConfigDict(env_prefix="CREDENCE_", extra="ignore")

    db_url: str = Field(
        default=DEFAULT_DB_URL,
        description=(
            "SQLAlchemy URL of the store: an SQLite file (the embedded default) or "
            "postgresql://user@host/db for production."
        ),
    )
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        description="Largest HTTP request body accepted; larger bodies get 413.",
        gt=0,
    )
    max_batch_records: int = Field(
        default=10_000,
        description="Most records one POST /v1/records batch may carry.",
        gt=0,
    )
    auth_cache_seconds: float = Field(
        default=1.0,
        description=(
            "How long the API keeps an authenticated key in memory before reading it "
            "again: the longest a key revoked by another process (e.g. the CLI) is still "
            "accepted. A revocation through the API applies at once. 0 turns caching off."
        ),
        ge=0,
    )
    log_level: str = Field(default="info", description="Log level of the API server.")
    log_key_path: str = Field(
        default="credence-log.key",
        description=(
            "PEM file with the transparency log's Ed25519 signing key; generated (mode "
            "0600) if missing. Back it up: checkpoints are verified against its public key."
        ),
    )
    log_origin: str = Field(
        default="credence.example/log",
        description=(
            "The transparency log's origin: the first line of every checkpoint and the "
            "name of its signing key (no spaces or '+')."
        ),
    )
