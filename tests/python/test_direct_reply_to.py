"""Direct reply-to (`amq.rabbitmq.reply-to`), with RabbitMQ 3.10's answers
(recorded from Debian's rabbitmq-server via `scripts/compare.sh start
rabbitmq`; the file passes against it with
WARREN_TEST_URL=amqp://guest:guest@127.0.0.1:5682/%2f
WARREN_TEST_IGNORE_SHARDS=1).
"""

import pika
import pytest

from helpers import assert_channel_error, get_message, wait_until

REPLY_TO = "amq.rabbitmq.reply-to"


class Requester:
    """A channel consuming its direct replies (no-ack), collecting them."""

    def __init__(self, conn):
        self.conn = conn
        self.ch = conn.channel()
        self.replies = []
        self.tag = self.ch.basic_consume(
            REPLY_TO, lambda _c, m, p, b: self.replies.append((m, p, b)), auto_ack=True)

    def request(self, queue, body, **props):
        self.ch.basic_publish("", queue, body, pika.BasicProperties(reply_to=REPLY_TO, **props))

    def wait(self, n=1):
        wait_until(self.conn, lambda: len(self.replies) >= n, what="%d direct replies" % n)
        return self.replies


def serve_one(conn, ch, queue, reply_body=None, mandatory=False):
    """Take one request from `queue` and publish the reply to its reply-to."""
    got = get_message(conn, ch, queue, auto_ack=True)
    ch.basic_publish("", got.properties.reply_to, reply_body or (b"re:" + got.body),
                     pika.BasicProperties(correlation_id=got.properties.correlation_id),
                     mandatory=mandatory)
    return got


def rpc_round_trip(req_conn, srv_conn, names):
    q = names.queue("rpc")
    srv = srv_conn.channel()
    srv.queue_declare(q)
    r = Requester(req_conn)
    r.request(q, b"ping", correlation_id="c-1")
    got = serve_one(srv_conn, srv, q)
    assert got.properties.reply_to.startswith(REPLY_TO + ".")
    m, props, body = r.wait()[0]
    assert body == b"re:ping" and props.correlation_id == "c-1"
    assert m.consumer_tag == r.tag
    assert m.exchange == "" and m.routing_key == got.properties.reply_to
    assert not m.redelivered
    return r


def test_a_reply_reaches_the_requesters_channel_without_a_queue(conn, broker, names):
    rpc_round_trip(conn, broker.connect(), names)


def test_requester_and_responder_on_different_shards(shards, names):
    shards.require_shards(2)
    rpc_round_trip(shards.on_shard(0), shards.on_shard(1), names)
    rpc_round_trip(shards.on_shard(1), shards.on_shard(0), names)


def test_many_requests_get_their_replies_in_order(conn, broker, names):
    q = names.queue("rpc")
    srv_conn = broker.connect()
    srv = srv_conn.channel()
    srv.queue_declare(q)
    r = Requester(conn)
    for i in range(50):
        r.request(q, b"%d" % i, correlation_id=str(i))
    for _ in range(50):
        serve_one(srv_conn, srv, q)
    replies = r.wait(50)
    assert [p.correlation_id for _, p, _ in replies] == [str(i) for i in range(50)]
    assert [b for _, _, b in replies] == [b"re:%d" % i for i in range(50)]


def test_consuming_in_ack_mode_is_refused(conn):
    ch = conn.channel()
    assert_channel_error(
        conn, ch, lambda: ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=False),
        406, "PRECONDITION_FAILED - reply consumer cannot acknowledge")


def test_a_second_reply_consumer_on_the_channel_is_refused(conn):
    r = Requester(conn)
    assert_channel_error(
        conn, r.ch, lambda: r.ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True),
        406, "PRECONDITION_FAILED - reply consumer already set")


def test_publishing_with_reply_to_before_consuming_is_refused(conn, names):
    ch = conn.channel()
    assert_channel_error(
        conn, ch,
        lambda: (ch.basic_publish("", names.queue("none"), b"x",
                                  pika.BasicProperties(reply_to=REPLY_TO)),
                 ch.queue_declare(names.queue("sync"))),
        406, "PRECONDITION_FAILED - fast reply consumer does not exist")


def test_after_cancel_the_channel_has_no_reply_consumer(conn, names):
    r = Requester(conn)
    r.ch.basic_cancel(r.tag)
    assert_channel_error(
        conn, r.ch,
        lambda: (r.request(names.queue("none"), b"x"), r.ch.queue_declare(names.queue("sync"))),
        406, "PRECONDITION_FAILED - fast reply consumer does not exist")


def test_a_mandatory_reply_is_delivered_and_also_returned(conn, broker, names):
    # RabbitMQ: a reply address is not a queue, so a mandatory reply counts
    # as unroutable (basic.return) even though the requester gets it.
    q = names.queue("rpc")
    srv_conn = broker.connect()
    srv = srv_conn.channel()
    srv.queue_declare(q)
    returned = []
    srv.add_on_return_callback(lambda _c, m, p, b: returned.append((m, b)))
    r = Requester(conn)
    r.request(q, b"ping")
    serve_one(srv_conn, srv, q, mandatory=True)
    assert r.wait()[0][2] == b"re:ping"
    wait_until(srv_conn, lambda: returned, what="basic.return")
    assert returned[0][0].reply_code == 312 and returned[0][0].reply_text == "NO_ROUTE"


def test_replies_to_a_gone_or_forged_address_are_dropped_and_returned_if_mandatory(
        conn, broker, names):
    q = names.queue("rpc")
    gone_conn = broker.connect()
    r = Requester(gone_conn)
    ch = conn.channel()
    ch.queue_declare(q)
    r.request(q, b"req")
    got = get_message(conn, ch, q, auto_ack=True)
    address = got.properties.reply_to
    gone_conn.close()
    ch.confirm_delivery()
    for rk in [address, address[:-4] + "AAAA", REPLY_TO + ".garbage"]:
        with pytest.raises(pika.exceptions.UnroutableError):
            ch.basic_publish("", rk, b"late", mandatory=True)
        ch.basic_publish("", rk, b"late")  # confirmed, dropped
    # Publishing to the bare pseudo-queue name routes nowhere, no error.
    ch.basic_publish("", REPLY_TO, b"x")


def test_an_address_does_not_reach_another_channel_of_the_same_connection(conn, names):
    q = names.queue("rpc")
    a = Requester(conn)
    b = Requester(conn)
    ch = conn.channel()
    ch.queue_declare(q)
    a.request(q, b"from-a")
    addr_a = get_message(conn, ch, q, auto_ack=True).properties.reply_to
    b.request(q, b"from-b")
    addr_b = get_message(conn, ch, q, auto_ack=True).properties.reply_to
    assert addr_a != addr_b
    ch.basic_publish("", addr_b, b"for-b")
    ch.basic_publish("", addr_a, b"for-a")
    assert [x[2] for x in b.wait()] == [b"for-b"]
    assert [x[2] for x in a.wait()] == [b"for-a"]


def test_declaring_the_pseudo_queue_answers_zero_messages_one_consumer(ch):
    for passive in (True, False):
        ok = ch.queue_declare(REPLY_TO, passive=passive).method
        assert (ok.queue, ok.message_count, ok.consumer_count) == (REPLY_TO, 0, 1)


def test_basic_get_on_the_pseudo_queue_is_404(conn):
    ch = conn.channel()
    assert_channel_error(conn, ch, lambda: ch.basic_get(REPLY_TO), 404,
                         "NOT_FOUND - no queue 'amq.rabbitmq.reply-to' in vhost '/'")


def test_a_reply_to_that_is_already_an_address_is_left_alone(conn, names):
    q = names.queue("q")
    ch = conn.channel()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"x", pika.BasicProperties(reply_to=REPLY_TO + ".abc"))
    assert get_message(conn, ch, q, auto_ack=True).properties.reply_to == REPLY_TO + ".abc"
