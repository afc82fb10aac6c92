"""The real `rabbitmqadmin` (from Debian's rabbitmq-server package) driven
as a process against the broker's management API: its common commands
(declare, list, publish, get, purge, delete, policies, users, vhosts,
export and import) work as they do against RabbitMQ. rabbitmqadmin sends
booleans as strings and builds its own paths, so this is the API as that
tool uses it. Skipped without rabbitmqadmin unless WARREN_TOOL_TESTS=required
(CI sets it)."""

import json
import os
import shutil
import subprocess
import time
import uuid

import pytest

ADMIN = shutil.which("rabbitmqadmin")
REQUIRED = os.environ.get("WARREN_TOOL_TESTS") == "required"

if ADMIN is None and not REQUIRED:
    pytest.skip("rabbitmqadmin not installed (apt-get install rabbitmq-server)", allow_module_level=True)


def admin(broker, *args, ok=True):
    assert ADMIN is not None, "rabbitmqadmin is required (WARREN_TOOL_TESTS=required)"
    r = subprocess.run(
        [ADMIN, "-H", "127.0.0.1", "-P", str(broker.mgmt_port), "-u", broker.user, "-p", broker.password,
         "-V", broker.vhost] + list(args),
        capture_output=True, text=True, timeout=30)
    if ok:
        assert r.returncode == 0, "rabbitmqadmin %s: %s %s" % (" ".join(args), r.stdout, r.stderr)
    return r


def listing(broker, what, *columns):
    return json.loads(admin(broker, "-f", "raw_json", "list", what, *columns).stdout)


def wait_for(cond, what, timeout=10):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@pytest.fixture
def names():
    tag = uuid.uuid4().hex[:6]
    return {"q": "adm.q." + tag, "x": "adm.x." + tag, "p": "adm.p." + tag,
            "u": "adm.u." + tag, "v": "adm.v." + tag}


def test_declare_publish_get_and_delete_with_rabbitmqadmin(broker, names):
    q, x = names["q"], names["x"]
    assert "queue declared" in admin(broker, "declare", "queue", "name=" + q, "durable=false",
                                     "auto_delete=false").stdout
    # The string "false" is honoured: the queue is transient.
    assert broker.api("GET", "/api/queues/%2F/" + q)["durable"] is False
    admin(broker, "declare", "exchange", "name=" + x, "type=topic", "durable=false")
    admin(broker, "declare", "binding", "source=" + x, "destination=" + q, "routing_key=a.#")
    assert "Message published" in admin(broker, "publish", "exchange=" + x, "routing_key=a.b",
                                        "payload=hello").stdout
    wait_for(lambda: [r for r in listing(broker, "queues", "name", "messages") if r["name"] == q][0]
             .get("messages") == 1, "the message is counted")
    got = json.loads(admin(broker, "-f", "raw_json", "get", "queue=" + q, "ackmode=ack_requeue_false").stdout)
    assert [(m["payload"], m["routing_key"], m["exchange"]) for m in got] == [("hello", "a.b", x)]
    bindings = [b for b in listing(broker, "bindings") if b["source"] == x]
    assert [(b["destination"], b["routing_key"], b["properties_key"]) for b in bindings] == [(q, "a.#", "a.%23")]
    admin(broker, "publish", "exchange=" + x, "routing_key=a.c", "payload=again")
    wait_for(lambda: broker.api("GET", "/api/queues/%2F/" + q)["messages"] == 1, "published again")
    assert "queue purged" in admin(broker, "purge", "queue", "name=" + q).stdout
    # RabbitMQ's statistics lag by up to its 5 s emission interval.
    wait_for(lambda: broker.api("GET", "/api/queues/%2F/" + q)["messages"] == 0, "purged")
    assert "binding deleted" in admin(broker, "delete", "binding", "source=" + x, "destination=" + q,
                                      "destination_type=queue", "properties_key=a.%23").stdout
    assert not [b for b in listing(broker, "bindings") if b["source"] == x]
    admin(broker, "delete", "queue", "name=" + q)
    admin(broker, "delete", "exchange", "name=" + x)
    assert q not in [r["name"] for r in listing(broker, "queues", "name")]
    # A missing object is an error, as against RabbitMQ.
    assert admin(broker, "delete", "queue", "name=" + q, ok=False).returncode != 0


def test_policies_users_and_vhosts_with_rabbitmqadmin(broker, names):
    p, u, v = names["p"], names["u"], names["v"]
    admin(broker, "declare", "policy", "name=" + p, "pattern=^adm\\.", 'definition={"max-length":10}',
          "apply-to=queues", "priority=3")
    pol = [x for x in listing(broker, "policies") if x["name"] == p]
    assert [(x["pattern"], x["definition"], x["apply-to"], x["priority"]) for x in pol] == \
        [("^adm\\.", {"max-length": 10}, "queues", 3)]
    admin(broker, "delete", "policy", "name=" + p)
    assert not [x for x in listing(broker, "policies") if x["name"] == p]

    admin(broker, "declare", "vhost", "name=" + v)
    admin(broker, "declare", "user", "name=" + u, "password=pw", "tags=management")
    admin(broker, "declare", "permission", "vhost=" + v, "user=" + u, "configure=.*", "write=.*", "read=^x")
    users = {x["name"]: x for x in listing(broker, "users")}
    assert users[u]["tags"] in ("management", ["management"])
    perms = [x for x in listing(broker, "permissions") if x["user"] == u]
    assert [(x["vhost"], x["read"]) for x in perms] == [(v, "^x")]
    assert v in [x["name"] for x in listing(broker, "vhosts")]
    admin(broker, "delete", "permission", "vhost=" + v, "user=" + u)
    admin(broker, "delete", "user", "name=" + u)
    admin(broker, "delete", "vhost", "name=" + v)
    assert u not in [x["name"] for x in listing(broker, "users")]
    assert v not in [x["name"] for x in listing(broker, "vhosts")]
    overview = json.loads(admin(broker, "-f", "raw_json", "show", "overview").stdout)
    assert overview[0]["rabbitmq_version"]


def test_export_and_import_with_rabbitmqadmin(broker, names, tmp_path):
    q, x = names["q"], names["x"]
    admin(broker, "declare", "queue", "name=" + q, "durable=true", 'arguments={"x-max-length": 5}')
    admin(broker, "declare", "exchange", "name=" + x, "type=fanout", "durable=true")
    admin(broker, "declare", "binding", "source=" + x, "destination=" + q)
    path = str(tmp_path / "defs.json")
    admin(broker, "export", path)
    with open(path) as f:
        defs = json.load(f)
    assert [d["arguments"] for d in defs["queues"] if d["name"] == q] == [{"x-max-length": 5}]
    admin(broker, "delete", "queue", "name=" + q)
    admin(broker, "delete", "exchange", "name=" + x)
    admin(broker, "import", path)
    assert broker.api("GET", "/api/queues/%2F/" + q)["arguments"] == {"x-max-length": 5}
    assert [b["destination"] for b in broker.api("GET", "/api/exchanges/%%2F/%s/bindings/source" % x)] == [q]
    admin(broker, "delete", "queue", "name=" + q)
    admin(broker, "delete", "exchange", "name=" + x)


def test_vhost_limits_as_a_runtime_parameter_with_rabbitmqadmin(broker, names):
    v = names["v"]
    admin(broker, "declare", "vhost", "name=" + v)
    try:
        admin(broker, "-V", v, "declare", "parameter", "component=vhost-limits", "name=limits",
              'value={"max-queues":10}')
        assert [x["value"] for x in listing(broker, "vhost_limits") if x["vhost"] == v] == [{"max-queues": 10}]
        # The parameter is the whole set: a second one replaces the first.
        admin(broker, "-V", v, "declare", "parameter", "component=vhost-limits", "name=limits",
              'value={"max-connections":3}')
        assert [x["value"] for x in listing(broker, "vhost_limits") if x["vhost"] == v] == [{"max-connections": 3}]
        admin(broker, "-V", v, "delete", "parameter", "component=vhost-limits", "name=limits")
        assert not [x for x in listing(broker, "vhost_limits") if x["vhost"] == v]
        # A vhost's own page: its message count is rabbitmqadmin's default column.
        vhosts = {x["name"]: x for x in listing(broker, "vhosts")}
        assert v in vhosts
    finally:
        admin(broker, "delete", "vhost", "name=" + v)
