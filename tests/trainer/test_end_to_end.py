"""End to end on CPU: synthetic recordings in MinIO → `python -m senseops_trainer run` → packaged model in
MinIO, with a kill in the middle of training and a resumed rerun.

One real fine-tune serves every assertion (it is the expensive part, ~2-3 minutes on 2 busy cores):
the first run is killed once FunASR has written a mid-epoch checkpoint; the second run must skip the
finished data stages, continue training from that checkpoint, and finish the pipeline. Then we check
filtering, the measured CER gain on held-out sentences, the report/chart, the package in MinIO, and that
the runtime engine (torch and ONNX) loads the package and transcribes a held-out utterance.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from senseops_common.speech import espeak_available
from senseops_common.storage import local_directory_manifest, open_store, verify_object
from senseops_common.text import error_rate
from senseops_trainer import synthetic
from senseops_trainer.demo import demo_settings
from senseops_trainer.package import upload_model_dir
from tests.common.environ import environment

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed (make debian)"),
]
REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 900


def _cli(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "senseops_trainer", *args], cwd=REPO, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )


def _events(output: str) -> list[dict]:
    out = []
    for line in output.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                out.append(json.loads(line))
    return out


@pytest.fixture(scope="module")
def trained(minio_server, tmp_path_factory):
    """Run the pipeline twice (killed mid-training, then resumed); hand the results to the tests."""
    from tests.testmodel import ensure_tiny_model

    tmp = tmp_path_factory.mktemp("trainer-e2e")
    bucket = "trainer-e2e"
    minio_server.create_bucket(bucket)
    env = {**os.environ, **minio_server.store_env(), "PYTHONPATH": os.pathsep.join(
        str(REPO / p) for p in ("operator", "runtime", "trainer_image", "."))}
    with environment(minio_server.store_env()):
        store_uri = f"s3://{bucket}/"
        corpus = synthetic.write_corpus(open_store(store_uri))
        base_dir = ensure_tiny_model()
        base = upload_model_dir(base_dir, store_uri, "sensevoice-tiny", "base")
        settings = demo_settings(store_uri, base["uri"], version="e2e1", save_every_steps=3)
        config = tmp / "job.json"
        config.write_text(json.dumps(settings))
        workdir = tmp / "work"
        args = ["run", "--config", str(config), "--workdir", str(workdir)]

        started = time.monotonic()
        first = _cli(args, env)
        train_log = workdir / "train" / "funasr.log"
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while time.monotonic() < deadline and first.poll() is None:
            if train_log.exists() and "Checkpoint saved to" in train_log.read_text(errors="replace"):
                break  # a mid-training checkpoint is complete: kill now
            time.sleep(0.5)
        assert first.poll() is None, "training finished before it could be interrupted"
        os.killpg(first.pid, signal.SIGKILL)
        first_out = first.communicate()[0]
        killed_after_s = time.monotonic() - started

        second = _cli(args, env)
        second_out = second.communicate(timeout=RUN_TIMEOUT_S)[0]
        total_s = time.monotonic() - started
        yield {
            "corpus": corpus, "workdir": workdir, "store_uri": store_uri, "settings": settings,
            "first": _events(first_out), "second": _events(second_out), "second_raw": second_out,
            "second_code": second.returncode, "killed_after_s": killed_after_s, "total_s": total_s,
        }


def test_run_succeeds_after_resume(trained) -> None:
    assert trained["second_code"] == 0, trained["second_raw"][-3000:]
    print(f"\nkilled after {trained['killed_after_s']:.0f} s; whole test run {trained['total_s']:.0f} s")


def test_finished_stages_are_skipped_and_training_resumes(trained) -> None:
    first_done = {e["stage"] for e in trained["first"] if e["event"] == "done"}
    assert {"collect", "filter", "normalize", "split"} <= first_done
    assert "train" not in first_done
    second = trained["second"]
    skipped = {e["stage"] for e in second if e["event"] == "skipped"}
    assert skipped == {"collect", "filter", "normalize", "split"}
    assert any(e["stage"] == "train" and e["event"] == "resumed" for e in second)
    steps = [e for e in second if e["stage"] == "train" and e["event"] == "step"]
    first_steps = [e for e in trained["first"] if e["stage"] == "train" and e["event"] == "step"]
    # The resumed run starts after the checkpoint, not from step 1 of epoch 1.
    assert steps[0]["total_step"] > 1
    assert steps[0]["total_step"] <= first_steps[-1]["total_step"] + 1
    assert all({"epoch", "step", "loss", "eta_s"} <= set(e) for e in steps)


def test_planted_bad_segments_are_filtered_out(trained) -> None:
    report = json.loads((trained["workdir"] / "filter" / "report.json").read_text())
    removed = {sid for ids in report["removed_ids"].values() for sid in ids}
    planted_in_selection = {sid for sid, why in trained["corpus"].planted.items()
                            if why not in ("other_anchor", "outside_window")}
    assert planted_in_selection <= removed
    assert not removed & set(trained["corpus"].training_ids), "a good segment was filtered out"
    for rule in ("low_confidence", "rate_outlier", "repeated_ngrams", "language_mismatch", "too_short", "empty_text"):
        assert report["removed_by_rule"][rule] >= 1, rule
    collected = {json.loads(line)["segment_id"] for line in (trained["workdir"] / "collect" / "segments.jsonl").open()}
    outside = {sid for sid, why in trained["corpus"].planted.items() if why in ("other_anchor", "outside_window")}
    assert not collected & outside


def test_golden_sentences_never_trained_on(trained) -> None:
    train_rows = [json.loads(line) for line in (trained["workdir"] / "split" / "train.jsonl").open()]
    golden_refs = {s for _, s in synthetic.golden_sentences()}
    assert not {r["target"] for r in train_rows} & golden_refs
    assert not {r["key"] for r in train_rows} & set(trained["corpus"].golden_ids)


def test_cer_on_held_out_sentences_improves(trained) -> None:
    report = json.loads((trained["workdir"] / "evaluate" / "report.json").read_text())
    golden = report["sets"]["golden"]
    print(f"\ngolden error rate base {golden['base']['rate']:.3f} → new {golden['new']['rate']:.3f} "
          f"(improvement {golden['improvement']:+.3f}); val {report['sets']['val']['base']['rate']:.3f} → "
          f"{report['sets']['val']['new']['rate']:.3f}; RTF {report['rtf']}")
    assert golden["utterances"] == len(trained["corpus"].golden_ids)
    assert golden["improvement"] >= trained["settings"]["gate"]["min_cer_improvement"]
    assert report["gate"]["passed"] is True
    by_language = golden["by_language"]
    assert by_language["zh"]["utterances"] == 3 and by_language["en"]["utterances"] == 2
    print(f"golden CER (zh) {by_language['zh']['base']:.3f} → {by_language['zh']['new']:.3f}; "
          f"WER (en) {by_language['en']['base']:.3f} → {by_language['en']['new']:.3f}")


def test_report_and_chart_are_produced_and_uploaded(trained) -> None:
    chart = trained["workdir"] / "evaluate" / "chart.png"
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    store = open_store(trained["store_uri"])
    job = trained["settings"]["job_name"]
    assert store.get_bytes(f"reports/{job}/chart.png") == chart.read_bytes()
    uploaded = json.loads(store.get_bytes(f"reports/{job}/report.json"))
    assert uploaded["gate"]["passed"] is True


def test_packaged_model_is_in_minio_and_verifies(trained, tmp_path) -> None:
    record = json.loads((trained["workdir"] / "package" / "record.json").read_text())
    assert record["uri"] == f"{trained['store_uri']}models/sensevoice-tiny-demo/e2e1/"
    assert verify_object(record["uri"], record["sha256"]).ok
    local = trained["workdir"] / "package" / "model"
    _, digest, _ = local_directory_manifest(local)
    assert digest == record["sha256"]
    names = {p.name for p in local.iterdir()}
    assert {"model.pt", "config.yaml", "am.mvn", "configuration.json", "training.json"} <= names


@pytest.mark.parametrize("backend", ["torch", "onnx-fp32", "onnx-int8"])
def test_packaged_model_transcribes_a_held_out_utterance(trained, tmp_path, backend) -> None:
    from senseops_runtime.engine import load_engine
    from senseops_runtime.engine.base import DecodeOptions
    from senseops_trainer.package import fetch_model_dir

    record = json.loads((trained["workdir"] / "package" / "record.json").read_text())
    model_dir = fetch_model_dir(record["uri"], tmp_path / "model")
    golden = [json.loads(line) for line in (trained["workdir"] / "split" / "golden.jsonl").open()]
    engine = load_engine(model_dir, backend, "cpu")
    hyps, refs = [], []
    for row in golden:
        audio, _ = soundfile.read(row["source"], dtype="float32")
        hyps.append(engine.transcribe(np.asarray(audio), DecodeOptions(itn=False)).text)
        refs.append(row["target"])
    report = json.loads((trained["workdir"] / "evaluate" / "report.json").read_text())
    rate = error_rate(refs, hyps).rate
    print(f"\n{backend}: golden error rate {rate:.3f}; e.g. {refs[0]!r} → {hyps[0]!r}")
    assert any(h.strip() for h in hyps), "the packaged model transcribed nothing"
    # Every backend of the package beats the base model on sentences it never trained on.
    assert rate < report["sets"]["golden"]["base"]["rate"]


def test_gate_failure_exits_3_and_packages_nothing(tmp_path) -> None:
    """A fine-tune that cannot learn (learning rate ~0, one epoch) must not be released."""
    from tests.testmodel import ensure_tiny_model

    store_uri = (tmp_path / "store").as_uri() + "/"
    synthetic.write_corpus(open_store(store_uri))
    settings = demo_settings(store_uri, str(ensure_tiny_model()), version="never", lr=1e-12, max_epoch=1)
    config = tmp_path / "job.json"
    config.write_text(json.dumps(settings))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in ("operator", "runtime", "trainer_image"))}
    proc = _cli(["run", "--config", str(config), "--workdir", str(tmp_path / "work")], env)
    output = proc.communicate(timeout=RUN_TIMEOUT_S)[0]
    assert proc.returncode == 3, output[-2000:]  # the Job's podFailurePolicy fails such a run at once
    last = _events(output)[-1]
    assert (last["stage"], last["event"]) == ("evaluate", "failed")
    assert "not better than the base" in last["message"]
    assert not open_store(store_uri).exists("models/sensevoice-tiny-demo/never/MANIFEST.sha256")
    # The report is still written so a person can see why.
    report = json.loads((tmp_path / "work" / "evaluate" / "report.json").read_text())
    assert report["gate"]["passed"] is False
