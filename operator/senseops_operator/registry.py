"""Read image manifest digests from an OCI registry (Docker Registry HTTP API v2).

The operator asks the registry itself which digest a reference names: ``HEAD /v2/<repo>/manifests/<ref>``
and its ``Docker-Content-Digest`` header (a GET and a sha256 of the body when a registry leaves it out).
Authentication follows the registry's ``WWW-Authenticate`` challenge: Basic, or Bearer through the token
service it names. Credentials come from the operator's **own** docker config file
(``SENSEOPS_REGISTRY_AUTH_FILE``), never from a user's Secret. Plain http is used only for loopback
registries and those listed in ``SENSEOPS_INSECURE_REGISTRIES``.

Errors: :class:`RegistryUnavailable` (network, timeouts, 5xx, 429 — look again later),
:class:`ManifestNotFound` (the reference names no manifest), :class:`RegistryAuthError` (401/403 — fix the
operator's registry credentials), all subclasses of :class:`RegistryError`.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

MANIFEST_MEDIA_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
DIGEST_PATTERN = re.compile(r"^sha256:[a-f0-9]{64}$")
_REF = re.compile(
    r"^(?P<registry>[a-zA-Z0-9.-]+(:[0-9]+)?|\[[0-9a-fA-F:]+\](:[0-9]+)?)/(?P<repository>[a-z0-9]+(?:[._/-][a-z0-9]+)*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"


class RegistryError(Exception):
    """Any failure to read a digest from a registry; the message says what to fix."""


class RegistryUnavailable(RegistryError):
    """The registry could not be reached or answered 5xx/429: transient, look again later."""


class ManifestNotFound(RegistryError):
    """The registry answered that the reference names no manifest."""


class RegistryAuthError(RegistryError):
    """The registry refused the operator's credentials (or it has none for this registry)."""


class InsecureRegistryRefused(RegistryError):
    """An http:// token realm (or other plain-http step) for a registry not allowed to be insecure."""


@dataclass(frozen=True)
class ImageRef:
    """``registry/repository[:tag][@sha256:…]``; the manifest reference is the digest when given."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        return self.digest or self.tag or "latest"

    @property
    def pinned(self) -> str:
        """``registry/repository@digest`` (needs the digest)."""
        return f"{self.registry}/{self.repository}@{self.digest}"


def parse_image_ref(text: str) -> ImageRef:
    """Parse an image reference with an explicit registry host (``oci://`` prefix allowed)."""
    value = text.removeprefix("oci://")
    match = _REF.match(value)
    if match is None or ("." not in match["registry"] and ":" not in match["registry"]
                         and match["registry"] != "localhost"):
        raise ValueError(f"{text!r} is not an image reference with a registry host, e.g. "
                         "registry.example.com/asr/model@sha256:<64 hex>")
    return ImageRef(match["registry"], match["repository"], match["tag"], match["digest"])


def host_of(registry: str) -> str:
    """``127.0.0.1:5000`` -> ``127.0.0.1``; ``[::1]:5000`` -> ``::1``."""
    if registry.startswith("["):
        return registry[1:registry.index("]")]
    return registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry


def is_loopback(registry: str) -> bool:
    host = host_of(registry)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def registry_scheme(registry: str, insecure: frozenset[str]) -> str:
    """``http`` only for loopback registries and those explicitly configured as insecure."""
    return "http" if is_loopback(registry) or registry in insecure else "https"


def api_host(registry: str) -> str:
    return DOCKER_HUB_API if registry == DOCKER_HUB else registry


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="…",service="…"`` -> ("bearer", {"realm": …, "service": …})."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_CHALLENGE_PARAM.findall(rest))


def credentials_for(docker_config: Mapping[str, Any], registry: str) -> tuple[str, str] | None:
    """(user, password) for ``registry`` from a docker config.json (``auths.<host>.auth`` or username/password)."""
    auths: Mapping[str, Any] = docker_config.get("auths") or {}
    keys = [registry, f"https://{registry}", f"http://{registry}"]
    if registry in (DOCKER_HUB, DOCKER_HUB_API):
        keys.append(DOCKER_HUB_AUTH_KEY)
    for key in keys:
        entry = auths.get(key) or auths.get(key + "/")
        if not entry:
            continue
        if entry.get("auth"):
            user, sep, password = base64.b64decode(entry["auth"]).decode().partition(":")
            if sep:
                return user, password
        if entry.get("username") is not None and entry.get("password") is not None:
            return str(entry["username"]), str(entry["password"])
    return None


def load_docker_config(path: Path | None) -> dict[str, Any]:
    """The operator's docker config (``{}`` without one); a file that is not JSON is an error worth fixing."""
    if path is None or not path.exists():  # an optional Secret that was never created: no credentials
        return {}
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RegistryAuthError(f"cannot read the registry credentials file {path} "
                                f"(SENSEOPS_REGISTRY_AUTH_FILE): {exc}") from exc
    return data


class RegistryClient:
    """Reads manifest digests; one instance per operator (``memo.registry``)."""

    def __init__(self, auth_file: Path | None = None, insecure: frozenset[str] = frozenset(),
                 timeout_s: float = 20.0, transport: httpx.BaseTransport | None = None) -> None:
        self.auth_file = auth_file
        self.insecure = insecure
        self.timeout_s = timeout_s
        self.transport = transport

    def manifest_digest(self, ref: ImageRef) -> str:
        """The digest the registry stores for ``ref`` (tag or digest)."""
        base = f"{registry_scheme(ref.registry, self.insecure)}://{api_host(ref.registry)}"
        url = f"{base}/v2/{ref.repository}/manifests/{ref.reference}"
        headers = {"Accept": ", ".join(MANIFEST_MEDIA_TYPES)}
        where = f"{ref.registry}/{ref.repository}:{ref.reference}"
        try:
            with httpx.Client(timeout=self.timeout_s, transport=self.transport, follow_redirects=True) as http:
                response = http.head(url, headers=headers)
                if response.status_code == 401:
                    headers["Authorization"] = self._authorization(http, ref, response)
                    response = http.head(url, headers=headers)
                self._raise_for(response, where)
                digest: str | None = response.headers.get("Docker-Content-Digest")
                if not digest:  # not every registry sends it on HEAD
                    body = http.get(url, headers=headers)
                    self._raise_for(body, where)
                    digest = str(body.headers.get("Docker-Content-Digest") or
                                 "sha256:" + hashlib.sha256(body.content).hexdigest())
        except httpx.HTTPError as exc:
            raise RegistryUnavailable(f"registry {ref.registry} unreachable: {type(exc).__name__}: {exc}") from exc
        if digest is None or not DIGEST_PATTERN.match(digest):
            raise RegistryError(f"registry {ref.registry} answered an unsupported digest {digest!r} for {where}")
        return digest

    def _authorization(self, http: httpx.Client, ref: ImageRef, challenge: httpx.Response) -> str:
        scheme, params = parse_challenge(challenge.headers.get("WWW-Authenticate", ""))
        creds = credentials_for(load_docker_config(self.auth_file), ref.registry)
        if scheme == "basic":
            if creds is None:
                raise RegistryAuthError(self._no_credentials(ref))
            return "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
        if scheme == "bearer" and params.get("realm"):
            realm = params["realm"]
            realm_host = httpx.URL(realm).host
            if realm.startswith("http://") and not (is_loopback(realm_host) or ref.registry in self.insecure):
                raise InsecureRegistryRefused(f"registry {ref.registry} sends its token service over plain http "
                                              f"({realm}); list it in SENSEOPS_INSECURE_REGISTRIES to allow that")
            query = {"scope": f"repository:{ref.repository}:pull"}
            if params.get("service"):
                query["service"] = params["service"]
            auth = httpx.BasicAuth(*creds) if creds else None
            token = http.get(realm, params=query, auth=auth)
            if token.status_code in (401, 403):
                raise RegistryAuthError(f"the token service of {ref.registry} refused the operator's credentials "
                                        f"(HTTP {token.status_code}); {self._fix()}")
            self._raise_for(token, realm)
            payload = token.json()
            value = payload.get("token") or payload.get("access_token")
            if not value:
                raise RegistryError(f"the token service of {ref.registry} answered no token")
            return f"Bearer {value!s}"
        raise RegistryAuthError(f"registry {ref.registry} asks for unsupported authentication {scheme!r}")

    def _raise_for(self, response: httpx.Response, where: str) -> None:
        code = response.status_code
        if code < 300:
            return
        detail = _error_text(response)
        if code == 404:
            raise ManifestNotFound(f"{where}: no such manifest in the registry{detail}")
        if code in (401, 403):
            raise RegistryAuthError(f"{where}: the registry refused access (HTTP {code}){detail}; {self._fix()}")
        if code == 429 or code >= 500:
            raise RegistryUnavailable(f"{where}: registry answered HTTP {code}{detail}")
        raise RegistryError(f"{where}: registry answered HTTP {code}{detail}")

    def _no_credentials(self, ref: ImageRef) -> str:
        return f"registry {ref.registry} needs credentials and the operator has none for it; {self._fix()}"

    def _fix(self) -> str:
        where = str(self.auth_file) if self.auth_file else "no file configured"
        return f"give the operator pull access through SENSEOPS_REGISTRY_AUTH_FILE ({where})"


def _error_text(response: httpx.Response) -> str:
    """``: CODE: message`` from a registry error body (empty for HEAD answers, which have none)."""
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        return ""
    parts = [f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors if isinstance(e, dict)]
    return (": " + "; ".join(parts)) if parts else ""
