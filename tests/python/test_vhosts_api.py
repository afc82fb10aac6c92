"""`PUT /api/vhosts/{vhost}` as terraform's rabbitmq_vhost and rabbit-hole
send it: description and tags stored and read back, a PUT replacing them,
bodies refused as RabbitMQ refuses them, and the creating user granted
full permissions on the new vhost. Expected answers recorded from RabbitMQ
3.10.8 (run against it with WARREN_TEST_URL and WARREN_TEST_MGMT_PORT)."""

import uuid

import pytest

from conftest import EXTERNAL_URL
from helpers import mgmt_request


def call(broker, method, path, body=None, raw=None):
    return mgmt_request(broker.mgmt_port, method, path, body, broker.user, broker.password, raw=raw)


@pytest.fixture
def vhost(broker):
    name = "vh-" + uuid.uuid4().hex[:6]
    yield name
    call(broker, "DELETE", "/api/vhosts/" + name)


def test_description_and_tags_are_stored_and_replaced(broker, vhost):
    path = "/api/vhosts/" + vhost
    assert call(broker, "PUT", path, {"description": "hello", "tags": "a,b"})[0] == 201
    st, v = call(broker, "GET", path)
    assert (st, v["description"], v["tags"], v["tracing"]) == (200, "hello", ["a", "b"], False)
    assert v["metadata"] == {"description": "hello", "tags": ["a", "b"]}
    assert call(broker, "PUT", path, {"description": "bye"})[0] == 204
    st, v = call(broker, "GET", path)
    assert (v["description"], v["tags"]) == ("bye", [])
    assert call(broker, "PUT", path, {"tags": ["x", "y"]})[0] == 204
    st, v = call(broker, "GET", path)
    assert (v["description"], v["tags"]) == ("", ["x", "y"])
    listed = [x for x in call(broker, "GET", "/api/vhosts")[1] if x["name"] == vhost]
    assert listed[0]["tags"] == ["x", "y"]
    # Message counts (rabbitmqadmin's default `list vhosts` column); RabbitMQ
    # adds them once its statistics arrive.
    assert broker.external or listed[0]["messages"] == 0


def test_bad_bodies_are_refused_and_create_nothing(broker, vhost):
    path = "/api/vhosts/" + vhost
    assert call(broker, "PUT", path, raw=b"nope") == (400, {"error": "bad_request", "reason": "not_json"})
    assert call(broker, "PUT", path, {"tracing": "maybe"}) == (
        400, {"error": "bad_request", "reason": ["not_boolean", "maybe"]})
    assert call(broker, "GET", path)[0] == 404
    # No body at all creates it.
    assert call(broker, "PUT", path, raw=b"")[0] == 201


def test_the_creator_is_granted_full_permissions(broker, vhost):
    assert call(broker, "PUT", "/api/vhosts/" + vhost, {})[0] == 201
    st, p = call(broker, "GET", "/api/permissions/%s/%s" % (vhost, broker.user))
    assert (st, p["configure"], p["write"], p["read"]) == (200, ".*", ".*", ".*")
    c = broker.connect(virtual_host=vhost)
    c.close()


@pytest.mark.skipif(EXTERNAL_URL is not None, reason="RabbitMQ has a firehose tracer")
def test_tracing_is_refused_rather_than_ignored(broker, vhost):
    st, body = call(broker, "PUT", "/api/vhosts/" + vhost, {"tracing": True})
    assert st == 400 and "tracing" in body["reason"]
    assert call(broker, "PUT", "/api/vhosts/" + vhost, {"tracing": False})[0] == 201


def test_an_administrator_without_permissions_cannot_touch_resources(broker, vhost):
    assert call(broker, "PUT", "/api/vhosts/" + vhost, {})[0] == 201
    assert call(broker, "DELETE", "/api/permissions/%s/%s" % (vhost, broker.user))[0] == 204
    # RabbitMQ runs these through a channel as the user: refused.
    assert call(broker, "PUT", "/api/queues/%s/q1" % vhost, {}) == (
        401, {"error": "not_authorised", "reason": "Access refused."})
    # Administration itself is not a resource operation.
    assert call(broker, "GET", "/api/vhosts/" + vhost)[0] == 200
