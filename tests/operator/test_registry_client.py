"""The operator's registry client: pure parsing tables, and digests read from the real registry (htpasswd
Basic auth). The Bearer token flow runs against an httpx transport that plays a token-auth registry, since
the test registry has no token service."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from senseops_operator.registry import (
    ImageRef,
    InsecureRegistryRefused,
    ManifestNotFound,
    RegistryAuthError,
    RegistryClient,
    RegistryUnavailable,
    credentials_for,
    parse_challenge,
    parse_image_ref,
    registry_scheme,
)
from tests.servers._proc import free_port
from tests.servers.registry import RegistryServer

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:5000/asr/m:v1", ImageRef("127.0.0.1:5000", "asr/m", "v1", None)),
    (f"oci://reg.example.com/asr/m@{DIGEST}", ImageRef("reg.example.com", "asr/m", None, DIGEST)),
    (f"reg.example.com:443/a/b/c:t@{DIGEST}", ImageRef("reg.example.com:443", "a/b/c", "t", DIGEST)),
    ("localhost/m", ImageRef("localhost", "m", None, None)),
])
def test_parse_image_ref(text: str, expected: ImageRef) -> None:
    assert parse_image_ref(text) == expected


@pytest.mark.parametrize("text", ["asr/m:v1", "reg.example.com/UPPER:v1", "reg.example.com/m@sha256:short", ""])
def test_parse_image_ref_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="registry host"):
        parse_image_ref(text)


@pytest.mark.parametrize(("registry", "insecure", "scheme"), [
    ("127.0.0.1:5000", frozenset(), "http"),
    ("127.5.0.1", frozenset(), "http"),
    ("localhost:5000", frozenset(), "http"),
    ("[::1]:5000", frozenset(), "http"),
    ("registry.internal:5000", frozenset(), "https"),
    ("registry.internal:5000", frozenset({"registry.internal:5000"}), "http"),
    ("10.0.0.8:5000", frozenset({"10.0.0.9:5000"}), "https"),
])
def test_scheme_http_only_for_loopback_or_configured(registry: str, insecure: frozenset[str], scheme: str) -> None:
    assert registry_scheme(registry, insecure) == scheme


def test_parse_challenge() -> None:
    assert parse_challenge('Bearer realm="https://auth.example.com/token",service="reg",scope="x:y:pull"') == (
        "bearer", {"realm": "https://auth.example.com/token", "service": "reg", "scope": "x:y:pull"})
    assert parse_challenge('Basic realm="senseops"') == ("basic", {"realm": "senseops"})


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(("config", "registry", "expected"), [
    ({"auths": {"reg:5000": {"auth": b64("u:p:w")}}}, "reg:5000", ("u", "p:w")),
    ({"auths": {"https://reg.example.com": {"username": "u", "password": "p"}}}, "reg.example.com", ("u", "p")),
    ({"auths": {"https://index.docker.io/v1/": {"auth": b64("hub:pw")}}}, "docker.io", ("hub", "pw")),
    ({"auths": {"other": {"auth": b64("u:p")}}}, "reg:5000", None),
    ({}, "reg:5000", None),
])
def test_credentials_for(config: dict[str, object], registry: str, expected: tuple[str, str] | None) -> None:
    assert credentials_for(config, registry) == expected


@pytest.fixture(scope="module")
def pushed(oci_registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("regclient-model")
    (folder / "weights.bin").write_bytes(b"\x00" * 1024)
    return oci_registry.push_model_dir(folder, "regclient/m", "v1")


def test_digest_of_a_tag_and_of_a_digest_matches_what_crane_pushed(oci_registry: RegistryServer,
                                                                   pushed: str) -> None:
    client = RegistryClient(oci_registry.docker_config_dir / "config.json")
    digest = pushed.split("@", 1)[1]
    assert client.manifest_digest(parse_image_ref(f"{oci_registry.host}/regclient/m:v1")) == digest
    assert client.manifest_digest(parse_image_ref(pushed)) == digest


def test_missing_tag_wrong_or_no_credentials_and_no_server(oci_registry: RegistryServer, pushed: str,
                                                           tmp_path: Path) -> None:
    client = RegistryClient(oci_registry.docker_config_dir / "config.json")
    with pytest.raises(ManifestNotFound, match="no such manifest"):
        client.manifest_digest(parse_image_ref(f"{oci_registry.host}/regclient/m:nope"))
    with pytest.raises(RegistryAuthError, match="SENSEOPS_REGISTRY_AUTH_FILE"):
        RegistryClient(None).manifest_digest(parse_image_ref(pushed))
    wrong = tmp_path / "config.json"
    wrong.write_text(json.dumps({"auths": {oci_registry.host: {"auth": b64(f"{oci_registry.user}:wrong")}}}))
    with pytest.raises(RegistryAuthError, match="HTTP 401"):
        RegistryClient(wrong).manifest_digest(parse_image_ref(pushed))
    with pytest.raises(RegistryUnavailable, match="unreachable"):
        RegistryClient(None, timeout_s=5).manifest_digest(parse_image_ref(f"127.0.0.1:{free_port()}/x/y:v1"))


def token_registry(realm: str, digest: str = DIGEST) -> httpx.MockTransport:
    """A registry that wants a Bearer token from ``realm`` (user u, password p) before it answers."""
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            if request.headers.get("Authorization") != "Basic " + b64("u:p"):
                return httpx.Response(401)
            assert request.url.params["scope"] == "repository:asr/m:pull"
            assert request.url.params["service"] == "reg"
            return httpx.Response(200, json={"token": "t0k"})
        if request.headers.get("Authorization") != "Bearer t0k":
            return httpx.Response(401, headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="reg"'})
        return httpx.Response(200, headers={"Docker-Content-Digest": digest})
    return httpx.MockTransport(handle)


def test_bearer_token_flow(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {"reg.example.com": {"auth": b64("u:p")}}}))
    ref = parse_image_ref("reg.example.com/asr/m:v1")
    client = RegistryClient(config, transport=token_registry("https://reg.example.com/token"))
    assert client.manifest_digest(ref) == DIGEST
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"auths": {"reg.example.com": {"auth": b64("u:x")}}}))
    with pytest.raises(RegistryAuthError, match="token service"):
        RegistryClient(bad, transport=token_registry("https://reg.example.com/token")).manifest_digest(ref)
    with pytest.raises(InsecureRegistryRefused, match="SENSEOPS_INSECURE_REGISTRIES"):
        RegistryClient(config, transport=token_registry("http://auth.example.com/token")).manifest_digest(ref)
