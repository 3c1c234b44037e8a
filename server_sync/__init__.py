"""The fieldsync sync server: idempotent batch apply, device enrolment and auth, over Flask."""

from .app import create_app
from .auth import Device, add_device, authenticate, list_devices, revoke_device
from .db import create_engine, upgrade
from .service import apply_batch, get_record

__all__ = [
    "Device",
    "add_device",
    "apply_batch",
    "authenticate",
    "create_app",
    "create_engine",
    "get_record",
    "list_devices",
    "revoke_device",
    "upgrade",
]
