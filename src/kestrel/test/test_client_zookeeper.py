"""The pure parts of the client's ZooKeeper membership: the spec, and members' serverset JSON."""

import json

import pytest

from kestrel.client.zookeeper import memcache_server, parse_zookeeper
from kestrel.serverset import member_record


def test_the_spec_names_the_ensemble_and_the_prefix():
    assert parse_zookeeper("zk1:2181,zk2:2181/kestrel/prod") == ("zk1:2181,zk2:2181", "/kestrel/prod")


@pytest.mark.parametrize("spec", ["zk1:2181", "zk1:2181/", "/kestrel", "zk1:2181/kestrel/"])
def test_a_spec_without_hosts_or_prefix_is_refused(spec):
    with pytest.raises(ValueError, match="expected host:port"):
        parse_zookeeper(spec)


def test_a_member_is_reached_on_its_memcache_endpoint():
    record = member_record({"thrift": ("10.0.0.7", 2229), "memcache": ("10.0.0.7", 22133)})
    assert memcache_server(record) == "10.0.0.7:22133"
    assert memcache_server(member_record({"memcache": ("fe80::1", 22133)})) == "[fe80::1]:22133"


def test_a_member_without_memcache_is_not_used():
    assert memcache_server(member_record({"thrift": ("10.0.0.7", 2229)})) is None


def test_a_member_that_names_only_its_service_endpoint_is_reached_there():
    record = json.dumps({"serviceEndpoint": {"host": "10.0.0.8", "port": 22133}, "status": "ALIVE"}).encode()
    assert memcache_server(record) == "10.0.0.8:22133"


@pytest.mark.parametrize("record", [b"", b"not json", b"[]", b'{"serviceEndpoint": {"host": "h"}}'])
def test_a_member_whose_record_cannot_be_read_is_not_used(record):
    assert memcache_server(record) is None
