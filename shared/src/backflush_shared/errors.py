"""The root of every error the backflush system raises on purpose.

One type per failure a user must tell apart; the data that explains the failure travels as attributes so that
handlers can turn it into an outcome event (a rejection with a reason) or a dead letter without parsing text.
"""

from __future__ import annotations


class BackflushError(Exception):
    """Anything refused by the backflush system for a reason a user can act on."""


class ConfigurationError(BackflushError):
    """A setting is missing or wrong; the service cannot start with it."""


class ContractError(BackflushError):
    """A message does not follow the published contract (unreadable, invalid, unknown type or version)."""


class KafkaAuthenticationError(ConfigurationError):
    """The broker refused this client's SASL credentials (wrong user or password, or a mechanism it does not offer)."""


class KafkaTlsError(ConfigurationError):
    """The TLS handshake with the broker failed: its certificate is not trusted (BACKFLUSH_SSL_CAFILE) or does not
    name the address connected to, or the broker wants a client certificate that was not given."""
