"""What generated clients need of the OpenAPI description, read without a server: every
operation in one declared area (tag), and the bearer scheme saying which token does
what."""

from queueapp.api import endpoints
from queueapp.api.spec import TAGS, openapi_document


def test_every_operation_is_tagged_with_a_declared_area():
    doc = openapi_document(endpoints(), auth=True)
    declared = [t["name"] for t in doc["tags"]]
    assert declared == list(TAGS) and all(t["description"] for t in doc["tags"])
    used = set()
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            assert len(op["tags"]) == 1 and op["tags"][0] in declared, (method, path)
            used.add(op["tags"][0])
    assert used == set(declared)  # no area without an operation


def test_the_bearer_scheme_is_declared_with_auth_and_names_both_tokens():
    with_auth = openapi_document(endpoints(), auth=True)
    scheme = with_auth["components"]["securitySchemes"]["bearer"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    assert "read_token" in scheme["description"] and "token" in scheme["description"]
    assert with_auth["paths"]["/queues/jobs"]["post"]["security"] == [{"bearer": []}]
    assert "security" not in with_auth["paths"]["/livez"]["get"]
    without = openapi_document(endpoints(), auth=False)
    assert "securitySchemes" not in without["components"]
    assert all("security" not in op for methods in without["paths"].values() for op in methods.values())
