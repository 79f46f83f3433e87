import dataclasses
import os
import subprocess
import sys
import tomllib

import pytest

from kestrel.config import (
    QUEUE_OPTION_PARSERS,
    LISTEN_OPTIONS,
    ZOOKEEPER_OPTION_PARSERS,
    ConfigError,
    QueueConfig,
    ServerConfig,
    load_config,
    manhole_option_parsers,
    parse_config,
    parse_duration,
    parse_size,
    server_option_parsers,
    validate_queue_name,
)
from kestrel.sqs.apps import App

SOURCE = "etc/kestrel.conf"


def parse(toml_text: str) -> ServerConfig:
    """Parse a config whose text continues a [server] table that already sets queue_path."""
    document = tomllib.loads(f'[server]\nqueue_path = "/q"\n{toml_text}')
    return parse_config(document, SOURCE, "/etc")


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (0, 0),
        (1024, 1024),
        ("1024", 1024),
        ("100B", 100),
        ("512KB", 512 * 1024),
        ("512k", 512 * 1024),
        ("512 KiB", 512 * 1024),
        ("16MB", 16 * 1024**2),
        ("16mb", 16 * 1024**2),
        ("1GB", 1024**3),
        ("2TB", 2 * 1024**4),
    ],
)
def test_parse_size(value, size):
    assert parse_size(value) == size


@pytest.mark.parametrize("value", [-1, True, 1.5, "", "ten", "16 XB", "1.5MB", "-1KB", "KB", None])
def test_parse_size_rejects(value):
    with pytest.raises(ValueError, match="expected a size"):
        parse_size(value)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("never", None),
        ("Never", None),
        (0, 0.0),
        ("0", 0.0),
        (30, 30.0),
        (2.5, 2.5),
        ("100ms", 0.1),
        ("30s", 30.0),
        ("1.5s", 1.5),
        ("5min", 300.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("2 d", 172800.0),
    ],
)
def test_parse_duration(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", [-1, -0.5, "-5s", float("inf"), float("nan"), False, "", "soon", "5 weeks", None])
def test_parse_duration_rejects(value):
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(value)


@pytest.mark.parametrize("name", ["jobs", "jobs+audit", "spam-thrift", "a" * 250, "é" * 125])
def test_valid_queue_names(name):
    validate_queue_name(name)


@pytest.mark.parametrize(
    "name",
    ["", "a.b", "a/b", "a~b", "a b", "a\tb", "a\x00b", "+a", "a+", "a+b+c", "a++b", "a" * 251, "é" * 126],
)
def test_invalid_queue_names(name):
    with pytest.raises(ValueError, match="^queue name contains illegal characters: "):
        validate_queue_name(name)


def test_option_parsers_cover_every_field():
    queue_fields = {f.name for f in dataclasses.fields(QueueConfig)}
    server_fields = {f.name for f in dataclasses.fields(ServerConfig) if f.init}
    from_tables = (
        set(server_option_parsers("/"))
        | {f"manhole_{key}" for key in manhole_option_parsers("/")}
        | {f"zookeeper_{key}" for key in ZOOKEEPER_OPTION_PARSERS}
    )
    assert set(QUEUE_OPTION_PARSERS) == queue_fields
    assert from_tables == server_fields - {"config_path", "default_queue", "queue_overrides", "aliases", "apps"}


def test_direct_construction_uses_defaults():
    config = ServerConfig(queue_path="/tmp/x")
    assert config.queue_config("anything") == QueueConfig()
    assert config.queue_overrides == {}
    assert QueueConfig(max_items=3).max_items == 3


def test_empty_server_table_gives_kestrel_defaults():
    assert parse("") == ServerConfig(queue_path="/q", config_path=os.path.abspath(SOURCE))


def test_default_table_applies_to_every_queue():
    config = parse("[default]\nmax_items = 100")
    assert config.queue_config("foo") == QueueConfig(max_items=100)


def test_explicit_queue_overlays_default():
    config = parse(
        """
        [default]
        max_items = 100
        max_size = "100B"
        [queues.foo]
        max_items = 200
        max_item_size = "200B"
        """
    )
    assert config.queue_config("foo") == QueueConfig(max_items=200, max_size=100, max_item_size=200)


def test_fanout_child_overlays_its_master():
    config = parse(
        """
        [default]
        max_items = 100
        max_size = "100B"
        max_journal_size = "100B"
        [queues.foo]
        max_items = 200
        max_item_size = "200B"
        [queues."foo+fanout"]
        max_items = 300
        default_journal_size = "300B"
        max_journal_size = "300B"
        """
    )
    assert config.queue_config("foo+fanout") == QueueConfig(
        max_items=300, max_item_size=200, max_size=100, max_journal_size=300, default_journal_size=300
    )


def test_unconfigured_fanout_child_inherits_its_master():
    config = parse("[queues.foo]\nmax_items = 200")
    assert config.queue_config("foo+new") == config.queue_config("foo")


def test_unconfigured_queue_gets_default_queue():
    config = parse("[default]\nkeep_journal = false\n[queues.foo]\nmax_items = 1")
    assert config.queue_config("bar") == config.default_queue
    assert config.default_queue == QueueConfig(keep_journal=False)


def test_resolved_configs_are_cached():
    config = parse("[queues.foo]\nmax_items = 1")
    assert config.queue_config("foo") is config.queue_config("foo")


def test_only_configs_that_differ_from_the_default_are_kept():
    # A million queues of the default config must not keep a million cache entries (issue 15).
    config = parse("[queues.foo]\nmax_items = 1")
    assert config.queue_config("bar") is config.default_queue
    assert config.queue_config("bar+child") is config.default_queue
    config.queue_config("foo+child")
    assert sorted(config._resolved) == ["foo", "foo+child"]


def test_reload_resolves_from_the_new_file_only():
    before = parse("[queues.starship]\nmax_items = 10\n[queues.weather_updates]\nmax_items = 1500000")
    after = parse("[default]\nmax_items = 9999\n[queues.starship]\nmax_items = 50")
    assert [before.queue_config(name).max_items for name in ("starship", "weather_updates")] == [10, 1500000]
    assert [after.queue_config(name).max_items for name in ("starship", "weather_updates")] == [50, 9999]


def test_queue_overrides_keep_only_what_was_written():
    config = parse('[queues.b]\nsync_journal = "never"\n[queues.a]\nmax_age = "1h"\nexpire_to_queue = "b"')
    assert config.queue_overrides == {"a": {"max_age": 3600.0, "expire_to_queue": "b"}, "b": {"sync_journal": None}}


def test_dead_letter_settings_resolve_like_the_others():
    config = parse("[default]\nmax_deliveries = 5\ndead_letter_queue = 'dead'\n[queues.jobs]\nmax_deliveries = 2")
    assert (config.queue_config("jobs").max_deliveries, config.queue_config("jobs").dead_letter_queue) == (2, "dead")
    assert (config.queue_config("jobs+audit").max_deliveries, config.queue_config("other").max_deliveries) == (2, 5)


def test_the_dead_letter_queue_named_in_default_dead_letters_nothing_itself():
    config = parse("[default]\nmax_deliveries = 5\ndead_letter_queue = 'dead'")
    assert (config.queue_config("dead").max_deliveries, config.queue_config("dead").dead_letter_queue) == (None, None)


def test_config_is_immutable():
    config = parse("[queues.foo]\nmax_items = 1\n[aliases]\nall = ['foo']")
    with pytest.raises(TypeError):
        config.queue_overrides["foo"]["max_items"] = 2
    with pytest.raises(TypeError):
        config.aliases["other"] = ("foo",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.queue_path = "/elsewhere"


def test_server_options():
    config = parse(
        """
        memcache_listen = ""
        max_open_transactions = 100
        expiration_timer_frequency = "1s"
        client_timeout = "never"
        default_status = "ReadOnly"
        status_change_grace_period = 30
        max_connections = 500
        max_line_length = "16KB"
        [manhole]
        listen = "tcp:2224:interface=127.0.0.1"
        [aliases]
        all_jobs = ["jobs", "jobs2"]
        """
    )
    assert (config.memcache_listen, config.max_open_transactions) == ("", 100)
    assert (config.expiration_timer_frequency, config.client_timeout) == (1.0, None)
    assert (config.default_status, config.status_change_grace_period) == ("readonly", 30.0)
    assert (config.max_connections, config.max_line_length) == (500, 16384)
    assert config.manhole_listen == "tcp:2224:interface=127.0.0.1"
    assert config.aliases == {"all_jobs": ("jobs", "jobs2")}


def test_load_config_resolves_paths_against_the_file(tmp_path):
    (tmp_path / "etc").mkdir()
    config_file = tmp_path / "etc" / "kestrel.conf"
    config_file.write_text(
        """
        [server]
        queue_path = "../var/spool/kestrel"
        status_file = "/run/kestrel.status"
        [manhole]
        authorized_keys = "manhole_keys"
        """
    )
    config = load_config(str(config_file))
    assert config.config_path == str(config_file)
    assert config.queue_path == str(tmp_path / "var" / "spool" / "kestrel")
    assert config.status_file == "/run/kestrel.status"
    assert config.manhole_authorized_keys == str(tmp_path / "etc" / "manhole_keys")


SQS_CORS_ORIGINS_ERROR = (
    '[server] sqs_cors_origins: expected a list of origins such as ["https://app.example.com"], or ["*"] for any, got {}'
)


@pytest.mark.parametrize(
    ("toml_text", "message"),
    [
        ("bogus_key = 1", "[server] bogus_key: unknown option"),
        ("[bogus]", "[bogus]: unknown table"),
        ("[manhole]\nport = 1", "[manhole] port: unknown option"),
        ("[zookeeper]\nhosts = 'zk:2181'\npath_prefix = '/k'\nport = 1", "[zookeeper] port: unknown option"),
        ("[zookeeper]\npath_prefix = '/k'", "[zookeeper] hosts: missing (required when [zookeeper] is there)"),
        ("[zookeeper]\nhosts = 'zk:2181'", "[zookeeper] path_prefix: missing (required when [zookeeper] is there)"),
        (
            "[zookeeper]\nhosts = 'zk'\npath_prefix = '/k'",
            "[zookeeper] hosts: expected 'host:port' or 'host:port,host:port', got 'zk'",
        ),
        (
            "[zookeeper]\nhosts = 'zk:2181/chroot'\npath_prefix = '/k'",
            "[zookeeper] hosts: expected 'host:port' or 'host:port,host:port', got 'zk:2181/chroot'",
        ),
        (
            "[zookeeper]\nhosts = 'zk:2181'\npath_prefix = 'kestrel/'",
            "[zookeeper] path_prefix: expected an absolute ZooKeeper path such as '/kestrel/prod', got 'kestrel/'",
        ),
        (
            "[zookeeper]\nhosts = 'zk:2181'\npath_prefix = '/k'\nsession_timeout = 0",
            "[zookeeper] session_timeout: expected a duration above 0, got 0",
        ),
        (
            "[zookeeper]\nhosts = 'zk:2181'\npath_prefix = '/k'\nadvertise_host = 'a b'",
            "[zookeeper] advertise_host: expected a host name or address, got 'a b'",
        ),
        ("[queues.jobs]\nmax_itemz = 1", "[queues.jobs] max_itemz: unknown option"),
        ("[queues.jobs]\nmax_items = 'ten'", "[queues.jobs] max_items: expected a non-negative integer, got 'ten'"),
        ("[queues.jobs]\nmax_items = -1", "[queues.jobs] max_items: expected a non-negative integer, got -1"),
        ("max_open_transactions = 0", "[server] max_open_transactions: expected a positive integer, got 0"),
        ("max_open_journals = 0", "[server] max_open_journals: expected a positive integer, got 0"),
        ("[default]\nkeep_journal = 'no'", "[default] keep_journal: expected true or false, got 'no'"),
        ("text_listen = 2222", "[server] text_listen: expected a string, got 2222"),
        (
            "memcache_listen = 'systemd:domain=INET'",
            "[server] memcache_listen: expected a systemd socket such as 'systemd:domain=INET:index=0', got 'systemd:domain=INET'",
        ),
        (
            "memcache_flush_all_reply = 'OK'",
            "[server] memcache_flush_all_reply: expected \"kestrel\" (Kestrel's reply) or \"memcached\" (OK), got 'OK'",
        ),
        ("status_file = ''", "[server] status_file: expected a path, got ''"),
        (
            "[default]\nmax_size = 'lots'",
            "[default] max_size: expected a size in bytes such as 1024 or '16MB', got 'lots'",
        ),
        (
            "[queues.\"jobs+audit\"]\nmax_age = '1 week'",
            "[queues.\"jobs+audit\"] max_age: expected a duration such as '30s', '100ms', 0 or 'never', got '1 week'",
        ),
        (
            "status_change_grace_period = 'never'",
            "[server] status_change_grace_period: expected a finite duration, got 'never'",
        ),
        (
            "default_status = 'down'",
            "[server] default_status: expected one of up, readonly, quiescent, writeavoid, got 'down'",
        ),
        (
            "[queues.\"a.b\"]",
            "[queues] \"a.b\": queue name contains illegal characters: 'a.b' ('.' is not allowed)",
        ),
        (
            "[queues.a]\nexpire_to_queue = 'x/y'",
            "[queues.a] expire_to_queue: queue name contains illegal characters: 'x/y' ('/' is not allowed)",
        ),
        ("[queues]\njobs = 1", "[queues] jobs: expected a table, got 1"),
        ("[queues.jobs]\nmax_deliveries = 0", "[queues.jobs] max_deliveries: expected a positive integer, got 0"),
        (
            "[queues.jobs]\ndead_letter_queue = 'jobs'",
            "[queues.jobs] dead_letter_queue: a queue cannot be its own dead-letter queue",
        ),
        (
            "[queues.\"jobs+audit\"]\ndead_letter_queue = 'jobs+audit'",
            "[queues.\"jobs+audit\"] dead_letter_queue: a queue cannot be its own dead-letter queue",
        ),
        ("[aliases]\nall = 'jobs'", "[aliases] all: expected a non-empty list of queue names, got 'jobs'"),
        ("[aliases]\nall = []", "[aliases] all: expected a non-empty list of queue names, got []"),
        ("[aliases]\nall = ['jobs', 2]", "[aliases] all: expected a non-empty list of queue names, got ['jobs', 2]"),
        (
            "[aliases]\nall = ['jobs', 'a~b']",
            "[aliases] all: queue name contains illegal characters: 'a~b' ('~' is not allowed)",
        ),
        ("sqs_cors_origins = 'https://a.example'", SQS_CORS_ORIGINS_ERROR.format("'https://a.example'")),
        ("sqs_cors_origins = ['https://a.example/page']", SQS_CORS_ORIGINS_ERROR.format("['https://a.example/page']")),
        ("sqs_cors_origins = ['ftp://a.example']", SQS_CORS_ORIGINS_ERROR.format("['ftp://a.example']")),
        (
            "sqs_listen = 'tcp:9324'",
            "[server] sqs_listen: 'tcp:9324' serves other machines, and with no [apps.NAME] table the SQS API "
            "accepts any signature: add applications or listen on loopback (e.g. 'tcp:9324:interface=127.0.0.1')",
        ),
        ("[apps]\nbilling = 'AKID'", "[apps] billing: expected a table such as [apps.billing]"),
        ("[apps.billing]\nsecret = 's'", "[apps.billing] access_key: missing (required)"),
        ("[apps.billing]\naccess_key = 'AK'", "[apps.billing] secret: expected exactly one of secret and secret_file"),
        ("[apps.billing]\naccess_key = 'AK'\nsecret = 's'\nqueues = []", "[apps.billing] queues: unknown option"),
        (
            "[apps.billing]\naccess_key = 'AK/1'\nsecret = 's'",
            "[apps.billing] access_key: expected an access key id of 1 to 128 letters, digits, '_', '-' or '.', got 'AK/1'",
        ),
        ("[apps.billing]\naccess_key = 'AK'\nsecret = ''", "[apps.billing] secret: expected a non-empty string (the value is not shown)"),
        ("[apps.billing]\naccess_key = 'AK'\nsecret = 7", "[apps.billing] secret: expected a non-empty string (the value is not shown)"),
        (
            "[apps.billing]\naccess_key = 'AK'\nsecret = 's'\nread = 'billing-*'",
            "[apps.billing] read: expected a list of queue-name patterns such as [\"billing-*\", \"audit\"], got 'billing-*'",
        ),
        (
            "[apps.billing]\naccess_key = 'AK'\nsecret = 's'\nwrite = ['']",
            "[apps.billing] write: expected a list of queue-name patterns such as [\"billing-*\", \"audit\"], got ['']",
        ),
        (
            "[apps.\"two words\"]\naccess_key = 'AK'\nsecret = 's'\nadmin = [1]",
            "[apps.\"two words\"] admin: expected a list of queue-name patterns such as [\"billing-*\", \"audit\"], got [1]",
        ),
        (
            "[apps.a]\naccess_key = 'AK'\nsecret = 's'\n[apps.b]\naccess_key = 'AK'\nsecret = 't'",
            "[apps.b] access_key: 'AK' is already the access key of [apps.a]",
        ),
        (
            "[aliases]\n\"+all\" = ['jobs']",
            "[aliases] \"+all\": queue name contains illegal characters: '+all' "
            "('+' may only separate a master from one fanout child)",
        ),
    ],
)
def test_config_errors_name_file_table_and_key(toml_text, message):
    with pytest.raises(ConfigError) as caught:
        parse(toml_text)
    assert str(caught.value) == f"{SOURCE}: {message}"


def test_missing_queue_path():
    with pytest.raises(ConfigError, match=r"^etc/kestrel\.conf: \[server\] queue_path: missing \(required\)$"):
        parse_config({}, SOURCE, "/etc")


def test_missing_file(tmp_path):
    missing = tmp_path / "kestrel.conf"
    with pytest.raises(ConfigError) as caught:
        load_config(str(missing))
    assert str(caught.value) == f"{missing}: no such file"


def test_toml_syntax_error(tmp_path):
    config_file = tmp_path / "kestrel.conf"
    config_file.write_text("[server]\nqueue_path = \n")
    with pytest.raises(ConfigError) as caught:
        load_config(str(config_file))
    assert str(caught.value) == f"{config_file}: Invalid value (at line 2, column 14)"


# (ServerConfig field, table, key) of every listener's endpoint
ENDPOINT_OPTIONS = [
    ("memcache_listen", "server", "memcache_listen"),
    ("text_listen", "server", "text_listen"),
    ("thrift_listen", "server", "thrift_listen"),
    ("admin_listen", "server", "admin_listen"),
    ("manhole_listen", "manhole", "listen"),
    ("sqs_listen", "server", "sqs_listen"),
]


def parse_endpoint(table: str, key: str, description: str) -> ServerConfig:
    # With an application, so that sqs_listen may serve other machines.
    document = {"server": {"queue_path": "/q"}, "apps": {"billing": {"access_key": "AK", "secret": "s"}}}
    document.setdefault(table, {})[key] = description
    return parse_config(document, SOURCE, "/etc")


@pytest.mark.parametrize(("field", "table", "key"), ENDPOINT_OPTIONS)
@pytest.mark.parametrize(
    "description",
    ["", "tcp:22133", "tcp:0:interface=127.0.0.1", "tcp:65535", r"tcp6:0:interface=\:\:1", "unix:/run/kestrel.sock"],
)
def test_endpoints_that_parse(field, table, key, description):
    assert getattr(parse_endpoint(table, key, description), field) == description


@pytest.mark.parametrize(("field", "table", "key"), ENDPOINT_OPTIONS)
@pytest.mark.parametrize(
    ("description", "reason"),
    [
        ("tcp:abc", "expected an endpoint such as 'tcp:22133' or 'unix:/path', got 'tcp:abc' (invalid literal for int()"),
        ("nosuch:1", "expected an endpoint such as 'tcp:22133' or 'unix:/path', got 'nosuch:1' (Unknown endpoint"),
        ("tcp", "expected an endpoint such as 'tcp:22133' or 'unix:/path', got 'tcp' ("),
        ("tcp:1:bogus=2", "expected an endpoint such as 'tcp:22133' or 'unix:/path', got 'tcp:1:bogus=2' ("),
        ("tcp:70000", "expected a TCP port from 0 to 65535, got 'tcp:70000'"),
        ("tcp:-1", "expected a TCP port from 0 to 65535, got 'tcp:-1'"),
    ],
)
def test_bad_endpoints_name_file_table_and_key(field, table, key, description, reason):
    with pytest.raises(ConfigError) as caught:
        parse_endpoint(table, key, description)
    message = str(caught.value)
    assert message.startswith(f"{SOURCE}: [{table}] {key}: {reason}") and "\n" not in message


def test_endpoints_are_checked_without_a_reactor(tmp_path):
    """Config loading happens before twistd installs the reactor it was asked for."""
    config_file = tmp_path / "kestrel.conf"
    config_file.write_text('[server]\nqueue_path = "q"\nmemcache_listen = "tcp:0"\n[manhole]\nlisten = "unix:m.sock"\n')
    check = (
        "import sys; from kestrel.config import load_config; "
        f"assert load_config({str(config_file)!r}).memcache_listen == 'tcp:0'; "
        "assert 'twisted.internet.reactor' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", check], check=True)


def test_the_shipped_config_serves_this_machine_only():
    """Issue 12: the README's first command must not open an unauthenticated queue server to the network."""
    shipped = load_config(os.path.join(os.path.dirname(__file__), "..", "..", "..", "etc", "kestrel.conf"))
    listeners = {field: getattr(shipped, field) for field in LISTEN_OPTIONS}
    assert {field: endpoint for field, endpoint in listeners.items() if endpoint and "interface=127.0.0.1" not in endpoint} == {}
    defaults = ServerConfig(queue_path="spool")
    assert all("interface=127.0.0.1" in getattr(defaults, field) for field in LISTEN_OPTIONS if getattr(defaults, field))


def test_a_systemd_socket_is_checked_by_its_form_since_systemd_passes_it_at_start():
    config = parse_config({"server": {"queue_path": "spool", "memcache_listen": "systemd:domain=INET6:index=2"}}, None, "/")
    assert config.memcache_listen == "systemd:domain=INET6:index=2"


def test_zookeeper_table():
    config = parse(
        "[zookeeper]\nhosts = 'zk1:2181, zk2:2181'\npath_prefix = '/kestrel/prod'\n"
        "session_timeout = '4s'\nadvertise_host = 'queue-7.example'"
    )
    assert (config.zookeeper_hosts, config.zookeeper_path_prefix) == ("zk1:2181,zk2:2181", "/kestrel/prod")
    assert (config.zookeeper_session_timeout, config.zookeeper_advertise_host) == (4.0, "queue-7.example")


def test_no_zookeeper_table_means_no_server_sets():
    config = parse("")
    assert (config.zookeeper_hosts, config.zookeeper_advertise_host) == ("", None)


SECRET = "hunter2-not-for-logs"


def write_secret_config(tmp_path, app_table: str, secret: bytes | None = b"hunter2-not-for-logs\n") -> str:
    """A config file in tmp_path/etc with one [apps.billing] table, and its secret file beside it."""
    (tmp_path / "etc").mkdir()
    if secret is not None:
        (tmp_path / "etc" / "billing.secret").write_bytes(secret)
    config_file = tmp_path / "etc" / "kestrel.conf"
    config_file.write_text(f'[server]\nqueue_path = "q"\n[apps.billing]\naccess_key = "AKIDBILLING01"\n{app_table}\n')
    return str(config_file)


def test_apps_table():
    config = parse(
        """
        sqs_listen = "tcp:9324"
        [apps.billing]
        access_key = "AKIDBILLING01"
        secret = "hunter2-not-for-logs"
        read = ["billing-*"]
        write = ["billing-*", "audit"]
        admin = ["billing-*"]
        [apps.reports]
        access_key = "AKIDREPORTS01"
        secret = "another"
        read = ["reports"]
        """
    )
    assert config.apps == {
        "billing": App(
            "billing", "AKIDBILLING01", SECRET.encode(), read=("billing-*",), write=("billing-*", "audit"), admin=("billing-*",)
        ),
        "reports": App("reports", "AKIDREPORTS01", b"another", read=("reports",)),
    }
    assert config.sqs_listen == "tcp:9324"
    assert SECRET not in repr(config)
    with pytest.raises(TypeError):
        config.apps["other"] = config.apps["billing"]


def test_no_apps_table_means_no_apps_and_no_sqs_listener():
    config = parse("")
    assert (config.apps, config.sqs_listen, config.sqs_cors_origins) == ({}, "", ())


@pytest.mark.parametrize(
    "endpoint", ["tcp:9324:interface=127.0.0.1", r"tcp6:9324:interface=\:\:1", "tcp:0:interface=localhost", "unix:/run/sqs.sock"]
)
def test_without_apps_the_sqs_listener_may_serve_this_machine(endpoint):
    assert parse_config({"server": {"queue_path": "/q", "sqs_listen": endpoint}}, SOURCE, "/etc").sqs_listen == endpoint


def test_cors_origins():
    config = parse('sqs_cors_origins = ["https://App.Example.com:8443", "http://localhost:3000", "*"]')
    assert config.sqs_cors_origins == ("https://app.example.com:8443", "http://localhost:3000", "*")


def test_secret_file_resolves_against_the_config_and_loses_its_line_end(tmp_path):
    config = load_config(write_secret_config(tmp_path, 'secret_file = "billing.secret"', secret=b"hunter2-not-for-logs\r\n"))
    assert config.apps["billing"].secret == SECRET.encode()


@pytest.mark.parametrize(
    ("secret", "table", "reason"),
    [
        (None, 'secret_file = "billing.secret"', "cannot read {etc}/billing.secret: No such file or directory"),
        (None, 'secret_file = "."', "cannot read {etc}: Is a directory"),
        (b"", 'secret_file = "billing.secret"', "{etc}/billing.secret holds no secret"),
        (b"\n", 'secret_file = "billing.secret"', "{etc}/billing.secret holds no secret"),
    ],
)
def test_unusable_secret_files_name_their_key(tmp_path, secret, table, reason):
    config_file = write_secret_config(tmp_path, table, secret)
    with pytest.raises(ConfigError) as caught:
        load_config(config_file)
    etc = tmp_path / "etc"
    assert str(caught.value) == f"{config_file}: [apps.billing] secret_file: {reason.format(etc=etc)}"


def test_secret_and_secret_file_together_are_refused(tmp_path):
    config_file = write_secret_config(tmp_path, f'secret_file = "billing.secret"\nsecret = "{SECRET}"')
    with pytest.raises(ConfigError) as caught:
        load_config(config_file)
    assert str(caught.value) == f"{config_file}: [apps.billing] secret: expected exactly one of secret and secret_file"


@pytest.mark.parametrize(
    "toml_text",
    [
        f"[apps]\nsecret = '{SECRET}'",
        f"[apps.billing]\naccess_key = 'AK'\nsecret = ['{SECRET}']",
        f"[apps.billing]\naccess_key = 'AK'\nsecret = {{ value = '{SECRET}' }}",
        f"[apps.billing]\naccess_key = 'AK'\nsecrte = '{SECRET}'",
    ],
)
def test_a_misplaced_secret_is_not_in_the_error(toml_text):
    with pytest.raises(ConfigError) as caught:
        parse(toml_text)
    assert SECRET not in str(caught.value)


def test_the_shipped_examples_parse_when_uncommented(tmp_path):
    """etc/kestrel.conf's commented-out sqs_listen, sqs_cors_origins and [apps.billing] lines are a config that works."""
    shipped = open(os.path.join(os.path.dirname(__file__), "..", "..", "..", "etc", "kestrel.conf")).read()
    examples = [line[2:] for line in shipped.splitlines() if line.startswith(("# sqs_", "# [apps", "# access_key", "# secret_file", "# read", "# write", "# admin"))]
    server = "\n".join(line for line in examples if line.startswith("sqs_"))
    apps = "\n".join(line for line in examples if not line.startswith("sqs_"))
    (tmp_path / "billing.secret").write_text(SECRET)
    config_file = tmp_path / "kestrel.conf"
    config_file.write_text(f'[server]\nqueue_path = "q"\n{server}\n{apps}\n')
    config = load_config(str(config_file))
    assert config.sqs_listen == "tcp:9324:interface=127.0.0.1"
    assert config.sqs_cors_origins == ("https://app.example.com",)
    assert config.apps["billing"] == App(
        "billing", "AKIDBILLING01", SECRET.encode(), read=("billing-*",), write=("billing-*", "audit"), admin=("billing-*",)
    )
