"""BACKFLUSH_SECURITY_* settings become the same client options everywhere, and the password never shows."""

from __future__ import annotations

from pathlib import Path

import pytest
from faststream.security import BaseSecurity, SASLScram512
from pydantic import ValidationError

from backflush_shared.audit import security_posture
from backflush_shared.errors import ConfigurationError
from backflush_shared.messaging.security import KafkaSecurity, kafka_options, security_from_environment
from backflush_shared.settings import ServiceSettings

PASSWORD = "s3cret-scram-pw"


def test_plaintext_gives_no_options_so_clients_are_built_as_before() -> None:
    assert KafkaSecurity(security_protocol="PLAINTEXT").kafka_options() == {}


def test_sasl_plaintext_gives_scram_sha_512_credentials_without_tls() -> None:
    options = KafkaSecurity(security_protocol="SASL_PLAINTEXT", sasl_username="alice",
                            sasl_password=PASSWORD).kafka_options()
    assert options == {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
                       "sasl_plain_username": "alice", "sasl_plain_password": PASSWORD}


def test_sasl_without_a_password_is_refused() -> None:
    with pytest.raises(ValidationError, match="needs BACKFLUSH_SASL_USERNAME and BACKFLUSH_SASL_PASSWORD"):
        KafkaSecurity(security_protocol="SASL_SSL", sasl_username="alice")


def test_the_environment_is_read_and_a_bad_value_is_one_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKFLUSH_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("BACKFLUSH_SASL_USERNAME", "cli")
    monkeypatch.setenv("BACKFLUSH_SASL_PASSWORD", PASSWORD)
    assert kafka_options()["sasl_plain_username"] == "cli"
    monkeypatch.setenv("BACKFLUSH_SECURITY_PROTOCOL", "TLS")
    with pytest.raises(ConfigurationError, match="security_protocol") as error:
        security_from_environment()
    assert PASSWORD not in str(error.value)


def test_a_missing_ca_file_is_named(tmp_path: Path) -> None:
    security = KafkaSecurity(security_protocol="SSL", ssl_cafile=tmp_path / "nowhere.pem")
    with pytest.raises(ConfigurationError, match="BACKFLUSH_SSL_CAFILE=.*nowhere.pem is not a readable file"):
        security.kafka_options()


def test_a_client_certificate_needs_its_key() -> None:
    with pytest.raises(ValidationError, match="go together"):
        KafkaSecurity(security_protocol="SSL", ssl_certfile=Path("client.pem"))


def test_the_password_is_not_in_the_settings_repr_dump_or_description() -> None:
    settings = ServiceSettings(service="distributor", security_protocol="SASL_SSL", sasl_username="distributor",
                               sasl_password=PASSWORD)
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings.model_dump())
    assert PASSWORD not in settings.describe()


def test_the_service_broker_gets_the_same_settings_as_faststream_security() -> None:
    scram = ServiceSettings(service="warehouse", security_protocol="SASL_SSL", sasl_username="warehouse",
                            sasl_password=PASSWORD).faststream_security()
    assert isinstance(scram, SASLScram512) and scram.use_ssl and scram.ssl_context is not None
    assert (scram.username, scram.password) == ("warehouse", PASSWORD)
    tls_only = KafkaSecurity(security_protocol="SSL").faststream_security()
    assert type(tls_only) is BaseSecurity and tls_only.use_ssl
    assert KafkaSecurity(security_protocol="PLAINTEXT").faststream_security() is None


def test_the_posture_warns_about_plaintext_and_unencrypted_sasl_without_failing() -> None:
    plain = security_posture(KafkaSecurity(security_protocol="PLAINTEXT"))
    clear_sasl = security_posture(KafkaSecurity(security_protocol="SASL_PLAINTEXT", sasl_username="a",
                                                sasl_password=PASSWORD))
    secure = security_posture(KafkaSecurity(security_protocol="SASL_SSL", sasl_username="a", sasl_password=PASSWORD))
    assert plain.ok and plain.warning and "PLAINTEXT" in plain.detail
    assert clear_sasl.ok and clear_sasl.warning and "not encrypted" in clear_sasl.detail
    assert secure.ok and not secure.warning
