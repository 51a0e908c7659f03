"""Operator CLI: outbox backlog and republish, dead-letter list and replay, topology apply/export.

    python -m services.chassis.events.cli outbox backlog --database-url URL
    python -m services.chassis.events.cli outbox republish --database-url URL --from 10 --to 99
    python -m services.chassis.events.cli outbox prune --database-url URL [--older-than 7d]
    python -m services.chassis.events.cli inbox prune --database-url URL [--older-than 30d]
    python -m services.chassis.events.cli dead-letters list --subscription invoicing-from-payments
    python -m services.chassis.events.cli dead-letters replay --subscription ... [--limit N]
    python -m services.chassis.events.cli topology apply | export [--namespace NS]

The database URL may come from COMMERCE_DATABASE_URL; Pub/Sub from PUBSUB_EMULATOR_HOST (local)
or Application Default Credentials, in project PUBSUB_PROJECT_ID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import TextIO

from tqdm import tqdm

from services.chassis.db.database import Database
from services.chassis.events import config_connector, dead_letter, outbox_store, pubsub, retention
from services.chassis.events.apply import apply_topology
from services.chassis.events.mesh import MESH_TOPOLOGY
from services.chassis.events.topology import DEAD_LETTER_SUFFIX

DATABASE_URL_ENV = "COMMERCE_DATABASE_URL"
_DEFAULT_LIMIT = 1000


class UsageError(Exception):
    """A missing or contradictory option (exit status 2)."""


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run one command; returns the exit status."""
    stream = out or sys.stdout
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args, stream))
    except UsageError as error:
        sys.stderr.write(f"error: {error}\n")
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m services.chassis.events.cli")
    parser.add_argument("--project", default=None, help="Pub/Sub project (PUBSUB_PROJECT_ID)")
    groups = parser.add_subparsers(dest="group", required=True)

    outbox = groups.add_parser("outbox", help="a service's outbox").add_subparsers(
        dest="command", required=True
    )
    backlog = outbox.add_parser("backlog", help="unpublished rows, oldest subjects first")
    _database_option(backlog)
    backlog.add_argument("--subjects", type=int, default=20, help="how many subjects to list")
    backlog.set_defaults(run=_outbox_backlog)
    republish = outbox.add_parser("republish", help="publish a range of positions again")
    _database_option(republish)
    republish.add_argument("--from", dest="first", type=int, required=True)
    republish.add_argument("--to", dest="last", type=int, required=True)
    republish.add_argument("--subject", default=None, help="only this subject's rows")
    republish.set_defaults(run=_outbox_republish)
    prune = outbox.add_parser("prune", help="delete rows published longer ago than a retention")
    _database_option(prune)
    prune.add_argument(
        "--older-than",
        type=_duration,
        default=retention.DEFAULT_OUTBOX_RETENTION,
        help="retention, e.g. 7d, 36h, 90m (default 7d); unpublished rows are never deleted",
    )
    prune.set_defaults(run=_outbox_prune)

    inbox = groups.add_parser("inbox", help="a service's inbox").add_subparsers(
        dest="command", required=True
    )
    inbox_prune = inbox.add_parser("prune", help="forget events applied longer ago")
    _database_option(inbox_prune)
    inbox_prune.add_argument(
        "--older-than",
        type=_duration,
        default=retention.DEFAULT_INBOX_RETENTION,
        help=(
            "retention (default 30d); at least "
            f"{retention.MIN_INBOX_RETENTION.days}d, the longest redelivery window"
        ),
    )
    inbox_prune.set_defaults(run=_inbox_prune)

    letters = groups.add_parser("dead-letters", help="a subscription's dead letters")
    commands = letters.add_subparsers(dest="command", required=True)
    for name, run, text in (
        ("list", _dead_letters_list, "show dead letters without removing them"),
        ("replay", _dead_letters_replay, "republish dead letters to their topic"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("--subscription", required=True, help="the consumer's subscription")
        command.add_argument("--limit", type=int, default=_DEFAULT_LIMIT)
        command.set_defaults(run=run)

    topology = groups.add_parser("topology", help="the mesh's topics and subscriptions")
    actions = topology.add_subparsers(dest="command", required=True)
    actions.add_parser("apply", help="create them on the server").set_defaults(run=_apply)
    export = actions.add_parser("export", help="print Config Connector resources (JSON)")
    export.add_argument("--namespace", default=None)
    export.set_defaults(run=_export)
    return parser


_DURATION = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def _duration(text: str) -> timedelta:
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration like 7d, 36h, 90m or 30s: {text!r}")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


def _database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url", default=None, help=f"the service database ({DATABASE_URL_ENV})"
    )


def _database(args: argparse.Namespace) -> Database:
    url = args.database_url or os.environ.get(DATABASE_URL_ENV)
    if not url:
        raise UsageError(f"give --database-url or set {DATABASE_URL_ENV}")
    return Database.connect(url, pool_size=1, max_overflow=0)


def _project(args: argparse.Namespace) -> str:
    return str(args.project or pubsub.project_id())


def _outbox_backlog(args: argparse.Namespace, out: TextIO) -> int:
    async def read() -> tuple[outbox_store.Backlog, list[outbox_store.SubjectBacklog]]:
        database = _database(args)
        try:
            async with database.transaction() as session:
                total = await outbox_store.backlog(session)
                subjects = await outbox_store.backlog_by_subject(session, args.subjects)
        finally:
            await database.dispose()
        return total, subjects

    total, subjects = asyncio.run(read())
    out.write(f"unpublished: {total.count}  oldest: {total.oldest_age_s:.1f}s\n")
    out.writelines(
        f"  {subject.subject}  {subject.count} rows from position {subject.first_position}"
        f"  since {subject.oldest.isoformat()}\n"
        for subject in subjects
    )
    return 0


def _outbox_republish(args: argparse.Namespace, out: TextIO) -> int:
    if args.first > args.last:
        raise UsageError("--from must not be after --to")

    async def reset() -> int:
        database = _database(args)
        try:
            async with database.transaction() as session:
                return await outbox_store.reset_published(
                    session, args.first, args.last, args.subject
                )
        finally:
            await database.dispose()

    count = asyncio.run(reset())
    out.write(f"{count} rows queued for republishing (the relay publishes them next)\n")
    return 0


def _outbox_prune(args: argparse.Namespace, out: TextIO) -> int:
    async def prune() -> int:
        database = _database(args)
        try:
            return await retention.prune_outbox_fully(database, args.older_than)
        finally:
            await database.dispose()

    count = asyncio.run(prune())
    out.write(f"{count} published outbox rows older than {args.older_than} deleted\n")
    return 0


def _inbox_prune(args: argparse.Namespace, out: TextIO) -> int:
    try:
        retention.check_inbox_retention(args.older_than)
    except retention.RetentionTooShortError as error:
        raise UsageError(str(error)) from error

    async def prune() -> int:
        database = _database(args)
        try:
            return await retention.prune_inbox_fully(database, args.older_than)
        finally:
            await database.dispose()

    count = asyncio.run(prune())
    out.write(f"{count} inbox rows older than {args.older_than} deleted\n")
    return 0


def _dead_letter_path(args: argparse.Namespace) -> str:
    return pubsub.subscription_path(_project(args), f"{args.subscription}{DEAD_LETTER_SUFFIX}")


def _dead_letters_list(args: argparse.Namespace, out: TextIO) -> int:
    subscriber = pubsub.subscriber()
    try:
        letters = dead_letter.list_dead_letters(subscriber, _dead_letter_path(args), args.limit)
    finally:
        subscriber.close()
    out.write(f"{len(letters)} dead letters on {args.subscription}\n")
    out.writelines(
        f"  {letter.event_id}  {letter.event_type}  {letter.subject}"
        f"  attempts={letter.attempts}  at={letter.dead_lettered_at}  {letter.error}\n"
        for letter in letters
    )
    return 0


def _dead_letters_replay(args: argparse.Namespace, out: TextIO) -> int:
    project = _project(args)
    subscriber, publisher = pubsub.subscriber(), pubsub.ordered_publisher()
    try:
        # Back to the topic the consumer's subscription reads (as the server knows it).
        source = subscriber.get_subscription(
            request={"subscription": pubsub.subscription_path(project, args.subscription)}
        )
        # One listing pass first, so the bar knows how far it has to go.
        total = len(dead_letter.list_dead_letters(subscriber, _dead_letter_path(args), args.limit))
        with tqdm(desc="replaying", unit="msg", total=total, file=sys.stderr) as bar:
            count = dead_letter.replay(
                subscriber,
                publisher,
                _dead_letter_path(args),
                str(source.topic),
                limit=args.limit,
                progress=bar.update,
            )
    finally:
        publisher.stop()
        subscriber.close()
    out.write(f"{count} dead letters replayed to {source.topic}\n")
    return 0


def _apply(args: argparse.Namespace, out: TextIO) -> int:
    publisher, subscriber = pubsub.ordered_publisher(), pubsub.subscriber()
    try:
        apply_topology(MESH_TOPOLOGY, _project(args), publisher, subscriber)
    finally:
        publisher.stop()
        subscriber.close()
    out.write(
        f"applied {len(MESH_TOPOLOGY.all_topics())} topics and "
        f"{2 * len(MESH_TOPOLOGY.subscriptions)} subscriptions\n"
    )
    return 0


def _export(args: argparse.Namespace, out: TextIO) -> int:
    json.dump(config_connector.resources(MESH_TOPOLOGY, args.namespace), out, indent=2)
    out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
