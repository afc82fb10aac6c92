"""Alternate exchanges (the `alternate-exchange` exchange argument) and the
validation of exchange and binding arguments, with RabbitMQ 3.10's answers
(recorded from Debian's rabbitmq-server via `scripts/compare.sh start
rabbitmq`; the file passes against it with
WARREN_TEST_URL=amqp://guest:guest@127.0.0.1:5682/%2f).
"""

import pika
import pytest

from helpers import assert_channel_error, get_message, message_count


def ae_with_queue(ch, names, internal=False):
    ae, q = names.exchange("ae"), names.queue("aeq")
    ch.exchange_declare(ae, "fanout", internal=internal)
    ch.queue_declare(q)
    ch.queue_bind(q, ae)
    return ae, q


def test_an_unroutable_message_goes_to_the_alternate_exchange(conn, ch, names):
    ae, aeq = ae_with_queue(ch, names)
    x = names.exchange("main")
    ch.exchange_declare(x, "direct", arguments={"alternate-exchange": ae})
    ch.confirm_delivery()
    # Mandatory and confirmed: routed through the AE, so neither returned
    # nor nacked.
    ch.basic_publish(x, "nokey", b"to-ae", mandatory=True)
    got = get_message(conn, ch, aeq, auto_ack=True)
    assert got.body == b"to-ae"
    assert got.method.exchange == x and got.method.routing_key == "nokey"


def test_a_routable_message_does_not_reach_the_alternate_exchange(ch, names):
    ae, aeq = ae_with_queue(ch, names)
    x, q = names.exchange("main"), names.queue("bound")
    ch.exchange_declare(x, "direct", arguments={"alternate-exchange": ae})
    ch.queue_declare(q)
    ch.queue_bind(q, x, "k")
    ch.confirm_delivery()
    ch.basic_publish(x, "k", b"direct")
    assert message_count(ch, q) == 1
    assert message_count(ch, aeq) == 0


def test_alternate_exchanges_chain_and_may_be_internal(ch, names):
    ae2, aeq = ae_with_queue(ch, names, internal=True)
    ae1 = names.exchange("ae1")
    ch.exchange_declare(ae1, "direct", arguments={"alternate-exchange": ae2})
    x = names.exchange("main")
    ch.exchange_declare(x, "topic", arguments={"alternate-exchange": ae1})
    ch.confirm_delivery()
    ch.basic_publish(x, "a.b", b"twice-alternated", mandatory=True)
    assert message_count(ch, aeq) == 1


def test_a_missing_or_looping_alternate_exchange_returns_a_mandatory_message(conn, names):
    ch = conn.channel()
    ch.confirm_delivery()
    missing = names.exchange("main")
    ch.exchange_declare(missing, "direct", arguments={"alternate-exchange": names.exchange("nowhere")})
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish(missing, "k", b"x", mandatory=True)
    l1, l2 = names.exchange("l1"), names.exchange("l2")
    ch.exchange_declare(l1, "direct", arguments={"alternate-exchange": l2})
    ch.exchange_declare(l2, "direct", arguments={"alternate-exchange": l1})
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish(l1, "k", b"x", mandatory=True)


def test_an_alternate_exchange_that_is_not_a_string_is_refused(conn, names):
    x = names.exchange("bad")
    ch = conn.channel()
    assert_channel_error(
        conn, ch, lambda: ch.exchange_declare(x, "direct", arguments={"alternate-exchange": 5}),
        406, "PRECONDITION_FAILED - invalid type 'signedint' for arg 'alternate-exchange' "
             "in exchange '%s' in vhost '/'" % x)


@pytest.mark.parametrize("x_match, text", [
    ("foo", 'PRECONDITION_FAILED - Invalid x-match field value <<"foo">>; '
            "expected all, any, all-with-x, or any-with-x"),
    (5, "PRECONDITION_FAILED - Invalid x-match field type signedint (value 5); expected longstr"),
])
def test_a_headers_binding_with_a_bad_x_match_is_refused(conn, names, x_match, text):
    ch = conn.channel()
    x, q = names.exchange("hx"), names.queue("hq")
    ch.exchange_declare(x, "headers")
    ch.queue_declare(q)
    assert_channel_error(
        conn, ch, lambda: ch.queue_bind(q, x, "", arguments={"x-match": x_match}), 406, text)


def test_x_match_with_x_modes_are_accepted(ch, names):
    x, q = names.exchange("hx"), names.queue("hq")
    ch.exchange_declare(x, "headers")
    ch.queue_declare(q)
    for mode in ["all", "any", "all-with-x", "any-with-x"]:
        ch.queue_bind(q, x, "", arguments={"x-match": mode, "k": "v"})
