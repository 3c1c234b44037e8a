"""Collections, their fields and schema versions; validation shared by device and server."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._text import is_name
from .constants import MAX_NAME_LENGTH
from .errors import EntryInvalid, UnsupportedVersion
from .fieldtypes import (
    Bool,
    Decimal,
    Email,
    Enum,
    FieldType,
    Int,
    Phone,
    Reference,
    String,
    Timestamp,
)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A field's type and whether an upsert must carry it."""

    type: FieldType
    required: bool = False


@dataclass(frozen=True, slots=True)
class Collection:
    """A named set of fields at one schema version; ``accepts`` lists older versions read."""

    name: str
    fields: Mapping[str, FieldSpec]
    schema_version: int = 1
    accepts: frozenset[int] = field(default_factory=frozenset)

    def speaks(self, version: int) -> bool:
        """Whether entries written at ``version`` can be validated here."""
        return version == self.schema_version or version in self.accepts

    def validate(self, kind: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """Normalise ``values`` for an entry of ``kind`` or raise EntryInvalid."""
        if kind == "delete":
            if values:
                raise EntryInvalid("fields_on_delete", None, "a delete carries no fields")
            return {}
        if not self.fields.keys() >= values.keys():
            unknown = sorted(set(values) - set(self.fields))
            raise EntryInvalid("unknown_field", unknown[0], f"not a field of {self.name}")
        if kind == "patch" and not values:
            raise EntryInvalid("empty_patch", None, "a patch changes at least one field")
        out: dict[str, Any] = {}
        for name, spec in self.fields.items():
            if name in values and values[name] is not None:
                out[name] = spec.type.normalize(values[name], name)
            elif spec.required and (kind == "upsert" or name in values):
                raise EntryInvalid("required", name, "is required")
            elif name in values or kind == "upsert":
                out[name] = None
        return out


class Registry:
    """The collections an app syncs, by name."""

    def __init__(self, collections: Iterable[Collection] = ()) -> None:
        self._collections: dict[str, Collection] = {}
        for collection in collections:
            self.register(collection)

    def register(self, collection: Collection) -> None:
        """Add or replace a collection."""
        self._collections[collection.name] = collection

    def get(self, name: str) -> Collection:
        """The collection called ``name`` or EntryInvalid(unknown_collection)."""
        try:
            return self._collections[name]
        except KeyError:
            raise EntryInvalid("unknown_collection", None, f"no collection {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._collections

    def names(self) -> list[str]:
        """Registered collection names, sorted."""
        return sorted(self._collections)

    def check_version(self, name: str, version: int) -> None:
        """Raise UnsupportedVersion unless collection ``name`` reads ``version``."""
        collection = self.get(name)
        if not collection.speaks(version):
            raise UnsupportedVersion(
                f"{name} schema version {version} is not known here "
                f"(this side writes version {collection.schema_version})"
            )

    def validate(self, name: str, kind: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """Normalise an entry's fields against collection ``name``."""
        return self.get(name).validate(kind, values)


def check_record_id(record_id: object) -> None:
    """Raise EntryInvalid(invalid_record_id) unless ``record_id`` is a clean 1-128 char name."""
    if not is_name(record_id, MAX_NAME_LENGTH):
        raise EntryInvalid(
            "invalid_record_id",
            None,
            f"record_id must be 1..{MAX_NAME_LENGTH} characters, no control characters",
        )


_STAGES = ("prospecting", "qualified", "proposal", "negotiation", "won", "lost")


def crm_registry() -> Registry:
    """The built-in example CRM: customers, leads, followups, opportunities."""
    return Registry(
        [
            Collection(
                "customers",
                {
                    "name": FieldSpec(String(100), required=True),
                    "phone": FieldSpec(Phone()),
                    "email": FieldSpec(Email()),
                    "address": FieldSpec(String(300)),
                    "notes": FieldSpec(String(2000)),
                },
            ),
            Collection(
                "leads",
                {
                    "name": FieldSpec(String(100), required=True),
                    "phone": FieldSpec(Phone()),
                    "source": FieldSpec(Enum(("visit", "referral", "event", "call", "web"))),
                    "score": FieldSpec(Int(0, 100)),
                    "customer_id": FieldSpec(Reference("customers")),
                },
            ),
            Collection(
                "followups",
                {
                    "customer_id": FieldSpec(Reference("customers"), required=True),
                    "due_at": FieldSpec(Timestamp(), required=True),
                    "note": FieldSpec(String(1000)),
                    "done": FieldSpec(Bool()),
                },
            ),
            Collection(
                "opportunities",
                {
                    "customer_id": FieldSpec(Reference("customers"), required=True),
                    "title": FieldSpec(String(200), required=True),
                    "amount": FieldSpec(Decimal(places=2)),
                    "stage": FieldSpec(Enum(_STAGES)),
                    "close_date": FieldSpec(Timestamp()),
                },
            ),
        ]
    )
