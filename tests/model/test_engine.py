"""The engines on the tiny trained model: real FunASR loading, real espeak-ng speech, exact transcripts."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from senseops_runtime.engine import DecodeOptions, EngineLoadError, load_engine
from tests.testmodel import KNOWN_SENTENCES

# The first run builds and trains the tiny model (minutes on a busy CPU); later runs reuse the cache.
pytestmark = pytest.mark.slow
SENTENCE_IDS = [s.text for s in KNOWN_SENTENCES]


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    return [s.synthesize() for s in KNOWN_SENTENCES]


@pytest.mark.parametrize("index", range(len(KNOWN_SENTENCES)), ids=SENTENCE_IDS)
def test_torch_backend_transcribes_known_sentences(engines, clips, index: int) -> None:  # type: ignore[no-untyped-def]
    sentence, clip = KNOWN_SENTENCES[index], clips[index]
    plain = engines["torch"].transcribe(clip, DecodeOptions(itn=False))
    with_itn = engines["torch"].transcribe(clip, DecodeOptions(itn=True))
    assert (plain.text, plain.lang, plain.emotion, plain.event) == (sentence.text, sentence.lang, "NEUTRAL", "Speech")
    assert with_itn.text == sentence.text_itn
    assert plain.raw.startswith(f"<|{sentence.lang}|><|NEUTRAL|><|Speech|><|woitn|>")
    assert 0.5 < plain.confidence <= 1.0


def test_torch_backend_matches_funasr_generate(engines, clips) -> None:  # type: ignore[no-untyped-def]
    torch_engine = engines["torch"]
    for clip in clips:
        for itn in (False, True):
            options = DecodeOptions(itn=itn)
            assert torch_engine.transcribe(clip, options).raw == torch_engine.funasr_generate(clip, options)


@pytest.mark.parametrize("backend", ["onnx-fp32", "onnx-int8"])
def test_onnx_text_equals_torch_text(engines, clips, backend: str) -> None:  # type: ignore[no-untyped-def]
    for clip in clips:
        for itn in (False, True):
            options = DecodeOptions(itn=itn)
            expected = engines["torch"].transcribe(clip, options)
            got = engines[backend].transcribe(clip, options)
            assert (got.text, got.lang, got.emotion, got.event) == (
                expected.text, expected.lang, expected.emotion, expected.event
            )
            assert got.confidence == pytest.approx(expected.confidence, abs=0.05)


def test_numpy_frontend_matches_funasr_frontend(engines, clips) -> None:  # type: ignore[no-untyped-def]
    for clip in (clips[0], clips[3][:1000], clips[4]):
        torch_features = engines["torch"].funasr_features(clip)
        onnx_features = engines["onnx-fp32"].features(clip)
        assert torch_features.shape == onnx_features.shape
        # Both backends feed the model the NumPy frontend's features.
        np.testing.assert_array_equal(engines["torch"].features(clip), onnx_features)
        # Both are Kaldi's fbank in float32 computed in a different order (FunASR frame by frame, ours all
        # frames at once): rounding differences up to ~1e-4 after CMVN's scaling.
        np.testing.assert_allclose(onnx_features, torch_features, atol=3e-4)


@pytest.mark.parametrize("backend", ["torch", "onnx-fp32", "onnx-int8"])
def test_batch_equals_one_by_one(engines, clips, backend: str) -> None:  # type: ignore[no-untyped-def]
    options = [DecodeOptions(itn=i % 2 == 0) for i in range(len(clips))]
    batched = engines[backend].transcribe_batch(clips, options)
    single = [engines[backend].transcribe(c, o) for c, o in zip(clips, options, strict=True)]
    assert [t.text for t in batched] == [t.text for t in single]


def test_confidence_is_lower_for_noise_than_for_speech(engines, clips) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(7)
    noise = (0.2 * rng.standard_normal(32_000)).astype(np.float32)
    for engine in engines.values():
        speech_confidences = [engine.transcribe(c, DecodeOptions()).confidence for c in clips]
        noise_result = engine.transcribe(noise, DecodeOptions())
        assert 0.0 < noise_result.confidence <= 1.0
        assert noise_result.confidence < min(speech_confidences)


def test_forced_language_is_used(engines, clips) -> None:  # type: ignore[no-untyped-def]
    # The query embedding of a forced language is what FunASR feeds; the tiny model learned zh/en only.
    result = engines["torch"].transcribe(clips[3], DecodeOptions(language="en", itn=False))
    assert result.lang == "en" and result.text == KNOWN_SENTENCES[3].text


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        (np.zeros(0, dtype=np.float32), "empty"),
        (np.zeros((2, 100), dtype=np.float32), "mono"),
        (np.zeros(100, dtype=np.int16), "float"),
        (np.array([0.0, np.nan], dtype=np.float32), "NaN"),
    ],
    ids=["empty", "stereo", "int16", "nan"],
)
def test_bad_audio_is_a_clear_error(engines, audio: np.ndarray, message: str) -> None:  # type: ignore[no-untyped-def]
    for engine in engines.values():
        with pytest.raises(ValueError, match=message):
            engine.transcribe(audio, DecodeOptions())


def test_unknown_language_is_a_clear_error(engines, clips) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=r"unsupported language 'klingon'"):
        engines["onnx-fp32"].transcribe(clips[0], DecodeOptions(language="klingon"))


def test_very_short_clip_decodes(engines) -> None:  # type: ignore[no-untyped-def]
    for engine in engines.values():
        assert isinstance(engine.transcribe(np.zeros(100, dtype=np.float32), DecodeOptions()).text, str)


def test_load_failures_name_the_reason(tmp_path: Path, tiny_model_dir: Path) -> None:
    with pytest.raises(EngineLoadError, match="does not exist"):
        load_engine(tmp_path / "missing", "torch")
    without_onnx = tmp_path / "torch-only"
    shutil.copytree(tiny_model_dir, without_onnx, ignore=shutil.ignore_patterns("*.onnx"))
    with pytest.raises(EngineLoadError, match=r"no model\.onnx"):
        load_engine(without_onnx, "onnx-fp32")
    with pytest.raises(ValueError, match="unknown model backend"):
        load_engine(tiny_model_dir, "tensorflow")


def test_tiny_model_tolerates_vad_style_padding(engines, clips) -> None:  # type: ignore[no-untyped-def]
    # Streaming finals are decoded from VAD-cut segments with silence around the speech; the runtime
    # and trainer tests rely on the tiny model transcribing those exactly too.
    from tests.testmodel.train import check_clips

    for sentence, clip in zip(KNOWN_SENTENCES, clips, strict=True):
        for variant in check_clips(clip)[1:]:
            for backend in ("torch", "onnx-int8"):
                result = engines[backend].transcribe(variant, DecodeOptions(itn=False))
                assert (result.text, result.lang) == (sentence.text, sentence.lang)


def test_silence_decodes_to_no_words_with_low_confidence(engines) -> None:  # type: ignore[no-untyped-def]
    silence = np.zeros(16_000, dtype=np.float32)
    for engine in engines.values():
        result = engine.transcribe(silence, DecodeOptions())
        assert result.text == ""
        assert 0.0 < result.confidence < 0.5


def test_the_server_loads_onnx_without_spinning_threads(tiny_onnx_dir: Path, clips) -> None:  # type: ignore[no-untyped-def]
    """The runtime's default (SENSEOPS_SPIN_WAIT unset) turns ONNX Runtime's busy-waiting off, and the session
    really carries that setting; SENSEOPS_SPIN_WAIT=1 restores the library default. Text is unaffected."""
    from senseops_runtime.app import default_engine_loader
    from senseops_runtime.settings import RuntimeSettings

    def entry(engine: object) -> str:
        options = engine._session.get_session_options()  # type: ignore[attr-defined]
        return str(options.get_session_config_entry("session.intra_op.allow_spinning"))

    base = {"SENSEOPS_MODEL_URI": tiny_onnx_dir.as_uri(), "SENSEOPS_BACKEND": "onnx-int8", "SENSEOPS_THREADS": "1",
            "SENSEOPS_WARMUP": "0"}
    server = default_engine_loader(RuntimeSettings.from_env(base))
    spinning = default_engine_loader(RuntimeSettings.from_env({**base, "SENSEOPS_SPIN_WAIT": "1"}))
    assert entry(server) == "0"
    with pytest.raises(Exception, match="allow_spinning"):  # never set: ONNX Runtime's own default (spin)
        entry(spinning)
    assert server.transcribe(clips[0], DecodeOptions()).text == spinning.transcribe(clips[0], DecodeOptions()).text


@pytest.mark.parametrize("backend", ["onnx-fp32", "onnx-int8"])
def test_onnx_engine_decodes_concurrently_like_one_at_a_time(engines, clips, backend: str) -> None:  # type: ignore[no-untyped-def]
    """SENSEOPS_DECODE_WORKERS > 1 calls one ONNX engine from several threads at once: same transcripts."""
    from concurrent.futures import ThreadPoolExecutor

    engine = engines[backend]
    work = [(clip, DecodeOptions(itn=itn)) for clip in clips for itn in (False, True)] * 2
    alone = [engine.transcribe(clip, options).text for clip, options in work]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda item: engine.transcribe(*item).text, work))
    assert together == alone
