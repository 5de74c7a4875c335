"""The HTTP API (shared/API.md): routes, request models, middleware."""
