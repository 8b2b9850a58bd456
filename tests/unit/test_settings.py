from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from epipe.db.server import with_provenance
from epipe.errors import ConfigError
from epipe.settings import load_settings


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("EPIPE_HOME", "EPIPE_DSN", "EPIPE_BUS", "EPIPE_INDEX"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.home == Path(".epipe")
    assert settings.embedded
    assert settings.bus == "inprocess"
    assert settings.index == "tantivy"


def test_environment_wins_over_the_toml_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "epipe.toml").write_text('home = "/from/toml"\nbus = "kafka"\n')
    monkeypatch.setenv("EPIPE_HOME", "/from/env")
    monkeypatch.delenv("EPIPE_BUS", raising=False)
    settings = load_settings()
    assert settings.home == Path("/from/env")
    assert settings.bus == "kafka"


def test_a_bad_setting_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EPIPE_BUS", "rabbit")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "EPIPE_BUS" in message
    assert "rabbit" in message
    assert "\n" not in message


def test_the_dsn_is_a_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EPIPE_DSN", "postgresql://u:hunter2@db/x")
    settings = load_settings()
    assert not settings.embedded
    assert "hunter2" not in repr(settings)


def test_the_metastore_uri_must_be_a_thrift_uri(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EPIPE_HMS_URI", "http://hms:9083")
    with pytest.raises(ConfigError, match=r"^EPIPE_HMS_URI: .*thrift://"):
        load_settings()
    monkeypatch.setenv("EPIPE_HMS_URI", "thrift://hms:9083")
    monkeypatch.setenv("EPIPE_HMS_PORT", "9083")
    settings = load_settings()
    assert settings.hms_uri == "thrift://hms:9083"
    assert settings.hms_port == 9083
    assert settings.hms_location_prefix is None


def test_an_openlineage_url_must_be_http_and_an_instance_a_plain_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EPIPE_OPENLINEAGE_URL", "http://marquez:5000")
    monkeypatch.setenv("EPIPE_INSTANCE", "lab-fs.eu:1")
    settings = load_settings()
    assert (settings.openlineage_url, settings.instance) == ("http://marquez:5000", "lab-fs.eu:1")
    for name, value in (("EPIPE_OPENLINEAGE_URL", "marquez:5000"), ("EPIPE_INSTANCE", "a/b")):
        monkeypatch.setenv(name, value)
        with pytest.raises(ConfigError) as caught:
            load_settings()
        assert str(caught.value).startswith(name)
        monkeypatch.delenv(name)


def test_provenance_is_on_unless_set_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EPIPE_PROVENANCE", raising=False)
    assert load_settings().provenance == "on"
    monkeypatch.setenv("EPIPE_PROVENANCE", "off")
    assert load_settings().provenance == "off"
    monkeypatch.setenv("EPIPE_PROVENANCE", "maybe")
    with pytest.raises(ConfigError, match=r"^EPIPE_PROVENANCE: .*'on' or 'off'.*'maybe'"):
        load_settings()


def test_the_provenance_setting_goes_into_the_dsn_options_once() -> None:
    dsn = "host=/run/pg port=5432 user=epipe dbname=epipe options='-c work_mem=8MB'"
    off = with_provenance(with_provenance(dsn, "on"), "off")
    assert conninfo_to_dict(off)["options"] == "-c work_mem=8MB -c epipe.provenance=off"
    url = with_provenance("postgresql://u:pw@db/meta", "on")
    assert conninfo_to_dict(url) == {
        "user": "u", "password": "pw", "host": "db", "dbname": "meta",
        "options": "-c epipe.provenance=on",
    }  # fmt: skip


def test_kafka_names_and_group_timeouts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("PREFIX", "SESSION_TIMEOUT_MS", "HEARTBEAT_INTERVAL_MS"):
        monkeypatch.delenv(f"EPIPE_KAFKA_{name}", raising=False)
    settings = load_settings()
    assert settings.kafka_prefix == ""  # topics epipe.fs and epipe.prov, groups by consumer
    assert (settings.kafka_session_timeout_ms, settings.kafka_heartbeat_interval_ms) == (
        10_000,
        3000,
    )
    monkeypatch.setenv("EPIPE_KAFKA_PREFIX", "lab-2.")
    monkeypatch.setenv("EPIPE_KAFKA_SESSION_TIMEOUT_MS", "6000")
    monkeypatch.setenv("EPIPE_KAFKA_HEARTBEAT_INTERVAL_MS", "2000")
    settings = load_settings()
    assert settings.kafka_prefix == "lab-2."
    assert (settings.kafka_session_timeout_ms, settings.kafka_heartbeat_interval_ms) == (6000, 2000)
    monkeypatch.setenv("EPIPE_KAFKA_PREFIX", "a/b")  # not a character of a topic name
    with pytest.raises(ConfigError, match=r"^EPIPE_KAFKA_PREFIX: "):
        load_settings()
    monkeypatch.delenv("EPIPE_KAFKA_PREFIX")
    monkeypatch.setenv("EPIPE_KAFKA_HEARTBEAT_INTERVAL_MS", "6000")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value) == (
        "EPIPE_KAFKA_HEARTBEAT_INTERVAL_MS (6000) must be below "
        "EPIPE_KAFKA_SESSION_TIMEOUT_MS (6000)"
    )
