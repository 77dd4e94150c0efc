"""The data stages through the real CLI on a file:// store with espeak-ng recordings: resumability,
re-running on new data, and clear failures (no training here: these run in seconds)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from senseops_common.layout import AsrPartWriter, SegmentRecord, raw_segment_key
from senseops_common.speech import espeak_available
from senseops_common.storage import open_store
from senseops_trainer import synthetic
from senseops_trainer.demo import demo_settings

pytestmark = pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed (make debian)")
REPO = Path(__file__).resolve().parents[2]


def cli(*args: str) -> tuple[int, list[dict]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in ("operator", "runtime", "trainer_image"))}
    proc = subprocess.run([sys.executable, "-m", "senseops_trainer", *args], cwd=REPO, env=env, text=True,
                          capture_output=True, timeout=300)
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc.returncode, events


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("recordings")
    uri = root.as_uri() + "/"
    synthetic.write_corpus(open_store(uri))
    return uri


def _config(tmp_path: Path, store_uri: str, **dataset) -> Path:
    settings = demo_settings(store_uri, "/unused-by-data-stages")
    settings["dataset"].update(dataset)
    path = tmp_path / "job.json"
    path.write_text(json.dumps(settings))
    return path


def test_data_stages_run_then_skip_then_rerun_on_new_data(recordings, tmp_path) -> None:
    config = _config(tmp_path, recordings)
    work = str(tmp_path / "work")
    code, events = cli("run", "--config", str(config), "--workdir", work, "--until", "split")
    assert code == 0
    done = {e["stage"]: e for e in events if e["event"] == "done"}
    assert done["collect"]["segments"] == 49  # other anchor and the old session are not selected
    assert done["filter"]["removed"] == 6
    assert done["split"]["golden"] == len(synthetic.golden_sentences())

    code, events = cli("run", "--config", str(config), "--workdir", work, "--until", "split")
    assert code == 0
    assert {e["stage"] for e in events if e["event"] == "skipped"} == {"collect", "filter", "normalize", "split"}

    # A new session for the anchor changes collect's inputs: everything downstream re-runs.
    store = open_store(recordings)
    ts = "20260310T120000Z"
    key = raw_segment_key(synthetic.ANCHOR, ts, "late-1")
    info = store.put(key, synthetic.wav_bytes(synthetic.synthesize("直播间库存不多", "cmn")))
    writer = AsrPartWriter(store.put, synthetic.ANCHOR, ts)
    writer.add(SegmentRecord(synthetic.ANCHOR, ts, "late-1", 0, 2500, "直播间库存不多", "zh", "NEUTRAL", "Speech",
                             0.9, "tiny", "base", key, info.sha256 or ""))
    writer.flush()
    code, events = cli("run", "--config", str(config), "--workdir", work, "--until", "split")
    assert code == 0
    done = {e["stage"]: e for e in events if e["event"] == "done"}
    assert done["collect"]["segments"] == 50
    # Its text is a golden sentence: the split keeps it out of training.
    assert done["split"]["dropped_golden_text_leaks"] == 1


@pytest.mark.parametrize(
    ("dataset", "stage", "message"),
    [
        ({"anchor_ids": []}, "collect", "anchor_ids is empty"),
        ({"since": "2030-01-01T00:00:00Z", "until": None}, "collect", "no recorded segments"),
        ({"min_hours": 5.0}, "filter", "only 0.0"),
        ({"golden_key": "golden/missing.jsonl"}, "storage", "golden/missing.jsonl"),
    ],
)
def test_stage_failures_exit_2_with_a_reason(recordings, tmp_path, dataset, stage, message) -> None:
    config = _config(tmp_path, recordings, **dataset)
    code, events = cli("run", "--config", str(config), "--workdir", str(tmp_path / "w"), "--until", "split")
    assert code == 2
    assert events[-1]["stage"] == stage and events[-1]["event"] == "failed"
    assert message in events[-1]["message"]
    # One line per failure (issue 15): not a second "failed" line without a message.
    assert [e["event"] for e in events].count("failed") == 1


def test_bad_settings_exit_64(tmp_path) -> None:
    code, events = cli("run", "--workdir", str(tmp_path), "--set", "train.lr=-1")
    assert code == 64
    assert "train.lr must be positive" in events[-1]["message"]


def test_stage_without_its_inputs_says_what_to_run(recordings, tmp_path) -> None:
    config = _config(tmp_path, recordings)
    code, events = cli("split", "--config", str(config), "--workdir", str(tmp_path / "empty"))
    assert code == 2
    assert "has not finished" in events[-1]["message"]


@pytest.mark.slow
def test_stability_check_decodes_with_the_base_model(recordings, tmp_path) -> None:
    """With the check on, every segment is decoded again by the base model; the tiny base model has never
    heard the domain words, so its decodes disagree with the pseudo-labels and the rule removes them."""
    from tests.testmodel import ensure_tiny_model

    config = _config(tmp_path, recordings)
    code, events = cli("run", "--config", str(config), "--workdir", str(tmp_path / "w"), "--until", "filter",
                       "--set", "filters.stability_check=true", "--set", f"base_model={ensure_tiny_model()}")
    assert code == 0, events[-1]
    done = {e["stage"]: e for e in events if e["event"] == "done"}
    assert done["filter"]["removed_by_rule"]["unstable"] >= 30
    # The other rules still come first: the planted segments are blamed on what is wrong with them.
    assert done["filter"]["removed_by_rule"]["repeated_ngrams"] == 1


def test_malformed_transcript_line_fails_collect_clearly(tmp_path) -> None:
    uri = (tmp_path / "store").as_uri() + "/"
    store = open_store(uri)
    store.put(f"asr/{synthetic.ANCHOR}/20260301T100000Z/part-000000.jsonl", b'{"segment_id": "x", "broken"\n')
    code, events = cli("run", "--config", str(_config(tmp_path, uri, golden_key=None)), "--workdir",
                       str(tmp_path / "w"), "--until", "collect")
    assert code == 2
    assert events[-1]["stage"] == "collect" and "cannot be read" in events[-1]["message"]
