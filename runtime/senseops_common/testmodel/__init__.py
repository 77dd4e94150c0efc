"""The one tiny SenseVoice-architecture test model (shared by runtime tests, trainer tests and the demo).

>>> from senseops_common.testmodel import ensure_tiny_model, KNOWN_SENTENCES
>>> model_dir = ensure_tiny_model()          # built and trained once (~1-2 min), then cached
>>> KNOWN_SENTENCES[0].text, KNOWN_SENTENCES[0].lang
('今天天气很好', 'zh')

``build_fullsize_random(dir)`` writes a full-size random-init SenseVoice-Small for benchmarks.
"""

from senseops_common.testmodel.build import (
    TestModelBuildError,
    build_fullsize_random,
    build_tiny_model,
    ensure_tiny_model,
)
from senseops_common.testmodel.corpus import KNOWN_SENTENCES, KnownSentence
from senseops_common.testmodel.vocab import ITN_IDS, TAG_IDS, TOKENIZER_FILENAME, VOCAB_SIZE

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
