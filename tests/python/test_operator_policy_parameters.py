"""Operator policies as RabbitMQ lists and exports them: runtime
parameters of component `operator_policy` in `/api/parameters` and in a
definitions export, and imported back from one. Recorded from RabbitMQ
3.10.8 (runs against it with WARREN_TEST_URL and WARREN_TEST_MGMT_PORT)."""

import uuid

from helpers import mgmt_request


def test_operator_policies_travel_as_runtime_parameters(broker):
    def call(method, path, body=None):
        return mgmt_request(broker.mgmt_port, method, path, body, broker.user, broker.password)

    name = "op-" + uuid.uuid4().hex[:6]
    body = {"pattern": "^opq", "definition": {"max-length": 5}, "apply-to": "queues", "priority": 2}
    assert call("PUT", "/api/operator-policies/%2F/" + name, body)[0] in (201, 204)
    want = {"vhost": "/", "component": "operator_policy", "name": name, "value": body}
    assert [p for p in call("GET", "/api/parameters")[1] if p.get("name") == name] == [want]
    exported = [p for p in call("GET", "/api/definitions")[1]["parameters"] if p.get("name") == name]
    assert exported == [want]
    assert call("DELETE", "/api/operator-policies/%2F/" + name)[0] == 204
    assert call("POST", "/api/definitions", {"parameters": exported})[0] in (201, 204)
    st, got = call("GET", "/api/operator-policies/%2F/" + name)
    assert st == 200 and (got["definition"], got["apply-to"], got["priority"]) == ({"max-length": 5}, "queues", 2)
    call("DELETE", "/api/operator-policies/%2F/" + name)
