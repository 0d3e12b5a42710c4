"""On a broker with SASL_SSL: who has the credentials and the CA gets in, nobody else does, and each is told why."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import ClusterAuthorizationFailedError, TopicAuthorizationFailedError

from backflush_shared.audit import acl_posture, audit
from backflush_shared.contracts import completions as c
from backflush_shared.errors import ConfigurationError, KafkaAuthenticationError, KafkaTlsError
from backflush_shared.local_kafka import LocalKafka
from backflush_shared.messaging.admin import ensure_topics, wait_for_broker
from backflush_shared.messaging.codec import ConsumedEvent, decode
from backflush_shared.messaging.publish import EventPublisher, publish
from backflush_shared.messaging.security import KafkaSecurity
from support.broker import SECURE_USERS, Broker
from support.stack import new_prefix

pytestmark = [pytest.mark.kafka]

WRONG_PASSWORD = "not-the-password-1234"


async def test_a_client_with_its_credentials_and_the_ca_publishes_and_consumes(secure_kafka: LocalKafka) -> None:
    prefix = new_prefix()
    await secure_kafka.agrant(SECURE_USERS, topic_prefix=prefix)
    event = c.CompletionReported(order_id="SEC-1", quantity=Decimal(2))
    async with EventPublisher(secure_kafka.bootstrap_servers, topic_prefix=prefix,
                              security=secure_kafka.security_for("shop-floor")) as publisher:
        [envelope] = await publisher.publish([event])
    consumer = AIOKafkaConsumer(publisher.topics(event.topic), bootstrap_servers=secure_kafka.bootstrap_servers,
                                group_id=None, auto_offset_reset="earliest",
                                **secure_kafka.security_for("tests").kafka_options())
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
    finally:
        await consumer.stop()
    consumed = decode(record)
    assert isinstance(consumed, ConsumedEvent) and consumed.envelope.event_id == envelope.event_id


async def test_a_client_without_credentials_cannot_connect(secure_kafka: LocalKafka) -> None:
    with pytest.raises(ConfigurationError, match="cannot reach Kafka .* within 3 s, connecting with PLAINTEXT"):
        await wait_for_broker(secure_kafka.bootstrap_servers, 3, security=KafkaSecurity(security_protocol="PLAINTEXT"))


async def test_a_wrong_password_is_refused_at_once_and_not_repeated(secure_kafka: LocalKafka) -> None:
    security = secure_kafka.security_for("tests", password=WRONG_PASSWORD)
    with pytest.raises(KafkaAuthenticationError, match="refused the credentials") as refused:
        # a refusal is final: no waiting out the 30 s
        await asyncio.wait_for(wait_for_broker(secure_kafka.bootstrap_servers, 30, security=security), timeout=15)
    assert "'tests'" in str(refused.value)
    assert WRONG_PASSWORD not in str(refused.value)


async def test_a_client_without_the_ca_cannot_connect(secure_kafka: LocalKafka) -> None:
    security = secure_kafka.security_for("tests").model_copy(update={"ssl_cafile": None})
    with pytest.raises(KafkaTlsError, match="CERTIFICATE_VERIFY_FAILED.*BACKFLUSH_SSL_CAFILE"):
        await asyncio.wait_for(wait_for_broker(secure_kafka.bootstrap_servers, 30, security=security), timeout=15)


def test_a_service_with_a_wrong_password_exits_with_one_line_that_does_not_show_it(
    secure_kafka: LocalKafka, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "backflush_shared", "serve", "distributor"],
        env={**os.environ, "BACKFLUSH_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/d.db",
             "BACKFLUSH_BOOTSTRAP_SERVERS": secure_kafka.bootstrap_servers,
             "BACKFLUSH_SECURITY_PROTOCOL": "SASL_SSL", "BACKFLUSH_SASL_USERNAME": "distributor",
             "BACKFLUSH_SASL_PASSWORD": WRONG_PASSWORD, "BACKFLUSH_SSL_CAFILE": str(secure_kafka.ca_file)},
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "refused the credentials" in lines[0] and "'distributor'" in lines[0]
    assert WRONG_PASSWORD not in output


async def test_the_audit_reports_the_connection_security_it_was_given(secure_kafka: LocalKafka) -> None:
    secure = await audit({}, bootstrap_servers=secure_kafka.bootstrap_servers,
                         security=secure_kafka.security_for("tests"))
    plain = await audit({}, bootstrap_servers="127.0.0.1:1", security=KafkaSecurity(security_protocol="PLAINTEXT"))
    [secure_posture] = [f for f in secure if f.check == "broker: connection security"]
    [plain_posture] = [f for f in plain if f.check == "broker: connection security"]
    assert secure_posture.ok and not secure_posture.warning
    assert "SASL_SSL" in secure_posture.detail
    # plaintext is reported, and does not fail the audit (a development broker is plaintext on purpose)
    assert plain_posture.ok and plain_posture.warning
    assert "no authentication and no encryption" in plain_posture.detail


def test_the_command_line_reads_the_same_settings_and_names_a_refused_password(
    secure_kafka: LocalKafka, tmp_path: Path
) -> None:
    env = {**os.environ, **secure_kafka.client_env("tests")}
    listed = subprocess.run([sys.executable, "-m", "backflush_shared", "dlq", "list"], env=env, capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    refused = subprocess.run([sys.executable, "-m", "backflush_shared", "dlq", "list"],
                             env={**env, "BACKFLUSH_SASL_PASSWORD": WRONG_PASSWORD}, capture_output=True, text=True,
                             timeout=60, cwd=tmp_path)
    assert refused.returncode == 2
    assert "refused the credentials" in refused.stderr and "'tests'" in refused.stderr
    assert WRONG_PASSWORD not in refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr


async def test_a_principal_cannot_create_topics_or_write_a_topic_of_another_writer(secure_kafka: LocalKafka) -> None:
    prefix = new_prefix()
    await secure_kafka.agrant(SECURE_USERS, topic_prefix=prefix)
    with pytest.raises(TopicAuthorizationFailedError):
        await publish(secure_kafka.bootstrap_servers, [c.OrderClosed(order_id="SEC-2", closed_by="distributor")],
                      topic_prefix=prefix, security=secure_kafka.security_for("warehouse"))
    with pytest.raises(ClusterAuthorizationFailedError):
        # a reader reads; it writes nothing, not even the dead letters (not even an idempotent producer's id)
        await publish(secure_kafka.bootstrap_servers, [c.CompletionReported(order_id="SEC-2", quantity=Decimal(1))],
                      topic_prefix=prefix, security=secure_kafka.security_for("tests"))
    with pytest.raises(ConfigurationError, match="refused to create .*made-up .TopicAuthorizationFailedError"):
        await ensure_topics(secure_kafka.bootstrap_servers, [f"{prefix}made-up"], partitions=1, replication=1,
                            security=secure_kafka.security_for("holder"))



@pytest.mark.parametrize(("cafile", "says"), [
    (None, "CERTIFICATE_VERIFY_FAILED"),  # the system's CAs: they never signed the throwaway CA's certificate
    ("missing-ca.pem", "missing-ca.pem is not a readable file"),
], ids=["no CA given", "CA file missing"])
def test_a_service_without_the_ca_exits_with_one_line(
    secure_kafka: LocalKafka, tmp_path: Path, cafile: str | None, says: str
) -> None:
    env = {key: value for key, value in os.environ.items() if key != "BACKFLUSH_SSL_CAFILE"}
    env |= {"BACKFLUSH_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/d.db",
            "BACKFLUSH_BOOTSTRAP_SERVERS": secure_kafka.bootstrap_servers, "BACKFLUSH_STARTUP_TIMEOUT_SECONDS": "20",
            **{key: value for key, value in secure_kafka.client_env("distributor").items()
               if key not in ("BACKFLUSH_SSL_CAFILE", "BACKFLUSH_BOOTSTRAP_SERVERS")}}
    if cafile is not None:
        env["BACKFLUSH_SSL_CAFILE"] = str(tmp_path / cafile)
    done = subprocess.run([sys.executable, "-m", "backflush_shared", "serve", "distributor"], env=env,
                          capture_output=True, text=True, timeout=90, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert says in lines[0], lines[0]


async def test_the_audit_reports_whether_the_broker_enforces_acls(secure_kafka: LocalKafka, kafka: Broker) -> None:
    await secure_kafka.agrant(SECURE_USERS, topic_prefix=new_prefix())
    as_reader = await acl_posture(secure_kafka.bootstrap_servers, secure_kafka.security_for("tests"))
    as_super_user = await acl_posture(secure_kafka.bootstrap_servers,
                                      secure_kafka.security_for(LocalKafka.BROKER_USER))
    on_plaintext = await acl_posture(kafka.bootstrap_servers, KafkaSecurity(security_protocol="PLAINTEXT"))
    assert as_reader.ok and not as_reader.warning, as_reader
    assert "enforces ACLs (this principal may not list them)" in as_reader.detail
    assert as_super_user.ok and not as_super_user.warning and "bindings" in as_super_user.detail, as_super_user
    # a broker without an authorizer is reported, as plaintext is, and does not fail the audit
    assert on_plaintext.ok and on_plaintext.warning, on_plaintext
    assert "no authorizer" in on_plaintext.detail
