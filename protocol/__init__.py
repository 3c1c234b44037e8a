"""The fieldsync wire protocol: messages, encoding, versions, schemas. Pure: no I/O."""

from .codec import (
    canonical_json,
    compress,
    decode_ack,
    decode_batch,
    decompress,
    encode_ack,
    encode_batch,
    to_wire,
)
from .constants import PROTOCOL_VERSION
from .errors import (
    ClientError,
    EntryInvalid,
    FieldsyncError,
    ProtocolError,
    ServerError,
    UnsupportedVersion,
)
from .model import Ack, Batch, Command, Entry, Kind, Report, Result, Status
from .phone import normalize_cn_mobile
from .registry import Collection, FieldSpec, Registry, crm_registry

__all__ = [
    "PROTOCOL_VERSION",
    "Ack",
    "Batch",
    "ClientError",
    "Collection",
    "Command",
    "Entry",
    "EntryInvalid",
    "FieldSpec",
    "FieldsyncError",
    "Kind",
    "ProtocolError",
    "Registry",
    "Report",
    "Result",
    "ServerError",
    "Status",
    "UnsupportedVersion",
    "canonical_json",
    "compress",
    "crm_registry",
    "decode_ack",
    "decode_batch",
    "decompress",
    "encode_ack",
    "encode_batch",
    "normalize_cn_mobile",
    "to_wire",
]
