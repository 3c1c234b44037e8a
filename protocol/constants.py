"""Every limit and version of the wire protocol, each with its reason."""

from __future__ import annotations

#: Protocol version on every batch, "MAJOR.MINOR". A server refuses another MAJOR
#: with ``upgrade_required`` (HTTP 426); MINOR changes only add optional things.
#: 2.0 added the required entry member ``tx_count`` (a batch must carry each
#: transaction whole); a 1.x client is told to upgrade rather than refused with 400.
#: 2.1 added the batch's optional ``report`` and the ack's optional ``commands``; a
#: 2.0 batch (no report) is byte for byte what it was.
PROTOCOL_VERSION = "2.1"
PROTOCOL_MAJOR = 2

#: The versions this code writes and reads; any other 2.x is read as well (a minor
#: only adds optional members, and a member this server does not know is refused).
PROTOCOL_VERSIONS = ("2.0", "2.1")

#: The first minor of PROTOCOL_MAJOR whose batches may carry a ``report``.
REPORT_MINOR = 1

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

#: Longest op_id, device_id, tx_id, batch_id and HLC stamp: a UUID (36) or a stamp
#: fits with room to spare, and the server keeps them in VARCHAR(64) key columns.
MAX_ID_LENGTH = 64

#: Longest device id: its HLC stamp, "<13-digit ms>-<5-digit counter>-<device id>",
#: must fit in ``MAX_ID_LENGTH``, and the two numbers and two dashes take 20.
MAX_DEVICE_ID_LENGTH = MAX_ID_LENGTH - 20

#: Characters a ``protocol_version`` may have before it is read as MAJOR.MINOR (the
#: schema's bound, published in the OpenAPI document; the strict check is tighter).
MAX_VERSION_LENGTH = 16

#: Content-Encoding values a batch may travel in; gzip is what every proxy understands.
CONTENT_ENCODINGS = ("gzip", "identity")

#: Media type of every fieldsync request and response body.
MEDIA_TYPE = "application/json"

# -- ranges of hostile input: every number and string the wire carries is bounded ------

#: Highest ``seq``: the server keeps it in a BIGINT (signed 64-bit) column.
MAX_SEQ = 2**63 - 1

#: Highest ``schema_version``: the server keeps it in an INTEGER (signed 32-bit) column.
MAX_SCHEMA_VERSION = 2**31 - 1

#: Range of an ``Int`` field: what a signed 64-bit column (and a JavaScript BigInt) holds.
MIN_INT = -(2**63)
MAX_INT = 2**63 - 1

#: Characters of a JSON integer literal: "-" and 19 digits hold every 64-bit integer.
#: Longer literals are refused before ``int()`` (which is quadratic past ~4,300 digits).
MAX_INT_LITERAL = 20

#: Characters of a JSON number with a fraction or exponent; it must also be finite.
MAX_FLOAT_LITERAL = 32

#: Most digits a ``Decimal`` field may declare: what NUMERIC(38) columns hold elsewhere.
MAX_DECIMAL_DIGITS = 38

#: Years a ``Timestamp`` may fall in (UTC): a CRM date, and every offset stays in range.
MIN_TIMESTAMP_YEAR = 1900
MAX_TIMESTAMP_YEAR = 9998

#: Characters of a timestamp string: "YYYY-MM-DDTHH:MM:SS.ffffff+HH:MM" is 32.
MAX_TIMESTAMP_LENGTH = 40

#: Characters of a phone number as written: room for prefixes, spaces and a label;
#: bounded before any parsing, so no input can make parsing slow.
MAX_PHONE_LENGTH = 64

#: Characters of a ``protocol_version``: "MAJOR.MINOR" with at most 4 ASCII digits each.
MAX_VERSION_DIGITS = 4

#: How far (ms) an HLC stamp's wall time may run ahead of the server's clock. A stamp
#: further ahead would win every last-writer-wins conflict until real time caught
#: up with it; phones keep network time within seconds, so 5 minutes only refuses
#: clocks that are plainly wrong. Refused with ``clock_ahead``; see docs/protocol.md
#: for how a device with a wrong clock recovers.
MAX_CLOCK_AHEAD_MS = 5 * 60 * 1000

#: Highest millisecond time a message may carry (year 9999): bounds ``server_time_ms``.
MAX_TIME_MS = 253_402_300_799_999

# -- the device's report (protocol 2.1) -------------------------------------------------

#: Journal events per batch: a report-only batch stays about as small as an entry batch,
#: and the server stores them in the batch's transaction (one multi-row insert).
MAX_JOURNAL_EVENTS_PER_BATCH = 500

#: Parked entries a report lists: the data box's first page; the counts cover the rest.
MAX_PARKED_PER_REPORT = 100

#: Reasons a data box counts parked entries by: the failure taxonomy has ~17.
MAX_REASONS_PER_REPORT = 64

#: Command outcomes per report, and commands per ack: an admin's bulk action is
#: delivered (and reported) a hundred at a time.
MAX_OUTCOMES_PER_REPORT = 100
MAX_COMMANDS_PER_ACK = 100

#: Characters of a human message in a report (a parked entry's or an outcome's).
MAX_MESSAGE_LENGTH = 1000

#: Highest count, byte size or depth a report carries: a signed 64-bit column holds it.
MAX_COUNT = 2**63 - 1
