"""AMQPS with pika: server verification, client certificates and the
EXTERNAL mechanism (RabbitMQ's rabbitmq_auth_mechanism_ssl), against
certificates made in the test with trustme.

These tests start their own broker with TLS flags (the shared fixture's
broker has no TLS listener), with 1 and 2 shards. They are skipped when
the suite runs against an external broker.
"""

import base64
import json
import os
import ssl
import subprocess
import tempfile
import urllib.parse
import urllib.request

import pika
import pytest
import trustme
from cryptography import x509

from helpers import OwnBroker
from conftest import EXTERNAL_URL, WARREN_BIN

pytestmark = pytest.mark.skipif(EXTERNAL_URL is not None, reason="starts its own TLS broker")


class TlsBroker(OwnBroker):
    def __init__(self, shards, config="""auth_mechanisms = ["PLAIN", "AMQPLAIN", "EXTERNAL"]\n"""):
        self.ca = trustme.CA()
        self.dir = tempfile.TemporaryDirectory()
        d = self.dir.name
        cfg = os.path.join(d, "warren.toml")
        with open(cfg, "w") as f:
            f.write(config)
        server = self.ca.issue_cert("localhost", "127.0.0.1")
        self.cert_file = os.path.join(d, "server.pem")
        self.key_file = os.path.join(d, "server.key")
        self.ca_file = os.path.join(d, "ca.pem")
        server.cert_chain_pems[0].write_to_path(self.cert_file)
        server.private_key_pem.write_to_path(self.key_file)
        self.ca.cert_pem.write_to_path(self.ca_file)
        self.proc = subprocess.Popen(
            [WARREN_BIN, "--bind", "127.0.0.1", "--port", "0", "--mgmt-port", "0",
             "--tls-port", "0", "--shards", str(shards),
             "--tls-cert-file", self.cert_file, "--tls-key-file", self.key_file,
             "--tls-ca-file", self.ca_file, "--tls-verify-peer",
             "--data-dir", os.path.join(d, "data"), "--config", cfg],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=dict(os.environ, WARREN_LOG="warn"))
        ports = []
        for prefix in ("warren listening on", "warren management listening on",
                       "warren amqps listening on"):
            line = self.proc.stdout.readline().decode()
            assert line.startswith(prefix), line
            ports.append(int(line.strip().rsplit(":", 1)[1]))
        self.port, self.mgmt_port, self.tls_port = ports

    def add_user(self, name):
        # No password: the user can only log in with a certificate.
        quoted = urllib.parse.quote(name, safe="")
        self.api("PUT", "/api/users/" + quoted, {"tags": ""})
        self.api("PUT", "/api/permissions/%2F/" + quoted,
                 {"configure": ".*", "write": ".*", "read": ".*"})

    def context(self, client_cert=None):
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if client_cert is not None:
            client_cert.configure_cert(ctx)
        return ctx

    def params(self, ctx, credentials):
        return pika.ConnectionParameters(
            host="localhost", port=self.tls_port, ssl_options=pika.SSLOptions(ctx, "localhost"),
            credentials=credentials, connection_attempts=1)


@pytest.fixture(params=[1, 2], ids=["shards1", "shards2"])
def tls_broker(request):
    b = TlsBroker(request.param)
    yield b
    b.close()


def subject_of(cert):
    """The certificate's subject in RFC 4514 form, as RabbitMQ prints it
    (`rabbit_cert_info`: reversed RDN order, comma-separated)."""
    pem = cert.cert_chain_pems[0].bytes()
    return x509.load_pem_x509_certificate(pem).subject.rfc4514_string()


def roundtrip(conn, queue):
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare(queue)
    ch.basic_publish("", queue, b"over tls", mandatory=True)
    method, _props, body = ch.basic_get(queue, auto_ack=True)
    assert method is not None and body == b"over tls"


def test_external_login_takes_the_certificate_subject_as_the_user(tls_broker):
    client = tls_broker.ca.issue_cert("alice@example.com", common_name="alice")
    user = subject_of(client)
    assert user.startswith("CN=alice,"), user
    tls_broker.add_user(user)
    ctx = tls_broker.context(client)
    conn = pika.BlockingConnection(
        tls_broker.params(ctx, pika.credentials.ExternalCredentials()))
    try:
        roundtrip(conn, "ext-dn")
        conns = tls_broker.api("GET", "/api/connections")
        assert len(conns) == 1, conns
        c = conns[0]
        assert c["user"] == user
        assert c["auth_mechanism"] == "EXTERNAL"
        assert c["ssl"] is True
        assert c["peer_cert_subject"] == user
        assert c["peer_cert_issuer"] == x509.load_pem_x509_certificate(
            tls_broker.ca.cert_pem.bytes()).subject.rfc4514_string()
    finally:
        conn.close()


def test_external_login_by_common_name_when_configured(tls_broker):
    # ssl_cert_login_from is a configuration-file key, as in RabbitMQ.
    tls_broker.close()
    b = TlsBroker(1, config='auth_mechanisms = ["EXTERNAL", "PLAIN"]\nssl_cert_login_from = "common_name"\n')
    try:
        client = b.ca.issue_cert("bob@example.com", common_name="bob")
        b.add_user("bob")
        conn = pika.BlockingConnection(
            b.params(b.context(client), pika.credentials.ExternalCredentials()))
        try:
            roundtrip(conn, "ext-cn")
            assert b.api("GET", "/api/connections")[0]["user"] == "bob"
        finally:
            conn.close()
    finally:
        b.close()
        # The fixture closes its broker again: make that harmless.
        tls_broker.close = lambda: None


def test_external_login_for_an_unknown_subject_is_refused(tls_broker):
    client = tls_broker.ca.issue_cert("mallory@example.com", common_name="mallory")
    with pytest.raises(pika.exceptions.AMQPConnectionError) as e:
        pika.BlockingConnection(
            tls_broker.params(tls_broker.context(client), pika.credentials.ExternalCredentials()))
    assert isinstance(e.value, (pika.exceptions.ProbableAuthenticationError,
                                pika.exceptions.AuthenticationError)) or "403" in repr(e.value), repr(e.value)
    # The broker goes on serving others.
    conn = pika.BlockingConnection(
        tls_broker.params(tls_broker.context(), pika.PlainCredentials("guest", "guest")))
    roundtrip(conn, "after-refusal")
    conn.close()


def test_external_without_a_client_certificate_is_refused_with_403(tls_broker):
    # EXTERNAL is offered on every TLS connection, as RabbitMQ's plugin
    # offers it; without a certificate the login is refused (403).
    with pytest.raises(pika.exceptions.AMQPConnectionError) as e:
        pika.BlockingConnection(
            tls_broker.params(tls_broker.context(), pika.credentials.ExternalCredentials()))
    assert "ACCESS_REFUSED" in repr(e.value) or isinstance(
        e.value, pika.exceptions.ProbableAuthenticationError), repr(e.value)
    conn = pika.BlockingConnection(
        tls_broker.params(tls_broker.context(), pika.PlainCredentials("guest", "guest")))
    try:
        roundtrip(conn, "plain-over-tls")
        c = tls_broker.api("GET", "/api/connections")[0]
        assert c["auth_mechanism"] == "PLAIN" and c["peer_cert_subject"] is None
    finally:
        conn.close()


def test_a_certificate_from_another_ca_is_refused_at_the_handshake(tls_broker):
    other = trustme.CA().issue_cert("eve@example.com", common_name="eve")
    # Even with valid PLAIN credentials the handshake itself fails: the
    # broker does not accept a client certificate it cannot verify.
    with pytest.raises(pika.exceptions.AMQPConnectionError) as e:
        pika.BlockingConnection(
            tls_broker.params(tls_broker.context(other), pika.PlainCredentials("guest", "guest")))
    assert not isinstance(e.value, (pika.exceptions.ProbableAuthenticationError,
                                    pika.exceptions.AuthenticationError)), repr(e.value)


def test_a_certificate_user_cannot_log_in_with_a_blank_password(tls_broker):
    client = tls_broker.ca.issue_cert("carol@example.com", common_name="carol")
    user = subject_of(client)
    tls_broker.add_user(user)
    # Even one created with an explicitly blank password.
    tls_broker.api("PUT", "/api/users/" + urllib.parse.quote(user, safe=""), {"password": "", "tags": ""})
    for password in ["", "x"]:
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            pika.BlockingConnection(pika.ConnectionParameters(
                host="127.0.0.1", port=tls_broker.port, connection_attempts=1,
                credentials=pika.PlainCredentials(user, password)))


def test_external_is_not_offered_unless_configured():
    b = TlsBroker(1, config="")
    try:
        client = b.ca.issue_cert("dave@example.com", common_name="dave")
        b.add_user(subject_of(client))
        # pika refuses to log in when the server does not list EXTERNAL.
        with pytest.raises(pika.exceptions.AuthenticationError) as e:
            pika.BlockingConnection(b.params(b.context(client), pika.credentials.ExternalCredentials()))
        assert "EXTERNAL" in repr(e.value) or "mechanism" in repr(e.value).lower(), repr(e.value)
    finally:
        b.close()


def test_management_api_and_ui_over_https_with_the_tls_certificate():
    b = TlsBroker(1, config="[management]\ntls = true\n")
    try:
        ctx = ssl.create_default_context(cafile=b.ca_file)
        auth = "Basic " + base64.b64encode(b"guest:guest").decode()
        url = "https://localhost:%d" % b.mgmt_port
        req = urllib.request.Request(url + "/api/overview", headers={"Authorization": auth})
        with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
            assert json.loads(r.read())["management_version"]
        with urllib.request.urlopen(url + "/", timeout=10, context=ctx) as r:
            assert b"Warren management" in r.read()
        # Plain HTTP on that port gets no answer.
        with pytest.raises(Exception):
            urllib.request.urlopen("http://127.0.0.1:%d/api/overview" % b.mgmt_port, timeout=5).read()
    finally:
        b.close()
