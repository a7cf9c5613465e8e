"""One typed settings object, read from the environment (prefix ``CREDENCE_``).

Every setting is documented here; ``tests/test_settings.py`` fails when one is not.
"""

from __future__ import annotations

import ipaddress

from pydantic import Field, field_validator
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
    failed_auth_limit: int = Field(
        default=20,
        description=(
            "Failed authentications (401s to requests that present a key) allowed per "
            "client address and per presented key within rate_limit_window_seconds; "
            "past it, every request with a key from that address, or with that key, gets "
            "429 with Retry-After until the window has moved on. Counted by each server "
            "process on its own. 0 turns the limit off."
        ),
        ge=0,
    )
    lookup_limit: int = Field(
        default=600,
        description=(
            "Identifier look-ups (POST /v1/subjects/lookup, and decisions asked by "
            "identifier instead of subject_id) allowed per key and per client address "
            "within rate_limit_window_seconds; past it, 429 with Retry-After. Counted by "
            "each server process on its own. 0 turns the limit off."
        ),
        ge=0,
    )
    rate_limit_window_seconds: float = Field(
        default=60.0,
        description="The sliding window of failed_auth_limit and lookup_limit, in seconds.",
        gt=0,
    )
    trusted_proxies: str = Field(
        default="",
        description=(
            "Comma-separated addresses or networks (10.0.0.0/8) of reverse proxies in "
            "front of the API. A request from one of them counts, for the rate limits, "
            "against the last X-Forwarded-For address that is not a trusted proxy; "
            "otherwise X-Forwarded-For is ignored and the socket's peer address counts. "
            "Behind a proxy, set it: else all clients share the proxy's address."
        ),
    )
    cookie_secure: bool = Field(
        default=False,
        description=(
            "Send the portal's cookies (its session and sign-in form cookies) with the "
            "Secure attribute, so a browser returns them over HTTPS only. Turn it on "
            "whenever the portal is reached over HTTPS: behind a proxy that ends TLS the "
            "app cannot see it, so it does not guess."
        ),
    )
    session_idle_minutes: float = Field(
        default=30.0,
        description=(
            "A portal session unused for this many minutes has ended; the person signs in again."
        ),
        gt=0,
    )
    session_max_hours: float = Field(
        default=12.0,
        description=(
            "A portal session ends this many hours after its sign-in, however active it "
            "is (and at once when the key it came from is revoked or expires)."
        ),
        gt=0,
    )
    sign_in_limit: int = Field(
        default=10,
        description=(
            "Refused portal sign-ins allowed per client address within "
            "rate_limit_window_seconds; past it, every sign-in from that address gets a "
            "429 page saying when to try again, and no key is checked. Counted by each "
            "server process on its own. 0 turns the limit off."
        ),
        ge=0,
    )
    sign_in_limit_overall: int = Field(
        default=1000,
        description=(
            "Refused portal sign-ins allowed from all addresses together within "
            "rate_limit_window_seconds (a guess spread over many addresses); past it, "
            "every sign-in gets the 429 page. Counted by each server process on its own. "
            "0 turns the limit off."
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
    checkpoint_every_seconds: float = Field(
        default=60.0,
        description=(
            "While the journal grows, the API server signs a checkpoint of the "
            "transparency log at least this often (in seconds), so that new entries are "
            "soon provable; nothing is signed while no entry arrives. 0 turns it off "
            "(checkpoints are then signed only on request)."
        ),
        ge=0,
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_addresses(cls, value: str) -> str:
        for part in value.split(","):
            if part.strip():
                try:
                    ipaddress.ip_network(part.strip(), strict=False)
                except ValueError:
                    raise ValueError(
                        "trusted_proxies: each entry must be an IP address or network"
                    ) from None
        return value
