"""Service settings, read from the environment (prefix `BACKFLUSH_`) and nowhere else."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from backflush_shared.messaging.security import KafkaSecurity


class ServiceSettings(KafkaSecurity):
    """How one service instance connects and where it keeps its state. See the README's configuration table.

    The Kafka security settings (`BACKFLUSH_SECURITY_PROTOCOL`, `BACKFLUSH_SASL_*`, `BACKFLUSH_SSL_*`) come from
    `KafkaSecurity`: the service passes itself wherever a client is built.
    """

    model_config = SettingsConfigDict(env_prefix="BACKFLUSH_", extra="ignore")

    service: str = Field(description="Which service this is; set by `backflush serve NAME`.")
    bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma separated.")
    topic_prefix: str = Field("", description="Put in front of every topic name (one broker, several systems).")
    group_id: str = Field("", description="Kafka consumer group; defaults to the topic prefix + service name.")
    database_url: str = Field("", description="SQLAlchemy URL; defaults to a SQLite file var/<service>.db.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    health_host: str = "0.0.0.0"
    health_port: int = Field(8080, ge=0, le=65535, description="HTTP port of GET /health.")
    topic_partitions: int = Field(3, ge=1, description="Partitions of the topics the service creates if missing.")
    topic_replication: int = Field(1, ge=1)
    max_batch: int = Field(500, ge=1, le=10_000, description="Most records applied in one transaction.")
    poll_timeout_ms: int = Field(
        500, ge=1, le=10_000,
        description="How long one poll of an idle consumer waits for records (it returns when one arrives).")
    offset_commit_interval_seconds: float = Field(
        1.0, gt=0, le=3600, description="How often consumed offsets are committed to Kafka (after their transaction).")
    max_value_bytes: int = Field(1_000_000, ge=1024, description="Larger records are dead-lettered unread.")
    startup_timeout_seconds: float = Field(30.0, gt=0, description="How long start-up waits for the broker.")

    @model_validator(mode="after")
    def _defaults_from_service(self) -> ServiceSettings:
        if not self.group_id:
            self.group_id = f"{self.topic_prefix}{self.service}"
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///var/{self.service}.db"
        return self
