"""Server-side apply with the Kubernetes Python client (whose typed patch calls only send merge patches)."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from senseops_operator.routers.base import FIELD_MANAGER


def server_side_apply(api: client.ApiClient, path: str, body: dict[str, Any], *, force: bool = True) -> Any:
    """PATCH `path` with `application/apply-patch+yaml` (JSON is YAML) under our field manager."""
    query = [("fieldManager", FIELD_MANAGER), ("force", "true" if force else "false")]
    headers = {"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"}
    return api.call_api(
        path, "PATCH", header_params=headers, query_params=query, body=body, response_type="object",
        auth_settings=["BearerToken"], _return_http_data_only=True,
    )
