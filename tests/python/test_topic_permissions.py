"""Topic permissions (RabbitMQ's `topic_permissions`): the HTTP API that
sets them and the checks on publish and bind. Every expected status, body
and error text was recorded from RabbitMQ 3.10.8 (a private node, the same
requests); run with WARREN_TEST_URL and WARREN_TEST_MGMT_PORT to check them
against a RabbitMQ again. Warren also checks CC/BCC keys (RabbitMQ 4.0.3+
does; 3.10 lets a CC header past the permission): that test is Warren's."""

import uuid

import pika
import pytest

from conftest import EXTERNAL_URL
from helpers import mgmt_request


def code(broker, method, path, body=None):
    """(status, JSON body or None) of one request as the test's admin."""
    return mgmt_request(broker.mgmt_port, method, path, body, broker.user, broker.password)


@pytest.fixture
def user(broker):
    name = "tp-" + uuid.uuid4().hex[:8]
    broker.api("PUT", "/api/users/" + name, {"password": "pw", "tags": ""})
    broker.api("PUT", "/api/permissions/%2F/" + name, {"configure": ".*", "write": ".*", "read": ".*"})
    yield name
    code(broker, "DELETE", "/api/users/" + name)


def tp_path(user, *rest):
    return "/api/topic-permissions/%2F/" + user + "".join("/" + r for r in rest)


def test_topic_permissions_are_set_listed_and_cleared_as_rabbitmq_answers(broker, user):
    assert code(broker, "GET", tp_path(user))[0] == 404
    perm = {"exchange": "amq.topic", "write": "^a\\.{username}\\.", "read": "^r\\..*"}
    assert code(broker, "PUT", tp_path(user), perm)[0] == 201
    # Any later PUT for a user who has topic permissions on the vhost: 204.
    assert code(broker, "PUT", tp_path(user), perm)[0] == 204
    assert code(broker, "PUT", tp_path(user), {"exchange": "x4", "write": "", "read": ""})[0] == 204
    st, body = code(broker, "PUT", tp_path(user), {"exchange": "x3", "write": "w"})
    assert (st, body) == (400, {"error": "bad_request", "reason": "[{key_missing,read}]"})
    st, body = code(broker, "PUT", tp_path(user), {"write": "w", "read": "r"})
    assert (st, body) == (400, {"error": "bad_request", "reason": "[{key_missing,exchange}]"})
    st, body = code(broker, "PUT", tp_path(user), {"exchange": "x2", "write": "(", "read": ""})
    assert st == 400 and body["error"] == "bad_request"
    assert body["reason"][:2] == ["invalid_regexp", "("]
    for path in ("/api/topic-permissions/%2F/nobody-" + user, "/api/topic-permissions/no-such-vhost/" + user):
        st, body = code(broker, "PUT", path, {"exchange": "x", "write": "w", "read": "r"})
        assert (st, body) == (400, {"error": "bad_request", "reason": "vhost_or_user_not_found"})

    want = [dict(perm, user=user, vhost="/"), {"user": user, "vhost": "/", "exchange": "x4", "write": "", "read": ""}]
    key = lambda p: p["exchange"]  # noqa: E731
    st, got = code(broker, "GET", tp_path(user))
    assert st == 200 and sorted(got, key=key) == sorted(want, key=key)
    mine = lambda ps: sorted([p for p in ps if p["user"] == user], key=key)  # noqa: E731
    assert mine(broker.api("GET", "/api/topic-permissions")) == sorted(want, key=key)
    assert mine(broker.api("GET", "/api/users/%s/topic-permissions" % user)) == sorted(want, key=key)
    assert mine(broker.api("GET", "/api/vhosts/%2F/topic-permissions")) == sorted(want, key=key)
    assert mine(broker.api("GET", "/api/definitions")["topic_permissions"]) == sorted(want, key=key)

    # One exchange's entry goes; deleting it again still answers 204 while
    # the user has others on the vhost.
    assert code(broker, "DELETE", tp_path(user, "x4"))[0] == 204
    assert code(broker, "DELETE", tp_path(user, "x4"))[0] == 204
    st, got = code(broker, "GET", tp_path(user, "amq.topic"))
    assert st == 200 and got == [dict(perm, user=user, vhost="/")]
    # All of them go; then there is nothing to delete.
    assert code(broker, "DELETE", tp_path(user))[0] == 204
    assert code(broker, "GET", tp_path(user))[0] == 404
    assert code(broker, "DELETE", tp_path(user))[0] == 404


def attempt(broker, user, action):
    """Run action(channel) on a fresh connection as `user`; None if the
    broker accepted it, else the channel-close reply (code, text)."""
    c = broker.connect(credentials=pika.PlainCredentials(user, "pw"))
    try:
        ch = c.channel()
        action(ch)
        ch.basic_qos(prefetch_count=1)  # a round trip: a refusal arrives first
        return None
    except pika.exceptions.ChannelClosedByBroker as e:
        return (e.reply_code, e.reply_text)
    finally:
        if c.is_open:
            c.close()


def refused(key, user):
    return (403, "ACCESS_REFUSED - access to topic '%s' in exchange 'amq.topic' in vhost '/' "
                 "refused for user '%s'" % (key, user))


def test_publishing_and_binding_honour_topic_permissions(broker, user):
    broker.api("PUT", tp_path(user), {"exchange": "amq.topic", "write": "^a\\.{username}\\.", "read": "^r\\..*"})
    # {username} stands for the user's name.
    assert attempt(broker, user, lambda ch: ch.basic_publish("amq.topic", "a.%s.x" % user, b"m")) is None
    assert attempt(broker, user, lambda ch: ch.basic_publish("amq.topic", "b.x", b"m")) == refused("b.x", user)
    # Other exchanges are not restricted, topic or not.
    assert attempt(broker, user, lambda ch: ch.basic_publish("amq.direct", "b.x", b"m")) is None

    def bind(key, unbind=False, exchange_bind=False):
        def run(ch):
            if exchange_bind:
                x = "tp-x-" + uuid.uuid4().hex[:6]
                ch.exchange_declare(x, "fanout", auto_delete=True)
                ch.exchange_bind(x, "amq.topic", key)
                return
            q = ch.queue_declare("", exclusive=True).method.queue
            (ch.queue_unbind if unbind else ch.queue_bind)(q, "amq.topic", key)
        return run

    assert attempt(broker, user, bind("r.x")) is None
    assert attempt(broker, user, bind("x.r")) == refused("x.r", user)
    assert attempt(broker, user, bind("x.r", unbind=True)) == refused("x.r", user)
    assert attempt(broker, user, bind("x.r", exchange_bind=True)) == refused("x.r", user)
    # Without topic permissions nothing is restricted.
    broker.api("DELETE", tp_path(user))
    assert attempt(broker, user, lambda ch: ch.basic_publish("amq.topic", "b.x", b"m")) is None
    assert attempt(broker, user, bind("x.r")) is None


def test_an_empty_topic_pattern_allows_only_the_empty_key(broker, user):
    broker.api("PUT", tp_path(user), {"exchange": "amq.topic", "write": "", "read": ""})
    assert attempt(broker, user, lambda ch: ch.basic_publish("amq.topic", "", b"m")) is None
    assert attempt(broker, user, lambda ch: ch.basic_publish("amq.topic", "a", b"m")) == refused("a", user)


@pytest.mark.skipif(EXTERNAL_URL is not None, reason="RabbitMQ 3.10 does not check CC/BCC keys")
def test_cc_and_bcc_keys_are_checked_like_the_routing_key(broker, user):
    broker.api("PUT", tp_path(user), {"exchange": "amq.topic", "write": "^ok\\.", "read": ".*"})
    ok = "ok.%s" % user
    for header in ("CC", "BCC"):
        props = pika.BasicProperties(headers={header: ["ok.1", "no.2"]})
        assert attempt(broker, user, lambda ch: ch.basic_publish("amq.topic", ok, b"m", props)) == refused("no.2", user)
        props = pika.BasicProperties(headers={header: ["ok.1"]})
        assert attempt(broker, user, lambda ch: ch.basic_publish("amq.topic", ok, b"m", props)) is None


def test_topic_permissions_go_with_their_user(broker, user):
    broker.api("PUT", tp_path(user), {"exchange": "amq.topic", "write": "x", "read": "x"})
    broker.api("DELETE", "/api/users/" + user)
    broker.api("PUT", "/api/users/" + user, {"password": "pw", "tags": ""})
    broker.api("PUT", "/api/permissions/%2F/" + user, {"configure": ".*", "write": ".*", "read": ".*"})
    assert code(broker, "GET", tp_path(user))[0] == 404
    assert attempt(broker, user, lambda ch: ch.basic_publish("amq.topic", "b.x", b"m")) is None


def test_the_http_api_honours_topic_permissions_as_rabbitmq_answers(broker, user):
    broker.api("PUT", "/api/users/" + user, {"password": "pw", "tags": "management"})
    broker.api("PUT", tp_path(user), {"exchange": "amq.topic", "write": "^ok", "read": "^ok"})

    def as_user(method, path, body):
        return mgmt_request(broker.mgmt_port, method, path, body, user, "pw")

    publish = "/api/exchanges/%2F/amq.topic/publish"
    msg = {"payload": "x", "payload_encoding": "string", "properties": {}}
    assert as_user("POST", publish, dict(msg, routing_key="ok.1")) == (200, {"routed": False})
    assert as_user("POST", publish, dict(msg, routing_key="no.1")) == (400, {
        "error": "bad_request",
        "reason": "403 ACCESS_REFUSED - access to topic 'no.1' in exchange 'amq.topic' in vhost '/' "
                  "refused for user '%s'" % user})
    q = "tpq-" + uuid.uuid4().hex[:6]
    broker.api("PUT", "/api/queues/%2F/" + q, {})
    try:
        bind = "/api/bindings/%2F/e/amq.topic/q/" + q
        assert as_user("POST", bind, {"routing_key": "no.1"}) == (
            401, {"error": "not_authorised", "reason": "Access refused."})
        assert as_user("POST", bind, {"routing_key": "ok.1"})[0] == 201
    finally:
        broker.api("DELETE", "/api/queues/%2F/" + q)


@pytest.mark.skipif(EXTERNAL_URL is not None, reason="RabbitMQ's PCRE takes lookarounds")
def test_a_definitions_file_with_an_unusable_pattern_changes_nothing(broker, user):
    vhost = "tp-vhost-" + uuid.uuid4().hex[:6]
    defs = {"vhosts": [{"name": vhost}],
            "topic_permissions": [{"user": user, "vhost": "/", "exchange": "amq.topic",
                                   "write": "^(?!secret\\.)", "read": ".*"}]}
    st, body = code(broker, "POST", "/api/definitions", defs)
    assert st == 400 and body["reason"][:2] == ["invalid_regexp", "^(?!secret\\.)"]
    assert code(broker, "GET", "/api/vhosts/" + vhost)[0] == 404


def test_braces_that_are_no_repetition_are_characters_as_in_pcre(broker, user):
    defs = {"topic_permissions": [{"user": user, "vhost": "/", "exchange": "amq.topic",
                                   "write": "^{client_id}\\.", "read": ".*"}]}
    assert code(broker, "POST", "/api/definitions", defs)[0] in (201, 204)
    assert attempt(broker, user, lambda ch: ch.basic_publish("amq.topic", "{client_id}.x", b"m")) is None
    assert attempt(broker, user, lambda ch: ch.basic_publish("amq.topic", "c1.x", b"m")) == refused("c1.x", user)


@pytest.mark.skipif(EXTERNAL_URL is not None, reason="restarts the broker")
def test_topic_permissions_survive_a_restart(broker, user):
    broker.api("PUT", tp_path(user), {"exchange": "amq.topic", "write": "^ok", "read": "^ok"})
    broker.restart()
    st, got = code(broker, "GET", tp_path(user))
    assert (st, [p["write"] for p in got]) == (200, ["^ok"])
    assert attempt(broker, user, lambda ch: ch.basic_publish("amq.topic", "no.1", b"m")) == refused("no.1", user)
