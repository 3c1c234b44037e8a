"""Every limit and version of the wire protocol, each with its reason."""

from __future__ import annotations

#: Protocol version on every batch, "MAJOR.MINOR". A server refuses another MAJOR
#: with ``upgrade_required`` (HTTP 426); MINOR changes only add optional things.
#: 2.0 added the required entry member ``tx_count`` (a batch must carry each
#: transaction whole); a 1.x client is told to upgrade rather than refused with 400.
PROTOCOL_VERSION = "2.0"
PROTOCOL_MAJOR = 2

#: Entries per batch: keeps one server transaction short (locks held < ~100 ms on
#: SQLite) and one retry cheap on a weak link.
MAX_ENTRIES_PER_BATCH = 500

#: Entries per batch on a metered (cellular) channel: a lost request wastes less data.
MAX_ENTRIES_PER_METERED_BATCH = 100

#: Uncompressed bytes per batch the client assembles: bounds server memory per request.
MAX_BATCH_BYTES = 4 * 1024 * 1024

#: Bytes of a request body as sent (compressed). The server answers 413 above it.
#: A batch the client may assemble must fit even when it does not compress (photos,
#: random ids): gzip adds at most ~0.03% plus a header, so 64 KiB of headroom covers it.
MAX_WIRE_BYTES = MAX_BATCH_BYTES + 64 * 1024

#: Bytes a request body may inflate to: refuses zip bombs before they fill memory.
MAX_INFLATED_BYTES = 2 * MAX_BATCH_BYTES

#: Longest string field any schema may declare: a CRM note, not a document store.
MAX_STRING_LENGTH = 10_000

#: Fields per entry: a record is a form a rep fills in, not a bulk payload.
MAX_FIELDS_PER_ENTRY = 200

#: Longest collection name, record id or field name: they are keys in indexes.
MAX_NAME_LENGTH = 128

#: Content-Encoding values a batch may travel in; gzip is what every proxy understands.
CONTENT_ENCODINGS = ("gzip", "identity")

#: Media type of every fieldsync request and response body.
MEDIA_TYPE = "application/json"
