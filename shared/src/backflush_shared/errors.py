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
