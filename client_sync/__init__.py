"""The device side of fieldsync: encrypted outbox, sync loop, channels, retry policy.

Errors live in ``client_sync.errors``, the ``fieldsync`` command line in
``client_sync.cli``.
"""

from ._channels import Channel, ChannelSet, HttpChannel
from ._client import SyncClient, SyncReport, SyncStatus
from ._outbox import OutboxConfig, OutboxEntry, ParkedEntry
from ._retry import RetryPolicy
from ._states import State

__all__ = [
    "Channel",
    "ChannelSet",
    "HttpChannel",
    "OutboxConfig",
    "OutboxEntry",
    "ParkedEntry",
    "RetryPolicy",
    "State",
    "SyncClient",
    "SyncReport",
    "SyncStatus",
]
