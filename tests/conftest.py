"""Session fixtures shared by all tests. Logic lives in tests/support/; keep this file to wiring."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from support.broker import Broker, provide_broker, secure_local_broker

from backflush_shared.local_kafka import LocalKafka

_BROKER_LINE = pytest.StashKey[str]()


@pytest.fixture(scope="session")
def kafka(request: pytest.FixtureRequest) -> Iterator[Broker]:
    """The run's Apache Kafka broker, started on first use (tests without this fixture start nothing)."""
    with provide_broker() as broker:
        config = request.config
        config.stash[_BROKER_LINE] = broker.describe()
        capture = config.pluginmanager.getplugin("capturemanager")
        reporter = config.pluginmanager.getplugin("terminalreporter")
        # Fixture setup runs under output capture: lift it so the line reaches the terminal right away.
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            if reporter is not None:
                reporter.write_line(config.stash[_BROKER_LINE])
        yield broker


@pytest.fixture(scope="module")
def secure_kafka() -> Iterator[LocalKafka]:
    """A broker with SASL_SSL and per-principal SCRAM credentials, for the security tests of one module (the
    session's `kafka` stays plaintext, so that the other tests pay nothing for it)."""
    with secure_local_broker() as broker:
        yield broker


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    # Repeated at the end of the run, where CI logs are read.
    if _BROKER_LINE in config.stash:
        terminalreporter.write_line(config.stash[_BROKER_LINE])
