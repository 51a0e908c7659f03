"""`python -m services.payments.sandbox --port 0` runs, says where, serves, and stops on TERM."""

import signal
import subprocess
import sys

import httpx


def test_sandbox_cli_prints_its_address_serves_and_stops_cleanly():
    process = subprocess.Popen(
        [sys.executable, "-m", "services.payments.sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.removeprefix("listening on ")
        assert httpx.get(f"{url}/healthz", timeout=5).json() == {"status": "ok"}
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        if process.stdout is not None:
            process.stdout.close()


def test_sandbox_cli_refuses_a_non_loopback_address():
    result = subprocess.run(
        [sys.executable, "-m", "services.payments.sandbox", "--host", "0.0.0.0", "--port", "0"],  # noqa: S104
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert result.returncode != 0
    assert "loopback" in result.stderr
