"""Defaults and limits of the inference server, in one place.

Every number the server enforces or uses as a default is named here; settings read from the environment
override them (see :mod:`senseops_runtime.settings`).
"""

from __future__ import annotations

SAMPLE_RATE = 16_000
BYTES_PER_SAMPLE = 2  # s16le

# --- HTTP uploads
MAX_UPLOAD_BYTES = 25 * 1024 * 1024  # same ceiling as the OpenAI audio API
MAX_UPLOAD_SECONDS = 120.0
MIN_INPUT_SAMPLE_RATE = 8_000  # below this, speech is not recoverable by resampling
MAX_INPUT_SAMPLE_RATE = 384_000  # the highest rate audio interfaces record; beyond is a forged header
MAX_INPUT_CHANNELS = 8  # 7.1; more is not a recording of one speaker
MAX_DECODED_BYTES = 256 * 1024 * 1024  # float32 samples of all channels, checked from the header before decoding

# --- WebSocket streaming
MAX_FRAME_BYTES = 64_000  # 2 s of 16 kHz s16le; 100-200 ms frames are recommended
OPTIONS_TIMEOUT_S = 10.0  # how long the server waits for the first message
WS_IDLE_TIMEOUT_S = 30.0  # a stream that sends nothing (not even an empty keep-alive frame) this long is closed
MAX_OPTIONS_BYTES = 4_096
PARTIAL_INTERVAL_S = 0.3  # audio time between partial decodes of the open segment
PARTIAL_WINDOW_S = 8.0  # partials decode at most this much of the open segment's tail
PARTIAL_MAX_BACKLOG = 4  # skip a partial while this many decodes already wait (finals come first)
PARTIAL_BATCH_MAX_CLIPS = 16  # partials of different sessions decoded in one model call, at most
PARTIAL_BATCH_MAX_AUDIO_S = 6.0  # ...and at most this much padded audio (clips x longest): a final waits <= 1 such call
PARTIAL_BATCH_MAX_PADDING = 0.25  # ...and at most this fraction of it padding (similar lengths batch together)
REALTIME_BURST_S = 10.0  # a client may run this far ahead of real time (replay after reconnect)
REALTIME_CLOSE_AHEAD_S = 30.0  # ...and is closed beyond this

# --- Voice activity detection (silero-vad works on 512-sample chunks at 16 kHz = 32 ms)
VAD_CHUNK_SAMPLES = 512
VAD_THRESHOLD = 0.5
VAD_NEG_THRESHOLD = 0.35
VAD_MIN_SPEECH_MS = 200
VAD_MIN_SILENCE_MS = 400  # end-of-speech -> final latency starts with this wait
VAD_SPEECH_PAD_MS = 150
MAX_SEGMENT_S = 20.0  # a longer utterance is cut here so final decodes stay bounded

# --- Scheduler
SCHEDULER_MAX_PENDING = 64
SCHEDULER_MAX_BATCH = 4

# --- Auth and quotas
JWT_AUDIENCE = "senseops-runtime"
JWT_ISSUER = "senseops"
JWT_LEEWAY_S = 5
MAX_STREAMS_PER_SUBJECT = 2
AUDIO_MINUTES_PER_DAY = 600.0
SCOPE_STREAM = "stream"
SCOPE_TRANSCRIBE = "transcribe"
SCOPE_ADMIN = "admin"

# --- WebSocket close codes (RFC 6455 + IANA registry)
CLOSE_NORMAL = 1000
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_INVALID_PAYLOAD = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_SERVICE_RESTART = 1012  # this replica is draining (SIGTERM): reconnect, the load balancer picks another
CLOSE_TRY_AGAIN_LATER = 1013

# --- Graceful drain on SIGTERM (see senseops_runtime.drain)
DRAIN_TIMEOUT_S = 20.0  # SIGTERM -> exit at the latest; keep it below the pod's terminationGracePeriodSeconds
DRAIN_SEGMENT_GRACE_S = 5.0  # an open stream may finish the utterance it is in (VAD cut) for this long
DRAIN_RETRY_AFTER_S = 1  # Retry-After of the 503 answered to new HTTP requests while draining
