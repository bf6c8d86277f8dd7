"""The HTTP API's OpenAPI contract, in one place: the error body, the status codes each route can
answer (with their headers), and the request bodies the handlers validate themselves.

Why this exists: the protected routes read and validate their bodies *after* the key check (so a
caller without a key learns nothing), which means FastAPI cannot derive their request schemas or
their refusals from the handlers' signatures. Everything FastAPI cannot see is declared here, once,
so that generated clients and contract testers (schemathesis) find exactly what the service
answers: every status with its body and headers, and ``#/components/schemas/...`` references only
(pydantic's ``#/$defs/...`` do not resolve inside an OpenAPI document).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from lsray.serve.inputs import InputError

REF = "#/components/schemas/{model}"


class ErrorBody(BaseModel):
    """The JSON body of every refusal the application makes (HTTPException and InputError alike)."""

    detail: str = Field(description="what was refused and why, for a person to read")


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before trying again", "required": True,
                                "schema": {"type": "integer", "minimum": 0}}}
_WWW_AUTHENTICATE = {"WWW-Authenticate": {"description": "the scheme to authenticate with: Bearer", "required": True,
                                          "schema": {"type": "string"}}}

# What each refusal means (the module docstring of lsray.serve.api says where each comes from).
_ERRORS: dict[int, tuple[str, dict]] = {
    400: ("bad request: malformed body or paging, a URI outside the storage roots, a webhook off the allowlist", {}),
    401: ("missing or invalid API key", _WWW_AUTHENTICATE),
    404: ("not found: no such job (another tenant's job included), input object or served model", {}),
    413: ("too large: body, frame size, duration, clip count, or too long for the synchronous route", {}),
    415: ("not media, or a body that is neither multipart/form-data nor JSON", {}),
    422: ("invalid request or options, or a clip the pipeline refused", {}),
    429: ("past the tenant's submission rate or active-job quota", _RETRY_AFTER),
    503: ("overloaded: admission control, or Ray Serve's queue for the ingress is full (its answer is plain text)",
          _RETRY_AFTER),
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that can refuse with ``codes``, each with :class:`ErrorBody`.

    Every route also gets 503: Ray Serve answers it (plain text, with Retry-After) for any route
    when the ingress's queue is full, before the application sees the request.
    """
    out: dict[int | str, dict[str, Any]] = {}
    for code in sorted({*codes, 503}):
        description, headers = _ERRORS[code]
        content: dict[str, Any] = {"application/json": {"schema": _ref(ErrorBody)}}
        if code == 503:
            content["text/plain"] = {"schema": {"type": "string"}}
        out[code] = {"description": description, "content": content, **({"headers": headers} if headers else {})}
    return out


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a JSON body the handler validates itself (list ``model`` in :func:`install`)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": _ref(model)}}}}


def media_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a clip sent as uploads (multipart) or as storage URIs (JSON ``model``)."""
    upload = {
        "type": "object", "required": ["video", "audio"],
        "properties": {
            "video": {"type": "string", "format": "binary", "description": "the source video"},
            "audio": {"type": "string", "format": "binary", "description": "the dubbed audio"},
            "options": {"type": "string", "description": "DubOptions as JSON"},
            "webhook_url": {"type": "string", "description": "jobs only: POSTed the signed job record when it ends"},
        },
    }
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": upload},
        "application/json": {"schema": _ref(model)},
    }}}


def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's own parameter validation (query strings) answers in the same shape as the rest."""
    err = exc.errors()[0] if exc.errors() else {"msg": "invalid request", "loc": []}
    return JSONResponse({"detail": f"invalid request: {err['msg']} at {list(err['loc'])}"}, status_code=422)


def _refused(request: Request, exc: InputError) -> JSONResponse:
    return JSONResponse({"detail": exc.message}, status_code=exc.status)


def _without_generic_422(doc: dict[str, Any]) -> None:
    """Drop FastAPI's automatic 422 (HTTPValidationError) from operations: where a route can
    answer 422 it declares it with :class:`ErrorBody`; elsewhere (a string path parameter) it cannot."""
    generic = REF.format(model="HTTPValidationError")
    for ops in doc.get("paths", {}).values():
        for op in ops.values():
            schema = op.get("responses", {}).get("422", {}).get("content", {}).get("application/json", {}).get("schema")
            if schema == {"$ref": generic}:
                del op["responses"]["422"]
    schemas = doc.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)


def install(app: FastAPI, *body_models: type[BaseModel]) -> None:
    """Make ``app`` answer refusals as :class:`ErrorBody` and describe itself with ``body_models``
    (those named by :func:`json_body` / :func:`media_body`) and every model they use in
    ``components/schemas``."""
    app.add_exception_handler(InputError, _refused)
    app.add_exception_handler(RequestValidationError, _invalid)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            _without_generic_422(doc)
            _, defs = models_json_schema([(m, "validation") for m in (ErrorBody, *body_models)], ref_template=REF)
            doc.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # FastAPI's documented way to customise the document
