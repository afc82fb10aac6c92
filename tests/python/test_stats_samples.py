"""`*_details` samples (`lengths_age`/`lengths_incr`, `msg_rates_age`/
`msg_rates_incr`), what RabbitMQ's management UI charts read: their shape,
alignment and values, and RabbitMQ 3.10's answers to bad ranges (recorded
from a private node; runs against it with WARREN_TEST_URL and
WARREN_TEST_MGMT_PORT). Statistics are sampled every 5 s on both brokers,
so these tests wait up to 30 s."""

import uuid

from helpers import eventually, mgmt_request

RANGE = "lengths_age=60&lengths_incr=5&msg_rates_age=60&msg_rates_incr=5"


def check_details(d, newest):
    s = d["samples"]
    assert s and s[0]["sample"] == newest, d
    stamps = [x["timestamp"] for x in s]
    assert all(t % 5000 == 0 for t in stamps), stamps
    assert stamps == sorted(stamps, reverse=True) and len(set(stamps)) == len(stamps), stamps
    assert len(s) <= 60 // 5 + 1
    for k in ("rate", "avg", "avg_rate"):
        assert isinstance(d[k], (int, float)), (k, d)


def test_queue_details_carry_samples_over_the_asked_range(broker, ch):
    q = "samples-" + uuid.uuid4().hex[:6]
    ch.queue_declare(q)
    for _ in range(3):
        ch.basic_publish("", q, b"m")
    path = "/api/queues/%%2F/%s?%s" % (q, RANGE)

    def sampled():
        st, body = mgmt_request(broker.mgmt_port, "GET", path, None, broker.user, broker.password)
        assert st == 200, body
        d = body.get("messages_details", {})
        p = body.get("message_stats", {}).get("publish_details", {})
        ok = (len(d.get("samples", [])) >= 2 and d["samples"][0]["sample"] == 3
              and p.get("samples") and p["samples"][0]["sample"] == 3)
        return body if ok else None

    body = eventually("two samples of the queue", sampled, interval=0.5)
    check_details(body["messages_details"], 3)
    check_details(body["messages_ready_details"], 3)
    check_details(body["messages_unacknowledged_details"], 0)
    check_details(body["message_stats"]["publish_details"], 3)
    # Without a range: the rate alone.
    st, plain = mgmt_request(broker.mgmt_port, "GET", "/api/queues/%%2F/%s" % q, None,
                             broker.user, broker.password)
    assert set(plain["messages_details"]) == {"rate"}
    assert set(plain["message_stats"]["publish_details"]) == {"rate"}
    # The listing takes the same ranges.
    st, listed = mgmt_request(broker.mgmt_port, "GET", "/api/queues/%%2F?%s" % RANGE, None,
                              broker.user, broker.password)
    mine = [x for x in listed if x["name"] == q]
    assert mine and mine[0]["messages_details"]["samples"][0]["sample"] == 3
    ch.queue_delete(q)


def test_overview_details_carry_samples(broker):
    def sampled():
        st, body = mgmt_request(broker.mgmt_port, "GET", "/api/overview?" + RANGE, None,
                                broker.user, broker.password)
        assert st == 200, body
        d = body["queue_totals"].get("messages_details", {})
        return body if len(d.get("samples", [])) >= 2 else None

    body = eventually("two samples of the node", sampled, interval=0.5)
    d = body["queue_totals"]["messages_details"]
    check_details(d, d["samples"][0]["sample"])


def test_bad_ranges_are_answered_as_rabbitmq_answers(broker):
    def get(query):
        return mgmt_request(broker.mgmt_port, "GET", "/api/overview?" + query, None,
                            broker.user, broker.password)
    assert get("lengths_age=60&lengths_incr=0") == (
        400, {"error": "bad_request", "reason": "Invalid range parameters: age 60, incr 0"})
    # One without the other, or not a number: no samples, no error.
    for query in ("lengths_age=60", "lengths_age=abc&lengths_incr=5"):
        st, body = get(query)
        assert st == 200 and "samples" not in body["queue_totals"].get("messages_details", {}), query
