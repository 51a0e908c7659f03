import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from services.chassis.config import AuthSettings, ServerSettings


class LedgerSettings(ServerSettings):
    model_config = SettingsConfigDict(env_prefix="COMMERCE_LEDGER_")


def test_settings_are_read_from_the_services_env_prefix_with_nested_auth(monkeypatch, tmp_path):
    key = tmp_path / "jwt.pub"
    key.write_text("public-key-pem\n")
    monkeypatch.setenv("COMMERCE_LEDGER_PORT", "50051")
    monkeypatch.setenv("COMMERCE_LEDGER_AUTH__KEY_FILE", str(key))
    monkeypatch.setenv("COMMERCE_LEDGER_AUTH__ALGORITHMS", '["ES256"]')
    settings = LedgerSettings()
    assert settings.port == 50051
    assert settings.auth.algorithms == ["ES256"]
    assert settings.auth.verification_key() == "public-key-pem"


def test_a_server_without_key_material_fails_fast(monkeypatch):
    monkeypatch.delenv("COMMERCE_LEDGER_AUTH__KEY", raising=False)
    with pytest.raises(ValidationError, match="auth"):
        LedgerSettings()


@pytest.mark.parametrize(
    "auth",
    [
        {},  # no key at all
        {"key": "a", "key_file": "/etc/hostname"},  # two sources: ambiguous
        {"key": "a", "algorithms": ["none"]},
        {"key": "a", "algorithms": []},
        {"key_file": "/nonexistent/jwt.pub"},
    ],
)
def test_bad_auth_settings_are_rejected(auth):
    with pytest.raises(ValidationError):
        AuthSettings(**auth)


@pytest.mark.parametrize(("name", "value"), [("PORT", "70000"), ("GRACE_PERIOD_SECONDS", "0")])
def test_out_of_range_values_fail_fast(monkeypatch, name, value):
    monkeypatch.setenv("COMMERCE_LEDGER_AUTH__KEY", "secret")
    monkeypatch.setenv(f"COMMERCE_LEDGER_{name}", value)
    with pytest.raises(ValidationError, match=name.lower()):
        LedgerSettings()


def test_unknown_settings_are_rejected_not_ignored():
    with pytest.raises(ValidationError, match="prot"):
        ServerSettings(auth=AuthSettings(key="k"), prot=1)  # type: ignore[call-arg]
