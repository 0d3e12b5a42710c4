"""`backflush audit`: reconcile every service's database with itself, from the raw rows.

Each check is a read of one service's database in one snapshot and returns `AuditFinding`s; `audit(urls)` runs them
all, so tests can call it directly. The checks recompute what they verify from raw rows, independently of the code
that wrote them:

- every service: nothing committed stays unpublished (outbox rows older than a grace period; the count and the
  oldest age are reported), every inbox row has a known outcome, every refused event has its dead letter in the
  outbox, and every event in the outbox was caused by an event the inbox holds as applied;
- manufacturer: the balances of the domain's `StockLedger` equal the sums of the raw movements, no real lot is
  negative, `NEGATIVE` lots exist only for items whose policy is `allow`, no parked flush of a cancelled (or
  otherwise finished) production order still waits, and every waiting parked flush waits for something that can
  happen (known components, an existing production order, an earlier flush of its order that still waits); a brand
  owner's consigned lots never went below zero and were consumed only by that owner's orders;
- distributor: every order is closed, rejected or cancelled, or says what it waits for and since when; no open
  order not yet stored is bigger than the storage capacity the warehouse announced; no order was cancelled once
  its final order was placed or its goods shipped;
- warehouse: consignment stock equals the units stored (as announced by its `ConsignmentStockReceived` events)
  minus the units shipped (its shipments) minus the units released; shipped units match shipments; no location
  holds more than its capacity; no put-away waits for more than all locations of its kind hold; no cancelled order
  has a shipment or shipped units.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from backflush_shared.cli_text import safe
from backflush_shared.errors import ConfigurationError
from backflush_shared.messaging.codec import RecordOrigin
from backflush_shared.messaging.dead_letter import dead_letter_id
from backflush_shared.messaging.security import KafkaSecurity, kafka_options, resolve
from backflush_shared.persistence.database import Database, is_sqlite, missing_sqlite_file
from backflush_shared.persistence.urls import masked_url

SERVICES = ("manufacturer", "distributor", "warehouse")
KNOWN_OUTCOMES = frozenset({"applied", "refused", "ignored"})
FINISHED_ORDER_STATES = frozenset({"closed", "rejected", "cancelled"})
FINISHED_PRODUCTION_STATES = frozenset({"cancelled", "rejected", "quality-failed"})
NEGATIVE_LOT = "NEGATIVE"
#: An unpublished outbox row younger than this is in flight (the relay publishes within milliseconds), not lost.
DEFAULT_OUTBOX_GRACE_SECONDS = 10.0
#: How many offending rows a finding names before it says "and N more".
SHOWN = 8

ZERO = Decimal(0)


@dataclass(frozen=True)
class AuditFinding:
    """One check of one service: `check` reads `"<service>: <what>"`; `ok` False is a breach.

    `warning` True: a weakness reported for the reader (the security posture), which never fails the audit.
    """

    check: str
    ok: bool
    detail: str
    warning: bool = False

    @property
    def service(self) -> str:
        return self.check.split(": ", 1)[0]


def default_urls() -> dict[str, str]:
    return {service: f"sqlite+aiosqlite:///var/{service}.db" for service in SERVICES}


async def audit(urls: Mapping[str, str], *, negative_stock_policy: str = "park",
                outbox_grace_seconds: float = DEFAULT_OUTBOX_GRACE_SECONDS,
                bootstrap_servers: str | None = None, security: KafkaSecurity | None = None) -> list[AuditFinding]:
    """Audit the services named in `urls` (service name -> database URL), in the order of `SERVICES`.

    `negative_stock_policy` is the manufacturer's global policy (`BACKFLUSH_NEGATIVE_STOCK_POLICY`); items may
    override it in the database. With `bootstrap_servers` the broker is read too, with `security` (None: the
    environment's settings), and the connection's security posture is reported first (`security_posture`).
    """
    findings: list[AuditFinding] = []
    if bootstrap_servers:
        security = resolve(security)
        findings.append(security_posture(security))
        findings.append(await acl_posture(bootstrap_servers, security))
    for service in [s for s in SERVICES if s in urls] + [s for s in urls if s not in SERVICES]:
        findings += await audit_service(service, urls[service], negative_stock_policy=negative_stock_policy,
                                        outbox_grace_seconds=outbox_grace_seconds,
                                        bootstrap_servers=bootstrap_servers, security=security)
    return findings


def security_posture(security: KafkaSecurity) -> AuditFinding:
    """How the audit's own connection to the broker is secured: what it can see of the deployment's posture.

    A posture, not a check: plaintext or an unencrypted SASL is reported as a warning and never fails the audit
    (a development broker is plaintext on purpose); what a broker allows others cannot be seen from here.
    """
    check = "broker: connection security"
    if security.security_protocol == "PLAINTEXT":
        return AuditFinding(check, True, "PLAINTEXT: no authentication and no encryption; any client that reaches "
                                         "the broker may publish anything (set BACKFLUSH_SECURITY_PROTOCOL=SASL_SSL)",
                            warning=True)
    if not security.uses_tls:
        return AuditFinding(check, True, f"{security.describe()}: authenticated but not encrypted; passwords and "
                                         "events cross the network in the clear", warning=True)
    if not security.uses_sasl and security.ssl_certfile is None:
        return AuditFinding(check, True, f"{security.describe()}: encrypted but not authenticated", warning=True)
    return AuditFinding(check, True, f"{security.describe()}: authenticated and encrypted")


async def acl_posture(bootstrap_servers: str, security: KafkaSecurity) -> AuditFinding:
    """Whether the broker enforces ACLs, as far as the audit's principal can see (Kafka's DescribeAcls request).

    A broker without an authorizer answers SECURITY_DISABLED; one with an authorizer but no ACL at all lets only its
    super users (or everyone, with allow.everyone.if.no.acl.found) do anything. Both are reported as warnings, as
    plaintext is. A principal that may not list the ACLs (a reader) is itself the proof that they are enforced."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.protocol.admin import DescribeAclsRequest

    check = "broker: ACLs"
    any_ = 1  # the ANY value of ResourceType, PatternType, AclOperation and AclPermissionType
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000,
                                **security.kafka_options())
    try:
        await asyncio.wait_for(admin.start(), timeout=15)
        request = DescribeAclsRequest(any_, None, any_, None, None, any_, any_)  # type: ignore[arg-type]
        response = await asyncio.wait_for(admin._send_request(request), timeout=15)  # noqa: SLF001
    except Exception as error:  # noqa: BLE001 - reported as a finding; the broker checks report the cause
        return AuditFinding(check, True, f"could not ask the broker ({type(error).__name__}: {error})", warning=True)
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
    if response.error_code == 54:  # SECURITY_DISABLED: no authorizer
        return AuditFinding(check, True, "the broker has no authorizer: every client that connects may read and "
                                         "write every topic (authorizer.class.name=StandardAuthorizer, README "
                                         "\"Security\")", warning=True)
    if response.error_code == 31:  # CLUSTER_AUTHORIZATION_FAILED: an authorizer, and we may not list its ACLs
        return AuditFinding(check, True, "the broker enforces ACLs (this principal may not list them)")
    if response.error_code:
        return AuditFinding(check, True, f"the broker did not list its ACLs (error {response.error_code}: "
                                         f"{response.error_message})", warning=True)
    count = sum(len(resource[-1]) for resource in response.resources)
    if count == 0:
        return AuditFinding(check, True, "the broker has an authorizer but no ACLs: no principal but its super users "
                                         "may do anything, or, with allow.everyone.if.no.acl.found, everyone may "
                                         "(grant them: README \"Security\")", warning=True)
    return AuditFinding(check, True, f"the broker enforces ACLs ({count} bindings)")


def breaches(findings: list[AuditFinding]) -> list[AuditFinding]:
    return [f for f in findings if not f.ok]


async def audit_service(service: str, url: str, *, negative_stock_policy: str = "park",
                        outbox_grace_seconds: float = DEFAULT_OUTBOX_GRACE_SECONDS,
                        bootstrap_servers: str | None = None,
                        security: KafkaSecurity | None = None) -> list[AuditFinding]:
    missing = _missing_database(url)
    if missing:
        return [AuditFinding(f"{service}: database", False, missing)]
    database = Database(url)
    findings: list[AuditFinding] = []
    try:
        async with database.reading() as session:
            if not is_sqlite(url):
                # one snapshot for every check (SQLite's read transaction is one already)
                await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            findings += await messaging_checks(session, service, outbox_grace_seconds)
            if bootstrap_servers:
                findings += await offsets_accounted(session, service, bootstrap_servers, security=security)
            if service == "manufacturer":
                findings += await manufacturer_checks(session, negative_stock_policy)
            elif service == "distributor":
                findings += await distributor_checks(session)
            elif service == "warehouse":
                findings += await warehouse_checks(session)
    except SQLAlchemyError as error:
        findings.append(AuditFinding(f"{service}: database", False, f"cannot read {masked_url(url)}: {masked_url(_first_line(error))}"))
    finally:
        await database.close()
    return findings


def _missing_database(url: str) -> str | None:
    """What is wrong with `url` before it is opened: unparsable, or a SQLite file that is not there."""
    try:
        make_url(url)
    except Exception as error:  # noqa: BLE001 - any unparsable URL is the same user error
        return f"bad database URL {masked_url(url)!r}: {masked_url(str(error))}"
    missing = missing_sqlite_file(url)
    return f"no database at {missing}" if missing else None


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172_800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86_400}d"


def _names(values: list[str]) -> str:
    shown = ", ".join(values[:SHOWN])
    return shown + (f" and {len(values) - SHOWN} more" if len(values) > SHOWN else "")


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not a decimal quantity: {value!r}") from None


def _figure(value: Decimal) -> str:
    return format(value.normalize(), "f") if value == value.to_integral() else format(value, "f")


# -- every service: inbox and outbox ------------------------------------------------------------------------------


async def messaging_checks(session: AsyncSession, service: str,
                           outbox_grace_seconds: float = DEFAULT_OUTBOX_GRACE_SECONDS) -> list[AuditFinding]:
    now = datetime.now(UTC)
    inbox = (await session.execute(text(
        'SELECT event_id, outcome, topic, "partition", "offset" FROM inbox'
    ))).all()
    outbox = (await session.execute(text(
        "SELECT id, event_id, event_type, headers, created_at, published_at FROM outbox ORDER BY id"
    ))).all()
    findings: list[AuditFinding] = []

    unpublished = [(row.id, _aware(row.created_at)) for row in outbox if row.published_at is None]
    grace = timedelta(seconds=outbox_grace_seconds)
    overdue = [(row_id, created) for row_id, created in unpublished if created is None or now - created > grace]
    if not unpublished:
        detail = f"{len(outbox)} rows, all published"
    else:
        oldest = min((created for _id, created in unpublished if created is not None), default=None)
        detail = (f"{len(unpublished)} of {len(outbox)} rows unpublished"
                  + (f", oldest {_age(now - oldest)} old" if oldest else "")
                  + (f"; {len(overdue)} older than {outbox_grace_seconds:g}s" if overdue else
                     f"; all younger than {outbox_grace_seconds:g}s (in flight)"))
    findings.append(AuditFinding(f"{service}: outbox fully published", not overdue, detail))

    outcomes = Counter(row.outcome for row in inbox)
    unknown = sorted(f"{row.event_id} ({row.outcome!r})" for row in inbox if row.outcome not in KNOWN_OUTCOMES)
    summary = ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items())) or "empty"
    findings.append(AuditFinding(
        f"{service}: inbox outcomes known", not unknown,
        f"{len(inbox)} events: {summary}" + (f"; unknown outcome: {_names(unknown)}" if unknown else ""),
    ))

    written = {row.event_id for row in outbox}
    refused = [row for row in inbox if row.outcome == "refused"]
    undead = sorted(
        row.event_id for row in refused
        if dead_letter_id(service, RecordOrigin(row.topic, row.partition, row.offset, None, None, ())) not in written
    )
    findings.append(AuditFinding(
        f"{service}: refused events dead-lettered", not undead,
        (f"{len(refused)} refused, each with its dead letter" if refused else "no refused events") if not undead
        else f"{len(undead)} of {len(refused)} refused events have no dead letter: {_names(undead)}",
    ))

    applied = {row.event_id for row in inbox if row.outcome == "applied"}
    caused = 0
    orphans: list[str] = []
    for row in outbox:
        cause = _header(row.headers, "ce_causationid")
        if cause is None or row.event_id.startswith("dlq:"):
            continue
        caused += 1
        if cause not in applied:
            orphans.append(f"{row.event_type.rsplit('.', 1)[-1]} {row.event_id} (cause {cause})")
    findings.append(AuditFinding(
        f"{service}: outbox events caused by applied events", not orphans,
        (f"{caused} events, each caused by an applied event" if caused else "no caused events") if not orphans
        else f"{len(orphans)} of {caused} events have a cause the inbox does not hold as applied: {_names(orphans)}",
    ))
    return findings


async def offsets_accounted(session: AsyncSession, service: str, bootstrap_servers: str, *,
                            security: KafkaSecurity | None = None) -> list[AuditFinding]:
    """Every offset below each consumer group's committed position, from where the partition's accounting begins,
    is covered by a `consumed_ranges` row: applied, duplicate, ignored or dead-lettered in a committed transaction.

    The groups are those the service recorded; their committed offsets and the partitions' earliest offsets are
    read from the broker. An uncovered offset was committed past without being taken care of: lost. A partition's
    accounting begins at its first recorded range (or the partition's earliest offset, if later): offsets
    committed before `consumed_ranges` existed (an upgrade) were never recorded and are not lost, and nothing
    tells them from a lost first batch, so they are not checked; the detail names where accounting begins when
    that is after the partition's earliest offset.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    rows = (await session.execute(text(
        'SELECT group_id, topic, "partition", first_offset, last_offset FROM consumed_ranges'
    ))).all()
    ranges: dict[tuple[str, str, int], list[tuple[int, int]]] = defaultdict(list)
    for row in rows:
        ranges[(row.group_id, row.topic, row.partition)].append((row.first_offset, row.last_offset))
    check = f"{service}: every consumed offset accounted for"
    try:
        options = kafka_options(security)
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000, **options)
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000, **options)
    except ConfigurationError as error:
        return [AuditFinding(check, False, f"cannot connect to {bootstrap_servers}: {error}")]
    try:
        await admin.start()
        await consumer.start()
        committed = {group: await admin.list_consumer_group_offsets(group)
                     for group in sorted({group for group, _topic, _partition in ranges})}
        partitions = sorted({tp for offsets in committed.values() for tp in offsets})
        earliest = await consumer.beginning_offsets(partitions) if partitions else {}
    except Exception as error:  # noqa: BLE001 - any broker failure is the same finding: could not check
        return [AuditFinding(check, False, f"cannot read the committed offsets from {bootstrap_servers}: "
                                           f"{_first_line(error) or type(error).__name__}")]
    finally:
        await consumer.stop()
        await admin.close()
    gaps: list[str] = []
    late_starts: list[str] = []
    checked = 0
    for group, offsets in committed.items():
        for tp, meta in sorted(offsets.items()):
            recorded = sorted(ranges.get((group, tp.topic, tp.partition), []))
            if meta.offset <= 0:
                continue
            if not recorded:  # committed past, nothing recorded since the upgrade: its accounting has not begun
                late_starts.append(f"{tp.topic}[{tp.partition}] not yet (group {group})")
                continue
            checked += 1
            position = earliest.get(TopicPartition(tp.topic, tp.partition), 0)
            if recorded[0][0] > position:
                position = recorded[0][0]
                late_starts.append(f"{tp.topic}[{tp.partition}] from offset {position} (group {group})")
            for first, last in recorded:
                if position >= meta.offset:
                    break
                if first > position:
                    gaps.append(f"{tp.topic}[{tp.partition}] offsets {position}..{min(first, meta.offset) - 1} "
                                f"(group {group})")
                position = max(position, last + 1)
            if position < meta.offset:
                gaps.append(f"{tp.topic}[{tp.partition}] offsets {position}..{meta.offset - 1} (group {group})")
    begins = f"; accounting begins at the first recorded batch: {_names(late_starts)}" if late_starts else ""
    return [AuditFinding(
        check, not gaps,
        (f"{checked} partitions, every offset up to each committed position accounted for" if not gaps
         else f"{len(gaps)} gaps committed past but never taken care of: {_names(gaps)}") + begins,
    )]


def _header(headers_text: str | None, name: str) -> str | None:
    if not headers_text:
        return None
    for key, value in json.loads(headers_text):
        if key == name:
            return base64.b64decode(value).decode(errors="replace")
    return None


# -- manufacturer ---------------------------------------------------------------------------------------------------


async def manufacturer_checks(session: AsyncSession, negative_stock_policy: str = "park") -> list[AuditFinding]:
    from backflush_manufacturer.adapters.repository import load_ledger

    findings: list[AuditFinding] = []
    rows = (await session.execute(text(
        "SELECT id, item, location, lot, quantity, reason, production_order, owner FROM ledger_movements ORDER BY id"
    ))).all()
    on_hand: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    allocated: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for row in rows:
        key = (row.item, row.location, row.lot)
        if row.reason == "allocation":
            allocated[key] += _decimal(row.quantity)
        else:
            on_hand[key] += _decimal(row.quantity)
    raw_balances = {key: quantity for key, quantity in on_hand.items() if quantity}
    raw_allocations = {key: quantity for key, quantity in allocated.items() if quantity}

    ledger = await load_ledger(session)
    domain_balances = dict(ledger.balances())
    domain_allocations: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for (item, location, lot, _order), quantity in ledger.allocations().items():
        domain_allocations[(item, location, lot)] += quantity
    domain_allocations = {key: quantity for key, quantity in domain_allocations.items() if quantity}
    differences = [
        f"{'/'.join(key)}: ledger {_figure(domain_balances.get(key, ZERO))}, movements {_figure(raw_balances.get(key, ZERO))}"
        for key in sorted(set(raw_balances) | set(domain_balances))
        if raw_balances.get(key, ZERO) != domain_balances.get(key, ZERO)
    ] + [
        f"{'/'.join(key)} allocated: ledger {_figure(domain_allocations.get(key, ZERO))}, "
        f"movements {_figure(raw_allocations.get(key, ZERO))}"
        for key in sorted(set(raw_allocations) | set(domain_allocations))
        if raw_allocations.get(key, ZERO) != domain_allocations.get(key, ZERO)
    ]
    if len(ledger) != len(rows):
        differences.insert(0, f"the ledger holds {len(ledger)} movements, the table {len(rows)}")
    findings.append(AuditFinding(
        "manufacturer: ledger balances = sums of movements", not differences,
        f"{len(rows)} movements; {len(raw_balances)} lot balances and {len(raw_allocations)} allocations agree"
        if not differences else f"{len(differences)} differ: {_names(differences)}",
    ))

    negative_real = [f"{'/'.join(key)} = {_figure(q)}" for key, q in sorted(on_hand.items())
                     if key[2] != NEGATIVE_LOT and q < 0]
    findings.append(AuditFinding(
        "manufacturer: no real lot negative", not negative_real,
        f"{sum(1 for key in on_hand if key[2] != NEGATIVE_LOT)} real lots, none below zero" if not negative_real
        else f"{len(negative_real)} below zero: {_names(negative_real)}",
    ))

    overrides = {row.item: row.negative_stock_policy for row in (await session.execute(text(
        "SELECT item, negative_stock_policy FROM items"
    ))).all() if row.negative_stock_policy}
    negative_items = sorted({row.item for row in rows if row.lot == NEGATIVE_LOT})
    not_allowed = [f"{item} (policy {overrides.get(item, negative_stock_policy)})" for item in negative_items
                   if overrides.get(item, negative_stock_policy) != "allow"]
    carried = {key: q for key, q in on_hand.items() if key[2] == NEGATIVE_LOT and q}
    findings.append(AuditFinding(
        "manufacturer: NEGATIVE lots only where the policy allows", not not_allowed,
        ((f"{len(negative_items)} items with a NEGATIVE lot, all under 'allow'" if negative_items
          else "no NEGATIVE lot")
         + (f"; still carried: {_names([f'{k[0]}/{k[1]} {_figure(q)}' for k, q in sorted(carried.items())])}"
            if carried else "")
         + f" (global policy {negative_stock_policy})")
        if not not_allowed else f"NEGATIVE lots under a policy that does not allow them: {_names(not_allowed)}",
    ))

    parked = (await session.execute(text(
        "SELECT p.id, p.order_id, p.status AS parked_status, o.status AS order_status "
        "FROM parked_flushes p LEFT JOIN production_orders o ON o.order_id = p.order_id"
    ))).all()
    stuck = [f"#{row.id} {row.order_id} ({row.order_status or 'no production order'})" for row in parked
             if row.parked_status == "waiting"
             and (row.order_status is None or row.order_status in FINISHED_PRODUCTION_STATES)]
    waiting = sum(1 for row in parked if row.parked_status == "waiting")
    findings.append(AuditFinding(
        "manufacturer: parked flushes of cancelled orders resolved", not stuck,
        f"{len(parked)} parked flushes, {waiting} waiting, none for a finished order" if not stuck
        else f"{len(stuck)} still wait for a finished order: {_names(stuck)}",
    ))
    findings += await parked_flush_release_checks(session)
    findings += history_checks(rows)
    orders = {row.order_id: row.components_owner for row in (await session.execute(text(
        "SELECT order_id, components_owner FROM production_orders"))).all()}
    findings += consignment_checks(rows, orders)
    findings += await parked_flush_order_checks(session)
    return findings


CONSUMPTION = ("backflush", "manual_issue", "scrap")


def consignment_checks(rows: list[Any], components_owner: Mapping[str, str | None]) -> list[AuditFinding]:
    """Contract manufacturing, from the movement history in append order: a brand owner's lot never went below
    zero (whatever the negative-stock policy), every movement of a lot names the same owner, the negative lot is
    never an owner's; and a consigned lot was consumed only by its owner's orders (`components_owner`), never by an
    ordinary order (a run, a make-to-stock order) nor by another owner's."""
    running: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    owner_of: dict[tuple[str, str], str | None] = {}
    below: dict[tuple[str, str, str], tuple[Decimal, int]] = {}
    mixed: list[str] = []
    foreign: list[str] = []
    for row in rows:
        owner = getattr(row, "owner", None)
        lot = (row.item, row.lot)
        if lot in owner_of and owner_of[lot] != owner and row.reason != "allocation":
            mixed.append(f"#{row.id} {row.item}/{row.lot} as {owner or 'own'}, first {owner_of[lot] or 'own'}")
        owner_of.setdefault(lot, owner)
        if owner is None or row.reason == "allocation":
            continue
        if row.lot == NEGATIVE_LOT:
            mixed.append(f"#{row.id} {row.item}/{NEGATIVE_LOT} posted as {owner}'s")
        key = (row.item, row.location, row.lot)
        running[key] += _decimal(row.quantity)
        if running[key] < 0 and (key not in below or running[key] < below[key][0]):
            below[key] = (running[key], row.id)
        if row.reason in CONSUMPTION and _decimal(row.quantity) < 0 \
                and components_owner.get(row.production_order or "") != owner:
            whose = components_owner.get(row.production_order or "")
            foreign.append(f"#{row.id} {row.production_order} ({f'for {whose}' if whose else 'ordinary'}) took "
                           f"{row.item}/{row.lot} of {owner}")
    negative = [f"{'/'.join(key)} {_figure(low)} at movement #{movement}"
                for key, (low, movement) in sorted(below.items())]
    owners = sorted({owner for owner in owner_of.values() if owner is not None})
    return [
        AuditFinding(
            "manufacturer: owner stock never negative", not negative and not mixed,
            f"{len(running)} consigned lots of {len(owners)} owners, none ever below zero, each lot one owner's"
            if not negative and not mixed else f"{_names(negative + mixed)}",
        ),
        AuditFinding(
            "manufacturer: consigned lots consumed only by their owner's orders", not foreign,
            "no ordinary order (nor another owner's) consumed a consigned lot" if not foreign
            else f"{len(foreign)} took someone else's lot: {_names(foreign)}",
        ),
    ]


def history_checks(rows: list[Any]) -> list[AuditFinding]:
    """No real lot ever went below zero, at any point of the movement history (in append order): an end balance
    of zero can hide two flushes that took the same stock while a receipt made up for one of them."""
    running: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    went_below: dict[tuple[str, str, str], tuple[Decimal, int]] = {}
    for row in rows:
        if row.reason == "allocation" or row.lot == NEGATIVE_LOT:
            continue
        key = (row.item, row.location, row.lot)
        running[key] += _decimal(row.quantity)
        if running[key] < 0 and (key not in went_below or running[key] < went_below[key][0]):
            went_below[key] = (running[key], row.id)
    below = [f"{'/'.join(key)} {_figure(low)} at movement #{movement}"
             for key, (low, movement) in sorted(went_below.items())]
    return [AuditFinding(
        "manufacturer: no real lot ever below zero in the history", not below,
        f"{len(running)} real lots followed through {len(rows)} movements, none ever below zero" if not below
        else f"{len(below)} went below zero: {_names(below)}",
    ), _fifo_finding(rows)]


def _fifo_finding(rows: list[Any]) -> AuditFinding:
    """Every backflush took from a lot only when every lot received before it (at that item and location) had
    nothing available left: first in, first out, replayed from the movement history in append order (per owner:
    a brand owner's lots and the manufacturer's own are two lines)."""
    order: dict[tuple[str, str, str], list[str]] = defaultdict(list)  # lots by first appearance = receipt order
    available: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    skipped: list[str] = []
    flushes = 0
    for row in rows:
        # first in, first out among one owner's lots: an owner's order takes its lots before any older own lot,
        # and an ordinary order passes over older consigned lots
        place = (row.item, row.location, getattr(row, "owner", None) or "")
        key = (row.item, row.location, row.lot)
        if row.lot not in order[place]:
            order[place].append(row.lot)
        quantity = _decimal(row.quantity)
        if row.reason == "backflush" and quantity < 0 and row.lot != NEGATIVE_LOT:
            flushes += 1
            older = [lot for lot in order[place][:order[place].index(row.lot)]
                     if lot != NEGATIVE_LOT and available[(row.item, row.location, lot)] > 0]
            if older:
                skipped.append(f"#{row.id} took {row.item}/{row.location}/{row.lot} while {older[0]} had "
                               f"{_figure(available[(row.item, row.location, older[0])])}")
        # stock promised to an order (an allocation) is not available to a backflush; a release gives it back
        available[key] += -quantity if row.reason == "allocation" else quantity
    return AuditFinding(
        "manufacturer: lots consumed first in first out", not skipped,
        f"{flushes} backflush movements, each from the oldest lot with stock" if not skipped
        else f"{len(skipped)} skipped an older lot: {_names(skipped)}",
    )


async def parked_flush_order_checks(session: AsyncSession) -> list[AuditFinding]:
    """Posted parked flushes kept their place in line: none posted before an earlier parked flush of its own
    production order, nor before an earlier one that was short of a component it needs (the queue's rule, see
    backflush_manufacturer.domain.parking)."""
    rows = (await session.execute(text(
        "SELECT id, order_id, reason, request, resolved_at FROM parked_flushes WHERE status = 'posted' ORDER BY id"
    ))).all()
    # (item, whose stock): a brand owner's order short of the owner's lots holds back no one else's flush
    needs: dict[int, set[tuple[str, str | None]]] = {}
    short: dict[int, set[tuple[str, str | None]]] = {}
    for row in rows:
        try:
            request = json.loads(row.request)
            owner = request["request"].get("components_owner")
            own_allowed = bool(request["request"].get("own_components_allowed"))
            items = {str(line["item"]) for line in request["requirements"]}
        except (ValueError, KeyError, TypeError, AttributeError):
            owner, own_allowed, items = None, False, set()
        draws = [owner, None] if owner and own_allowed else [owner]
        needs[row.id] = {(item, whose) for item in items for whose in draws}
        # "ITEM: needs 3 pcs, 1 available; ..." names what the flush was short of when it parked: the owner's
        # lots when it may not use ours, else our own stock
        short_of = owner if owner and not own_allowed else None
        short[row.id] = {(part.split(":", 1)[0], short_of) for part in (row.reason or "").split("; ")
                         if ": needs " in part}
    overtaken: list[str] = []
    for n, earlier in enumerate(rows):
        earlier_at = _aware(earlier.resolved_at)
        for later in rows[n + 1:]:
            later_at = _aware(later.resolved_at)
            if earlier_at is None or later_at is None or later_at >= earlier_at:
                continue
            if later.order_id == earlier.order_id or needs[later.id] & short[earlier.id]:
                overtaken.append(f"#{later.id} {later.order_id} posted before #{earlier.id} {earlier.order_id}")
    return [AuditFinding(
        "manufacturer: parked flushes posted in arrival order", not overtaken,
        f"{len(rows)} posted parked flushes, none ahead of an earlier one it waited behind" if not overtaken
        else f"{len(overtaken)} overtook: {_names(overtaken)}",
    )]


#: The exception queue's reason for a flush queued behind an earlier parked flush of its own order
#: (backflush_manufacturer.production.WAITS_BEHIND_OWN_ORDER; written out, as every check reads raw rows).
WAITS_BEHIND_OWN_ORDER = "waits behind an earlier parked flush of the same order"


async def parked_flush_release_checks(session: AsyncSession) -> list[AuditFinding]:
    """Every waiting parked flush waits for something that can happen: a receipt of components the manufacturer
    knows (a receipt of an unknown item is refused), for a production order that exists, and, when it waits
    behind an earlier flush of its order, behind one that still waits (a cancelled or posted one never releases
    it: only a receipt or a retry reprocesses the queue); and never for an item whose policy is `reject` (under
    `reject` a shortage refuses the flush, it does not wait)."""
    rows = (await session.execute(text(
        "SELECT p.id, p.order_id, p.status, p.reason, p.request, o.order_id AS production_order "
        "FROM parked_flushes p LEFT JOIN production_orders o ON o.order_id = p.order_id ORDER BY p.id"
    ))).all()
    item_rows = (await session.execute(text("SELECT item, negative_stock_policy FROM items"))).all()
    known_items = {row.item for row in item_rows}
    rejecting = {row.item for row in item_rows if row.negative_stock_policy == "reject"}
    unreleasable: list[str] = []
    earlier: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        before, name = list(earlier[row.order_id]), f"#{row.id} {row.order_id}"
        earlier[row.order_id].append(row)
        if row.status != "waiting":
            continue
        if row.production_order is None:
            unreleasable.append(f"{name}: no such production order")
        try:
            needed = {str(line["item"]) for line in json.loads(row.request)["requirements"]}
        except (ValueError, KeyError, TypeError):
            unreleasable.append(f"{name}: unreadable request")
            continue
        unknown = sorted(needed - known_items)
        if unknown:
            unreleasable.append(f"{name}: needs unknown items {', '.join(unknown)}")
        # a shortage reason reads "ITEM: needs ..., ... available; ITEM: ..."; under `reject` nothing waits for
        # stock (reprocessing refuses it), so such a flush waits for a refusal that only a receipt would trigger
        short = [part.split(":", 1)[0].strip() for part in str(row.reason).split("; ") if ": needs " in part]
        refused_items = [item for item in short if item in rejecting]
        if refused_items:
            unreleasable.append(f"{name}: waits for {', '.join(refused_items)}, whose policy is reject")
        cancelled = [e.id for e in before if e.status == "cancelled"]
        if cancelled:
            unreleasable.append(f"{name}: an earlier flush of its order was cancelled (#{cancelled[0]})")
        elif row.reason == WAITS_BEHIND_OWN_ORDER and not any(e.status == "waiting" for e in before):
            unreleasable.append(f"{name}: waits behind an earlier flush of its order, but none waits")
    waiting = sum(1 for row in rows if row.status == "waiting")
    return [AuditFinding(
        "manufacturer: every waiting parked flush can be released", not unreleasable,
        f"{waiting} waiting, each for known components of an existing production order" if not unreleasable
        else f"{len(unreleasable)} wait for what cannot happen: {_names(unreleasable)}",
    )]


# -- distributor ----------------------------------------------------------------------------------------------------


async def distributor_checks(session: AsyncSession) -> list[AuditFinding]:
    rows = (await session.execute(text(
        "SELECT order_id, state, waiting_for, waiting_since FROM orders ORDER BY created_at, order_id"
    ))).all()
    states = Counter(row.state for row in rows)
    lost = [
        f"{row.order_id} ({row.state}, waiting for {row.waiting_for!r}, since {row.waiting_since})"
        for row in rows
        if row.state not in FINISHED_ORDER_STATES and (not (row.waiting_for or "").strip() or row.waiting_since is None)
    ]
    waiting = Counter(row.waiting_for for row in rows if row.state not in FINISHED_ORDER_STATES and row.waiting_for)
    summary = ", ".join(f"{count} {state}" for state, count in sorted(states.items())) or "no orders"
    if waiting:
        summary += "; waiting for: " + ", ".join(f"{what} ({count})" for what, count in sorted(waiting.items()))
    findings = [AuditFinding(
        "distributor: every order finished or waiting with a reason", not lost,
        f"{len(rows)} orders: {summary}" if not lost
        else f"{len(lost)} of {len(rows)} orders neither finished nor saying what they wait for: {_names(lost)}",
    )]
    return findings + await distributor_storage_checks(session) + await order_history_checks(session, rows)


FINISHED_ORDER_STATES = ("closed", "rejected", "cancelled")
ORDER_PLACED = "backflush.order.placed"


async def order_history_checks(session: AsyncSession, orders: list[Any]) -> list[AuditFinding]:
    """No order went back: once a transition recorded it closed, rejected or cancelled, no later one moved it
    elsewhere, and each order's stored state is the last one its history recorded (a write from a stale copy of
    the order shows as either)."""
    transitions = (await session.execute(text(
        "SELECT order_id, state, cause_event_type FROM order_transitions ORDER BY id"
    ))).all()
    last: dict[str, str] = {}
    went_back: list[str] = []
    for row in transitions:
        # a rejected order placed again under its id starts a new history: its placement is no going back
        before = None if row.cause_event_type == ORDER_PLACED else last.get(row.order_id)
        if before in FINISHED_ORDER_STATES and row.state != before:
            went_back.append(f"{row.order_id}: {before} -> {row.state}")
        last[row.order_id] = row.state
    went_back += [f"{row.order_id}: stored {row.state}, history ends {last.get(row.order_id, 'empty')}"
                  for row in orders if last.get(row.order_id) != row.state]
    return [AuditFinding(
        "distributor: no order went back from its end", not went_back,
        f"{len(transitions)} transitions of {len(last)} orders, none after an end, each order's state its last"
        if not went_back else f"{len(went_back)} went back: {_names(went_back)}",
    )]


#: Distributor states in which an order's goods are not stored yet: a wait for storage is still ahead of it.
NOT_YET_STORED_STATES = frozenset({"forwarded", "waiting-for-components", "quality-checked", "in-production",
                                   "directed-to-racks"})
STORAGE_OF_FLOW = {"pre": "rack", "post": "consignment"}


async def distributor_storage_checks(session: AsyncSession) -> list[AuditFinding]:
    """No open order needs more storage than the warehouse has in all; no order cancelled after its goods left."""
    rows = (await session.execute(text(
        "SELECT order_id, flow, quantity, state, milestones FROM orders ORDER BY created_at, order_id"
    ))).all()
    capacities = {row.kind: _decimal(row.capacity) for row in (await session.execute(text(
        "SELECT kind, capacity FROM storage_capacity"
    ))).all()}
    too_big = []
    for row in rows:
        capacity = capacities.get(STORAGE_OF_FLOW.get(row.flow, ""))
        if row.state in NOT_YET_STORED_STATES and capacity is not None and _decimal(row.quantity) > capacity:
            too_big.append(f"{row.order_id} ({row.state}): {_figure(_decimal(row.quantity))} units, "
                           f"{STORAGE_OF_FLOW[row.flow]} capacity {_figure(capacity)}")
    known = ", ".join(f"{kind} {_figure(c)}" for kind, c in sorted(capacities.items())) or "not announced yet"
    findings = [AuditFinding(
        "distributor: no order waits for more than the storage capacity", not too_big,
        f"capacity {known}; no open order bigger" if not too_big
        else f"{len(too_big)} can never be stored: {_names(too_big)}",
    )]
    undone = []
    for row in rows:
        if row.state != "cancelled":
            continue
        milestones = json.loads(row.milestones)
        if milestones.get("shipped") or milestones.get("signed_by") or milestones.get("final_order_placed"):
            undone.append(row.order_id)
    cancelled = sum(1 for row in rows if row.state == "cancelled")
    findings.append(AuditFinding(
        "distributor: no order cancelled once its goods shipped", not undone,
        f"{cancelled} cancelled, none after its final order or shipment" if not undone
        else f"{len(undone)} cancelled after their goods shipped: {_names(undone)}",
    ))
    return findings


# -- warehouse ------------------------------------------------------------------------------------------------------


async def warehouse_checks(session: AsyncSession) -> list[AuditFinding]:
    findings: list[AuditFinding] = []
    units = (await session.execute(text(
        "SELECT id, order_id, location, kind, quantity, status FROM stock_units ORDER BY id"
    ))).all()
    shipments = (await session.execute(text(
        "SELECT order_id, quantity, signed_by FROM shipments"
    ))).all()
    announced = (await session.execute(text(
        # a dead letter keeps the refused record's headers, type included: it is not something the warehouse said
        "SELECT value FROM outbox WHERE event_type = 'backflush.inventory.consignment-received' "
        "AND event_id NOT LIKE 'dlq:%'"
    ))).all()

    received = sum((_decimal(json.loads(row.value)["quantity"]) for row in announced), ZERO)
    consignment = [u for u in units if u.kind == "consignment"]
    by_status: dict[str, Decimal] = defaultdict(Decimal)
    for unit in consignment:
        by_status[unit.status] += _decimal(unit.quantity)
    placed = sum(by_status.values(), ZERO)
    # racked pre-product goods ship too (called off by their holder); they were never consignment stock
    rack_orders = {u.order_id for u in units if u.kind == "rack"}
    shipped = sum((_decimal(s.quantity) for s in shipments if s.order_id not in rack_orders), ZERO)
    released = by_status.get("released", ZERO)
    stored = by_status.get("stored", ZERO)
    expected = received - shipped - released
    problems = []
    if placed != received:
        problems.append(f"units placed in consignment storage ({_figure(placed)}) differ from the units announced "
                        f"as received ({_figure(received)})")
    if stored != expected:
        problems.append(f"consignment stock {_figure(stored)} differs from stored - shipped - released = "
                        f"{_figure(received)} - {_figure(shipped)} - {_figure(released)} = {_figure(expected)}")
    findings.append(AuditFinding(
        "warehouse: consignment stock = stored - shipped", not problems,
        f"stored {_figure(received)} - shipped {_figure(shipped)} - released {_figure(released)} = "
        f"{_figure(stored)} in consignment stock" if not problems else "; ".join(problems),
    ))

    out_by_order: dict[str, Decimal] = defaultdict(Decimal)
    delivered_orders: set[str] = set()
    shipped_orders: set[str] = set()
    for unit in units:
        if unit.status in ("shipped", "delivered"):
            out_by_order[unit.order_id] += _decimal(unit.quantity)
            (delivered_orders if unit.status == "delivered" else shipped_orders).add(unit.order_id)
    by_shipment = {s.order_id: s for s in shipments}
    # a stock order delivered in parts has units delivered (earlier parts) and shipped (the latest) at once
    in_parts = set((await session.execute(text("SELECT order_id FROM stock_orders"))).scalars().all())
    mismatches = []
    for order_id in sorted(set(out_by_order) | set(by_shipment)):
        shipment = by_shipment.get(order_id)
        if shipment is None:
            mismatches.append(f"{order_id}: {_figure(out_by_order[order_id])} units out without a shipment")
        elif _decimal(shipment.quantity) != out_by_order.get(order_id, ZERO):
            mismatches.append(f"{order_id}: shipment of {_figure(_decimal(shipment.quantity))}, units out "
                              f"{_figure(out_by_order.get(order_id, ZERO))}")
        elif order_id in in_parts:
            continue
        elif order_id in delivered_orders and shipment.signed_by is None:
            mismatches.append(f"{order_id}: units delivered but the shipment is not signed for")
        elif order_id in shipped_orders and shipment.signed_by is not None:
            mismatches.append(f"{order_id}: signed for but units still shipped, not delivered")
    findings.append(AuditFinding(
        "warehouse: shipments match the units shipped", not mismatches,
        f"{len(shipments)} shipments, {sum(1 for s in shipments if s.signed_by)} signed for, all matching their units"
        if not mismatches else f"{len(mismatches)} differ: {_names(mismatches)}",
    ))

    capacities = {row.code: _decimal(row.capacity) for row in (await session.execute(text(
        "SELECT code, capacity FROM locations"
    ))).all()}
    used: dict[str, Decimal] = defaultdict(Decimal)
    for unit in units:
        if unit.status == "stored":
            used[unit.location] += _decimal(unit.quantity)
    over = [f"{code}: {_figure(q)} stored, capacity {_figure(capacities[code])}" if code in capacities
            else f"{code}: {_figure(q)} stored in an unknown location"
            for code, q in sorted(used.items()) if code not in capacities or q > capacities[code]]
    findings.append(AuditFinding(
        "warehouse: no location over capacity", not over,
        f"{len(capacities)} locations, {_figure(sum(used.values(), ZERO))} units stored, none over capacity"
        if not over else f"{len(over)} over: {_names(over)}",
    ))
    findings += await warehouse_storage_checks(session)
    findings += await warehouse_stock_checks(session)
    findings += warehouse_occupancy_checks(units, (await session.execute(text(
        "SELECT code, used FROM locations ORDER BY code"))).all())
    cancelled = set((await session.execute(text("SELECT order_id FROM cancelled_orders"))).scalars().all())
    left = sorted({u.order_id for u in units if u.status == "stored" and u.order_id in cancelled})
    findings.append(AuditFinding(
        "warehouse: no units stored for a cancelled order", not left,
        f"{len(cancelled)} cancelled orders, none with units still stored" if not left
        else f"{len(left)} cancelled orders still hold stored units: {_names(left)}",
    ))
    return findings


async def warehouse_stock_checks(session: AsyncSession) -> list[AuditFinding]:
    """Stock for sale: no run's lot was allocated above the units racked for it, and what was racked is still there,
    allocated, or withdrawn (never more, never less)."""
    stocked = (await session.execute(text(
        "SELECT run_id, lot, quantity, status FROM finished_stock ORDER BY run_id"))).all()
    allocated: dict[str, Decimal] = defaultdict(Decimal)
    for row in (await session.execute(text("SELECT run_id, quantity FROM stock_allocations"))).all():
        allocated[row.run_id] += _decimal(row.quantity)
    held: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row in (await session.execute(text("SELECT order_id, status, quantity FROM stock_units"))).all():
        held[(row.order_id, row.status)] += _decimal(row.quantity)
    waiting: dict[str, Decimal] = defaultdict(Decimal)
    for row in (await session.execute(text("SELECT order_id, quantity FROM waiting_put_aways"))).all():
        waiting[row.order_id] += _decimal(row.quantity)
    over, drift = [], []
    for row in stocked:
        racked = _decimal(row.quantity)
        taken = allocated.get(row.run_id, ZERO)
        if taken > racked:
            over.append(f"{row.run_id} ({row.lot}): {_figure(taken)} allocated, {_figure(racked)} racked")
        rest = (held.get((row.run_id, "stored"), ZERO) + held.get((row.run_id, "released"), ZERO)
                + waiting.get(row.run_id, ZERO))
        if taken + rest != racked:
            drift.append(f"{row.run_id} ({row.lot}): {_figure(racked)} stocked, {_figure(taken)} allocated + "
                         f"{_figure(rest)} still racked, waiting or withdrawn")
    orders = (await session.execute(text(
        "SELECT order_id, quantity, shipped, status FROM stock_orders"))).all()
    by_order: dict[str, Decimal] = defaultdict(Decimal)
    for row in (await session.execute(text("SELECT order_id, quantity FROM stock_allocations"))).all():
        by_order[row.order_id] += _decimal(row.quantity)
    # each order is allocated exactly what it shipped (in parts, if partial), and never more than it ordered
    over += [f"{row.order_id}: {_figure(by_order.get(row.order_id, ZERO))} allocated, {_figure(_decimal(row.shipped))} "
             f"shipped of an order of {_figure(_decimal(row.quantity))} ({row.status})" for row in orders
             if by_order.get(row.order_id, ZERO) != _decimal(row.shipped)
             or _decimal(row.shipped) > _decimal(row.quantity)
             or (row.status == "shipped") != (_decimal(row.shipped) == _decimal(row.quantity))]
    return [AuditFinding(
        "warehouse: stock-flow allocations never above racked units", not over and not drift,
        f"{len(stocked)} lots stocked for sale, {len(orders)} stock orders, "
        f"{_figure(sum(allocated.values(), ZERO))} units allocated, none above its lot or its order"
        if not over and not drift else "; ".join(over + drift),
    )]


def warehouse_occupancy_checks(units: list[Any], locations: list[Any]) -> list[AuditFinding]:
    """Each location's recorded `used` (what put-aways plan from) equals the units stored there."""
    stored: dict[str, Decimal] = defaultdict(Decimal)
    for unit in units:
        if unit.status == "stored":
            stored[unit.location] += _decimal(unit.quantity)
    drift = [f"{row.code}: used {_figure(_decimal(row.used))}, {_figure(stored.get(row.code, ZERO))} stored"
             for row in locations if _decimal(row.used) != stored.get(row.code, ZERO)]
    return [AuditFinding(
        "warehouse: used space = units stored, per location", not drift,
        f"{len(locations)} locations, each one's used space equal to its stored units" if not drift
        else f"{len(drift)} differ: {_names(drift)}",
    )]


async def warehouse_storage_checks(session: AsyncSession) -> list[AuditFinding]:
    """No put-away waits for more than all locations of its kind hold; no cancelled order's goods went out."""
    capacity: dict[str, Decimal] = defaultdict(Decimal)
    for row in (await session.execute(text("SELECT kind, capacity FROM locations"))).all():
        capacity[row.kind] += _decimal(row.capacity)
    waiting = (await session.execute(text(
        "SELECT order_id, kind, quantity FROM waiting_put_aways ORDER BY id"
    ))).all()
    never = [f"{row.order_id}: {_figure(_decimal(row.quantity))} units, all {row.kind} locations hold "
             f"{_figure(capacity.get(row.kind, ZERO))}" for row in waiting
             if _decimal(row.quantity) > capacity.get(row.kind, ZERO)]
    findings = [AuditFinding(
        "warehouse: no put-away waits for more than its capacity", not never,
        f"{len(waiting)} put-aways waiting, each within the capacity of its kind" if not never
        else f"{len(never)} can never fit: {_names(never)}",
    )]
    out = (await session.execute(text(
        "SELECT c.order_id FROM cancelled_orders c WHERE EXISTS (SELECT 1 FROM shipments s WHERE s.order_id = "
        "c.order_id) OR EXISTS (SELECT 1 FROM stock_units u WHERE u.order_id = c.order_id AND u.status IN "
        "('shipped', 'delivered')) ORDER BY c.order_id"
    ))).scalars().all()
    findings.append(AuditFinding(
        "warehouse: no cancelled order's goods shipped", not out,
        "no cancelled order has a shipment or shipped units" if not out
        else f"{len(out)} cancelled orders whose goods went out: {_names(list(out))}",
    ))
    return findings


# -- the command ----------------------------------------------------------------------------------------------------


def _database_option(service: str) -> Any:
    return typer.Option(
        f"sqlite+aiosqlite:///var/{service}.db", f"--{service}-database",
        envvar=f"BACKFLUSH_{service.upper()}_DATABASE_URL", help=f"The {service}'s database.",
    )


def register_audit_command(app: typer.Typer) -> None:
    out = Console()

    @app.command("audit")
    def audit_command(
        manufacturer_database: str = _database_option("manufacturer"),
        distributor_database: str = _database_option("distributor"),
        warehouse_database: str = _database_option("warehouse"),
        negative_stock_policy: str = typer.Option(
            "park", envvar="BACKFLUSH_NEGATIVE_STOCK_POLICY",
            help="The manufacturer's global negative-stock policy (items may override it)."),
        outbox_grace_seconds: float = typer.Option(
            DEFAULT_OUTBOX_GRACE_SECONDS, min=0,
            help="Unpublished outbox rows younger than this are in flight, not a breach."),
        bootstrap_servers: str | None = typer.Option(
            None, "--bootstrap-servers",
            help="Also check, on this broker, that every offset the services' consumer groups committed past is "
                 "accounted for in their databases."),
        as_json: bool = typer.Option(False, "--json", help="One JSON document instead of a table."),
        only: list[str] = typer.Option([], "--only", help="Audit only this service (repeatable); say, inside its "
                                                          "container, where the others' databases are not."),
    ) -> None:
        """Reconcile each service's database: inbox and outbox, ledger, orders, consignment stock. Exit 1 on a breach."""
        urls = {"manufacturer": manufacturer_database, "distributor": distributor_database,
                "warehouse": warehouse_database}
        unknown = sorted(set(only) - set(urls))
        if unknown:
            raise typer.BadParameter(f"unknown service {unknown[0]!r}: one of {', '.join(urls)}", param_hint="--only")
        if only:
            urls = {service: url for service, url in urls.items() if service in only}
        findings = asyncio.run(audit(urls, negative_stock_policy=negative_stock_policy.strip().lower(),
                                     outbox_grace_seconds=outbox_grace_seconds,
                                     bootstrap_servers=bootstrap_servers))
        failed = breaches(findings)
        if as_json:
            typer.echo(json.dumps({"ok": not failed, "findings": [asdict(f) for f in findings]}, indent=2))
        else:
            table = Table(title="backflush audit")
            for column in ("service", "check", "result", "detail"):
                table.add_column(column, overflow="fold")
            for finding in findings:
                table.add_row(safe(finding.service), safe(finding.check.split(": ", 1)[-1]),
                              "[bold red]FAIL[/]" if not finding.ok else "[yellow]warn[/]" if finding.warning
                              else "[green]pass[/]", safe(finding.detail))
            out.print(table)
            out.print(f"[bold red]{len(failed)} breaches[/]" if failed else "[green]clean: every check passed[/]")
        raise typer.Exit(1 if failed else 0)
