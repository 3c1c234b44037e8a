"""The per-app Flask extension: its engine, collection registry and rate limit."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from flask import Flask

from protocol import Registry

from .db import READ_ONLY
from .ratelimit import RateLimit

EXTENSION = "fieldsync"


@dataclass(frozen=True, slots=True)
class ServerState:
    """Per-app state, kept in ``app.extensions["fieldsync"]``."""

    engine: sa.Engine
    registry: Registry
    rate_limit: RateLimit = field(default_factory=RateLimit)
    #: The same engine for transactions that only read (no write lock on SQLite).
    reader: sa.Engine = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "reader", self.engine.execution_options(**{READ_ONLY: True}))

    @property
    def check_in_apply(self) -> bool:
        """Whether a batch's token check runs in its apply transaction (views.py)."""
        return self.engine.dialect.name == "postgresql" and not self.rate_limit.enabled


def server_state(app: Flask) -> ServerState:
    """The state ``create_app`` stored on ``app``."""
    state = app.extensions[EXTENSION]
    assert isinstance(state, ServerState)
    return state
