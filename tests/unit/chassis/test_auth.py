import time

import jwt
import pytest

from services.chassis.auth import Principal, RbacPolicy, TokenVerifier
from services.chassis.errors import Unauthenticated

SECRET = "unit-test-secret-with-enough-bytes-for-hs256"


def _verifier() -> TokenVerifier:
    return TokenVerifier(key=SECRET, algorithms=["HS256"], issuer="iss", audience="aud")


def _token(**overrides):
    now = int(time.time())
    claims = {
        "sub": "user-1",
        "tenant": "acme",
        "roles": ["storefront"],
        "iss": "iss",
        "aud": "aud",
        "iat": now,
        "exp": now + 60,
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def test_a_valid_token_yields_subject_tenant_and_roles():
    principal = _verifier().verify(_token())
    assert principal == Principal("user-1", "acme", frozenset({"storefront"}))
    assert not principal.is_service


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"exp": int(time.time()) - 3600}, "TOKEN_EXPIRED"),
        ({"aud": "someone-else"}, "TOKEN_INVALID"),
        ({"iss": "evil"}, "TOKEN_INVALID"),
        ({"tenant": None}, "TOKEN_INVALID"),
        ({"tenant": "Not A Tenant"}, "TOKEN_INVALID"),
        ({"roles": "admin"}, "TOKEN_INVALID"),
        ({"sub": None}, "TOKEN_INVALID"),
    ],
)
def test_bad_tokens_are_unauthenticated_with_a_stable_reason(overrides, reason):
    with pytest.raises(Unauthenticated) as caught:
        _verifier().verify(_token(**overrides))
    assert caught.value.reason == reason


def test_a_token_signed_with_another_key_is_rejected():
    forged = jwt.encode(
        {
            "sub": "x",
            "tenant": "acme",
            "iss": "iss",
            "aud": "aud",
            "iat": 0,
            "exp": time.time() + 60,
        },
        "another-secret-of-enough-length!!",
        algorithm="HS256",
    )
    with pytest.raises(Unauthenticated):
        _verifier().verify(forged)


def test_an_unsigned_token_is_rejected_and_none_is_never_configurable():
    unsigned = jwt.encode({"sub": "x", "tenant": "acme"}, key="", algorithm="none")
    with pytest.raises(Unauthenticated):
        _verifier().verify(unsigned)
    with pytest.raises(ValueError, match="none"):
        TokenVerifier(key=SECRET, algorithms=["none"], issuer="i", audience="a")


def test_a_service_identity_needs_no_tenant():
    principal = _verifier().verify(_token(tenant=None, roles=["service:checkout"]))
    assert principal.is_service
    assert principal.tenant is None


def test_rbac_matches_exact_family_verb_and_wildcard_patterns():
    policy = RbacPolicy.from_mapping(
        {"a": ["ledger.entries.create"], "b": ["ledger.*"], "c": ["*.get"], "d": ["*"]}
    )
    assert policy.allows(["a"], "ledger.entries.create")
    assert not policy.allows(["a"], "ledger.entries.list")
    assert policy.allows(["b"], "ledger.accounts.close")
    assert not policy.allows(["b"], "ledgerx.accounts.close")
    assert policy.allows(["c"], "checkout.orders.get")
    assert not policy.allows(["c"], "checkout.orders.list")
    assert policy.allows(["d"], "anything.at.all")
    assert not policy.allows(["unknown-role"], "ledger.entries.create")


class _CountingDecode:
    """jwt.decode, counting the full verifications."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self._decode = jwt.decode
        monkeypatch.setattr(jwt, "decode", self)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self._decode(*args, **kwargs)


def test_a_verified_token_is_not_verified_again_until_it_expires(monkeypatch):
    decode = _CountingDecode(monkeypatch)
    now = [time.time()]
    verifier = TokenVerifier(
        key=SECRET, algorithms=["HS256"], issuer="iss", audience="aud", clock=lambda: now[0]
    )
    token = _token(exp=int(now[0]) + 60)
    first = verifier.verify(token)
    assert verifier.verify(token) == first
    assert decode.calls == 1
    now[0] += 60 + 30  # exp + leeway: PyJWT would refuse it from here on
    verifier.verify(token)  # (PyJWT's own clock has not moved: it verifies again, and passes)
    assert decode.calls == 2


def test_an_expired_token_is_refused_even_after_it_was_accepted():
    verifier = TokenVerifier(
        key=SECRET, algorithms=["HS256"], issuer="iss", audience="aud", leeway_seconds=0
    )
    expires = int(time.time()) + 1
    token = _token(exp=expires)
    verifier.verify(token)
    time.sleep(max(0.0, expires - time.time()) + 0.05)
    with pytest.raises(Unauthenticated) as caught:
        verifier.verify(token)
    assert caught.value.reason == "TOKEN_EXPIRED"


def test_failures_are_never_cached_and_a_tampered_token_is_verified_afresh(monkeypatch):
    decode = _CountingDecode(monkeypatch)
    verifier = _verifier()
    token = _token()
    verifier.verify(token)
    header, payload, signature = token.split(".")
    tail = "BB" if signature.endswith("AA") else "AA"
    tampered = f"{header}.{payload}.{signature[:-2]}{tail}"
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            verifier.verify(tampered)
    assert decode.calls == 3


def test_the_cache_is_bounded_and_forgets_the_oldest_token(monkeypatch):
    decode = _CountingDecode(monkeypatch)
    verifier = TokenVerifier(
        key=SECRET, algorithms=["HS256"], issuer="iss", audience="aud", cache_size=2
    )
    tokens = [_token(sub=f"user-{i}") for i in range(3)]
    for token in tokens:
        verifier.verify(token)
    verifier.verify(tokens[2])
    assert decode.calls == 3
    verifier.verify(tokens[0])  # evicted by the third
    assert decode.calls == 4
