"""The HTTP API (top layer): FastAPI routers, thin adapters over the features' services,
one error envelope, rate limits and the commit before every reply."""
