"""The consumer's order guard: a subject's later messages wait while an earlier one is retried."""

from services.chassis.events.backoff import Backoff
from services.chassis.events.consumer import _OrderGuard


def test_other_messages_of_a_held_subject_are_blocked_until_the_held_one_succeeds():
    guard = _OrderGuard()
    guard.hold("tenants/a/o/1", "m1", Backoff(minimum_s=1, maximum_s=10))

    assert guard.blocks("tenants/a/o/1", "m2")
    assert not guard.blocks("tenants/a/o/1", "m1")
    assert not guard.blocks("tenants/a/o/2", "m3")
    guard.clear("tenants/a/o/1")
    assert not guard.blocks("tenants/a/o/1", "m2")


def test_a_hold_expires_when_the_redelivery_went_elsewhere():
    guard = _OrderGuard()
    guard.hold("tenants/a/o/1", "m1", Backoff(minimum_s=0, maximum_s=0))

    assert not guard.blocks("tenants/a/o/1", "m2")
