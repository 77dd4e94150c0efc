"""``make demo-runtime`` (also called by ``make demo``): the runtime with the tiny test model, one espeak-ng
utterance streamed through the Python client at real time, partials and the final transcript printed.

Starts the server on a free loopback port with a throwaway HS256 secret, mints a development token with
the token CLI, runs the client CLI as a user would, then stops the server. Exit status is non-zero when
any step fails or the final transcript differs from the spoken text.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "runtime")]

from senseops_common import speech  # noqa: E402
from tests.runtime.server import RuntimeServer  # noqa: E402
from tests.testmodel import KNOWN_SENTENCES, ensure_tiny_model  # noqa: E402

# See tests/runtime/helpers.py: the tiny model mangles repeated characters after VAD cuts.
SENTENCES = [s for s in KNOWN_SENTENCES if s.text in ("welcome to the live stream", "请把音量调大一点")]


def main() -> int:
    """Run the demo; returns the exit status."""
    print("==> building (or reusing) the tiny SenseVoice test model", flush=True)
    model_dir = ensure_tiny_model()
    secret = secrets.token_urlsafe(32)
    work = Path(tempfile.mkdtemp(prefix="senseops-runtime-demo-"))
    env = {
        "SENSEOPS_MODEL_URI": f"file://{model_dir}",
        "SENSEOPS_MODEL_CACHE_DIR": str(work / "model-cache"),
        "SENSEOPS_JWT_HS256_SECRET": secret,
    }
    server = RuntimeServer(env, work / "runtime.log")
    print(f"==> starting the runtime on {server.http} (log: {server.log_path})", flush=True)
    server.start()
    failures = 0
    try:
        child_env = {**os.environ, "SENSEOPS_JWT_HS256_SECRET": secret, "PYTHONPATH": f"{REPO / 'runtime'}:{REPO}"}
        token = subprocess.run(
            [sys.executable, "-m", "senseops_runtime.tokens", "--sub", "demo", "--anchor", "demo-anchor"],
            env=child_env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        for sentence in SENTENCES:
            wav = speech.write_wav(
                work / f"{sentence.lang}.wav", speech.pad_with_silence(sentence.synthesize(), 0.6, 1.2)
            )
            print(f"\n==> streaming espeak-ng ({sentence.voice}) saying {sentence.text!r} at real time", flush=True)
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "senseops_runtime.client",
                    "--url",
                    server.ws,
                    "--token",
                    token,
                    "--no-itn",
                    str(wav),
                ],
                env=child_env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            sys.stdout.write(result.stdout)
            sys.stderr.write(result.stderr)
            finals = [line for line in result.stdout.splitlines() if line.startswith("[")]
            ok = result.returncode == 0 and len(finals) == 1 and f"] {sentence.text}  (" in finals[0]
            print(f"==> final transcript {'matches' if ok else 'DOES NOT match'} the spoken text", flush=True)
            failures += not ok
    finally:
        server.stop()
        print("==> runtime stopped", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
