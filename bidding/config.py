"""Settings (配置) from ``SUNBID_*`` environment variables with embedded defaults.

One configuration object serves both runtimes:

* embedded (default): SQLite under ``instance/``, a local-directory object store under
  ``instance/``, Celery in eager mode and an in-process clock thread;
* production: PostgreSQL, MinIO (S3), Redis broker and Socket.IO message queue, Celery
  workers and beat as separate processes.

An invalid value stops start-up with :class:`ConfigError`, whose message is one line that
names the variable.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PREFIX = "SUNBID_"


class ConfigError(Exception):
    """A setting is missing or invalid; the message names the variable."""


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{PREFIX}{name}: expected true/false, got {raw!r}")


def _int(name: str, raw: str, *, minimum: int = 0) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name}: expected an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{PREFIX}{name}: must be at least {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    """Validated platform settings. Build with :meth:`from_env`."""

    instance_dir: Path = Path("instance")
    secret_key: str = ""
    database_url: str = ""
    storage_url: str = ""
    broker_url: str = ""  # empty = Celery eager mode (embedded)
    socketio_queue: str = ""  # empty = single-process Socket.IO
    embedded_clock: bool = True  # run the sweep in an in-process thread
    sweep_interval: int = 30  # seconds between sweeps
    token_ttl: int = 8 * 3600  # API bearer token lifetime, seconds
    login_max_attempts: int = 10  # per account (and per address x 3) per window
    login_window: int = 60  # seconds
    max_body_mb: int = 64  # largest request body accepted through the app
    default_locale: str = "zh_CN"
    secure_cookies: bool = False
    proxy_hops: int = 0  # reverse proxies in front (X-Forwarded-For/-Proto trusted)
    signing_key_path: str = ""  # platform Ed25519 key (PEM); default under instance/
    worker_malloc_retain_mb: int = 128  # free heap a worker process keeps (bidding.core.memory)
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if env is None else env
        raw = {k[len(PREFIX) :].lower(): v for k, v in env.items() if k.startswith(PREFIX)}
        raw.update({k: v for k, v in overrides.items() if isinstance(v, str)})
        typed = {k: v for k, v in overrides.items() if not isinstance(v, str)}

        instance_dir = Path(raw.pop("instance_dir", typed.pop("instance_dir", "instance")))
        instance_dir = instance_dir.resolve()
        values: dict[str, Any] = {"instance_dir": instance_dir}
        known = {f.name for f in fields(cls)} - {"instance_dir", "extra"}
        for f in fields(cls):
            if f.name not in known:
                continue
            if f.name in typed:
                values[f.name] = typed.pop(f.name)
                continue
            if f.name not in raw:
                continue
            text = raw.pop(f.name)
            name = f.name.upper()
            if f.type == "bool":
                values[f.name] = _bool(name, text)
            elif f.type == "int":
                values[f.name] = _int(name, text)
            else:
                values[f.name] = text
        if typed:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(typed))}")
        values["extra"] = {k: v for k, v in raw.items() if k not in {"require_services"}}

        if not values.get("database_url"):
            values["database_url"] = f"sqlite:///{instance_dir / 'sunbid.db'}"
        if not values.get("storage_url"):
            values["storage_url"] = f"file://{instance_dir / 'objects'}"
        if not values.get("secret_key"):
            values["secret_key"] = _instance_secret(instance_dir)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.worker_malloc_retain_mb < 0:
            raise ConfigError(f"{PREFIX}WORKER_MALLOC_RETAIN_MB: must be 0 (off) or more MiB")
        db = urlsplit(self.database_url)
        if db.scheme not in {"sqlite", "postgresql", "postgresql+psycopg"}:
            raise ConfigError(
                f"{PREFIX}DATABASE_URL: expected sqlite:///… or postgresql+psycopg://…, "
                f"got scheme {db.scheme!r}"
            )
        st = urlsplit(self.storage_url)
        if st.scheme not in {"file", "s3", "s3+http", "s3+https"}:
            raise ConfigError(
                f"{PREFIX}STORAGE_URL: expected file:///dir or s3://KEY:SECRET@host:port/bucket, "
                f"got scheme {st.scheme!r}"
            )
        if st.scheme.startswith("s3") and not (st.hostname and st.path.strip("/")):
            raise ConfigError(f"{PREFIX}STORAGE_URL: s3 URL needs host and bucket")
        for name in ("broker_url", "socketio_queue"):
            value = getattr(self, name)
            if value and urlsplit(value).scheme not in {"redis", "rediss", "memory"}:
                raise ConfigError(f"{PREFIX}{name.upper()}: expected redis://host:port/db")
        if len(self.secret_key) < 16:
            raise ConfigError(f"{PREFIX}SECRET_KEY: must be at least 16 characters")
        if self.default_locale not in {"zh_CN", "en"}:
            raise ConfigError(f"{PREFIX}DEFAULT_LOCALE: expected zh_CN or en")
        if self.sweep_interval < 1:
            raise ConfigError(f"{PREFIX}SWEEP_INTERVAL: must be at least 1 second")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def eager_tasks(self) -> bool:
        return not self.broker_url


def _instance_secret(instance_dir: Path) -> str:
    """A per-installation secret kept in ``instance/secret_key`` (made on first start)."""
    path = instance_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    path.write_text(value)
    path.chmod(0o600)
    return value
