"""Names, defaults and limits of the SenseOps API in one place (STYLE: no scattered literals)."""

from __future__ import annotations

from typing import Final

GROUP: Final = "senseops.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
CATEGORY: Final = "asr"

# kopf keeps its bookkeeping under our own prefix (finalizer, progress and last-handled annotations).
FINALIZER: Final = f"{GROUP}/finalizer"
ANNOTATION_PREFIX: Final = GROUP

# Artifact URIs the stores understand; `oci://` is accepted for image-packaged models.
ARTIFACT_URI_PATTERN: Final = r"^(cos|s3)://[a-z0-9][a-z0-9.-]{1,62}/.+$|^file:///.+$|^oci://[^\s/]+/.+$"
STORE_PREFIX_PATTERN: Final = r"^(cos|s3)://[a-z0-9][a-z0-9.-]{1,62}(/.*)?$|^file:///.+$"
SHA256_PATTERN: Final = r"^[a-f0-9]{64}$"
DNS_LABEL_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Kubernetes resource quantity (e.g. "500m", "4Gi").
QUANTITY_PATTERN: Final = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
IMAGE_REF_PATTERN: Final = (
    r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._/-][a-z0-9]+)*)*"  # registry[:port]/repository
    r"(:[\w][\w.-]{0,127})?(@sha256:[a-f0-9]{64})?$"  # [:tag][@digest]
)
HTTP_URL_PATTERN: Final = r"^https?://[^\s]+$"

# Bounds.
MAX_NAME_LENGTH: Final = 63
MAX_ROLLOUT_STEPS: Final = 20
MAX_ANALYSIS_METRICS: Final = 10
MAX_ANCHORS: Final = 1000
MAX_GPUS: Final = 16
# Training pods of one FineTuneJob (resources.nodes): an Indexed Job whose pods are <name>-train-<index>.
MAX_TRAINING_NODES: Final = 64
# The longest FineTuneJob name whose pod host names <name>-train-<index> still fit a 63-character DNS label.
MAX_MULTINODE_JOB_NAME_LENGTH: Final = MAX_NAME_LENGTH - len("-train-") - len(str(MAX_TRAINING_NODES - 1))
MAX_EPOCHS: Final = 100
MAX_LEARNING_RATE: Final = 1.0
MIN_ANALYSIS_INTERVAL_SECONDS: Final = 10
MIN_PROGRESS_DEADLINE_SECONDS: Final = 30
MAX_CONDITIONS: Final = 16
MAX_MEASUREMENTS: Final = 50
# Rollout quality gate: the golden set is read whole on every probe, so it is bounded.
MAX_GOLDEN_CLIPS: Final = 500
MAX_GOLDEN_CLIP_BYTES: Final = 20 * 1024 * 1024

# Defaults (seed §6: small learning rate, few epochs).
DEFAULT_LEARNING_RATE: Final = 2e-5
DEFAULT_EPOCHS: Final = 2
DEFAULT_BATCH_TOKENS: Final = 6000
DEFAULT_WARMUP_STEPS: Final = 100
DEFAULT_BACKOFF_LIMIT: Final = 2
DEFAULT_TTL_AFTER_FINISHED_SECONDS: Final = 86_400
DEFAULT_PROGRESS_DEADLINE_SECONDS: Final = 600
DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS: Final = 30
DEFAULT_SCALE_DOWN_DELAY_SECONDS: Final = 30
DEFAULT_ANALYSIS_INTERVAL_SECONDS: Final = 60
DEFAULT_QUALITY_GATE_INTERVAL_SECONDS: Final = 300
DEFAULT_GOLDEN_CLIPS: Final = 50
DEFAULT_GOLDEN_CLIP_BYTES: Final = 2 * 1024 * 1024
DEFAULT_GOLDEN_MANIFEST: Final = "manifest.jsonl"
DEFAULT_PROBE_TIMEOUT_SECONDS: Final = 60
QUALITY_GATE_RETRY_SECONDS: Final = 10  # an inconclusive probe is tried again this soon, not a whole interval later
# The runtime drains on SIGTERM (finals, then 1012) within SENSEOPS_DRAIN_TIMEOUT_S (its default below); a
# candidate pod's terminationGracePeriodSeconds is raised to preStop + drain + this margin if it is shorter.
RUNTIME_DRAIN_TIMEOUT_SECONDS: Final = 20
DRAIN_GRACE_MARGIN_SECONDS: Final = 10
DEFAULT_TRAINER_IMAGE: Final = "ghcr.io/senseops/trainer:0.1.0"

# How often the operator re-checks an object whose outcome depends on the outside world.
REVERIFY_ARTIFACT_SECONDS: Final = 300

# RetrainPolicy (seed §6: "when a streamer gains >= 3 h of good audio, trigger training").
DEFAULT_RETRAIN_MIN_NEW_HOURS: Final = 3.0
DEFAULT_RETRAIN_CHECK_SECONDS: Final = 300
MIN_RETRAIN_CHECK_SECONDS: Final = 10
DEFAULT_RETRAIN_SUCCESSFUL_HISTORY: Final = 3
DEFAULT_RETRAIN_FAILED_HISTORY: Final = 1
MAX_RETRAIN_HISTORY: Final = 100
MAX_RETRAIN_ACTIVE_LISTED: Final = 50
# A policy's FineTuneJobs are `<policy>-<n>` and their children `<policy>-<n>-trainer`: names stay within 63.
MAX_RETRAIN_POLICY_NAME: Final = 40
# Room kept in the output model prefix for `-<n>` (n up to 6 digits).
RETRAIN_SUFFIX_ROOM: Final = 7
