"""Operator start-up: kopf settings, clients kept in `memo`, the metrics endpoint."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
from kubernetes import client, config
from prometheus_client import start_http_server

from senseops_operator import constants as c
from senseops_operator.config import OperatorConfig
from senseops_operator.registry import RegistryClient


def _kube_api_client() -> client.ApiClient:
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()  # KUBECONFIG or ~/.kube/config (local runs and tests)
    return client.ApiClient()


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    """Keep kopf's bookkeeping under senseops.dev, post only our own Events, create clients once."""
    settings.persistence.finalizer = c.FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=c.ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=c.ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    # Log lines become Events only for warnings and errors; decisions post their own Events.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    cfg = OperatorConfig.from_env()
    memo.config = cfg
    memo.custom_api = client.CustomObjectsApi(_kube_api_client())
    memo.registry = RegistryClient(cfg.registry_auth_file, cfg.insecure_registries, cfg.registry_timeout_s)
    memo.artifact_checks = asyncio.Semaphore(cfg.artifact_check_concurrency)
    start_http_server(cfg.metrics_port, addr=cfg.bind_host)
    logger.info("senseops operator configured: metrics on :%d, namespaces=%s", cfg.metrics_port,
                ",".join(cfg.namespaces) or "<all>")
