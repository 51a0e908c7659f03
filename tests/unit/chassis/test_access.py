import pytest
from google.protobuf import descriptor_pb2, descriptor_pool

from commerce.auth.v1 import annotations_pb2
from services.chassis.access import AccessRule, Authentication, MissingAccessRuleError, access_rules
from services.chassis.config import AuthSettings, ServerSettings
from services.chassis.server import ServiceRegistration, start_server

BEARER = annotations_pb2.AUTHENTICATION_UNSPECIFIED
SIGNED = annotations_pb2.AUTHENTICATION_PSP_SIGNATURE


def _service(*methods: tuple[str, str | None, annotations_pb2.Authentication.ValueType]):
    """A service, in a private descriptor pool, whose methods carry the given rules."""
    pool = descriptor_pool.DescriptorPool()
    for module in (descriptor_pb2, annotations_pb2):
        file = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(file)
        pool.Add(file)
    file = descriptor_pb2.FileDescriptorProto(
        name="test/v1/svc.proto",
        package="test.v1",
        syntax="proto3",
        dependency=[annotations_pb2.DESCRIPTOR.name],
    )
    file.message_type.add(name="Req")
    service = file.service.add(name="TestService")
    for name, permission, authentication in methods:
        method = service.method.add(
            name=name, input_type=".test.v1.Req", output_type=".test.v1.Req"
        )
        if permission is not None:
            rule = method.options.Extensions[annotations_pb2.access]
            rule.permission = permission
            rule.authentication = authentication
    pool.Add(file)
    return pool.FindServiceByName("test.v1.TestService")


def test_rules_are_read_from_the_method_options_keyed_by_full_method_path():
    service = _service(("GetThing", "test.things.get", BEARER), ("Hook", "test.hooks.call", SIGNED))
    assert access_rules([service]) == {
        "/test.v1.TestService/GetThing": AccessRule("test.things.get", Authentication.BEARER),
        "/test.v1.TestService/Hook": AccessRule("test.hooks.call", Authentication.PSP_SIGNATURE),
    }


def test_every_method_without_a_permission_is_named_in_one_error():
    service = _service(("A", "test.a.get", BEARER), ("B", None, BEARER), ("C", "", BEARER))
    with pytest.raises(MissingAccessRuleError) as caught:
        access_rules([service])
    assert caught.value.methods == ["/test.v1.TestService/B", "/test.v1.TestService/C"]


async def test_a_server_refuses_to_start_when_a_served_rpc_lacks_a_permission():
    service = _service(("A", "test.a.get", BEARER), ("Unguarded", None, BEARER))
    settings = ServerSettings(auth=AuthSettings(key="k" * 32, algorithms=["HS256"]))
    registration = ServiceRegistration(service, object(), lambda servicer, server: None)
    with pytest.raises(MissingAccessRuleError, match=r"/test\.v1\.TestService/Unguarded"):
        await start_server(settings, [registration], error_domain="test")
