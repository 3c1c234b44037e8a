"""What one app instance holds: its engine, collection registry and rate limit."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from flask import Flask

from protocol import Registry

from .ratelimit import RateLimit

EXTENSION = "fieldsync"


@dataclass(frozen=True, slots=True)
class ServerState:
    """Per-app state, kept in ``app.extensions["fieldsync"]``."""

    engine: sa.Engine
    registry: Registry
    rate_limit: RateLimit = field(default_factory=RateLimit)


def server_state(app: Flask) -> ServerState:
    """The state ``create_app`` stored on ``app``."""
    state = app.extensions[EXTENSION]
    assert isinstance(state, ServerState)
    return state
