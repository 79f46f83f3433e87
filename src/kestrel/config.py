"""The server's TOML configuration: parsing, validation and per-queue inheritance.

A queue's settings resolve as built-in defaults -> ``[default]`` -> ``[queues.NAME]``
-> ``[queues."NAME+CHILD"]`` (Kestrel 2.3.4+): a fanout child starts from its
master's resolved settings.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from types import MappingProxyType

from kestrel.sqs.apps import App, open_mode_allowed

Parser = Callable[[object], object]

MAX_QUEUE_NAME_BYTES = 250
STATUSES = ("up", "readonly", "quiescent", "writeavoid")

_SIZE = re.compile(r"([0-9]+)\s*(?:([kmgt])(?:i?b)?|b)?", re.IGNORECASE)
_SIZE_UNITS = {None: 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}

_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*(ms|s|min|m|h|d)?", re.IGNORECASE)
# Decimal so that "100ms" becomes exactly the float 0.1.
_DURATION_UNITS = {
    None: Decimal(1),
    "ms": Decimal("0.001"),
    "s": Decimal(1),
    "m": Decimal(60),
    "min": Decimal(60),
    "h": Decimal(3600),
    "d": Decimal(86400),
}

_BARE_TOML_KEY = re.compile(r"[A-Za-z0-9_-]+")
# An access key id: SigV4's Credential=KEY/DATE/... ends it at the first '/', the header at ','.
_ACCESS_KEY = re.compile(r"[A-Za-z0-9_.-]{1,128}")
# A browser's Origin header: scheme://host[:port], nothing after it.
_ORIGIN = re.compile(r"https?://[^/?#\s]+")


class ConfigError(Exception):
    """
    Settings that cannot be used, of a config file or given to a queue at run time; the
    message is one line naming the source, the table and the key.
    """


def _is_integer(value: object) -> bool:
    # TOML booleans arrive as bool, which is a subclass of int.
    return isinstance(value, int) and not isinstance(value, bool)


def parse_size(value: object) -> int:
    """Bytes from an int or a string such as "16MB", "512 KiB" or "1024" (units are powers of 1024)."""
    if _is_integer(value) and value >= 0:
        return value
    if isinstance(value, str) and (match := _SIZE.fullmatch(value.strip())):
        unit = match[2].lower() if match[2] else None
        return int(match[1]) * _SIZE_UNITS[unit]
    raise ValueError(f"expected a size in bytes such as 1024 or '16MB', got {value!r}")


def parse_duration(value: object) -> float | None:
    """Seconds from a number or a string such as "100ms", "30s", "5min", "1h", "2d"; "never" is None."""
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == "never":
            return None
        if match := _DURATION.fullmatch(text):
            unit = match[2].lower() if match[2] else None
            return float(Decimal(match[1]) * _DURATION_UNITS[unit])
    elif (_is_integer(value) or isinstance(value, float)) and math.isfinite(value) and value >= 0:
        return float(value)
    raise ValueError(f"expected a duration such as '30s', '100ms', 0 or 'never', got {value!r}")


def _queue_name_problem(name: str) -> str | None:
    if not name:
        return "empty"
    for char in name:
        if char in "./~" or char.isspace() or not char.isprintable():
            return f"{char!r} is not allowed"
    if name.startswith("+") or name.endswith("+") or name.count("+") > 1:
        return "'+' may only separate a master from one fanout child"
    if len(name.encode()) > MAX_QUEUE_NAME_BYTES:
        return f"longer than {MAX_QUEUE_NAME_BYTES} bytes"
    return None


def validate_queue_name(name: str) -> None:
    """Raise ValueError unless ``name`` can name a queue (and its journal file)."""
    problem = _queue_name_problem(name)
    if problem is not None:
        raise ValueError(f"queue name contains illegal characters: {name!r} ({problem})")


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """One queue's settings; durations are seconds, None meaning never / no limit."""

    max_items: int = 2**31 - 1
    max_size: int = 2**63 - 1
    max_item_size: int = 2**63 - 1
    max_age: float | None = None
    default_journal_size: int = 16 * 1024**2
    max_memory_size: int = 128 * 1024**2
    max_journal_size: int = 1024**3
    min_journal_compact_delay: float | None = 60.0
    discard_old_when_full: bool = False
    keep_journal: bool = True
    sync_journal: float | None = None  # None = never fsync; 0.0 = every batch; > 0 = period
    expire_to_queue: str | None = None
    max_expire_sweep: int = 2**31 - 1
    fanout_only: bool = False
    max_queue_age: float | None = None
    disable_aggressive_rewrites: bool = False
    open_transaction_timeout: float | None = None
    # An item a reliable read has handed out this many times moves to dead_letter_queue (or,
    # without one, is dropped) instead of going out again: doc/configuration.md.
    max_deliveries: int | None = None
    dead_letter_queue: str | None = None
    # How long the queue's history keeps each item after its add (doc/history.md); None: no history.
    retain: float | None = None
    # Thrift client ids (Finagle's) allowed to add / to remove; None lets everyone.
    whitelist_client_id_for_enqueue: tuple[str, ...] | None = None
    whitelist_client_id_for_dequeue: tuple[str, ...] | None = None


def _frozen_overrides(overrides: Mapping[str, Mapping[str, object]]) -> Mapping[str, Mapping[str, object]]:
    return MappingProxyType({name: MappingProxyType(dict(options)) for name, options in overrides.items()})


def _frozen_aliases(aliases: Mapping[str, tuple[str, ...]]) -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType({name: tuple(destinations) for name, destinations in aliases.items()})


@dataclass(frozen=True)
class ServerConfig:
    """The whole server's settings; immutable, so a reload builds a new one."""

    queue_path: str
    config_path: str | None = None
    # Loopback unless the config names an interface: a queue server has no authentication.
    memcache_listen: str = "tcp:22133:interface=127.0.0.1"
    text_listen: str = "tcp:2222:interface=127.0.0.1"
    thrift_listen: str = "tcp:2229:interface=127.0.0.1"
    admin_listen: str = "tcp:2223:interface=127.0.0.1"
    max_open_transactions: int = 1
    # None: derived from RLIMIT_NOFILE at start (kestrel.journal.writer.default_max_open_journals).
    max_open_journals: int | None = None
    expiration_timer_frequency: float | None = None
    client_timeout: float | None = None
    status_file: str | None = None
    default_status: str = "up"
    status_change_grace_period: float = 0.0
    connection_limit_refuse_writes: int | None = None
    connection_limit_refuse_reads: int | None = None
    max_connections: int | None = None
    max_line_length: int = 8192
    max_value_size: int = 64 * 1024**2
    max_output_buffer: int = 1024**2
    memcache_flush_all_reply: str = "kestrel"
    # Listings of every queue (stats, dump_stats, /stats.json, /metrics) stay bounded with a
    # million queues: above stats_queue_limit a listing gives totals, and /metrics labels only
    # the deepest metrics_top_queues and those under metrics_queue_prefixes.
    stats_queue_limit: int = 1000
    metrics_top_queues: int = 100
    metrics_queue_prefixes: tuple[str, ...] = ()
    manhole_listen: str = ""
    manhole_authorized_keys: str | None = None
    # ZooKeeper server sets (doc/fleet.md): off while no hosts are named.
    zookeeper_hosts: str = ""
    zookeeper_path_prefix: str = ""
    zookeeper_session_timeout: float = 10.0
    zookeeper_advertise_host: str | None = None
    # The SQS-compatible API (doc/sqs.md): off while sqs_listen is "".
    sqs_listen: str = ""
    sqs_cors_origins: tuple[str, ...] = ()
    apps: Mapping[str, App] = field(default_factory=dict)
    default_queue: QueueConfig = QueueConfig()
    queue_overrides: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    _resolved: dict[str, QueueConfig] = field(default_factory=dict, init=False, repr=False, compare=False)
    # Whether any queue has a client-id whitelist: the request path looks no further when none does.
    has_whitelists: bool = field(default=False, init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "queue_overrides", _frozen_overrides(self.queue_overrides))
        object.__setattr__(self, "aliases", _frozen_aliases(self.aliases))
        object.__setattr__(self, "apps", MappingProxyType(dict(self.apps)))
        object.__setattr__(self, "has_whitelists", any(
            getattr(self.default_queue, key) is not None
            or any(override.get(key) is not None for override in self.queue_overrides.values())
            for key in WHITELISTS
        ))

    def queue_config(self, name: str) -> QueueConfig:
        """The resolved settings of queue ``name``, configured or not."""
        resolved = self._resolved.get(name)
        if resolved is None:
            master, plus, _child = name.partition("+")
            parent = self.queue_config(master) if plus else self.default_queue
            resolved = layered_queue_config(name, parent, self.queue_overrides.get(name, {}))
            if resolved is not self.default_queue:
                # Only the configs that differ are kept: a million queues of the default
                # would keep a million entries, for a lookup that costs less than one.
                self._resolved[name] = resolved
        return resolved


def _count(value: object) -> int:
    if _is_integer(value) and value >= 0:
        return value
    raise ValueError(f"expected a non-negative integer, got {value!r}")


def _positive_count(value: object) -> int:
    if _is_integer(value) and value >= 1:
        return value
    raise ValueError(f"expected a positive integer, got {value!r}")


def _boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError(f"expected true or false, got {value!r}")


def _flush_all_reply(value: object) -> str:
    if value in ("kestrel", "memcached"):
        return value
    raise ValueError(f'expected "kestrel" (Kestrel\'s reply) or "memcached" (OK), got {value!r}')


def _string(value: object) -> str:
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a string, got {value!r}")


def _endpoint(value: object) -> str:
    """A strports server description, parsed but not listened on; "" turns the listener off."""
    description = _string(value)
    if not description:
        return description
    if description.startswith("systemd:"):
        return _systemd_endpoint(description)
    from twisted.internet.endpoints import serverFromString  # slow to import: only when needed

    try:
        # Parsing builds the endpoint object only, so it needs no reactor: nothing binds yet.
        endpoint = serverFromString(None, description)
    except Exception as err:  # the parsers, and endpoint plugins, raise what they like
        raise ValueError(
            f"expected an endpoint such as 'tcp:22133' or 'unix:/path', got {description!r} ({err})"
        ) from None
    # A TCP endpoint takes any integer as its port and fails only when it binds.
    port = getattr(endpoint, "_port", None)
    if isinstance(port, int) and not 0 <= port <= 65535:
        raise ValueError(f"expected a TCP port from 0 to 65535, got {description!r}")
    return description


def _systemd_endpoint(description: str) -> str:
    """
    A socket passed by systemd (`systemd:domain=INET:index=0`). Twisted's parser takes the
    socket from the environment as it parses, so it is checked here by its form only; the
    listener takes it at start.
    """
    options = dict(part.partition("=")[::2] for part in description.split(":")[1:])
    if options.get("domain") not in ("INET", "INET6", "UNIX") or not options.get("index", "").isdigit():
        raise ValueError(f"expected a systemd socket such as 'systemd:domain=INET:index=0', got {description!r}")
    return description


def _finite_duration(value: object) -> float:
    seconds = parse_duration(value)
    if seconds is None:
        raise ValueError(f"expected a finite duration, got {value!r}")
    return seconds


def _strings(value: object, example: str) -> tuple[str, ...]:
    """A list of non-empty strings; ``example`` says what they are, in the error."""
    if isinstance(value, list) and all(isinstance(each, str) and each for each in value):
        return tuple(value)
    raise ValueError(f"expected a list of {example}, got {value!r}")


def _retention(value: object) -> float | None:
    """A duration; 0 and "never" both mean no history."""
    return parse_duration(value) or None


_client_ids = partial(_strings, example='client ids such as ["billing", "reports"]')


def _queue_name(value: object) -> str:
    name = _string(value)
    validate_queue_name(name)
    return name


def _status(value: object) -> str:
    status = _string(value).lower()
    if status not in STATUSES:
        raise ValueError(f"expected one of {', '.join(STATUSES)}, got {value!r}")
    return status


def _absolute_path(value: object, base_dir: str) -> str:
    path = _string(value)
    if not path:
        raise ValueError("expected a path, got ''")
    return os.path.abspath(os.path.join(base_dir, path))


def _alias_destinations(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(name, str) for name in value):
        raise ValueError(f"expected a non-empty list of queue names, got {value!r}")
    for name in value:
        validate_queue_name(name)
    return tuple(value)


QUEUE_OPTION_PARSERS: Mapping[str, Parser] = MappingProxyType(
    {
        "max_items": _count,
        "max_size": parse_size,
        "max_item_size": parse_size,
        "max_age": parse_duration,
        "default_journal_size": parse_size,
        "max_memory_size": parse_size,
        "max_journal_size": parse_size,
        "min_journal_compact_delay": parse_duration,
        "discard_old_when_full": _boolean,
        "keep_journal": _boolean,
        "sync_journal": parse_duration,
        "expire_to_queue": _queue_name,
        "max_expire_sweep": _count,
        "fanout_only": _boolean,
        "max_queue_age": parse_duration,
        "disable_aggressive_rewrites": _boolean,
        "open_transaction_timeout": parse_duration,
        "max_deliveries": _positive_count,
        "dead_letter_queue": _queue_name,
        "retain": _retention,
        "whitelist_client_id_for_enqueue": _client_ids,
        "whitelist_client_id_for_dequeue": _client_ids,
    }
)
WHITELISTS = ("whitelist_client_id_for_enqueue", "whitelist_client_id_for_dequeue")


def server_option_parsers(base_dir: str) -> dict[str, Parser]:
    """Parsers for the ``[server]`` table; paths resolve against ``base_dir``."""
    path = partial(_absolute_path, base_dir=base_dir)
    return {
        "queue_path": path,
        "memcache_listen": _endpoint,
        "text_listen": _endpoint,
        "thrift_listen": _endpoint,
        "admin_listen": _endpoint,
        "max_open_transactions": _positive_count,
        "max_open_journals": _positive_count,
        "expiration_timer_frequency": parse_duration,
        "client_timeout": parse_duration,
        "status_file": path,
        "default_status": _status,
        "status_change_grace_period": _finite_duration,
        "connection_limit_refuse_writes": _count,
        "connection_limit_refuse_reads": _count,
        "max_connections": _count,
        "max_line_length": parse_size,
        "max_value_size": parse_size,
        "max_output_buffer": parse_size,
        "memcache_flush_all_reply": _flush_all_reply,
        "stats_queue_limit": _count,
        "metrics_top_queues": _count,
        "metrics_queue_prefixes": _queue_prefixes,
        "sqs_listen": _endpoint,
        "sqs_cors_origins": _cors_origins,
    }


def manhole_option_parsers(base_dir: str) -> dict[str, Parser]:
    """Parsers for the ``[manhole]`` table, whose keys become ``manhole_<key>`` fields."""
    return {"listen": _endpoint, "authorized_keys": partial(_absolute_path, base_dir=base_dir)}


def _zookeeper_hosts(value: object) -> str:
    """`host:port[,host:port...]`, the ensemble kazoo connects to (the path prefix is a key of its own)."""
    hosts = _string(value)
    for host in hosts.split(","):
        name, colon, port = host.strip().rpartition(":")
        if not (name and colon and port.isdigit() and 0 < int(port) <= 65535) or "/" in host:
            raise ValueError(f"expected 'host:port' or 'host:port,host:port', got {value!r}")
    return ",".join(host.strip() for host in hosts.split(","))


def _zookeeper_path(value: object) -> str:
    path = _string(value)
    if not path.startswith("/") or path.endswith("/") or "//" in path:
        raise ValueError(f"expected an absolute ZooKeeper path such as '/kestrel/prod', got {value!r}")
    return path


def _positive_duration(value: object) -> float:
    seconds = _finite_duration(value)
    if seconds <= 0:
        raise ValueError(f"expected a duration above 0, got {value!r}")
    return seconds


def _host(value: object) -> str:
    host = _string(value).strip()
    if not host or any(character.isspace() or character in "/," for character in host):
        raise ValueError(f"expected a host name or address, got {value!r}")
    return host


ZOOKEEPER_OPTION_PARSERS: Mapping[str, Parser] = MappingProxyType(
    {
        "hosts": _zookeeper_hosts,
        "path_prefix": _zookeeper_path,
        "session_timeout": _positive_duration,
        "advertise_host": _host,
    }
)


def _parse_zookeeper(table: Mapping[str, object], source: str) -> dict[str, object]:
    """The ``[zookeeper]`` table as ``zookeeper_<key>`` fields; a table there needs hosts and path_prefix."""
    zookeeper = _parse_table(table, ZOOKEEPER_OPTION_PARSERS, source, "zookeeper")
    if zookeeper:
        for required in ("hosts", "path_prefix"):
            if required not in zookeeper:
                raise _config_error(source, "zookeeper", required, "missing (required when [zookeeper] is there)")
    return {f"zookeeper_{key}": value for key, value in zookeeper.items()}


def _queue_prefixes(value: object) -> tuple[str, ...]:
    """Queue-name prefixes, each non-empty (an empty one would match every queue)."""
    if isinstance(value, list) and all(isinstance(prefix, str) and prefix for prefix in value):
        return tuple(value)
    raise ValueError(f'expected a list of queue-name prefixes such as ["jobs_", "audit"], got {value!r}')


def _cors_origins(value: object) -> tuple[str, ...]:
    """Origins whose pages may call the SQS API; lower case, as browsers send them."""
    if isinstance(value, list) and all(isinstance(origin, str) and (origin == "*" or _ORIGIN.fullmatch(origin)) for origin in value):
        return tuple(origin.lower() for origin in value)
    raise ValueError(f'expected a list of origins such as ["https://app.example.com"], or ["*"] for any, got {value!r}')


def _access_key(value: object) -> str:
    key = _string(value)
    if not _ACCESS_KEY.fullmatch(key):
        raise ValueError(f"expected an access key id of 1 to 128 letters, digits, '_', '-' or '.', got {value!r}")
    return key


def _secret(value: object) -> bytes:
    # The message never shows the value: it is, or was meant to be, a secret.
    if not isinstance(value, str) or not value:
        raise ValueError("expected a non-empty string (the value is not shown)")
    return value.encode()


def _secret_file(value: object, base_dir: str) -> bytes:
    """The secret in a file, without the line end an editor leaves after it."""
    path = _absolute_path(value, base_dir)
    try:
        with open(path, "rb") as file:
            secret = file.read().rstrip(b"\r\n")
    except OSError as err:
        raise ValueError(f"cannot read {path}: {err.strerror}") from None
    if not secret:
        raise ValueError(f"{path} holds no secret")
    return secret


_queue_patterns = partial(_strings, example='queue-name patterns such as ["billing-*", "audit"]')


def app_option_parsers(base_dir: str) -> dict[str, Parser]:
    """Parsers for an ``[apps.NAME]`` table; a secret file's path resolves against ``base_dir``."""
    return {
        "access_key": _access_key,
        "secret": _secret,
        "secret_file": partial(_secret_file, base_dir=base_dir),
        "read": _queue_patterns,
        "write": _queue_patterns,
        "admin": _queue_patterns,
    }


def _parse_apps(apps: Mapping[str, object], source: str, base_dir: str) -> dict[str, App]:
    """The ``[apps.NAME]`` tables: each needs an access key no other app has, and one of secret and secret_file."""
    parsers = app_option_parsers(base_dir)
    parsed: dict[str, App] = {}
    owners: dict[str, str] = {}
    for name, table in apps.items():
        if not isinstance(table, dict):
            # Without the value: a secret written one line too high would be in the message.
            raise _config_error(source, "apps", name, "expected a table such as [apps.billing]")
        table_name = f"apps.{_toml_key(name)}"
        options = _parse_table(table, parsers, source, table_name)
        if "access_key" not in options:
            raise _config_error(source, table_name, "access_key", "missing (required)")
        secrets = [options.pop(key) for key in ("secret", "secret_file") if key in options]
        if len(secrets) != 1:
            raise _config_error(source, table_name, "secret", "expected exactly one of secret and secret_file")
        access_key = options["access_key"]
        if access_key in owners:
            raise _config_error(
                source, table_name, "access_key", f"{access_key!r} is already the access key of [apps.{_toml_key(owners[access_key])}]"
            )
        owners[access_key] = name
        parsed[name] = App(name=name, secret=secrets[0], **options)
    return parsed


def _check_open_mode(config: ServerConfig, source: str) -> None:
    """Without applications the SQS API accepts any signature, so it may listen only where no other machine reaches it."""
    if config.sqs_listen and not config.apps and not open_mode_allowed(config.sqs_listen):
        raise _config_error(
            source, "server", "sqs_listen",
            f"{config.sqs_listen!r} serves other machines, and with no [apps.NAME] table the SQS API accepts any signature: "
            "add applications or listen on loopback (e.g. 'tcp:9324:interface=127.0.0.1')",
        )


_TABLES = ("server", "manhole", "zookeeper", "default", "queues", "aliases", "apps")


def _toml_key(key: str) -> str:
    return key if _BARE_TOML_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)


def _config_error(source: str, table: str, key: str, reason: str) -> ConfigError:
    return ConfigError(f"{source}: [{table}] {_toml_key(key)}: {reason}")


# The table and key that set each listener's endpoint, by ServerConfig field.
LISTEN_OPTIONS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "memcache_listen": ("server", "memcache_listen"),
        "text_listen": ("server", "text_listen"),
        "thrift_listen": ("server", "thrift_listen"),
        "admin_listen": ("server", "admin_listen"),
        "manhole_listen": ("manhole", "listen"),
        "sqs_listen": ("server", "sqs_listen"),
    }
)


def option_error(config: ServerConfig, table: str, key: str, reason: str) -> ConfigError:
    """What is wrong with an option found only at start, worded like any bad value."""
    return _config_error(config.config_path or "<config>", table, key, reason)


def listen_error(config: ServerConfig, field: str, reason: str) -> ConfigError:
    """What is wrong with a listener's endpoint (``field`` of LISTEN_OPTIONS)."""
    return option_error(config, *LISTEN_OPTIONS[field], reason)


def _parse_table(
    table: Mapping[str, object], parsers: Mapping[str, Parser], source: str, table_name: str
) -> dict[str, object]:
    parsed = {}
    for key, value in table.items():
        parser = parsers.get(key)
        if parser is None:
            raise _config_error(source, table_name, key, "unknown option")
        try:
            parsed[key] = parser(value)
        except ValueError as err:
            raise _config_error(source, table_name, key, str(err)) from None
    return parsed


def _top_level_tables(document: Mapping[str, object], source: str) -> dict[str, Mapping[str, object]]:
    for name, value in document.items():
        if name not in _TABLES:
            raise ConfigError(f"{source}: [{_toml_key(name)}]: unknown table")
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {name}: expected a table, got {value!r}")
    return {name: document.get(name, {}) for name in _TABLES}


def _parse_queue_overrides(queues: Mapping[str, object], source: str) -> dict[str, dict[str, object]]:
    overrides = {}
    for name, table in queues.items():
        try:
            validate_queue_name(name)
        except ValueError as err:
            raise _config_error(source, "queues", name, str(err)) from None
        if not isinstance(table, dict):
            raise _config_error(source, "queues", name, f"expected a table, got {table!r}")
        overrides[name] = parse_queue_settings(name, table, source)
    return overrides


def parse_queue_settings(name: str, settings: Mapping[str, object], source: str) -> dict[str, object]:
    """
    The settings of queue `name` (a ``[queues.NAME]`` table, or settings given at run time),
    parsed; ConfigError names the first bad key.
    """
    parsed = _parse_table(settings, QUEUE_OPTION_PARSERS, source, f"queues.{_toml_key(name)}")
    if parsed.get("dead_letter_queue") == name:
        raise queue_setting_error(source, name, "dead_letter_queue", "a queue cannot be its own dead-letter queue")
    return parsed


def queue_setting_error(source: str, name: str, key: str, reason: str) -> ConfigError:
    """What is wrong with setting `key` of queue `name`, worded like any bad value."""
    return _config_error(source, f"queues.{_toml_key(name)}", key, reason)


def layered_queue_config(name: str, base: QueueConfig, settings: Mapping[str, object]) -> QueueConfig:
    """
    Queue `name`'s settings: parsed `settings` laid over `base`. A `dead_letter_queue`
    that names the queue itself can only be inherited (from ``[default]``, when it names the
    dead-letter queue of the others): that queue then dead-letters nothing.
    """
    config = dataclasses.replace(base, **settings) if settings else base
    if config.dead_letter_queue == name:
        config = dataclasses.replace(config, dead_letter_queue=None, max_deliveries=None)
    return config


def _parse_aliases(aliases: Mapping[str, object], source: str) -> dict[str, tuple[str, ...]]:
    parsed = {}
    for name, destinations in aliases.items():
        try:
            validate_queue_name(name)
            parsed[name] = _alias_destinations(destinations)
        except ValueError as err:
            raise _config_error(source, "aliases", name, str(err)) from None
    return parsed


def parse_config(document: dict, path: str | None, base_dir: str) -> ServerConfig:
    """Build a ServerConfig from a parsed TOML document read from ``path`` (None if not from a file)."""
    source = path if path is not None else "<config>"
    tables = _top_level_tables(document, source)
    server = _parse_table(tables["server"], server_option_parsers(base_dir), source, "server")
    if "queue_path" not in server:
        raise _config_error(source, "server", "queue_path", "missing (required)")
    manhole = _parse_table(tables["manhole"], manhole_option_parsers(base_dir), source, "manhole")
    default = _parse_table(tables["default"], QUEUE_OPTION_PARSERS, source, "default")
    config = ServerConfig(
        **server,
        **{f"manhole_{key}": value for key, value in manhole.items()},
        **_parse_zookeeper(tables["zookeeper"], source),
        config_path=os.path.abspath(path) if path is not None else None,
        default_queue=QueueConfig(**default),
        queue_overrides=_parse_queue_overrides(tables["queues"], source),
        aliases=_parse_aliases(tables["aliases"], source),
        apps=_parse_apps(tables["apps"], source, base_dir),
    )
    _check_open_mode(config, source)
    return config


def load_config(path: str) -> ServerConfig:
    """Read and validate the TOML file at ``path``; relative paths in it resolve against its directory."""
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as err:
        raise ConfigError(f"{path}: {err.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: {err}") from None
    return parse_config(document, path, os.path.dirname(os.path.abspath(path)))
