"""Settings: built once at the entry point from the environment (and epipe.toml).

Library code receives a frozen `Settings`; nothing below the CLI reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class Settings(BaseSettings):
    """Every knob of epipe; the environment wins over `epipe.toml`."""

    model_config = SettingsConfigDict(
        env_prefix="EPIPE_",
        frozen=True,
        extra="ignore",
        toml_file="epipe.toml",
    )

    home: Path = Field(default=Path(".epipe"), description="data dir of the embedded stack")
    dsn: SecretStr | None = Field(default=None, description="external PostgreSQL DSN")
    bus: Literal["inprocess", "kafka", "connect"] = Field(
        default="inprocess",
        description="where consumers read events: inprocess (embedded), kafka (the topics "
        "`epipe tail` writes) or connect (the topics Kafka Connect's Debezium connector "
        "writes; consumers only, no tailer)",
    )
    kafka_bootstrap: str | None = None
    index: Literal["tantivy", "elasticsearch"] = "tantivy"
    es_url: str | None = None
    hms_uri: str | None = Field(
        default=None,
        pattern=r"^thrift://",
        description="Thrift URI of the Hive Metastore the hive consumer keeps consistent; "
        "unset: the local one of `epipe hms start`, when it runs",
    )
    hms_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Thrift port of the local Hive Metastore; unset: a free one, kept "
        "across restarts",
    )
    hms_location_prefix: str | None = Field(
        default=None,
        description="what precedes an epipe path in a Hive location (file:/srv/fs: the path "
        "/a is the location file:/srv/fs/a); unset: `file:` + EPIPE_HOME/hms/fs",
    )
    slot: str = Field(
        default="epipe", pattern=r"^[a-z0-9_]{1,63}$", description="replication slot of the tailer"
    )
    publication: str = Field(default="epipe", pattern=r"^[a-z0-9_]{1,63}$")
    source: Literal["postgres", "debezium"] = Field(
        default="postgres",
        description="what reads the change log: postgres (the built-in pgoutput tailer) or "
        "debezium (Debezium's Postgres connector, its embedded engine: Java >= 17 and the "
        "extra epipe[debezium]; the embedded PostgreSQL then listens on loopback TCP too)",
    )
    debezium_heap_mb: int = Field(
        default=512, ge=64, le=65536, description="largest Java heap of the Debezium engine"
    )
    kafka_partitions: int = Field(default=6, ge=1, le=1000)
    kafka_replication: int = Field(default=1, ge=1, le=10)
    kafka_prefix: str = Field(
        default="",
        pattern=r"^[A-Za-z0-9._-]{0,100}$",
        description="put before every topic name and consumer group id (`test1.` reads "
        "test1.epipe.fs as group test1.index): several pipelines on one Kafka cluster",
    )
    connect_topic_prefix: str = Field(
        default="epipe",
        pattern=r"^[A-Za-z0-9._-]{1,100}$",
        description="EPIPE_BUS=connect: the connector's topic.prefix (its topics are "
        "PREFIX.public.inodes, PREFIX.public.xattrs, PREFIX.public.prov_ops and PREFIX.message)",
    )
    kafka_session_timeout_ms: int = Field(
        default=10_000,
        ge=1000,
        le=3_600_000,
        description="how long a consumer may go silent before its group gives its partitions "
        "to the others (a consumer killed is noticed after this; the broker bounds it)",
    )
    kafka_heartbeat_interval_ms: int = Field(
        default=3000,
        ge=100,
        le=3_600_000,
        description="how often a consumer tells its group it is alive; below the session "
        "timeout (a third of it is usual)",
    )
    cursor_secret: SecretStr | None = Field(
        default=None,
        description="key that signs search cursors (>= 32 characters); unset: a random one "
        "kept in EPIPE_HOME/cursor-secret",
    )
    instance: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$",
        description="the name of this file system outside epipe: OpenLineage datasets and jobs "
        "are in the namespace epipe://INSTANCE; unset: DATABASE-SYSTEMID of the metadata "
        "database (current_database() and its system identifier)",
    )
    openlineage_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="base URL of an OpenLineage server (events go to URL/api/v1/lineage); "
        "set: `epipe run` also runs the openlineage consumer",
    )
    hms_scan_interval: float = Field(
        default=2.0, gt=0, le=3600, description="seconds between scans of an idle metastore"
    )
    hms_parallel: int = Field(
        default=2,
        ge=1,
        le=64,
        description="connections the hive consumer uses at once, each working on other tables",
    )
    heartbeat_interval: float = Field(
        default=1.0, gt=0, le=60, description="seconds between heartbeats when idle"
    )
    provenance: Literal["on", "off"] = Field(
        default="on",
        description="whether namespace operations write their provenance row (prov_ops): "
        "the session setting epipe.provenance of every connection epipe opens",
    )
    api_max_waits: int = Field(
        default=100,
        ge=1,
        le=100_000,
        description="read-your-writes waits (`after` + `wait_ms`) one API process holds at once; "
        "more answer 429",
    )
    api_max_waits_per_caller: int = Field(
        default=10, ge=1, le=100_000, description="of those, how many one user may hold"
    )
    api_max_body_bytes: int = Field(
        default=1 << 20, ge=1024, le=1 << 30, description="largest request body the API reads"
    )
    api_header_timeout: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="seconds a client has to send a request's line and headers",
    )

    @model_validator(mode="after")
    def _heartbeat_within_the_session(self) -> Settings:
        if self.kafka_heartbeat_interval_ms >= self.kafka_session_timeout_ms:
            raise ValueError(
                f"EPIPE_KAFKA_HEARTBEAT_INTERVAL_MS ({self.kafka_heartbeat_interval_ms}) must be "
                f"below EPIPE_KAFKA_SESSION_TIMEOUT_MS ({self.kafka_session_timeout_ms})"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @property
    def embedded(self) -> bool:
        """True when epipe runs its own PostgreSQL (no EPIPE_DSN)."""
        return self.dsn is None


def load_settings() -> Settings:
    """Read the settings, turning validation errors into one line per bad setting."""
    from pydantic import ValidationError

    from epipe.errors import ConfigError

    try:
        return Settings()
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            if not err["loc"]:  # a rule between settings: its message names them
                lines.append(err["msg"].removeprefix("Value error, "))
                continue
            name = "EPIPE_" + "_".join(str(p) for p in err["loc"]).upper()
            lines.append(f"{name}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError("; ".join(lines)) from None
