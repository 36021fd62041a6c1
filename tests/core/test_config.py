from __future__ import annotations

from pathlib import Path

import pytest

from bidding.config import ConfigError, Settings


def test_embedded_defaults(tmp_path: Path) -> None:
    s = Settings.from_env(env={"SUNBID_INSTANCE_DIR": str(tmp_path)})
    assert s.database_url == f"sqlite:///{tmp_path / 'sunbid.db'}"
    assert s.storage_url == f"file://{tmp_path / 'objects'}"
    assert s.eager_tasks and s.is_sqlite
    # the secret is made once and kept
    again = Settings.from_env(env={"SUNBID_INSTANCE_DIR": str(tmp_path)})
    assert len(s.secret_key) >= 16 and s.secret_key == again.secret_key


def test_production_settings(tmp_path: Path) -> None:
    s = Settings.from_env(
        env={
            "SUNBID_INSTANCE_DIR": str(tmp_path),
            "SUNBID_DATABASE_URL": "postgresql+psycopg://u@db:5432/sunbid",
            "SUNBID_STORAGE_URL": "s3://key:secret@minio:9000/sunbid",
            "SUNBID_BROKER_URL": "redis://redis:6379/0",
            "SUNBID_SOCKETIO_QUEUE": "redis://redis:6379/1",
            "SUNBID_SWEEP_INTERVAL": "15",
            "SUNBID_SECURE_COOKIES": "true",
        }
    )
    assert not s.eager_tasks and not s.is_sqlite
    assert s.sweep_interval == 15 and s.secure_cookies is True


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"SUNBID_DATABASE_URL": "mysql://x/y"}, "SUNBID_DATABASE_URL"),
        ({"SUNBID_STORAGE_URL": "ftp://x/y"}, "SUNBID_STORAGE_URL"),
        ({"SUNBID_STORAGE_URL": "s3://k:s@host:9000/"}, "SUNBID_STORAGE_URL"),
        ({"SUNBID_BROKER_URL": "amqp://guest@x//"}, "SUNBID_BROKER_URL"),
        ({"SUNBID_SWEEP_INTERVAL": "soon"}, "SUNBID_SWEEP_INTERVAL"),
        ({"SUNBID_SECURE_COOKIES": "perhaps"}, "SUNBID_SECURE_COOKIES"),
        ({"SUNBID_SECRET_KEY": "short"}, "SUNBID_SECRET_KEY"),
        ({"SUNBID_DEFAULT_LOCALE": "fr"}, "SUNBID_DEFAULT_LOCALE"),
        ({"SUNBID_WORKER_MALLOC_RETAIN_MB": "lots"}, "SUNBID_WORKER_MALLOC_RETAIN_MB"),
        ({"SUNBID_WORKER_MALLOC_RETAIN_MB": "-1"}, "SUNBID_WORKER_MALLOC_RETAIN_MB"),
    ],
)
def test_invalid_setting_names_the_variable(
    tmp_path: Path, env: dict[str, str], variable: str
) -> None:
    env = {"SUNBID_INSTANCE_DIR": str(tmp_path), **env}
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env=env)
    message = str(info.value)
    assert message.startswith(variable)
    assert "\n" not in message


def test_cli_reports_invalid_setting_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "bidding.cli", "db", "upgrade"],
        env={
            "SUNBID_INSTANCE_DIR": str(tmp_path),
            "SUNBID_DATABASE_URL": "oracle://x",
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "SUNBID_DATABASE_URL" in lines[0]
