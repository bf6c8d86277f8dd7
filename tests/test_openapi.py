"""The API's OpenAPI document is exact: a valid OpenAPI 3.1 document whose references all resolve
(no pydantic ``$defs``), and the live service answers only what it declares (status codes, media
types, bodies, headers), checked with schemathesis against the ``service`` fixture (conftest.py)."""

from __future__ import annotations

import os

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # before anything imports ray: loopback only

import collections
import json
import time

import pytest

from serving import FAST, auth

# Per operation and generation mode. The media routes are exercised too: generated inputs are
# never media under a storage root, so they are refused (400/404/415/422) before any dubbing.
MAX_EXAMPLES = 40


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


@pytest.mark.slow
def test_live_service_conforms_to_its_document(service, media) -> None:
    """Every operation, positive and negative inputs, with the key: no 5xx, and every answer
    (status, content type, body, headers) one the document declares. Then the answers generated
    inputs cannot reach: no key (401 + WWW-Authenticate) and admission control (503 + Retry-After)."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis.checks import (content_type_conformance, not_a_server_error, response_headers_conformance,
                                     response_schema_conformance, status_code_conformance)
    from schemathesis.core.failures import Failure, FailureGroup

    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
              response_headers_conformance]
    schema = schemathesis.openapi.from_url(f"{service}/openapi.json", timeout=60)  # what the live app serves
    examples: collections.Counter[str] = collections.Counter()
    statuses: collections.Counter[int] = collections.Counter()
    failures: list[str] = []
    unsatisfiable: list[str] = []
    t0 = time.perf_counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    for op in operations:
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

            @given(case=op.as_strategy(generation_mode=mode))
            @settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            def exercise(case) -> None:
                examples[op.label] += 1
                try:
                    response = case.call_and_validate(headers=auth(), checks=checks, timeout=60)
                    statuses[response.status_code] += 1
                except (Failure, FailureGroup) as exc:
                    failures.append(f"{op.label} [{mode.value}]: {exc}\n{case.as_curl_command(headers=auth())}")

            try:
                exercise()
            except Unsatisfiable:  # nothing to get wrong: no parameters, or only strings in the path
                assert mode is schemathesis.GenerationMode.NEGATIVE, op.label
                unsatisfiable.append(op.label)
    total = sum(examples.values())
    print(f"schemathesis: {len(operations)} operations, {total} examples, {len(failures)} failures, "
          f"{time.perf_counter() - t0:.0f} s; statuses {dict(sorted(statuses.items()))}; "
          f"no negative inputs for {unsatisfiable}")
    assert len(operations) == 9 and total >= len(operations) * 2
    assert not failures, "\n\n".join(failures[:10])

    by_label = {op.label: op for op in operations}
    for label in ("GET /v1/jobs", "GET /metrics", "POST /v1/estimate"):
        case = by_label[label].Case(**({"body": {}} if label.startswith("POST") else {}))
        assert case.call_and_validate(checks=checks, timeout=60).status_code == 401  # no key
    clip = {"video": str(media["video16"]), "audio": str(media["audio16"]), "options": FAST}
    case = by_label["POST /v1/jobs/batch"].Case(body={"clips": [clip] * 3}, media_type="application/json")
    conformance = [check for check in checks if check is not not_a_server_error]  # this 5xx is the point
    assert case.call_and_validate(headers=auth(), checks=conformance, timeout=60).status_code == 503  # > max_pending_jobs
