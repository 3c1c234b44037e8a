"""The device side of fieldsync: encrypted outbox, sync loop, channels, retry policy.

Errors live in ``client_sync.errors``, TLS options and key pins in ``client_sync.tls``,
the ``fieldsync`` command line in ``client_sync.cli``.
"""

from ._batches import OutgoingBatch
from ._channels import Channel, ChannelSet, HttpChannel
from ._client import SyncClient, SyncStatus
from ._config import OutboxConfig
from ._drain import SyncReport
from ._reads import OutboxEntry
from ._retry import RetryPolicy
from ._states import State
from ._tool import OutboxFile

__all__ = [
    "Channel",
    "ChannelSet",
    "HttpChannel",
    "OutboxConfig",
    "OutboxEntry",
    "OutboxFile",
    "OutgoingBatch",
    "RetryPolicy",
    "State",
    "SyncClient",
    "SyncReport",
    "SyncStatus",
]
