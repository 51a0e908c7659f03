"""Embedded PostgreSQL paths: the repository default and the unix-socket length limit."""

from pathlib import Path

import pytest

import services
from services.chassis.db.embedded import EmbeddedPostgres, EmbeddedPostgresError, default_data_dir


def test_default_data_directory_is_dot_data_postgres_in_the_repository():
    repository = Path(services.__file__).resolve().parents[1]

    assert default_data_dir() == repository / ".data" / "postgres"
    assert EmbeddedPostgres().data_dir == default_data_dir()


def test_a_data_directory_too_long_for_a_unix_socket_is_refused_before_anything_starts(tmp_path):
    data_dir = tmp_path / ("d" * 120)

    with pytest.raises(EmbeddedPostgresError, match="too long"):
        EmbeddedPostgres(data_dir).start()
    assert not data_dir.exists()


def test_admin_url_before_start_is_an_error(tmp_path):
    with pytest.raises(EmbeddedPostgresError, match="not started"):
        _ = EmbeddedPostgres(tmp_path / "pgdata").admin_url
