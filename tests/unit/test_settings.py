from pathlib import Path

import pytest

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
