"""`make run`: bring up the mesh on this machine, and say plainly what is not built yet.

Starts PostgreSQL (embedded under .data/, or the one COMMERCE_DATABASE_URL names), the Pub/Sub
emulator with the mesh's topology, and every part services/localmesh.py lists that exists, each
on its fixed local port, waiting until each is healthy; prints where everything runs and stops
it all, in order, on Ctrl-C. `python -m services.devrun token` prints a JWT the mesh accepts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from services import demo as demo_flow
from services.chassis import traceviewer
from services.chassis.db.embedded import default_data_dir
from services.localmesh import DEV_PORTS, LocalMesh, PartFailedError, free_ports, sign_token

DATA = default_data_dir().parent
DEV_KEY = DATA / "dev-jwt.key"


def dev_key() -> str:
    """The local HS256 signing secret, generated once under .data/ (never committed)."""
    if not DEV_KEY.exists():
        DEV_KEY.parent.mkdir(parents=True, exist_ok=True)
        DEV_KEY.write_text(secrets.token_urlsafe(48))
        DEV_KEY.chmod(0o600)
    return DEV_KEY.read_text().strip()


def dev_token(tenant: str | None, roles: list[str], subject: str, ttl_seconds: int) -> str:
    """A JWT for local calls, signed with the local secret."""
    return sign_token(dev_key(), tenant=tenant, roles=roles, subject=subject, ttl=ttl_seconds)


def _dev_secret(name: str) -> str:
    path = DATA / "secrets" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


def local_mesh() -> LocalMesh:
    """The mesh on its fixed local ports, data and logs under .data/."""
    dev_key()
    return LocalMesh(
        data_dir=DATA,
        ports=DEV_PORTS,
        jwt_key_file=DEV_KEY,
        secret=_dev_secret,
        database_url=os.environ.get("COMMERCE_DATABASE_URL"),
    )


def print_table(mesh: LocalMesh) -> None:
    print("\nCommerce Mesh — local run")
    print(f"  {'PostgreSQL':<30} {mesh.database_url}")
    for running in mesh.running:
        print(f"  {running.part.title:<30} {running.address:<34} log: {running.log_path}")
    for part in mesh.skipped:
        print(f"  {part.title:<30} not built yet (issue #{part.issue})")
    keys = {r.part.key for r in mesh.running}
    if "gateway" in keys:
        print(f"\nREST docs: http://{mesh.url('gateway')}/docs  (spec: /openapi.json)")
    if "traceviewer" in keys:
        print(f"Traces:    http://{mesh.url('traceviewer')}/zipkin/")
    print("A token for grpcurl or curl:  .venv/bin/python -m services.devrun token --tenant acme")


async def run() -> int:
    """Start everything that exists, wait until healthy, print where it runs, stop on Ctrl-C."""
    mesh = local_mesh()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    started = time.monotonic()
    try:
        await mesh.start(lambda line: print(f"  [{time.monotonic() - started:5.1f}s] {line}"))
    except PartFailedError as failure:
        print(f"\n{failure}", file=sys.stderr)
        await mesh.stop()
        return 1
    print_table(mesh)
    print("Ctrl-C stops everything (each part drains; nothing is lost).")
    exits = [asyncio.create_task(r.process.wait()) for r in mesh.running]
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopper, *exits], return_when=asyncio.FIRST_COMPLETED)
    if stopper not in done:
        print("a part exited unexpectedly; stopping the mesh", file=sys.stderr)
    stopper.cancel()
    print("\nstopping ...")
    failed = await mesh.stop()
    for key, code in failed:
        print(f"  {key} exited with {code} (see .data/logs/{key}.log)", file=sys.stderr)
    return 1 if failed or stopper not in done else 0


async def demo(screenshot: Path | None = None) -> int:
    """`make demo`: the mesh on free ports in a throwaway directory, one checkout through the
    REST facade, its figures and its trace, then everything stopped. Exit 1 if any step fails."""
    data_dir = Path(tempfile.mkdtemp(prefix="commerce-demo-"))
    key_file = data_dir / "jwt.key"
    key_file.write_text(secrets.token_urlsafe(48))
    passwords: dict[str, str] = {}
    mesh = LocalMesh(
        data_dir=data_dir,
        ports=free_ports(DEV_PORTS),
        jwt_key_file=key_file,
        secret=lambda name: passwords.setdefault(name, secrets.token_urlsafe(24)),
        database_url=os.environ.get("COMMERCE_DATABASE_URL"),
    )
    started = time.monotonic()
    tenant = f"demo-{secrets.token_hex(3)}"
    try:
        await mesh.start(lambda line: print(f"  [{time.monotonic() - started:5.1f}s] {line}"))
        missing = {"traceviewer", "gateway", *demo_flow.SERVICES} - {
            r.part.key for r in mesh.running
        }
        if missing:
            print(f"cannot run the demo: not running: {', '.join(sorted(missing))}")
            return 1
        token = mesh.token(tenant, ["tenant_admin"], subject="demo")
        async with httpx.AsyncClient(
            base_url=f"http://{mesh.url('gateway')}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        ) as rest:
            await demo_flow.route_to_sandbox(rest, tenant)
            journey = await demo_flow.place_checkout(rest, tenant)
        viewer = traceviewer.base_url(mesh.ports["traceviewer"])
        spans = await demo_flow.trace_services(viewer, journey.trace_id)
        _print_journey(journey, spans, mesh)
        if screenshot is not None:
            link = traceviewer.trace_link(journey.trace_id, mesh.ports["traceviewer"])
            await asyncio.to_thread(_screenshot, link, screenshot)
    except (PartFailedError, demo_flow.JourneyError) as failure:
        print(f"\ndemo failed: {failure}", file=sys.stderr)
        return 1
    else:
        return 0
    finally:
        print("\nstopping ...")
        failed = await mesh.stop()
        for key, code in failed:
            print(f"  {key} exited with {code}", file=sys.stderr)
        shutil.rmtree(data_dir, ignore_errors=True)


def _screenshot(url: str, target: Path) -> None:
    """The viewer's page for the trace, rendered by headless Chromium (Debian's package)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise demo_flow.JourneyError("--screenshot needs Chromium: apt-get install chromium")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(  # noqa: S603 - the system's Chromium, our own loopback URL
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", "--hide-scrollbars",
             "--window-size=1600,1100", "--virtual-time-budget=20000",
             f"--screenshot={target.resolve()}", url],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    print(f"Screenshot {target}")


def _print_journey(
    journey: demo_flow.Journey, spans: list[dict[str, Any]], mesh: LocalMesh
) -> None:
    quote = journey.checkout["quote"]
    total = quote["total"]
    print(f"\nOrder      {journey.order['name']}  ({journey.status['state']})")
    print(f"           total {total['currencyCode']} {int(total['amountMinor'])} minor units; "
          f"the same Idempotency-Key replayed gave {journey.replayed_order}")  # fmt: skip
    print(f"Invoice    {journey.invoice['number']}  ({journey.invoice['state']}, "
          f"{len(journey.invoice_pdf)} bytes of PDF)")  # fmt: skip
    print("Ledger     posted balances (minor units):")
    for account, balance in sorted(journey.balances.items()):
        print(f"             {account:<36} {balance}")
    services = sorted({str(s.get("localEndpoint", {}).get("serviceName")) for s in spans})
    print(f"Trace      {journey.trace_id}: {len(spans)} spans from {', '.join(services)}")
    print(f"           {traceviewer.trace_link(journey.trace_id, mesh.ports['traceviewer'])}"
          "  (viewer stops with the demo)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """`run` (default) or `token`."""
    parser = argparse.ArgumentParser(prog="python -m services.devrun", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    demo_command = commands.add_parser("demo", help="one checkout through the mesh, then stop")
    demo_command.add_argument(
        "--screenshot", type=Path, help="also save the viewer's page of the trace (Chromium)"
    )
    token = commands.add_parser("token", help="print a JWT the local services accept")
    token.add_argument("--tenant", default="acme")
    token.add_argument("--role", dest="roles", action="append", default=None)
    token.add_argument("--subject", default="developer")
    token.add_argument("--ttl", type=int, default=3600)
    args = parser.parse_args(argv)
    if args.command == "token":
        print(dev_token(args.tenant, args.roles or ["tenant_admin"], args.subject, args.ttl))
        return 0
    if args.command == "demo":
        return asyncio.run(demo(args.screenshot))
    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
