"""`make demo` keeps a plaintext broker on loopback, and says so before anything else (issue 16)."""

from __future__ import annotations

from backflush_shared.demo import first_line
from backflush_shared.messaging.security import KafkaSecurity

PLAINTEXT = KafkaSecurity(security_protocol="PLAINTEXT")


def test_the_demo_with_its_own_broker_says_first_that_it_is_plaintext_on_loopback() -> None:
    line = first_line(None, PLAINTEXT)
    assert "PLAINTEXT (no authentication, no encryption, no ACLs) on 127.0.0.1 only" in line
    assert "`make up`" in line


def test_the_demo_on_a_given_broker_names_the_security_it_connects_with() -> None:
    assert "localhost:9092 with PLAINTEXT (no authentication, no encryption)" in first_line("localhost:9092", PLAINTEXT)
    secure = KafkaSecurity(security_protocol="SASL_SSL", sasl_username="holder", sasl_password="secret-1")
    line = first_line("localhost:9092", secure)
    assert "SASL_SSL, SCRAM-SHA-512 as 'holder'" in line and "secret-1" not in line
