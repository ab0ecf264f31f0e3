"""The local API's OpenAPI 3.1 document, written from its route table and pydantic bodies as the cloud's is
(cloud_sync/web/openapi.py): the agent may not import cloud_sync, and the cloud's registry is bound to its
roles and domain errors (decision 48)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from robot_agent.api.bodies import ErrorBody, ValidationErrorBody

if TYPE_CHECKING:
    from robot_agent.api.server import Route

_REF = "#/components/schemas/{model}"


def document(routes: list[Route], *, title: str, version: str, description: str) -> dict[str, Any]:
    models: set[tuple[type[BaseModel], JsonSchemaMode]] = {
        (ErrorBody, "serialization"),
        (ValidationErrorBody, "serialization"),
    }
    for route in routes:
        if route.body is not None:
            models.add((route.body, "validation"))
        if route.response is not None:
            models.add((route.response, "serialization"))
    keyed, schema = models_json_schema(sorted(models, key=lambda m: (m[0].__name__, m[1])), ref_template=_REF)

    def ref(model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        return dict(keyed[(model, mode)])

    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, ref)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {
            "schemas": schema.get("$defs", {}),
            "securitySchemes": {
                "session": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A session token from POST /session or POST /session/card.",
                }
            },
        },
    }


def _operation(route: Route, ref: Any) -> dict[str, Any]:
    description = route.description
    if route.privilege is not None:
        description += f"\n\nNeeds the `{route.privilege.name}` privilege."
    if route.needs_step_up:
        description += (
            " Needs a stepped-up session (the password once a session: POST /session/step-up); otherwise"
            ' 403 with `"step_up": true`.'
        )
    if route.hardware:
        description += " Refused (423) while the e-stop is pressed."
    operation: dict[str, Any] = {
        "tags": [route.tag],
        "summary": route.summary,
        "description": description.strip(),
        "operationId": route.name.replace(".", "_"),
    }
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": schema}
        for name, schema in route.path_params.items()
    ]
    if route.query is not None:
        for name, field in route.query.model_fields.items():
            parameters.append(
                {
                    "name": name,
                    "in": "query",
                    "required": False,
                    "description": field.description or "",
                    "schema": route.query.model_json_schema()["properties"][name],
                }
            )
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref(route.body, "validation")}},
        }
    if route.needs_session:
        operation["security"] = [{"session": []}]
    ok = {"description": "OK"}
    if route.response is not None:
        ok["content"] = {route.media_type: {"schema": ref(route.response, "serialization")}}  # type: ignore[assignment]
    responses: dict[str, Any] = {"200": ok}
    error = {"application/json": {"schema": ref(ErrorBody, "serialization")}}
    for status in sorted(route.errors):
        responses[str(status)] = {"description": _REASONS.get(status, "Error"), "content": error}
    if route.body is not None or route.query is not None or route.path_params:
        responses["422"] = {
            "description": "Invalid input",
            "content": {"application/json": {"schema": ref(ValidationErrorBody, "serialization")}},
        }
    operation["responses"] = responses
    return operation


_REASONS = {
    401: "No session, or it expired",
    403: "The session lacks the privilege named, or step-up (`step_up`: true)",
    404: "Not known to this robot",
    408: "No card was tapped in time",
    409: "Conflict",
    423: "The e-stop is pressed",
    429: "Logins and step-ups are locked after failed ones",
    502: "A device refused the command",
    503: "Not available on this robot now",
}
