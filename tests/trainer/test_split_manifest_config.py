"""Pure pieces of the data plumbing: split, run manifest decisions, configuration loading."""

from __future__ import annotations

import pytest

from senseops_trainer.config import TrainerConfig, load_config
from senseops_trainer.manifest import RunManifest, StageRecord, digest_json, is_stage_current
from senseops_trainer.segments import Segment
from senseops_trainer.split import hash_fraction, split_segments


def seg(segment_id: str, text: str = "直播间秒杀开始") -> Segment:
    return Segment(segment_id=segment_id, anchor_id="a", session_ts="20260301T100000Z",
                   audio_key=f"raw/a/20260301T100000Z/{segment_id}.wav", text=text, start_ms=0, end_ms=2000)


def test_split_is_deterministic_and_disjoint() -> None:
    segments = [seg(f"s{i}", f"句子{i}") for i in range(200)]
    first = split_segments(segments, 0.2)
    again = split_segments(list(reversed(segments)), 0.2)
    assert {s.segment_id for s in first.val} == {s.segment_id for s in again.val}
    assert not {s.segment_id for s in first.train} & {s.segment_id for s in first.val}
    assert len(first.train) + len(first.val) == 200
    assert 20 <= len(first.val) <= 60  # ~20 % of 200


def test_adding_data_never_moves_existing_segments() -> None:
    base = [seg(f"s{i}", f"句子{i}") for i in range(50)]
    before = split_segments(base, 0.3)
    after = split_segments(base + [seg(f"new{i}", f"新{i}") for i in range(50)], 0.3)
    assert {s.segment_id for s in before.val} <= {s.segment_id for s in after.val}


def test_golden_is_held_out_by_id_and_by_text() -> None:
    golden = [seg("g1", "主播秒杀开始")]
    segments = [seg("g1", "主播秒杀开始"), seg("copy", "主播，秒殺開始！"), seg("other", "直播间链接已上")]
    result = split_segments(segments, 0.0, golden)
    assert [s.segment_id for s in result.train] == ["other"]
    assert result.leaked_golden_text == ["copy"]
    assert [s.segment_id for s in result.golden] == ["g1"]


def test_tiny_sets_still_get_a_validation_segment() -> None:
    result = split_segments([seg("a", "一"), seg("b", "二"), seg("c", "三")], 0.01)
    assert len(result.val) == 1 and len(result.train) == 2


@pytest.mark.parametrize("fraction", [-0.1, 1.0])
def test_split_rejects_bad_fraction(fraction: float) -> None:
    with pytest.raises(ValueError, match="val_fraction"):
        split_segments([], fraction)


def test_hash_fraction_is_stable() -> None:
    assert hash_fraction("seg-1") == hash_fraction("seg-1")
    assert 0.0 <= hash_fraction("seg-1") < 1.0


CURRENT_CASES = [
    ("never ran", None, "d1", {}, False),
    ("same inputs and outputs", StageRecord("d1", {"x": "h"}), "d1", {"x": "h"}, True),
    ("inputs changed", StageRecord("d1", {"x": "h"}), "d2", {"x": "h"}, False),
    ("output missing", StageRecord("d1", {"x": "h"}), "d1", {"x": None}, False),
    ("output modified", StageRecord("d1", {"x": "h"}), "d1", {"x": "other"}, False),
]


@pytest.mark.parametrize(("name", "record", "digest", "hashes", "expected"), CURRENT_CASES,
                         ids=[c[0] for c in CURRENT_CASES])
def test_is_stage_current(name, record, digest, hashes, expected) -> None:
    assert is_stage_current(record, digest, hashes) is expected


def test_manifest_records_and_detects_tampering(tmp_path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.txt").write_text("one")
    manifest = RunManifest(tmp_path)
    manifest.record("collect", "d1", ["out"], {"segments": 1})
    reloaded = RunManifest(tmp_path)
    assert reloaded.is_done("collect", "d1")
    assert not reloaded.is_done("collect", "d2")
    (tmp_path / "out" / "a.txt").write_text("two")
    assert not reloaded.is_done("collect", "d1")


def test_digest_json_ignores_key_order() -> None:
    assert digest_json({"a": 1, "b": [1, 2]}) == digest_json({"b": [1, 2], "a": 1})


def test_config_from_yaml_and_overrides(tmp_path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("store_uri: file:///x/\ndataset:\n  anchor_ids: [a1]\ntrain:\n  lr: 3.0e-5\n")
    cfg = load_config(path, {"train.max_epoch": 3, "output.version": "v9"})
    assert cfg.dataset.anchor_ids == ("a1",)
    assert (cfg.train.lr, cfg.train.max_epoch, cfg.output.version) == (3e-5, 3, "v9")
    assert cfg.models_uri == "file:///x/"


def test_numbers_spelled_as_strings_are_numbers(tmp_path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("train:\n  lr: 1e-5\n  max_epoch: '2'\n")  # YAML 1.1 reads 1e-5 as a string
    cfg = load_config(path)
    assert cfg.train.lr == 1e-5 and cfg.train.max_epoch == 2


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"train.lrr": 1}, "unknown setting"),
        ({"train.lr": "fast"}, "train.lr must be a number"),
        ({"train.lr": 0}, "train.lr must be positive"),
        ({"train.device": "tpu"}, "cpu or cuda"),
        ({"train.gpus": 2}, "needs train.device: cuda"),
        ({"dataset.val_fraction": 1.5}, "val_fraction"),
        ({"state_settle_s": -1}, "state_settle_s at least 0"),
        ({"state_interval_s": 0}, "state_interval_s must be positive"),
    ],
)
def test_config_rejects_bad_settings(overrides, message) -> None:
    with pytest.raises(ValueError, match=message):
        load_config(None, overrides)


def test_default_learning_rate_is_in_the_seed_range() -> None:
    assert 1e-5 <= TrainerConfig().train.lr <= 3e-5
    assert 1 <= TrainerConfig().train.max_epoch <= 3
