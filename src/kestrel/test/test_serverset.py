"""The pure parts of ZooKeeper server sets: membership by status, what is announced, the JSON."""

import json

import pytest

from kestrel.serverset import MEMBERSHIP, AdvertiseError, advertised_endpoints, member_record
from kestrel.status import Status


def machine() -> str:
    return "10.1.2.3"


@pytest.mark.parametrize("status, sets", [
    (Status.UP, {"read", "write"}),
    (Status.WRITEAVOID, {"read"}),
    (Status.READONLY, {"read"}),
    (Status.QUIESCENT, set()),
    (Status.DOWN, set()),
])
def test_the_status_decides_the_sets(status, sets):
    assert MEMBERSHIP[status] == sets


def test_an_interface_address_is_announced_as_it_is():
    bound = [("memcache", "10.0.0.7", 22133), ("thrift", "10.0.0.7", 2229)]
    assert advertised_endpoints(bound, None, machine) == {"memcache": ("10.0.0.7", 22133), "thrift": ("10.0.0.7", 2229)}


@pytest.mark.parametrize("wildcard", ["0.0.0.0", "::"])
def test_a_wildcard_address_becomes_the_machine_address(wildcard):
    assert advertised_endpoints([("memcache", wildcard, 22133)], None, machine) == {"memcache": ("10.1.2.3", 22133)}


@pytest.mark.parametrize("host, machine_address", [("127.0.0.1", "10.1.2.3"), ("::1", "10.1.2.3"), ("0.0.0.0", "127.0.1.1")])
def test_a_loopback_address_is_refused_without_advertise_host(host, machine_address):
    with pytest.raises(AdvertiseError, match="memcache listener .* no other machine can reach: name .* advertise_host"):
        advertised_endpoints([("memcache", host, 22133)], None, lambda: machine_address)


def test_advertise_host_is_always_announced():
    bound = [("memcache", "127.0.0.1", 22133), ("text", "0.0.0.0", 2222)]
    assert advertised_endpoints(bound, "queue-7.example", machine) == {
        "memcache": ("queue-7.example", 22133), "text": ("queue-7.example", 2222),
    }


def test_the_admin_port_is_announced_only_beyond_loopback():
    on_loopback = [("memcache", "10.0.0.7", 22133), ("admin", "127.0.0.1", 2223), ("manhole", "10.0.0.7", 2224)]
    assert advertised_endpoints(on_loopback, None, machine) == {"memcache": ("10.0.0.7", 22133)}
    beyond = [("memcache", "10.0.0.7", 22133), ("admin", "0.0.0.0", 2223)]
    assert advertised_endpoints(beyond, None, machine)["admin"] == ("10.1.2.3", 2223)


def test_a_server_without_a_queue_listener_has_nothing_to_announce():
    with pytest.raises(AdvertiseError, match="no memcache, thrift or text listener"):
        advertised_endpoints([("admin", "10.0.0.7", 2223)], None, machine)


@pytest.mark.parametrize("endpoints, main", [
    ({"memcache": ("h", 1), "thrift": ("h", 2), "text": ("h", 3)}, 1),
    ({"thrift": ("h", 2), "text": ("h", 3)}, 2),
    ({"text": ("h", 3), "admin": ("h", 4)}, 3),
])
def test_the_member_record_is_the_serverset_json(endpoints, main):
    record = json.loads(member_record(endpoints))
    assert record == {
        "serviceEndpoint": {"host": "h", "port": main},
        "additionalEndpoints": {name: {"host": host, "port": port} for name, (host, port) in endpoints.items()},
        "status": "ALIVE",
    }
