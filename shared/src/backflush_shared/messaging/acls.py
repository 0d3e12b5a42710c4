"""Who may do what on the broker: each principal's Kafka ACLs, derived from the topic registry, and granting them.

Every topic has one writer (contracts/topics.py); a service reads the topics of the events it applies, writes the
dead-letter twins of what it reads, and commits offsets in consumer groups `<group id>.<topic>` (service.py). The
tables here say that once; `grant()` puts them on a broker whose authorizer denies what no ACL allows, and a test
checks them against what each service really subscribes to and publishes.

aiokafka has no public call for ACLs, so `grant()` sends Kafka's own CreateAcls request through its admin client
(the same request `kafka-acls.sh --add` sends).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum

from backflush_shared.contracts.topics import Topic, TopicNames, Writer, topics_written_by
from backflush_shared.errors import ConfigurationError


class Role(StrEnum):
    """What a principal is to the system: one of the topic writers, or a reader (the command line, the audit)."""

    MANUFACTURER = Writer.MANUFACTURER.value
    DISTRIBUTOR = Writer.DISTRIBUTOR.value
    WAREHOUSE = Writer.WAREHOUSE.value
    ORDER_HOLDER = Writer.ORDER_HOLDER.value
    SHOP_FLOOR = Writer.SHOP_FLOOR.value
    PLANNER = Writer.PLANNER.value
    READER = "reader"  # reads every topic, its dead letters and the consumer groups' offsets; writes nothing


#: The topics each service consumes (the topics of the events its handlers apply; tests/unit checks this).
SERVICE_READS: Mapping[Role, tuple[Topic, ...]] = {
    Role.MANUFACTURER: (Topic.MASTER_DATA, Topic.ORDERS, Topic.COMPLETIONS_SHOP_FLOOR, Topic.COMPLETIONS_WAREHOUSE),
    Role.DISTRIBUTOR: tuple(topic for topic in Topic if topic is not Topic.MASTER_DATA),
    Role.WAREHOUSE: (Topic.ORDERS, Topic.ORDERS_INTAKE, Topic.INVENTORY_DETAILS, Topic.INVENTORY_DETAILS_DISTRIBUTOR,
                     Topic.COMPLETIONS),
}


class ResourceType(IntEnum):  # org.apache.kafka.common.resource.ResourceType
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4


class PatternType(IntEnum):  # org.apache.kafka.common.resource.PatternType
    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):  # org.apache.kafka.common.acl.AclOperation
    READ = 3
    WRITE = 4
    DESCRIBE = 8
    IDEMPOTENT_WRITE = 12


ALLOW = 3  # AclPermissionType.ALLOW


@dataclass(frozen=True, order=True)
class Acl:
    """One ALLOW entry: `principal` may do `operation` on the resource, from any host."""

    principal: str
    resource_type: ResourceType
    name: str
    pattern: PatternType
    operation: Operation

    def __str__(self) -> str:
        pattern = "" if self.pattern is PatternType.LITERAL else "*"
        return f"{self.principal} {self.operation.name} {self.resource_type.name} {self.name}{pattern}"


@dataclass(frozen=True)
class Access:
    """What one role may do, in topics (logical) and consumer groups."""

    writes: tuple[Topic, ...]  # topics it publishes
    reads: tuple[Topic, ...]  # topics it consumes
    dead_letters: tuple[Topic, ...]  # topics whose dead-letter twin it writes
    read_dead_letters: bool = False
    describe_groups: bool = False


def access_of(role: Role) -> Access:
    if role is Role.READER:
        return Access(writes=(), reads=tuple(Topic), dead_letters=(), read_dead_letters=True, describe_groups=True)
    writes = topics_written_by(Writer(role.value))
    reads = SERVICE_READS.get(role, ())
    return Access(writes=writes, reads=reads, dead_letters=reads)


def acls_for(principal: str, role: Role, *, topic_prefix: str = "", group_id: str | None = None) -> list[Acl]:
    """The ACLs of one principal (`User:<principal>`) in one deployment (`topic_prefix`). A service's consumer
    groups are `<group_id>.<topic>`; `group_id` defaults to the prefix + the service's name, as in its settings."""
    user = f"User:{principal}"
    names = TopicNames(topic_prefix)
    access = access_of(role)
    acls: list[Acl] = []

    def topic(name: str, operation: Operation) -> None:
        acls.append(Acl(user, ResourceType.TOPIC, name, PatternType.LITERAL, operation))

    for written in access.writes:
        topic(names(written), Operation.WRITE)
    for read in access.reads:
        topic(names(read), Operation.READ)
    for failed in access.dead_letters:
        topic(names.dead_letter(failed), Operation.WRITE)
    if access.read_dead_letters:
        for any_topic in Topic:
            topic(names.dead_letter(any_topic), Operation.READ)
    if role in SERVICE_READS:
        # a service checks at start that every topic of the system exists (service.py `prepare`): metadata only
        for name in names.all():
            topic(name, Operation.DESCRIBE)
        group = f"{group_id if group_id is not None else topic_prefix + role.value}."
        acls.append(Acl(user, ResourceType.GROUP, group, PatternType.PREFIXED, Operation.READ))
    if access.describe_groups:
        # the audit compares each service's committed offsets with what its database recorded
        # (every group of the deployment: its prefix, or all groups where there is none; Kafka wants a name)
        acls.append(Acl(user, ResourceType.GROUP, topic_prefix, PatternType.PREFIXED, Operation.DESCRIBE)
                    if topic_prefix else Acl(user, ResourceType.GROUP, "*", PatternType.LITERAL, Operation.DESCRIBE))
    if access.writes or access.dead_letters:
        # producers are idempotent (the services' outbox relays and FastStream publishers)
        acls.append(Acl(user, ResourceType.CLUSTER, "kafka-cluster", PatternType.LITERAL, Operation.IDEMPOTENT_WRITE))
    return sorted(set(acls))


def acls_for_all(principals: Mapping[str, Role], *, topic_prefix: str = "") -> list[Acl]:
    return sorted({acl for name, role in principals.items() for acl in acls_for(name, role, topic_prefix=topic_prefix)})


async def grant(bootstrap_servers: str, acls: Iterable[Acl], *, security: object) -> int:
    """Create `acls` on the broker as `security`'s principal (a super user); return how many were sent.

    Creating an ACL that exists already is no error (Kafka keeps one), so granting twice is harmless."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import for_code
    from aiokafka.protocol.admin import CreateAclsRequest

    from backflush_shared.messaging.security import KafkaSecurity, resolve

    assert security is None or isinstance(security, KafkaSecurity)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=15_000,
                                **resolve(security).kafka_options())
    await admin.start()
    sent = 0
    try:
        for acl in acls:
            request = CreateAclsRequest(int(acl.resource_type), acl.name, int(acl.pattern), acl.principal, "*",
                                        int(acl.operation), ALLOW)
            response = await admin._send_request(request)  # noqa: SLF001 - no public ACL call in aiokafka
            for error_code, message in response.creation_responses:
                if error_code:
                    raise ConfigurationError(f"the broker refused the ACL `{acl}`: {for_code(error_code).__name__} "
                                             f"{message or ''}".strip())
            sent += 1
    finally:
        await admin.close()
    return sent
