"""google.rpc.Status details sent by a real server decode into typed exceptions."""

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from clients import (
    AlreadyExists,
    ClientSettings,
    CommerceError,
    FieldViolation,
    IdempotencyKeyReused,
    InvalidArgument,
    NotFound,
    RpcClient,
)
from clients.errors import IDEMPOTENCY_KEY_REUSED, error_class_for, error_from_rpc


def packed(message):
    detail = any_pb2.Any()
    detail.Pack(message)
    return detail


def rich_status(code, message, *details):
    return status_pb2.Status(code=code, message=message, details=[packed(d) for d in details])


@pytest.fixture
def client():
    return RpcClient(ClientSettings(default_timeout=2.0))


async def test_error_info_and_field_violations_decode_into_invalid_argument(
    server, stub, messages, client
):
    server.will(
        "CreateWidget",
        rich_status(
            code_pb2.INVALID_ARGUMENT,
            "widget name is invalid",
            error_details_pb2.ErrorInfo(
                reason="WIDGET_NAME_INVALID",
                domain="widgets.commerce-mesh",
                metadata={"max_length": "63"},
            ),
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field="name",
                        description="must be at most 63 characters",
                        reason="string.max_len",
                    )
                ]
            ),
        ),
    )

    with pytest.raises(InvalidArgument) as raised:
        await client.call(stub.CreateWidget, messages.CreateWidgetRequest(name="w" * 99))

    error = raised.value
    assert isinstance(error, CommerceError)
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert error.message == "widget name is invalid"
    assert (error.reason, error.domain) == ("WIDGET_NAME_INVALID", "widgets.commerce-mesh")
    assert error.metadata == {"max_length": "63"}
    assert error.field_violations == (
        FieldViolation("name", "must be at most 63 characters", "string.max_len"),
    )
    assert error.request_id == server.attempts("CreateWidget")[0].request.request_id
    assert "WIDGET_NAME_INVALID" in str(error)
    assert "field name" in str(error)


async def test_idempotency_key_reused_decodes_into_its_own_already_exists_subclass(
    server, stub, messages, client
):
    server.will(
        "CreateWidget",
        rich_status(
            code_pb2.ALREADY_EXISTS,
            "request_id was used for a different request",
            error_details_pb2.ErrorInfo(
                reason=IDEMPOTENCY_KEY_REUSED, domain="widgets.commerce-mesh"
            ),
        ),
    )
    key = "0b9f8a7e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"

    with pytest.raises(IdempotencyKeyReused) as raised:
        await client.call(stub.CreateWidget, messages.CreateWidgetRequest(request_id=key))

    assert isinstance(raised.value, AlreadyExists)
    assert raised.value.request_id == key


async def test_already_exists_with_another_reason_is_not_idempotency_key_reused(
    server, stub, messages, client
):
    server.will(
        "CreateWidget",
        rich_status(
            code_pb2.ALREADY_EXISTS,
            "widget exists",
            error_details_pb2.ErrorInfo(reason="WIDGET_EXISTS", domain="widgets.commerce-mesh"),
        ),
    )

    with pytest.raises(AlreadyExists) as raised:
        await client.call(stub.CreateWidget, messages.CreateWidgetRequest(name="w"))

    assert not isinstance(raised.value, IdempotencyKeyReused)
    assert raised.value.reason == "WIDGET_EXISTS"


async def test_plain_status_without_details_decodes_by_code_with_empty_reason(
    server, stub, messages, client
):
    server.will("GetWidget", grpc.StatusCode.NOT_FOUND)

    with pytest.raises(NotFound) as raised:
        await client.call(stub.GetWidget, messages.GetWidgetRequest(name="w"))

    assert raised.value.message == "scripted NOT_FOUND"
    assert raised.value.reason == ""
    assert raised.value.field_violations == ()
    assert raised.value.status is None


@pytest.mark.parametrize("code", [c for c in grpc.StatusCode if c is not grpc.StatusCode.OK])
def test_every_error_status_code_has_its_own_subclass(code):
    cls = error_class_for(code)

    assert cls is not CommerceError
    assert cls.status_code is code


def test_status_details_that_contradict_the_transport_status_are_ignored():
    contradicting = rich_status(
        code_pb2.INVALID_ARGUMENT, "other", error_details_pb2.ErrorInfo(reason="OTHER")
    )
    error = grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(("grpc-status-details-bin", contradicting.SerializeToString())),
        "proxy: upstream unavailable",
        None,
    )

    decoded = error_from_rpc(error, request_id="k")

    assert decoded.code is grpc.StatusCode.UNAVAILABLE
    assert decoded.message == "proxy: upstream unavailable"
    assert decoded.reason == ""
    assert decoded.request_id == "k"
