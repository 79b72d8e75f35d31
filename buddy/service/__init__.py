"""The HTTP service: the seed's API contracts (FastAPI) over ``buddy.api.Buddy``, with
per-user API keys. ``create_app`` builds it; ``buddy service serve`` runs it under uvicorn."""

from __future__ import annotations

from buddy.service.app import create_app

__all__ = ["create_app"]
