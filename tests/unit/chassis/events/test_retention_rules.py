"""Retention rules and the CLI's durations, without a database."""

from datetime import timedelta

import pytest

from services.chassis.events import cli, retention


def test_the_inbox_outlasts_redelivery_and_dead_letter_replay():
    assert timedelta(days=15) == retention.MIN_INBOX_RETENTION
    assert retention.DEFAULT_INBOX_RETENTION >= retention.MIN_INBOX_RETENTION
    # Anything an operator can still republish from an outbox is in every inbox.
    assert retention.DEFAULT_OUTBOX_RETENTION < retention.MIN_INBOX_RETENTION


def test_a_shorter_inbox_retention_is_refused():
    assert retention.check_inbox_retention(timedelta(days=15)) == timedelta(days=15)
    with pytest.raises(retention.RetentionTooShortError, match="shorter than 15 days"):
        retention.check_inbox_retention(timedelta(days=14, hours=23))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", timedelta(days=7)),
        ("36h", timedelta(hours=36)),
        ("90m", timedelta(minutes=90)),
        ("1.5d", timedelta(hours=36)),
        ("30s", timedelta(seconds=30)),
    ],
)
def test_durations(text, expected):
    assert cli._duration(text) == expected


@pytest.mark.parametrize("text", ["7", "d", "1.d", "7w", "7 days", ""])
def test_bad_durations_are_usage_errors(text, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["outbox", "prune", "--database-url", "postgresql://x/y", "--older-than", text])
    assert exit_info.value.code == 2
    assert "not a duration" in capsys.readouterr().err
