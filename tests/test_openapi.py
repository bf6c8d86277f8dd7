"""The API's OpenAPI document is exact: a valid OpenAPI 3.1 document whose references all resolve
(no pydantic ``$defs``). That the live service answers only what it declares is checked with
schemathesis in test_serve.py, against that module's deployment (one Serve app fewer to start)."""

from __future__ import annotations

import json


def test_document_is_valid_and_self_contained() -> None:
    from openapi_spec_validator import validate

    from lsray.serve.api import app

    doc = app.openapi()
    validate(doc)  # every $ref resolves, every schema is valid OpenAPI 3.1
    assert "$defs" not in json.dumps(doc)
    ops = {(m, p): op for p, item in doc["paths"].items() for m, op in item.items()}
    assert set(doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain"}
    assert set(doc["paths"]["/v1/dub"]["post"]["responses"]["200"]["content"]) == {"video/mp4"}
    for (method, path), op in ops.items():
        codes = set(op["responses"])
        assert "503" in codes and "Retry-After" in op["responses"]["503"]["headers"], (method, path)
        if path != "/healthz":
            assert "WWW-Authenticate" in op["responses"]["401"]["headers"], (method, path)
        for code, response in op["responses"].items():
            if code[0] in "45":
                assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    assert {"429", "415", "413"} <= set(ops["post", "/v1/jobs"]["responses"])
    assert "422" not in ops["get", "/v1/jobs/{job_id}"]["responses"]  # a string path parameter cannot be invalid
