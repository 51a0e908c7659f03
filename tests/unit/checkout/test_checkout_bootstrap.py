"""The bearer token checkout shows payments: a self-signed one is reused for a while, not
signed per call; a mounted token file is read again often enough to follow its rotation."""

from __future__ import annotations

import time

import jwt
from pydantic import SecretStr

from services.chassis.config import AuthSettings
from services.checkout import bootstrap
from services.checkout.config import CheckoutSettings

SECRET = "checkout-unit-test-hmac-secret-0123456789abcdef"


class Clock:
    """Two minutes ago, moved on by hand (the tokens it signs are valid now)."""

    def __init__(self) -> None:
        self.now = float(int(time.time()) - 120)

    def __call__(self) -> float:
        return self.now


def test_a_self_signed_token_is_reused_then_signed_again(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(time, "time", clock)
    settings = CheckoutSettings(auth=AuthSettings(key=SecretStr(SECRET), algorithms=["HS256"]))
    provide = bootstrap.payments_token_provider(settings)
    first = provide()
    claims = jwt.decode(first, SECRET, algorithms=["HS256"], audience=settings.auth.audience)
    assert claims["roles"] == [bootstrap.SERVICE_ROLE]
    assert claims["exp"] - claims["iat"] == bootstrap.TOKEN_LIFETIME_SECONDS
    clock.now += bootstrap.TOKEN_REUSE_SECONDS - 1
    assert provide() == first
    clock.now += 1
    second = provide()
    assert second != first
    assert jwt.decode(second, SECRET, algorithms=["HS256"], audience=settings.auth.audience)[
        "iat"
    ] == int(clock.now)


def test_a_token_file_is_read_again_after_a_few_seconds(monkeypatch, tmp_path):
    clock = Clock()
    monkeypatch.setattr(time, "monotonic", clock)
    path = tmp_path / "token"
    path.write_text("first\n")
    settings = CheckoutSettings(
        auth=AuthSettings(key=SecretStr(SECRET), algorithms=["HS256"]), payments_token_file=path
    )
    provide = bootstrap.payments_token_provider(settings)
    assert provide() == "first"
    path.write_text("rotated\n")
    assert provide() == "first"
    clock.now += bootstrap.TOKEN_FILE_REREAD_SECONDS
    assert provide() == "rotated"
