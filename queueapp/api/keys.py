"""What an aiohttp application of the appliance holds, under typed keys."""

from __future__ import annotations

from aiohttp import web

from ..config import Config
from ..service import QueueService

SERVICE = web.AppKey("service", QueueService)
CONFIG = web.AppKey("config", Config)
# The OpenAPI description, generated once from every route's declarations.
OPENAPI = web.AppKey("openapi", dict)
