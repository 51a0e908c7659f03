"""The pgserver-embedded PostgreSQL: idempotent start, socket only, passwords, clean stop."""

import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from services.chassis.db.embedded import EmbeddedPostgres
from services.chassis.db.settings import libpq_conninfo

pytestmark = pytest.mark.integration


def fetch_one(url, statement):
    with psycopg.connect(libpq_conninfo(url), autocommit=True) as conn:
        row = conn.execute(statement).fetchone()
    assert row is not None
    return row[0]


def started_at(url):
    return fetch_one(url, "SELECT pg_postmaster_start_time()")


@pytest.fixture
def private_dir():
    """A temporary directory outside pytest's basetemp, which concurrent pytest runs delete."""
    path = Path(tempfile.mkdtemp(prefix="commerce-pg-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def embedded():
    parent = Path(tempfile.mkdtemp(prefix="commerce-pg-test-"))
    server = EmbeddedPostgres(parent / "pgdata")
    server.start()
    yield server
    server.stop()
    shutil.rmtree(parent, ignore_errors=True)


def test_start_returns_a_superuser_url_on_the_data_directory_socket(embedded):
    url = embedded.admin_url

    assert url.drivername == "postgresql+psycopg"
    assert (url.username, url.database, url.host) == ("postgres", "postgres", None)
    assert url.query["host"] == str(embedded.data_dir)
    assert fetch_one(url, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user") is True


def test_server_listens_on_no_tcp_address(embedded):
    assert fetch_one(embedded.admin_url, "SHOW listen_addresses") == ""
    assert fetch_one(embedded.admin_url, "SHOW unix_socket_directories") == str(embedded.data_dir)


def test_server_is_a_real_postgresql_16(embedded):
    assert fetch_one(embedded.admin_url, "SHOW server_version_num").startswith("16")


def test_starting_again_with_the_same_data_directory_reuses_the_running_server(embedded):
    started = started_at(embedded.admin_url)
    again = EmbeddedPostgres(embedded.data_dir)

    assert embedded.start() == embedded.admin_url
    assert again.start() == embedded.admin_url
    again.stop()

    # Releasing the second handle must not stop the server under the first one.
    assert started_at(embedded.admin_url) == started


def test_another_process_reuses_the_server_and_leaves_it_running_on_exit(embedded):
    started = started_at(embedded.admin_url)
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from services.chassis.db.embedded import EmbeddedPostgres
        server = EmbeddedPostgres(Path({str(embedded.data_dir)!r}))
        print(server.start().render_as_string(hide_password=False))
        server.stop()
        """
    )
    child = subprocess.run(  # noqa: S603 - our own interpreter running a fixed script
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )

    assert make_url(child.stdout.strip()) == embedded.admin_url
    assert started_at(embedded.admin_url) == started


def test_roles_other_than_the_superuser_must_give_their_password(embedded):
    with psycopg.connect(libpq_conninfo(embedded.admin_url), autocommit=True) as conn:
        conn.execute("CREATE ROLE pw_probe LOGIN PASSWORD 'right-password'")
    probe = embedded.admin_url.set(username="pw_probe")

    assert fetch_one(probe.set(password="right-password"), "SELECT current_user") == "pw_probe"
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        fetch_one(probe.set(password="wrong-password"), "SELECT 1")
    with pytest.raises(psycopg.OperationalError, match="password"):
        fetch_one(probe, "SELECT 1")


def test_stop_shuts_the_server_down_and_a_restart_keeps_the_data(private_dir):
    server = EmbeddedPostgres(private_dir / "pgdata")
    url = server.start()
    with psycopg.connect(libpq_conninfo(url), autocommit=True) as conn:
        conn.execute("CREATE DATABASE survives_restart")

    server.stop()

    assert not (private_dir / "pgdata" / "postmaster.pid").exists()
    with pytest.raises(psycopg.OperationalError):
        fetch_one(url, "SELECT 1")
    with EmbeddedPostgres(private_dir / "pgdata") as restarted:
        names = fetch_one(restarted.admin_url, "SELECT array_agg(datname) FROM pg_database")
        assert "survives_restart" in names
