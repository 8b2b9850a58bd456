"""compose/: the scale-out stack's files, checked against what epipe expects.

No Docker engine runs here, so the stack is read, not run: the services and their start
order, the EPIPE_* settings each epipe service gets (names known to `Settings`, values it
accepts, hosts that are services), pinned images, health checks, the Debezium connector's slot
and publication, and the image's unprivileged user.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict
from pydantic import AliasChoices

from epipe import wiring
from epipe.cli import cli
from epipe.settings import Settings, load_settings
from epipe.source.translate import CAPTURED

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
DOCKERFILE = COMPOSE_DIR / "Dockerfile"

# what each service must wait for: the start order
NEEDS = {
    "postgres": set(),
    "kafka": set(),
    "elasticsearch": set(),
    "hive-metastore": {"postgres"},
    "connect": {"kafka", "postgres"},
    "connect-register": {"connect", "init"},
    "init": {"postgres"},
    "tail": {"init", "kafka"},
    "consume-index": {"init", "kafka", "elasticsearch"},
    "consume-hive": {"init", "kafka", "hive-metastore"},
    "consume-provenance": {"init", "kafka"},
    "serve": {"init", "elasticsearch"},
}
STATEFUL = ("postgres", "kafka", "elasticsearch", "hive-metastore")
CONDITIONS = {"service_healthy", "service_completed_successfully"}  # not a mere start
EPIPE_NAME = re.compile(r"\bEPIPE_[A-Z0-9_]+")
INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+):-([^}]*)\}")  # ${NAME:-default}
PINNED_TAG = re.compile(r"^v?\d+(\.\d+)+([.-][A-Za-z0-9.]+)*$")  # 4.1.1, 3.6.3.Final, 18.1-bookworm


@cache
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def epipe_services() -> dict[str, dict[str, Any]]:
    """The services that run epipe's own image (built from compose/Dockerfile)."""
    return {
        name: service
        for name, service in services().items()
        if (service.get("build") or {}).get("dockerfile") == "compose/Dockerfile"
    }


def one_shot(service: dict[str, Any]) -> bool:
    return service.get("restart") == "no"


def environment(service: dict[str, Any], outside: dict[str, str] | None = None) -> dict[str, str]:
    """The service's environment as compose makes it, `${NAME:-default}` taken from
    `outside` (the environment of `docker compose`), else its default."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)

    def interpolated(match: re.Match[str]) -> str:
        return (outside or {}).get(match.group(1)) or match.group(2)

    return {
        str(key): "" if value is None else INTERPOLATION.sub(interpolated, str(value))
        for key, value in env.items()
    }


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """Each service this one waits for, with the condition (short form: service_started)."""
    found = service.get("depends_on") or {}
    if isinstance(found, list):
        return dict.fromkeys(found, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in found.items()}


def strings(node: Any) -> Iterator[str]:
    """Every key and scalar of a parsed YAML document, as text (comments are gone)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)
    elif node is not None:
        yield str(node)


def known_variables() -> set[str]:
    """The environment variables `Settings` reads, from the model itself."""
    prefix = str(Settings.model_config.get("env_prefix") or "")
    known = set()
    for name, field in Settings.model_fields.items():
        aliases = [alias for alias in (field.validation_alias, field.alias) if alias is not None]
        if not aliases:
            known.add((prefix + name).upper())
        for alias in aliases:
            choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
            known.update(choice.upper() for choice in choices if isinstance(choice, str))
    return known


def settings_of(
    service: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    outside: dict[str, str] | None = None,
) -> Settings:
    """What `load_settings()` makes of the service's environment (and nothing else), with
    `outside` the environment `docker compose` runs in."""
    with monkeypatch.context() as patch:
        patch.chdir(tmp_path)  # no epipe.toml
        for name in known_variables():
            patch.delenv(name, raising=False)
        for name, value in environment(services()[service], outside).items():
            patch.setenv(name, value)
        return load_settings()


def hosts(settings: Settings) -> dict[str, str]:
    """The host each setting that reaches another service names (the unset ones: none)."""
    named = {}
    if settings.dsn is not None:
        named["EPIPE_DSN"] = conninfo_to_dict(settings.dsn.get_secret_value()).get("host")
    for broker in filter(None, (settings.kafka_bootstrap or "").split(",")):
        named[f"EPIPE_KAFKA_BOOTSTRAP ({broker})"] = broker.rsplit(":", 1)[0]
    for setting, url in (("EPIPE_ES_URL", settings.es_url), ("EPIPE_HMS_URI", settings.hms_uri)):
        if url:
            named[setting] = urlsplit(url).hostname
    return {name: str(host) for name, host in named.items()}


def image_pinned(reference: str) -> bool:
    if "@sha256:" in reference:
        return True
    name = reference.rsplit("/", 1)[-1]
    return ":" in name and bool(PINNED_TAG.match(name.split(":", 1)[1]))


def dockerfile_stages(path: Path) -> list[tuple[str, str, list[str]]]:
    """(base image, stage name, instructions) per stage, with the ARG defaults declared
    before the first FROM put in."""
    lines = re.sub(r"\\\n", " ", path.read_text()).splitlines()
    instructions = [line.strip() for line in lines if line.strip() and line.strip()[0] != "#"]
    args: dict[str, str] = {}
    stages: list[tuple[str, str, list[str]]] = []
    for line in instructions:
        word, _, rest = line.partition(" ")
        if word.upper() == "ARG" and not stages and "=" in rest:
            key, value = rest.split("=", 1)
            args[key.strip()] = value.strip()
        elif word.upper() == "FROM":
            rest = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), rest)
            words = rest.split()
            alias = words[2] if len(words) > 2 and words[1].upper() == "AS" else ""
            stages.append((words[0], alias, []))
        elif stages:
            stages[-1][2].append(line)
    return stages


# -- the services --------------------------------------------------------------------------


def test_the_stack_has_every_service_epipe_expects() -> None:
    assert set(NEEDS) <= set(services()), f"missing: {sorted(set(NEEDS) - set(services()))}"
    consumers = {"consume-" + name for name in ("index", "hive", "provenance")}
    assert consumers <= set(epipe_services())


def test_each_epipe_service_runs_an_epipe_command_that_parses() -> None:
    for name, service in epipe_services().items():
        command = service["command"]
        assert command[0] == "epipe", name
        sub = cli.commands.get(command[1])
        assert sub is not None, f"{name}: epipe has no command {command[1]!r}"
        sub.make_context(command[1], list(command[2:]))  # raises on a bad option or argument
        if command[1] == "consume":
            assert name == f"consume-{command[2]}"
            assert command[2] in wiring.CONSUMERS


def test_the_api_listens_beyond_the_container_on_the_published_port() -> None:
    serve = services()["serve"]
    command = serve["command"]
    port = command[command.index("--port") + 1]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert any(mapping.endswith(f":{port}") for mapping in serve["ports"])
    assert f"http://127.0.0.1:{port}/healthz" in serve["healthcheck"]["test"]


@pytest.mark.parametrize("service", ["consume-index", "consume-provenance"])
def test_the_consumers_that_take_several_writers_can_be_scaled(service: str) -> None:
    """`--scale consume-index=N` (on Elasticsearch) and `--scale consume-provenance=N` (its
    graph is in PostgreSQL): no fixed container name, no host port."""
    consumer = services()[service]
    assert "container_name" not in consumer and "ports" not in consumer


# -- settings -------------------------------------------------------------------------------


def test_every_epipe_variable_is_a_setting_epipe_knows() -> None:
    dockerfile = "\n".join(
        line for line in DOCKERFILE.read_text().splitlines() if not line.startswith("#")
    )
    used = {name for text in strings(compose()) for name in EPIPE_NAME.findall(text)} | set(
        EPIPE_NAME.findall(dockerfile)
    )
    known = known_variables()
    assert {"EPIPE_DSN", "EPIPE_BUS", "EPIPE_ES_URL"} <= known  # derived, not empty
    unknown = sorted(used - known)
    hints = [
        name + "".join(f" (did you mean {m}?)" for m in difflib.get_close_matches(name, known, 1))
        for name in unknown
    ]
    assert not unknown, "not settings of epipe.settings.Settings: " + ", ".join(hints)


def test_each_epipe_service_gets_settings_epipe_accepts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    names = set(services())
    for name in epipe_services():
        settings = settings_of(name, monkeypatch, tmp_path)  # a bad value raises, naming it
        assert settings.dsn is not None, f"{name}: EPIPE_DSN unset (the embedded server?)"
        assert settings.bus == "kafka" and settings.kafka_bootstrap, f"{name}: not on Kafka"
        # tantivy has one writer in one container: scaling needs Elasticsearch
        assert settings.index == "elasticsearch" and settings.es_url, f"{name}: not on ES"
        assert settings.hms_uri and settings.hms_location_prefix, f"{name}: no metastore"
        for setting, host in hosts(settings).items():
            assert host in names, f"{name}: {setting} names {host!r}, not a service"


def test_every_epipe_service_reads_the_same_slot_database_and_topics(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen = {
        name: (s.dsn, s.slot, s.publication, s.kafka_bootstrap, s.es_url, s.hms_uri)
        for name in epipe_services()
        for s in [settings_of(name, monkeypatch, tmp_path)]
    }
    assert len(set(seen.values())) == 1, seen


# -- images, health, order, volumes ---------------------------------------------------------


def test_every_image_is_pinned_to_a_version() -> None:
    for name, service in services().items():
        assert "image" in service, f"{name} has no image (a built one needs its tag too)"
        assert image_pinned(service["image"]), f"{name}: {service['image']} is not pinned"
    for dockerfile in sorted(COMPOSE_DIR.rglob("Dockerfile")):
        earlier: set[str] = set()
        for base, alias, _ in dockerfile_stages(dockerfile):
            assert base in earlier or image_pinned(base), f"{dockerfile}: FROM {base} not pinned"
            earlier.add(alias)


def test_the_epipe_image_is_tagged_with_the_package_version() -> None:
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert version is not None
    for name, service in epipe_services().items():
        assert service["image"] == f"epipe:{version.group(1)}", name


def test_every_long_running_service_has_a_healthcheck() -> None:
    for name, service in services().items():
        if one_shot(service):
            continue
        check = service.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"


def test_epipe_health_checks_are_for_their_own_role() -> None:
    assert "/usr/local/bin/epipe-healthcheck" in DOCKERFILE.read_text()
    for name, service in epipe_services().items():
        if one_shot(service):
            continue
        test = (service.get("healthcheck") or {}).get("test", [])
        assert test[:2] == ["CMD", "epipe-healthcheck"], name
        if name.startswith("consume-"):
            assert test[2:] == ["consumer", name.removeprefix("consume-")]
        if name == "tail":
            assert test[2:] == ["tail"]


def test_services_start_in_order_of_what_they_need() -> None:
    everything = services()
    for name, service in everything.items():
        waits = depends_on(service)
        missing = NEEDS.get(name, set()) - set(waits)
        assert not missing, f"{name} does not wait for {sorted(missing)}"
        for target, condition in waits.items():
            assert target in everything, f"{name} depends on {target}, not a service"
            assert condition in CONDITIONS, f"{name} -> {target}: {condition}"
            if condition == "service_healthy":
                assert "healthcheck" in everything[target], f"{target} has no healthcheck"
            if condition == "service_completed_successfully":
                assert one_shot(everything[target]), f"{target} is not a one-shot service"
            # compose refuses a service whose dependency's profiles may all be off
            mine = set(service.get("profiles", []))
            theirs = set(everything[target].get("profiles", []))
            assert not theirs or mine & theirs, f"{name} may run without {target} ({theirs})"
    for name in epipe_services():
        if name != "init":
            assert depends_on(everything[name])["init"] == "service_completed_successfully"


def test_state_lives_in_named_volumes_and_bound_files_exist() -> None:
    declared = set(compose().get("volumes") or {})
    for name, service in services().items():
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (COMPOSE_DIR / source).is_file(), f"{name}: {source} does not exist"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
        build = service.get("build")
        if build:
            context = COMPOSE_DIR / build["context"]
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name
    for name in STATEFUL:
        mounts = [m.split(":", 1)[0] for m in services()[name].get("volumes", [])]
        assert set(mounts) & declared, f"{name} keeps its data in no named volume"


# -- the source: built-in tailer or Debezium ------------------------------------------------


def test_the_debezium_path_is_a_profile_apart_from_the_built_in_tailer() -> None:
    everything = services()
    assert everything["tail"]["profiles"] == ["postgres"]
    assert everything["connect"]["profiles"] == ["debezium"]
    assert everything["connect-register"]["profiles"] == ["debezium"]
    profiles = {p for service in everything.values() for p in service.get("profiles", [])}
    assert profiles == {"postgres", "debezium"}
    assert "COMPOSE_PROFILES=postgres" in (COMPOSE_DIR / ".env").read_text().splitlines()
    makefile = re.search(r"^STACK_PROFILES := (.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert makefile is not None and set(makefile.group(1).split(",")) == profiles  # make down


def test_the_connector_streams_the_slot_and_publication_epipe_uses(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    register = services()["connect-register"]
    [mount] = [m for m in register["volumes"] if m.split(":")[0].endswith(".json")]
    source, target = mount.split(":")[:2]
    assert f"@{target}" in register["command"]
    config = json.loads((COMPOSE_DIR / source).read_text())
    settings = settings_of("tail", monkeypatch, tmp_path)
    assert settings.dsn is not None
    dsn = conninfo_to_dict(settings.dsn.get_secret_value())

    assert config["connector.class"] == "io.debezium.connector.postgresql.PostgresConnector"
    assert config["plugin.name"] == "pgoutput"
    assert config["slot.name"] == settings.slot
    assert config["publication.name"] == settings.publication
    # with Debezium no epipe tailer runs to create the publication: the connector makes it,
    # for exactly the tables epipe captures (so the built-in tailer finds it complete)
    assert config["publication.autocreate.mode"] == "filtered"
    assert config["table.include.list"].split(",") == [f"public.{t}" for t in CAPTURED]
    assert config["database.hostname"] == dsn["host"]
    assert config["database.port"] == str(dsn.get("port", 5432))
    assert config["database.dbname"] == dsn["dbname"]
    assert config["database.user"] == dsn["user"]
    assert config["database.password"] == dsn["password"]


def test_with_debezium_the_consumers_read_the_connectors_topics_in_commit_order(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`make up SOURCE=debezium` sets EPIPE_BUS=connect; the consumers then read the topics
    the connector writes, and the connector writes what their reader needs."""
    from epipe.bus.connect import control, topics
    from epipe.source.envelope import MESSAGES

    makefile = (ROOT / "Makefile").read_text()
    assert "EPIPE_BUS=$(if $(filter debezium,$(SOURCE)),connect,kafka)" in makefile
    register = services()["connect-register"]
    [mount] = [m for m in register["volumes"] if m.split(":")[0].endswith(".json")]
    config = json.loads((COMPOSE_DIR / mount.split(":")[0]).read_text())
    for name in ("consume-index", "consume-provenance", "consume-hive"):
        assert settings_of(name, monkeypatch, tmp_path).bus == "kafka"
        settings = settings_of(name, monkeypatch, tmp_path, {"EPIPE_BUS": "connect"})
        assert settings.bus == "connect"
        assert settings.connect_topic_prefix == config["topic.prefix"]
    # markers and messages on one topic of one partition: log order (epipe/bus/reassembly.py)
    assert config["provide.transaction.metadata"] == "true"
    assert f"{config['topic.prefix']}.{config['topic.transaction']}" == control(
        config["topic.prefix"]
    )
    assert config["topic.creation.default.partitions"] == "1"
    assert control(config["topic.prefix"]) in topics(config["topic.prefix"])
    # reads and idle positions come through; pg_lsn and truncations too
    assert [
        re.sub(r"\\(.)", r"\1", p) for p in config["message.prefix.include.list"].split(",")
    ] == list(MESSAGES)
    assert "pg_logical_emit_message(false, 'epipe.position'" in config["heartbeat.action.query"]
    assert config["include.unknown.datatypes"] == "true"
    assert config["skipped.operations"] == "none"


# -- the image ------------------------------------------------------------------------------


def test_the_image_is_built_in_stages_and_runs_as_an_unprivileged_user() -> None:
    stages = dockerfile_stages(DOCKERFILE)
    assert len(stages) >= 2, "build the wheel in a stage of its own"
    base, _, runtime = stages[-1]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base)
    users = [line.split()[1] for line in runtime if line.upper().startswith("USER ")]
    assert users, "the runtime stage never leaves root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    installs = [line for _, _, lines in stages for line in lines if "pip install" in line]
    assert installs and not any("[" in line for line in installs), "no extras (dev, hms)"


# -- the health check script ----------------------------------------------------------------


@cache
def healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("healthcheck", COMPOSE_DIR / "healthcheck.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_tailer_is_healthy_while_its_slot_streams() -> None:
    problem = healthcheck().tail_problem
    assert problem({"slot": {"name": "epipe", "active": True}}) is None
    assert "not streaming" in problem({"slot": {"name": "epipe", "active": False}})
    assert "no replication slot" in problem({"slot": None})


def test_a_consumer_is_healthy_once_registered_and_not_waiting() -> None:
    problem = healthcheck().consumer_problem
    status = {"consumers": [{"name": "index", "waiting": None}, {"name": "hive", "waiting": "x"}]}
    assert problem(status, "index") is None
    assert problem(status, "hive") == "consumer hive waits: x"
    assert problem(status, "provenance") == "consumer provenance has not registered"
