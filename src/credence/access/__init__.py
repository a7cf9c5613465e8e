"""Access (policy layer): principals, roles, API keys stored hashed, relying parties and
their services, and the policy table of who may do what (docs/roles.md). It knows
subjects and sources only by opaque id, never the features' tables."""
