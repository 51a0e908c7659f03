"""Channels: transport defaults, and (m)TLS credentials read from files, proven on a real server."""

import datetime as dt
import ipaddress

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from clients import ClientSettings, RetryPolicy, RpcClient, TlsFiles, Unavailable, create_channel
from clients.channel import channel_options


def test_default_options_set_keepalive_message_limits_and_round_robin():
    options = dict(channel_options())

    assert options["grpc.keepalive_time_ms"] == 30_000
    assert options["grpc.max_receive_message_length"] == 16 * 1024 * 1024
    assert "round_robin" in str(options["grpc.service_config"])


def test_overrides_win_and_tls_server_name_is_applied():
    options = dict(
        channel_options(TlsFiles(server_name="ledger.internal"), {"grpc.keepalive_time_ms": 1})
    )

    assert options["grpc.keepalive_time_ms"] == 1
    assert options["grpc.ssl_target_name_override"] == "ledger.internal"


def test_client_certificate_without_its_key_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="client_cert and client_key"):
        TlsFiles(client_cert=tmp_path / "client.pem")


def test_missing_certificate_file_fails_when_the_channel_is_created(tmp_path):
    with pytest.raises(FileNotFoundError):
        create_channel("localhost:1", tls=TlsFiles(ca_cert=tmp_path / "absent.pem"))


async def test_plaintext_channel_reaches_the_server(widget_server, server, messages):
    channel = create_channel(f"127.0.0.1:{widget_server.port}")
    try:
        get = channel.unary_unary(
            "/clientstest.v1.WidgetService/GetWidget",
            request_serializer=messages.GetWidgetRequest.SerializeToString,
            response_deserializer=messages.Widget.FromString,
        )
        widget = await RpcClient().call(get, messages.GetWidgetRequest(name="w"))
    finally:
        await channel.close(None)

    assert widget.name == "w"


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _cert(subject, key, issuer, issuer_key, *, ca=False, server=False):
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(obj):
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    ca_key, server_key, client_key = _key(), _key(), _key()
    ca = _cert("mesh-ca", ca_key, "mesh-ca", ca_key, ca=True)
    files = {
        "ca.pem": _pem(ca),
        "server.pem": _pem(_cert("ledger", server_key, "mesh-ca", ca_key, server=True)),
        "server.key": _pem(server_key),
        "client.pem": _pem(_cert("checkout", client_key, "mesh-ca", ca_key)),
        "client.key": _pem(client_key),
    }
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return folder


@pytest.fixture
async def mtls_port(widget_server, pki):
    tls_server = grpc.aio.server()
    tls_server.add_generic_rpc_handlers((widget_server.handler(),))
    credentials = grpc.ssl_server_credentials(
        [((pki / "server.key").read_bytes(), (pki / "server.pem").read_bytes())],
        root_certificates=(pki / "ca.pem").read_bytes(),
        require_client_auth=True,
    )
    port = tls_server.add_secure_port("127.0.0.1:0", credentials)
    await tls_server.start()
    yield port
    await tls_server.stop(None)


async def _get_widget(port, tls, messages):
    channel = create_channel(f"127.0.0.1:{port}", tls=tls)
    try:
        get = channel.unary_unary(
            "/clientstest.v1.WidgetService/GetWidget",
            request_serializer=messages.GetWidgetRequest.SerializeToString,
            response_deserializer=messages.Widget.FromString,
        )
        client = RpcClient(ClientSettings(default_timeout=2.0, retry=RetryPolicy.disabled()))
        return await client.call(get, messages.GetWidgetRequest(name="over-mtls"))
    finally:
        await channel.close(None)


async def test_mtls_channel_from_files_is_accepted_by_a_server_that_requires_client_certs(
    server, mtls_port, pki, messages
):
    tls = TlsFiles(
        ca_cert=pki / "ca.pem", client_cert=pki / "client.pem", client_key=pki / "client.key"
    )

    widget = await _get_widget(mtls_port, tls, messages)

    assert widget.name == "over-mtls"


async def test_tls_channel_without_a_client_certificate_is_refused_by_an_mtls_server(
    server, mtls_port, pki, messages
):
    with pytest.raises(Unavailable):
        await _get_widget(mtls_port, TlsFiles(ca_cert=pki / "ca.pem"), messages)

    assert server.seen == []
