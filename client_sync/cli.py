"""``fieldsync``: device-side tools (outbox status, key generation, the data box).

The outbox key comes from ``--key-file`` (32 raw bytes or 64 hex digits) or, with
``--passphrase``, from $FIELDSYNC_OUTBOX_PASSPHRASE or a hidden prompt: never from
the command line itself, which other users can read in the process list.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from client_sync import OutboxFile
from client_sync._messages import LANGUAGES
from protocol.errors import EntryInvalid, FieldsyncError

from ._boxtable import _BoxArgs, box_json, box_table, corrections

KEY_BYTES = 32
#: Where ``--passphrase`` looks before it asks.
PASSPHRASE_ENV = "FIELDSYNC_OUTBOX_PASSPHRASE"

_Command = Callable[..., None]


def key_options(command: _Command) -> _Command:
    """The two ways a command gets the outbox key: a key file, or a passphrase."""
    command = click.option(
        "--passphrase",
        is_flag=True,
        help=f"The outbox is keyed with a passphrase: read ${PASSPHRASE_ENV}, else ask.",
    )(command)
    return click.option(
        "--key-file", type=click.Path(dir_okay=False), help="Raw key file (32 bytes or hex)."
    )(command)


@click.group()
def main() -> None:
    """Device-side tools for a fieldsync outbox."""


@main.command()
@click.option("--db", "db", required=True, type=click.Path(dir_okay=False), help="Outbox file.")
@key_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def status(db: str, key_file: str | None, passphrase: bool, as_json: bool) -> None:
    """Entry counts by state, parked entries with their reasons, why sync stopped."""
    with _outbox(db, key_file, passphrase) as outbox:
        counts = outbox.stats()
        parked = outbox.parked()
        stopped = outbox.stopped()
        device_id = outbox.device_id
    if as_json:
        out: dict[str, Any] = {
            "device_id": device_id,
            "counts": counts,
            "stopped": stopped,
            "parked": [
                {
                    "op_id": e.op_id,
                    "seq": e.seq,
                    "collection": e.collection,
                    "record_id": e.record_id,
                    "kind": e.kind,
                    "code": e.code,
                    "field": e.field,
                    "message": e.message,
                }
                for e in parked
            ],
        }
        click.echo(json.dumps(out, sort_keys=True))
        return
    click.echo(f"outbox {db} (device {device_id})")
    for state, n in counts.items():
        click.echo(f"  {state:<12}{n:>8}")
    if stopped:
        click.echo(f"sync stopped: {stopped}")
    if parked:
        click.echo("parked:")
    for e in parked:
        reason = f"{e.code}" + (f" [{e.field}]" if e.field else "") + f": {e.message}"
        click.echo(f"  {e.op_id}  {e.collection}/{e.record_id} {e.kind}  {reason}")


@main.command()
@click.argument("out", type=click.Path(dir_okay=False))
def keygen(out: str) -> None:
    """Write a new random 32-byte raw outbox key to OUT (mode 0600; never overwrites)."""
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise click.ClickException(f"{out} exists; a key is never overwritten") from None
    except OSError as exc:
        raise click.ClickException(f"cannot create {out}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as f:
        f.write(os.urandom(KEY_BYTES))
    click.echo(f"wrote a {KEY_BYTES}-byte key to {out}")


@main.command()
@click.option("--db", "db", required=True, type=click.Path(dir_okay=False), help="Outbox file.")
@key_options
@click.option("--reason", required=True, help="Why (kept in the audit log).")
@click.argument("op_id")
def discard(db: str, key_file: str | None, passphrase: bool, reason: str, op_id: str) -> None:
    """Discard the parked entry OP_ID (audited)."""
    with _outbox(db, key_file, passphrase) as outbox:
        outbox.discard(op_id, reason)
    click.echo(f"discarded {op_id}")


@main.group(invoke_without_command=True)
@click.option("--db", "db", required=True, type=click.Path(dir_okay=False), help="Outbox file.")
@key_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--lang",
    type=click.Choice(LANGUAGES),
    default=LANGUAGES[0],
    show_default=True,
    help="Language of the messages.",
)
@click.pass_context
def outbox(
    ctx: click.Context,
    *,
    db: str,
    key_file: str | None,
    passphrase: bool,
    as_json: bool,
    lang: str,
) -> None:
    """The offline data box: every entry not yet on the server, and why; resubmit, discard."""
    ctx.obj = _BoxArgs(db, key_file, passphrase, as_json, lang)
    if ctx.invoked_subcommand is not None:
        return
    with _outbox(db, key_file, passphrase) as box:
        entries = box.databox(locale=lang)
        counts = box.databox_counts()
        device_id = box.device_id
    if as_json:
        click.echo(json.dumps(box_json(device_id, entries, counts), sort_keys=True))
        return
    for line in box_table(db, device_id, entries, counts):
        click.echo(line)


@outbox.command("resubmit")
@click.argument("op_id")
@click.option(
    "--field", "texts", multiple=True, metavar="NAME=VALUE", help="Set a field to this text."
)
@click.option(
    "--json-field", "jsons", multiple=True, metavar="NAME=JSON", help="Set a field to a JSON value."
)
@click.option("--reason", required=True, help="Why (kept in the audit log and the journal).")
@click.pass_obj
def outbox_resubmit(
    args: _BoxArgs, op_id: str, texts: tuple[str, ...], jsons: tuple[str, ...], reason: str
) -> None:
    """Send the parked entry OP_ID again, with the fields given corrected."""
    fixes = corrections(texts, jsons)
    with _outbox(args.db, args.key_file, args.passphrase) as box:
        fields = {**box.entry(op_id).fields, **fixes}
        new_id = box.resubmit(op_id, fields, reason)
    _done(args, {"action": "resubmit", "op_id": op_id, "new_op_id": new_id},
          f"resubmitted {op_id} as {new_id}")  # fmt: skip


@outbox.command("discard")
@click.argument("op_id")
@click.option("--reason", required=True, help="Why (kept in the audit log and the journal).")
@click.pass_obj
def outbox_discard(args: _BoxArgs, op_id: str, reason: str) -> None:
    """Give up the parked entry OP_ID (audited, journaled)."""
    with _outbox(args.db, args.key_file, args.passphrase) as box:
        box.discard(op_id, reason)
    _done(args, {"action": "discard", "op_id": op_id}, f"discarded {op_id}")


def outbox_key(key_file: str | None, passphrase: bool) -> bytes | str:
    """The raw key from ``key_file``, or the passphrase from the environment or a prompt."""
    if (key_file is None) == (not passphrase):
        raise click.UsageError("give either --key-file FILE or --passphrase")
    if key_file is not None:
        return read_key(key_file)
    from_env = os.environ.get(PASSPHRASE_ENV)
    if from_env:
        return from_env
    answer: str = click.prompt("Outbox passphrase", hide_input=True, err=True)
    return answer


def read_key(key_file: str) -> bytes:
    """The 32-byte raw key in ``key_file`` (raw bytes, or 64 hex digits)."""
    try:
        data = Path(key_file).read_bytes()
    except OSError as exc:
        raise click.ClickException(f"cannot read key file {key_file}: {exc.strerror}") from None
    if len(data) == KEY_BYTES:
        return data
    text = data.strip()
    if len(text) == 2 * KEY_BYTES:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    raise click.ClickException(
        f"key file {key_file} holds {len(data)} bytes; expected {KEY_BYTES} raw bytes or 64 hex"
    )


@contextmanager
def _outbox(db: str, key_file: str | None, passphrase: bool) -> Iterator[OutboxFile]:
    """Open an existing outbox for a tool: no creation, no in-flight recovery."""
    if not Path(db).exists():
        raise click.ClickException(f"no outbox at {db}")
    key = outbox_key(key_file, passphrase)
    try:
        outbox = OutboxFile(db, key)
    except (FieldsyncError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    try:
        yield outbox
    except EntryInvalid as exc:
        raise click.ClickException(f"{exc.code}: {exc}") from None
    except (FieldsyncError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        outbox.close()


def _done(args: _BoxArgs, out: dict[str, Any], line: str) -> None:
    click.echo(json.dumps(out, sort_keys=True) if args.as_json else line)


if __name__ == "__main__":
    main()
