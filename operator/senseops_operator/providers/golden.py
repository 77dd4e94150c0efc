"""The golden-set probe of a Rollout's quality gate (I/O): read the golden set, transcribe every clip on the
candidate and on the stable side, score both with the project's normaliser.

The golden set is a store prefix with a JSON Lines manifest (`{"key": "c1.wav", "text": "...", "language":
"zh"}`, keys relative to the prefix) and the clips (WAV, 16 kHz mono), read with the operator's own store
credentials (`SENSEOPS_STORE_*` / the mounted Secret). Both bounded: at most `maxClips` lines and
`maxClipBytes` a clip.

The runtime wants a token for `POST /api/transcribe`: the operator signs a short-lived HS256 JWT with the
`transcribe` scope from `SENSEOPS_PROBE_JWT_SECRET` (mount it from the runtime's JWT Secret; see
manifests/operator). Audience and issuer default to the runtime's (`senseops-runtime`, `senseops`).

Anything that keeps the probe from measuring — an unreadable golden set, a side with no ready pod, an HTTP
error — comes back as `ProbeResult.error` (Inconclusive, never a pass); nothing here raises to the handler.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx

from senseops_common.storage import StoreConfig, open_store
from senseops_common.storage.errors import StorageError
from senseops_operator.decide.quality_gate import ProbeResult, score
from senseops_operator.models.rollout import QualityGate
from senseops_operator.providers.base import ProviderError

PROBE_SECRET_ENV = "SENSEOPS_PROBE_JWT_SECRET"
PROBE_AUDIENCE_ENV = "SENSEOPS_PROBE_JWT_AUDIENCE"
PROBE_ISSUER_ENV = "SENSEOPS_PROBE_JWT_ISSUER"
DEFAULT_AUDIENCE = "senseops-runtime"
DEFAULT_ISSUER = "senseops"
TOKEN_TTL_SECONDS = 300


class GoldenSetError(ProviderError):
    """The golden set cannot be read or does not follow the format (a message that says what to fix)."""


@dataclass(frozen=True)
class GoldenEntry:
    key: str
    text: str
    language: str


@dataclass(frozen=True)
class GoldenClip:
    entry: GoldenEntry
    audio: bytes


def parse_manifest(text: str, max_clips: int) -> list[GoldenEntry]:
    """The manifest's entries (pure). Blank lines are skipped; more than `max_clips` entries is an error, not a
    silent cut, so the set a user meant is the set measured."""
    entries: list[GoldenEntry] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise GoldenSetError(f"manifest line {number} is not JSON: {exc}") from exc
        if not isinstance(row, dict) or not isinstance(row.get("key"), str) or not isinstance(row.get("text"), str):
            raise GoldenSetError(f'manifest line {number} needs {{"key": "<clip>.wav", "text": "<reference>"}}')
        key = row["key"]
        if key.startswith("/") or ".." in key.split("/"):
            raise GoldenSetError(f"manifest line {number}: key {key!r} must be relative to the golden set prefix")
        language = row.get("language") or "auto"
        entries.append(GoldenEntry(key=key, text=row["text"], language=str(language)))
    if not entries:
        raise GoldenSetError("the manifest lists no clips")
    if len(entries) > max_clips:
        raise GoldenSetError(f"the manifest lists {len(entries)} clips, more than maxClips {max_clips}; raise "
                             "qualityGate.maxClips or shorten the manifest")
    return entries


def load_golden_set(gate: QualityGate, env: Mapping[str, str] | None = None) -> list[GoldenClip]:
    """Read manifest and clips from the store with the operator's credentials (bounded by the gate's limits)."""
    golden = gate.golden_set
    try:
        store = open_store(golden.uri, StoreConfig.from_env(env))
        manifest = store.get_bytes(golden.manifest).decode("utf-8")
        clips = []
        for entry in parse_manifest(manifest, gate.max_clips):
            size = store.stat(entry.key).size
            if size > gate.max_clip_bytes:
                raise GoldenSetError(f"clip {entry.key} is {size} bytes, more than maxClipBytes {gate.max_clip_bytes}")
            clips.append(GoldenClip(entry, store.get_bytes(entry.key)))
    except StorageError as exc:
        raise GoldenSetError(f"cannot read the golden set {golden.uri}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise GoldenSetError(f"manifest {golden.manifest} is not UTF-8 text") from exc
    return clips


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint_token(secret: str, now: float, audience: str = DEFAULT_AUDIENCE, issuer: str = DEFAULT_ISSUER,
               ttl_s: int = TOKEN_TTL_SECONDS) -> str:
    """A short-lived HS256 JWT with the `transcribe` scope for the operator's probe (pure: the clock is passed).
    Signed here with the standard library so the operator image needs no JWT package."""
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {"sub": "senseops-operator", "anchor_id": "quality-gate", "scopes": ["transcribe"], "consent": False,
              "aud": audience, "iss": issuer, "iat": int(now), "nbf": int(now), "exp": int(now) + ttl_s}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret.encode(), signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def token_from_env(env: Mapping[str, str] | None = None, now: float | None = None) -> str | None:
    """A fresh probe token when `SENSEOPS_PROBE_JWT_SECRET` is set (None: send no token)."""
    env = os.environ if env is None else env
    secret = env.get(PROBE_SECRET_ENV)
    if not secret:
        return None
    return mint_token(secret, time.time() if now is None else now,
                      env.get(PROBE_AUDIENCE_ENV) or DEFAULT_AUDIENCE, env.get(PROBE_ISSUER_ENV) or DEFAULT_ISSUER)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("detail", body))[:200] if isinstance(body, dict) else str(body)[:200]


class GoldenProbe:
    """Transcribes a golden set on two base URLs (candidate, stable) and scores both sides."""

    def __init__(self, token: str | None = None, client: httpx.Client | None = None) -> None:
        self.token = token
        self.client = client  # None: one short-lived client per probe

    def transcribe(self, client: httpx.Client, base_url: str, clip: GoldenClip, side: str) -> str:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = client.post(f"{base_url.rstrip('/')}/api/transcribe", headers=headers,
                                   files={"file": (clip.entry.key.rsplit("/", 1)[-1], clip.audio, "audio/wav")},
                                   data={"language": clip.entry.language, "itn": "false"})
        except httpx.HTTPError as exc:
            raise ProviderError(f"{side} {base_url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            hint = f"; set {PROBE_SECRET_ENV}" if response.status_code in (401, 403) and not self.token else ""
            raise ProviderError(f"{side} answered HTTP {response.status_code} for {clip.entry.key}: "
                                f"{_detail(response)}{hint}")
        text = response.json().get("text")
        if not isinstance(text, str):
            raise ProviderError(f"{side} answered without a text for {clip.entry.key}")
        return text

    def run(self, gate: QualityGate, clips: Sequence[GoldenClip], candidate_url: str, stable_url: str,
            timeout_s: float | None = None) -> ProbeResult:
        source = f"{gate.golden_set.uri.rstrip('/')}/{gate.golden_set.manifest}"
        timeout = timeout_s or gate.request_timeout_seconds
        try:
            if self.client is not None:
                hyps = self._both(self.client, clips, candidate_url, stable_url)
            else:
                with httpx.Client(timeout=timeout, trust_env=False) as client:  # pod traffic: never a proxy
                    hyps = self._both(client, clips, candidate_url, stable_url)
        except ProviderError as exc:
            return ProbeResult(source, clips=len(clips), error=str(exc))
        refs = [c.entry.text for c in clips]
        return ProbeResult(source, clips=len(clips), candidate=score(refs, hyps[0], gate.metric),
                           stable=score(refs, hyps[1], gate.metric))

    def _both(self, client: httpx.Client, clips: Sequence[GoldenClip], candidate_url: str,
              stable_url: str) -> tuple[list[str], list[str]]:
        candidate = [self.transcribe(client, candidate_url, c, "candidate") for c in clips]
        stable = [self.transcribe(client, stable_url, c, "stable") for c in clips]
        return candidate, stable


def probe(gate: QualityGate, candidate_url: str | None, stable_url: str | None,
          env: Mapping[str, str] | None = None) -> ProbeResult:
    """One whole probe: golden set from the store, both sides transcribed and scored; never raises."""
    source = f"{gate.golden_set.uri.rstrip('/')}/{gate.golden_set.manifest}"
    if candidate_url is None or stable_url is None:
        side = "candidate" if candidate_url is None else "stable"
        return ProbeResult(source, error=f"the {side} Service has no ready endpoint to probe")
    try:
        clips = load_golden_set(gate, env)
    except GoldenSetError as exc:
        return ProbeResult(source, error=str(exc))
    return GoldenProbe(token_from_env(env)).run(gate, clips, candidate_url, stable_url)
