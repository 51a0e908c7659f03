"""Which calls may be repeated is read from the request descriptor; keys are minted once."""

import pytest
from google.protobuf import empty_pb2

from clients import CallKind, classify
from clients.idempotency import _is_read, method_names, with_request_id


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("CreateWidgetRequest", CallKind.KEYED_WRITE),
        ("GetWidgetRequest", CallKind.READ),
        ("DeleteWidgetRequest", CallKind.UNSAFE),
        ("ListGadgetsRequest", CallKind.READ),
        ("Listener", CallKind.UNSAFE),
    ],
)
def test_call_kind_follows_request_id_field_then_read_method_name(messages, name, kind):
    assert classify(getattr(messages, name)()) is kind


def test_message_without_a_method_or_request_naming_is_unsafe():
    assert classify(empty_pb2.Empty()) is CallKind.UNSAFE


def test_method_name_comes_from_the_service_in_the_request_file(messages):
    assert method_names(messages.GetWidgetRequest) == ("GetWidget",)


def test_method_name_falls_back_to_aip_request_naming(messages):
    assert method_names(messages.ListGadgetsRequest) == ("ListGadgets",)


def test_read_verbs_need_a_word_boundary():
    assert _is_read("GetWidget")
    assert _is_read("VerifyChain")
    assert not _is_read("Getaway")
    assert not _is_read("Listen")


def test_empty_request_id_is_minted_on_a_copy(messages):
    request = messages.CreateWidgetRequest(name="w")

    sent, key = with_request_id(request, lambda: "minted")

    assert key == sent.request_id == "minted"
    assert sent.name == "w"
    assert request.request_id == ""


def test_existing_request_id_is_kept_and_the_request_sent_as_is(messages):
    request = messages.CreateWidgetRequest(request_id="given")

    sent, key = with_request_id(request, lambda: pytest.fail("must not mint"))

    assert sent is request
    assert key == "given"


def test_request_without_the_field_passes_through_without_a_key(messages):
    request = messages.GetWidgetRequest(name="w")

    assert with_request_id(request, lambda: "minted") == (request, None)
