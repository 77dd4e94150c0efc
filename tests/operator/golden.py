"""Test helpers for the Rollout quality gate: a golden set in the store and a worse candidate model.

The golden set is the tiny model's own `KNOWN_SENTENCES` spoken by espeak-ng (so the trained tiny model
transcribes it exactly); the worse candidate is the same model directory with random-init weights.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

from senseops_common import speech
from senseops_common.storage import StoreBase
from tests.testmodel import KNOWN_SENTENCES


def upload_golden_set(store: StoreBase, prefix: str, count: int = 4) -> list[str]:
    """Put `count` known sentences (WAV 16 kHz mono) and a manifest under `prefix`; return the references."""
    lines, refs = [], []
    for i, sentence in enumerate(KNOWN_SENTENCES[:count]):
        buf = io.BytesIO()
        import soundfile

        soundfile.write(buf, sentence.synthesize(), speech.SAMPLE_RATE, subtype="PCM_16", format="WAV")
        key = f"clips/{i:02d}.wav"
        store.put(f"{prefix}{key}", buf.getvalue())
        lines.append(json.dumps({"key": key, "text": sentence.text, "language": sentence.lang}, ensure_ascii=False))
        refs.append(sentence.text)
    store.put(f"{prefix}manifest.jsonl", ("\n".join(lines) + "\n").encode())
    return refs


def untrained_model_dir(trained: Path, out: Path, seed: int = 7) -> Path:
    """The trained tiny model's files with freshly initialised weights: same architecture, transcribes badly."""
    import torch

    from tests.testmodel import modeldir, train

    if (out / "model.pt").exists():
        return out
    shutil.copytree(trained, out, dirs_exist_ok=True)
    torch.manual_seed(seed)
    model = train.build_sensevoice(modeldir.TINY_SIZE)
    torch.save(model.state_dict(), out / "model.pt")
    return out
