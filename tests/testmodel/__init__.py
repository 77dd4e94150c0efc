"""The one tiny SenseVoice-architecture test model (shared by runtime tests, trainer tests and the demo).

>>> from tests.testmodel import ensure_tiny_model, KNOWN_SENTENCES
>>> model_dir = ensure_tiny_model()          # built and trained once (~1-2 min), then cached
>>> KNOWN_SENTENCES[0].text, KNOWN_SENTENCES[0].lang
('今天天气很好', 'zh')

``build_fullsize_random(dir)`` writes a full-size random-init SenseVoice-Small for benchmarks.

Development tooling, so it lives with the tests: no image copies ``tests/`` (``.dockerignore``), no wheel
packages it (``pyproject.toml`` finds packages only in operator/, runtime/, trainer_image/), and an
import-linter contract keeps production packages from importing it. ``make tiny-model`` / ``python -m
tests.testmodel build`` (or ``senseops testmodel build`` from a checkout) prints the model directory.
"""

from tests.testmodel.build import (
    TestModelBuildError,
    build_fullsize_random,
    build_tiny_model,
    ensure_tiny_model,
)
from tests.testmodel.corpus import KNOWN_SENTENCES, KnownSentence
from tests.testmodel.vocab import ITN_IDS, TAG_IDS, TOKENIZER_FILENAME, VOCAB_SIZE

__all__ = [
    "ITN_IDS",
    "KNOWN_SENTENCES",
    "TAG_IDS",
    "TOKENIZER_FILENAME",
    "VOCAB_SIZE",
    "KnownSentence",
    "TestModelBuildError",
    "build_fullsize_random",
    "build_tiny_model",
    "ensure_tiny_model",
]
