"""The OpenAPI 3.1 document of a route registry, from the routes' pydantic models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from cloud_sync.web.routing import TEXT_PARAM_SCHEMA, Api, ErrorBody, Route, Upload
from models.store_api import ValidationErrorBody

_REF = "#/components/schemas/{model}"

_STATUS_TEXT = {
    401: "No token, or a bad or revoked one",
    403: "The token's role may not use this route",
    404: "No such resource",
    409: "The request conflicts with the stored data",
    413: "A file is over the size limit",
    415: "The body is not multipart/form-data",
    422: "Validation Error",
    503: "Could not be stored now; nothing was stored: try again",
}


def document(api: Api, *, title: str, version: str, description: str = "") -> dict[str, Any]:
    """The whole document: paths, operations, parameters, bodies, every response, and component schemas."""
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (ErrorBody, "serialization"),
        (ValidationErrorBody, "serialization"),
    ]
    for route in api.routes:
        if route.body is not None:
            wanted.append((route.body, "validation"))
        if route.response is not None:
            wanted.append((route.response, "serialization"))
    refs, defs = models_json_schema(list(dict.fromkeys(wanted)), ref_template=_REF)

    def ref(model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        return dict(refs[(model, mode)])

    paths: dict[str, dict[str, Any]] = {}
    for route in api.routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, ref)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation(route: Route, ref: Any) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": _operation_id(route),
        "summary": route.summary,
        "tags": [route.tag],
        "parameters": _parameters(route),
        "responses": _responses(route, ref),
    }
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref(route.body, "validation")}},
        }
    if route.upload is not None:
        operation["requestBody"] = _upload_body(route.upload)
    if route.roles is not None:
        operation["security"] = [{"bearer": []}]
    return operation


def _upload_body(upload: Upload) -> dict[str, Any]:
    files = {
        "type": "array",
        "items": {"type": "string", "contentMediaType": "application/octet-stream"},
        "minItems": 1,
        "maxItems": upload.max_files,
        "description": f"{upload.description} At most {upload.max_bytes:,} bytes each (413 above).".strip(),
    }
    schema = {
        "type": "object",
        "properties": {upload.field: files},
        "required": [upload.field],
        "additionalProperties": False,
    }
    return {"required": True, "content": {"multipart/form-data": {"schema": schema}}}


def _operation_id(route: Route) -> str:
    words = route.path.strip("/").replace("{", "").replace("}", "").replace(".", "_").split("/")
    return "_".join([route.method.lower(), *words])


def _parameters(route: Route) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
        for name in route.path_params
    ]
    parameters += [
        {"name": name, "in": "path", "required": True, "schema": dict(TEXT_PARAM_SCHEMA)}
        for name in route.text_params
    ]
    schema = route.query.model_json_schema()
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        parameters.append({"name": name, "in": "query", "required": name in required, "schema": prop})
    return parameters


def _responses(route: Route, ref: Any) -> dict[str, Any]:
    if route.response is not None:
        ok = {
            "description": "Successful Response",
            "content": {"application/json": {"schema": ref(route.response, "serialization")}},
        }
    else:
        ok = {
            "description": "Successful Response",
            "content": {
                route.media_type: {"schema": {"type": "string", "contentMediaType": route.media_type}}
            },
        }
    responses: dict[str, Any] = {"200": ok}
    statuses = {*route.errors, 503}  # every route needs the database, which can be away
    if route.roles is not None:
        statuses |= {401, 403}
    if route.path_params:
        statuses.add(404)
    if route.takes_input:
        statuses.add(422)
    if route.upload is not None:
        statuses |= {413, 415}
    for status in sorted(statuses):
        model = ValidationErrorBody if status == 422 else ErrorBody
        responses[str(status)] = {
            "description": _STATUS_TEXT.get(status, "Error"),
            "content": {"application/json": {"schema": ref(model, "serialization")}},
        }
    return responses
