"""One writer per topic (README "Security"): each service publishes only on topics it alone writes, what comes from
outside arrives on intake topics, and the ACLs give each principal exactly the topics its role needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from backflush_shared.contracts.registry import ALL_EVENTS, events_on
from backflush_shared.contracts.topics import Topic, TopicNames, Writer, topics_written_by
from backflush_shared.messaging.acls import SERVICE_READS, Operation, ResourceType, Role, acls_for
from backflush_shared.service import build_app, load_services

SERVICES = ("manufacturer", "distributor", "warehouse")


def handled_topics(name: str) -> set[Topic]:
    definition = load_services()[name]
    settings = definition.settings_class(service=name, bootstrap_servers="kafka:19092",
                                         database_url="sqlite+aiosqlite:///:memory:")
    _app, runtime = build_app(definition, settings)
    assert runtime.processor is not None
    return {model.topic for model in runtime.processor.handlers}


def test_every_topic_carries_events_and_has_one_writer() -> None:
    for topic in Topic:
        assert events_on(topic), topic
        assert isinstance(topic.writer, Writer)
    assert {topic.writer for topic in Topic} == set(Writer)


@pytest.mark.parametrize("name", SERVICES)
def test_a_service_publishes_only_on_the_topics_it_writes(name: str) -> None:
    published = {model.topic for model in load_services()[name].publishes}
    assert published == set(topics_written_by(Writer(name)))


def test_what_comes_from_outside_arrives_on_the_intake_topics() -> None:
    outside = {model.__name__: model.topic for model in ALL_EVENTS
               if model.topic.writer in (Writer.ORDER_HOLDER, Writer.SHOP_FLOOR, Writer.PLANNER)}
    assert outside["OrderPlaced"] is Topic.ORDERS_INTAKE
    assert outside["DeliverySigned"] is Topic.ORDERS_INTAKE
    assert outside["CompletionReported"] is Topic.COMPLETIONS_SHOP_FLOOR
    assert outside["QualityInspectionReported"] is Topic.COMPLETIONS_SHOP_FLOOR
    assert outside["ComponentsReceived"] is Topic.MASTER_DATA
    services = {model.__name__ for name in SERVICES for model in load_services()[name].publishes}
    assert not services & set(outside)


@pytest.mark.parametrize("name", SERVICES)
def test_the_acls_let_a_service_read_exactly_what_it_consumes(name: str) -> None:
    role = Role(name)
    assert set(SERVICE_READS[role]) == handled_topics(name)
    names = TopicNames("p.")
    acls = acls_for(name, role, topic_prefix="p.")
    read = {acl.name for acl in acls if acl.operation is Operation.READ and acl.resource_type is ResourceType.TOPIC}
    assert read == {names(topic) for topic in SERVICE_READS[role]}
    dead_letters = {acl.name for acl in acls if acl.operation is Operation.WRITE and acl.name.endswith(".dlq")}
    assert dead_letters == {names.dead_letter(topic) for topic in SERVICE_READS[role]}
    groups = [acl for acl in acls if acl.resource_type is ResourceType.GROUP]
    assert [(g.name, g.operation) for g in groups] == [(f"p.{name}.", Operation.READ)]


def test_each_role_may_write_its_own_topics_only() -> None:
    def writes(role: Role) -> set[str]:
        return {acl.name for acl in acls_for("x", role) if acl.operation is Operation.WRITE
                and not acl.name.endswith(".dlq")}

    assert {role.value: writes(role) for role in Role} == {
        "manufacturer": {"completions", "inventory-details"},
        "distributor": {"orders", "completions.distributor", "inventory-details.distributor"},
        "warehouse": {"completions.warehouse", "inventory-details.warehouse"},
        "order-holder": {"orders.intake"},
        "shop-floor": {"completions.shop-floor"},
        "planner": {"master-data"},
        "reader": set(),
    }


def test_the_compose_file_creates_every_topic_of_the_registry() -> None:
    compose = (Path(__file__).resolve().parents[3] / "docker-compose.yml").read_text()
    [line] = [line for line in compose.splitlines() if line.strip().startswith("for topic in ")]
    listed = line.strip().removeprefix("for topic in ").removesuffix("; do").split()
    assert listed == [topic.value for topic in Topic]


def test_the_reader_may_describe_every_consumer_group_with_or_without_a_prefix() -> None:
    for prefix, expected in (("p.", ("p.", "PREFIXED")), ("", ("*", "LITERAL"))):
        [group] = [acl for acl in acls_for("cli", Role.READER, topic_prefix=prefix)
                   if acl.resource_type is ResourceType.GROUP]
        assert (group.name, group.pattern.name, group.operation) == (*expected, Operation.DESCRIBE)
