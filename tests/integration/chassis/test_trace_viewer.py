"""The local trace viewer (Zipkin from Maven Central): starts, ingests spans, serves them back.

Starting the JVM takes several seconds, so the server tests run only with
COMMERCE_TRACE_VIEWER_TESTS=1 (and `scripts/install-trace-viewer.sh` run first).
"""

import os
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from services.chassis import traceviewer
from services.chassis.traceviewer import TraceViewer, TraceViewerUnavailableError
from services.localmesh import free_ports

pytestmark = pytest.mark.integration

needs_viewer = pytest.mark.skipif(
    os.environ.get("COMMERCE_TRACE_VIEWER_TESTS") != "1",
    reason="starts a JVM: set COMMERCE_TRACE_VIEWER_TESTS=1 after scripts/install-trace-viewer.sh",
)


def test_not_installed_means_no_command_and_a_clear_error(tmp_path):
    missing = tmp_path / "zipkin.jar"
    assert traceviewer.command(9411, missing) is None


async def test_start_without_the_jar_raises(tmp_path):
    viewer = TraceViewer(port=free_ports(["v"])["v"], jar=tmp_path / "absent.jar")
    with pytest.raises(TraceViewerUnavailableError, match="install-trace-viewer"):
        await viewer.start()
    assert viewer.pid is None


def test_the_install_script_pins_the_version_the_module_runs():
    script = (traceviewer.ROOT / "scripts/install-trace-viewer.sh").read_text()
    assert f"ZIPKIN_VERSION=${{ZIPKIN_VERSION:-{traceviewer.ZIPKIN_VERSION}}}" in script
    assert traceviewer.ZIPKIN_JAR.name == f"zipkin-server-{traceviewer.ZIPKIN_VERSION}-exec.jar"


def test_links_and_endpoints():
    assert traceviewer.trace_link(0xABC, 9999) == (
        "http://127.0.0.1:9999/zipkin/traces/00000000000000000000000000000abc"
    )
    assert traceviewer.spans_endpoint(9999) == "http://127.0.0.1:9999/api/v2/spans"


@pytest.fixture(scope="module")
async def viewer(tmp_path_factory):
    if not traceviewer.ZIPKIN_JAR.is_file():
        pytest.fail(f"{traceviewer.ZIPKIN_JAR} missing: run scripts/install-trace-viewer.sh")
    port = free_ports(["viewer"])["viewer"]
    log = tmp_path_factory.mktemp("zipkin") / "zipkin.log"
    async with TraceViewer(port=port, log_path=log) as running:
        yield running


@needs_viewer
async def test_an_exported_trace_reads_back_with_its_parentage(viewer):
    assert await traceviewer.is_healthy(viewer.port)
    provider = TracerProvider(
        resource=Resource.create({"service.name": "checkout", "service.version": "test"})
    )
    provider.add_span_processor(SimpleSpanProcessor(ZipkinExporter(endpoint=viewer.spans_endpoint)))
    tracer = provider.get_tracer("test")
    with (
        tracer.start_as_current_span(
            "commerce.checkout.v1.CheckoutService/PlaceOrder", kind=SpanKind.SERVER
        ) as rpc,
        tracer.start_as_current_span(
            "INSERT orders",
            kind=SpanKind.CLIENT,
            attributes={"db.system.name": "postgresql", "db.operation.name": "INSERT"},
        ) as sql,
    ):
        pass
    provider.shutdown()

    trace_id = rpc.get_span_context().trace_id
    spans = await traceviewer.wait_for_trace(trace_id, min_spans=2, port=viewer.port)
    by_id = {span["id"]: span for span in spans}
    server = by_id[format(rpc.get_span_context().span_id, "016x")]
    client = by_id[format(sql.get_span_context().span_id, "016x")]
    assert server["name"] == "commerce.checkout.v1.checkoutservice/placeorder"  # Zipkin lowers
    assert server["kind"] == "SERVER"
    assert server["localEndpoint"]["serviceName"] == "checkout"
    assert "parentId" not in server
    assert client["parentId"] == server["id"]
    assert client["kind"] == "CLIENT"
    assert client["tags"]["db.system.name"] == "postgresql"
    assert {s["traceId"] for s in spans} == {format(trace_id, "032x")}

    async with httpx.AsyncClient() as http:
        services = (await http.get(f"{viewer.url}/api/v2/services")).json()
        page = await http.get(viewer.trace_link(trace_id))
    assert "checkout" in services
    assert page.status_code == 200
    assert "<html" in page.text.lower()


@needs_viewer
async def test_an_unknown_trace_is_empty(viewer):
    assert await traceviewer.fetch_trace("0" * 31 + "1", port=viewer.port) == []


PROC_NET_TCP = Path("/proc/net/tcp")


def listening_addresses(port):
    """Local addresses of the TCP sockets listening on `port` (Linux /proc/net/tcp{,6})."""
    found = set()
    for table in (PROC_NET_TCP, PROC_NET_TCP.with_name("tcp6")):
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            local, _remote, state = line.split()[1:4]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                found.add(address)
    return found


@needs_viewer
@pytest.mark.skipif(not PROC_NET_TCP.exists(), reason="needs Linux /proc/net/tcp")
async def test_listens_on_loopback_only(viewer):
    # 127.0.0.1 as /proc writes it (little-endian hex), plain or IPv4-mapped (::ffff:127.0.0.1);
    # 0.0.0.0 or :: would be every interface.
    loopback = {"0100007F", "0000000000000000FFFF00000100007F"}
    addresses = listening_addresses(viewer.port)
    assert addresses
    assert addresses <= loopback


@needs_viewer
async def test_stop_reaps_the_process_and_frees_the_port():
    port = free_ports(["v"])["v"]
    viewer = TraceViewer(port=port)
    await viewer.start()
    pid = viewer.pid
    assert pid is not None
    code = await viewer.stop()
    assert code == 143  # the JVM on SIGTERM: a clean shutdown, not a kill
    assert viewer.pid is None
    assert not await traceviewer.is_healthy(port, request_timeout=0.5)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
