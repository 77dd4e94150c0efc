"""The tiny model's tokenizer and directory follow the stock SenseVoice-Small layout FunASR relies on."""

from __future__ import annotations

from pathlib import Path

import pytest
import sentencepiece
import yaml

from tests.testmodel import ITN_IDS, TAG_IDS, TOKENIZER_FILENAME, VOCAB_SIZE
from tests.testmodel.vocab import write_sentencepiece_model


@pytest.fixture(scope="module")
def processor(tmp_path_factory: pytest.TempPathFactory) -> sentencepiece.SentencePieceProcessor:
    path = write_sentencepiece_model(tmp_path_factory.mktemp("sp") / TOKENIZER_FILENAME, ["stream"])
    return sentencepiece.SentencePieceProcessor(model_file=str(path))


def test_ids_funasr_hard_codes(processor: sentencepiece.SentencePieceProcessor) -> None:
    from funasr.models.sense_voice.model import SenseVoiceSmall

    assert processor.get_piece_size() == VOCAB_SIZE == 25055
    model_lid_ids = {24884: "zh", 24885: "en", 24888: "yue", 24892: "ja", 24896: "ko", 24992: "nospeech"}
    for token_id, name in model_lid_ids.items():
        assert processor.id_to_piece(token_id) == f"<|{name}|>"
    assert processor.id_to_piece(25016) == "<|withitn|>" and processor.id_to_piece(25017) == "<|woitn|>"
    emotions = {25001: "HAPPY", 25002: "SAD", 25003: "ANGRY", 25004: "NEUTRAL", 25009: "EMO_UNKNOWN"}
    for token_id, name in emotions.items():
        assert processor.id_to_piece(token_id) == f"<|{name}|>"
    # the same ids FunASR's SenseVoiceSmall hard-codes for training (read from the installed source)
    source = Path(SenseVoiceSmall.__init__.__code__.co_filename).read_text()
    assert "24884: 3, 24885: 4, 24888: 7, 24892: 11, 24896: 12, 24992: 13" in source
    assert "25016: 14, 25017: 15" in source
    assert (TAG_IDS["zh"], ITN_IDS["woitn"]) == (24884, 25017)
    assert processor.id_to_piece(0) == "<unk>" and processor.id_to_piece(1) == "<s>"


def test_tags_encode_as_single_pieces_without_dummy_prefix(processor: sentencepiece.SentencePieceProcessor) -> None:
    ids = processor.encode("<|zh|><|NEUTRAL|><|Speech|><|woitn|>今天")
    assert ids[:4] == [24884, 25004, 24993, 25017] and len(ids) == 6
    assert processor.encode("hello world") == [processor.piece_to_id("hello"), processor.piece_to_id("▁world")]
    assert processor.decode(processor.encode("Welcome to the live stream!")) == "Welcome to the live stream!"
    assert processor.unk_id() not in processor.encode("直播间 xyzzy 123")  # CJK and letters always encode


@pytest.mark.slow
def test_tiny_model_dir_is_complete(tiny_model_dir: Path) -> None:
    names = {p.name for p in tiny_model_dir.iterdir()}
    assert {"config.yaml", "configuration.json", "model.pt", "am.mvn", TOKENIZER_FILENAME} <= names
    config = yaml.safe_load((tiny_model_dir / "config.yaml").read_text())
    assert config["model"] == "SenseVoiceSmall" and config["frontend_conf"]["dither"] == 0.0
    assert config["encoder_conf"]["kernel_size"] == 11 and config["input_size"] == 560
