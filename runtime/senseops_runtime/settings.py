"""Server settings, read once from the environment (``SENSEOPS_*`` variables).

Secrets (the JWT key) come only from the environment or a file named by it (a mounted Kubernetes Secret);
nothing is read from request data.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, Field, model_validator

from senseops_runtime import limits

ENV_PREFIX = "SENSEOPS_"


class RuntimeSettings(BaseModel):
    """Everything the runtime needs to start; built by :meth:`from_env` in production."""

    model_uri: str = ""  # file:///models/x, s3://bucket/models/name/version, cos://...
    model_sha256: str = ""  # digest of the model directory (ASRModel.spec.sha256); verified after download
    model_cache_dir: str = ""  # default: $SENSEOPS_CACHE/model-cache (see model_source)
    model_name: str = ""  # metrics/recording label; default: the model directory's name
    model_version: str = ""  # metrics/recording label; default: "local"
    backend: str = "torch"  # torch | onnx-fp32 | onnx-int8
    device: str = "cpu"
    threads: int = 0  # intra-op threads of the model; 0 = the library default
    # ONNX Runtime threads busy-wait between runs: off in the server (same latency under load, ~20 % less CPU;
    # runtime README "Streaming"); on is faster for lone requests on an idle machine.
    spin_wait: bool = False
    # Model calls that run at once (ONNX backends only; torch engines are not thread-safe). On a CPU server,
    # one worker per core with THREADS=1 gives each stream more partials under load (runtime README).
    decode_workers: int = Field(default=1, ge=1, le=64)
    # Auth: exactly one of the two keys selects the accepted algorithm (no algorithm confusion).
    jwt_hs256_secret: str = ""
    jwt_rs256_public_key: str = ""
    jwt_audience: str = limits.JWT_AUDIENCE
    jwt_issuer: str = limits.JWT_ISSUER
    auth_disabled: bool = False  # development only; logged loudly at start
    # Quotas
    max_streams_per_subject: int = limits.MAX_STREAMS_PER_SUBJECT
    audio_minutes_per_day: float = limits.AUDIO_MINUTES_PER_DAY
    quota_redis_url: str = ""  # redis://host:6379/0 shares quotas across replicas; empty = in memory
    quota_failure_policy: str = "open"  # open | closed: what to do while Redis cannot be reached
    # Recording
    recording_enabled: bool = False
    recording_store_uri: str = ""  # e.g. s3://senseops-data  (raw/ and asr/ live under it)
    spool_dir: str = str(Path.home() / ".cache" / "senseops" / "spool")
    # Personal data masked in stored transcripts (comma list of rules, or "none"); see redaction.py.
    redaction_rules: list[str] = Field(default_factory=lambda: ["email", "id_card", "bank_card", "phone"])
    # Stored audio for POST /api/transcribe {"file_path": ...}: allowed URI prefixes (comma list).
    audio_source_prefixes: list[str] = Field(default_factory=list)
    # Limits
    max_upload_bytes: int = limits.MAX_UPLOAD_BYTES
    max_upload_seconds: float = limits.MAX_UPLOAD_SECONDS
    max_frame_bytes: int = limits.MAX_FRAME_BYTES
    ws_idle_timeout_s: float = limits.WS_IDLE_TIMEOUT_S
    partial_interval_s: float = limits.PARTIAL_INTERVAL_S
    partial_window_s: float = limits.PARTIAL_WINDOW_S
    realtime_burst_s: float = limits.REALTIME_BURST_S
    realtime_close_ahead_s: float = limits.REALTIME_CLOSE_AHEAD_S
    vad_min_silence_ms: int = limits.VAD_MIN_SILENCE_MS
    max_segment_s: float = limits.MAX_SEGMENT_S
    scheduler_max_pending: int = limits.SCHEDULER_MAX_PENDING
    scheduler_max_batch: int = limits.SCHEDULER_MAX_BATCH
    partial_batch_max_clips: int = limits.PARTIAL_BATCH_MAX_CLIPS
    partial_batch_max_audio_s: float = limits.PARTIAL_BATCH_MAX_AUDIO_S
    partial_batch_max_padding: float = limits.PARTIAL_BATCH_MAX_PADDING
    warmup: bool = True
    # Graceful drain on SIGTERM: the whole drain (streams, requests, spool upload) ends within drain_timeout_s.
    drain_timeout_s: float = limits.DRAIN_TIMEOUT_S
    drain_segment_grace_s: float = limits.DRAIN_SEGMENT_GRACE_S

    @model_validator(mode="after")
    def _workers_need_a_thread_safe_engine(self) -> RuntimeSettings:
        if self.decode_workers > 1 and self.backend == "torch":
            raise ValueError("SENSEOPS_DECODE_WORKERS > 1 needs an ONNX backend (SENSEOPS_BACKEND=onnx-int8 or "
                             "onnx-fp32): the torch engine runs one model call at a time")
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RuntimeSettings:
        """Read ``SENSEOPS_<FIELD>`` variables; ``<FIELD>_FILE`` reads a value from a file (Secrets)."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for name, field in cls.model_fields.items():
            key = ENV_PREFIX + name.upper()
            raw = env.get(key)
            if raw is None and (path := env.get(key + "_FILE")):
                # Secret files usually end with a newline (echo, kubectl create secret --from-file).
                raw = Path(path).read_text().rstrip("\r\n")
            if raw is None:
                continue
            if field.annotation == list[str]:
                raw_list = json.loads(raw) if raw.strip().startswith("[") else raw.split(",")
                values[name] = [item.strip() for item in raw_list if item.strip()]
            else:
                values[name] = raw
        return cls.model_validate(values)
