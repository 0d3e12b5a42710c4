"""How every Kafka client of the system authenticates and encrypts: one set of settings, one translation.

The broker's own mechanisms, not a scheme of ours: TLS (with an optional client certificate for mutual TLS) and
SASL/SCRAM. The settings come from the environment (`BACKFLUSH_SECURITY_PROTOCOL`, `BACKFLUSH_SASL_*`,
`BACKFLUSH_SSL_*`), for the services and the command line alike; `kafka_options()` turns them into the keyword
arguments of aiokafka's producer, consumer and admin client, `faststream_security()` into FastStream's object for
its `KafkaBroker`. PLAINTEXT (the default) gives no options at all, so a client built without security is exactly
the client of before.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from aiokafka.helpers import create_ssl_context
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from backflush_shared.errors import ConfigurationError, KafkaAuthenticationError, KafkaTlsError

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]


class KafkaSecurity(BaseSettings):
    """How to authenticate to the broker and encrypt the connection. See the README's "Security" section."""

    model_config = SettingsConfigDict(env_prefix="BACKFLUSH_", extra="ignore")

    security_protocol: SecurityProtocol = Field(
        "PLAINTEXT", description="PLAINTEXT (no authentication, no encryption), SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    sasl_mechanism: SaslMechanism = Field("SCRAM-SHA-512", description="Used with SASL_PLAINTEXT and SASL_SSL.")
    sasl_username: str = Field("", description="The principal this client authenticates as (SASL).")
    # SecretStr: printed, logged or dumped it shows as '**********'; only kafka_options() reads the value.
    sasl_password: SecretStr = Field(SecretStr(""), description="The principal's password (SASL).")
    ssl_cafile: Path | None = Field(None, description="PEM file of the CA that signed the broker's certificate.")
    ssl_certfile: Path | None = Field(None, description="PEM client certificate, for mutual TLS.")
    ssl_keyfile: Path | None = Field(None, description="PEM key of the client certificate, for mutual TLS.")

    @model_validator(mode="after")
    def _complete(self) -> KafkaSecurity:
        if self.uses_sasl and not (self.sasl_username and self.sasl_password.get_secret_value()):
            raise ValueError(
                f"security_protocol {self.security_protocol} needs BACKFLUSH_SASL_USERNAME and BACKFLUSH_SASL_PASSWORD"
            )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("BACKFLUSH_SSL_CERTFILE and BACKFLUSH_SSL_KEYFILE go together (mutual TLS)")
        return self

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def describe(self) -> str:
        """One line for logs and the audit, without the password."""
        parts = [self.security_protocol]
        if self.uses_sasl:
            parts.append(f"{self.sasl_mechanism} as {self.sasl_username!r}")
        if self.uses_tls:
            parts.append(f"CA {self.ssl_cafile}" if self.ssl_cafile else "system CAs")
            if self.ssl_certfile is not None:
                parts.append("client certificate")
        return ", ".join(parts)

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context (None without TLS). Raises `ConfigurationError` when a file cannot be read."""
        if not self.uses_tls:
            return None
        for name, path in (("SSL_CAFILE", self.ssl_cafile), ("SSL_CERTFILE", self.ssl_certfile),
                           ("SSL_KEYFILE", self.ssl_keyfile)):
            if path is not None and not path.is_file():
                raise ConfigurationError(f"BACKFLUSH_{name}={path} is not a readable file")
        try:
            # Hostname checking stays on (aiokafka does not let it be turned off): the broker's certificate must
            # name the address the client connects to.
            return create_ssl_context(cafile=self.ssl_cafile, certfile=self.ssl_certfile, keyfile=self.ssl_keyfile)
        except (ssl.SSLError, OSError) as error:
            raise ConfigurationError(f"cannot load the TLS files ({self.describe()}): {error}") from None

    def kafka_options(self) -> dict[str, Any]:
        """Keyword arguments for AIOKafkaProducer, AIOKafkaConsumer and AIOKafkaAdminClient ({} for PLAINTEXT)."""
        if self.security_protocol == "PLAINTEXT":
            return {}
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.uses_tls:
            options["ssl_context"] = self.ssl_context()
        if self.uses_sasl:
            options |= {
                "sasl_mechanism": self.sasl_mechanism,
                "sasl_plain_username": self.sasl_username,
                "sasl_plain_password": self.sasl_password.get_secret_value(),
            }
        return options

    def faststream_security(self) -> BaseSecurity | None:
        """The same settings as FastStream's `security=` object for its KafkaBroker (None for PLAINTEXT)."""
        if self.security_protocol == "PLAINTEXT":
            return None
        context = self.ssl_context()
        if not self.uses_sasl:
            return BaseSecurity(ssl_context=context, use_ssl=True)
        kinds = {"SCRAM-SHA-512": SASLScram512, "SCRAM-SHA-256": SASLScram256, "PLAIN": SASLPlaintext}
        return kinds[self.sasl_mechanism](self.sasl_username, self.sasl_password.get_secret_value(),
                                          ssl_context=context, use_ssl=self.uses_tls)


def resolve(security: KafkaSecurity | None) -> KafkaSecurity:
    """The settings given, else those of the environment: a client nobody configured is configured like every
    other backflush process on the machine (the command line, the demo, the bench), never silently plaintext."""
    return security if security is not None else security_from_environment()


def kafka_options(security: KafkaSecurity | None = None) -> dict[str, Any]:
    """aiokafka keyword arguments for `security`, or for the environment's settings when None."""
    return resolve(security).kafka_options()


def security_from_environment() -> KafkaSecurity:
    """The settings of `BACKFLUSH_SECURITY_PROTOCOL` etc.; a missing or wrong one is a `ConfigurationError`."""
    from pydantic import ValidationError

    try:
        return KafkaSecurity()
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in error.errors())
        raise ConfigurationError(f"Kafka security settings: {problems}") from None


# aiokafka reports why a connection failed only in its log ("Unable connect to ...: <error>") and then raises a bare
# "Unable to bootstrap": these markers in that text tell a refusal that no retry can cure from a broker not up yet.
_AUTHENTICATION_MARKERS = ("saslauthenticationfailed", "authentication failed", "unsupportedsaslmechanism",
                           "illegalsaslstate")
_TLS_MARKERS = ("certificate_verify_failed", "certificate verify failed", "wrong_version_number",
                "tlsv1_alert", "sslv3_alert", "hostname mismatch", "doesn't match")


def refusal(seen: str, bootstrap_servers: str, security: KafkaSecurity) -> ConfigurationError | None:
    """The error to stop with when `seen` (a client's error text) says the broker refused us for good."""
    lowered = seen.lower()
    if any(marker in lowered for marker in _AUTHENTICATION_MARKERS):
        return KafkaAuthenticationError(
            f"Kafka at {bootstrap_servers} refused the credentials ({security.describe()}): check "
            "BACKFLUSH_SASL_USERNAME, BACKFLUSH_SASL_PASSWORD and BACKFLUSH_SASL_MECHANISM"
        )
    if any(marker in lowered for marker in _TLS_MARKERS):
        hint = ("is the broker's listener TLS? (BACKFLUSH_SECURITY_PROTOCOL)" if "wrong_version" in lowered
                else "is BACKFLUSH_SSL_CAFILE the CA that signed the broker's certificate?")
        return KafkaTlsError(f"TLS with Kafka at {bootstrap_servers} failed ({security.describe()}): "
                             f"{_first_line(seen)}; {hint}")
    return None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:300] if text.strip() else ""


class ClientErrors(logging.Handler):
    """Collects what aiokafka logs at WARNING and above while attached (it is the only place the cause shows)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.messages.append(record.getMessage())

    @contextlib.contextmanager
    def attached(self, logger_name: str = "aiokafka") -> Iterator[ClientErrors]:
        logger = logging.getLogger(logger_name)
        logger.addHandler(self)
        try:
            yield self
        finally:
            logger.removeHandler(self)
