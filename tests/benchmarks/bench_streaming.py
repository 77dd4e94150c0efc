"""Streaming benchmark: 1/4/8/16/24 concurrent real-time clients on a full-size random-init SenseVoice-Small.

    python tests/benchmarks/bench_streaming.py [--backends torch,onnx-int8] [--clients 1,4,8,16,24]

For each backend a real runtime (uvicorn, one process) is started on loopback with the full-size model
(``build_fullsize_random``: 234 M parameters, the real model's cost, meaningless text). Each client streams
espeak-ng sentences separated by silence at real time in 100 ms frames, as the app does. Measured:

* final latency (client side): the frame holding the last speech sample of an utterance was sent ->
  the final for that utterance arrived. It includes the VAD's end-of-speech wait
  (SENSEOPS_VAD_MIN_SILENCE_MS, 400 ms by default), which is inherent to endpointing;
* partial latency (server side): the newest audio in the partial arrived -> partial sent, from the
  server's ``senseops_partial_latency_seconds`` histogram (quantiles interpolated as Prometheus does);
* partial updates per second of speech, per stream (partials received / seconds of speech it sent): the
  minimum over streams shows starvation, the median the typical stream;
* finals against an offline decode: each final's segment (its start_ms..end_ms of the sent audio) is
  decoded again in this process with the same backend, alone; the count of differing texts is printed
  (it must be 0);
* CPU (100 % = one core) and peak RSS of the server process, from /proc.

Prints one table; not a test (timings depend on the machine).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "runtime")]

from senseops_common import speech  # noqa: E402
from senseops_runtime.audio_input import pcm16_to_float  # noqa: E402
from senseops_runtime.auth import AuthConfig, issue_token  # noqa: E402
from senseops_runtime.client import pcm_frames, stream_pcm  # noqa: E402
from senseops_runtime.engine.base import DecodeOptions, Engine  # noqa: E402
from senseops_runtime.engine.factory import load_engine  # noqa: E402
from tests.runtime.server import RuntimeServer  # noqa: E402
from tests.testmodel import KNOWN_SENTENCES, build_fullsize_random  # noqa: E402

SAMPLE_RATE = 16_000
FRAME_MS = 100
GAP_S = 1.5


@dataclass
class ClientPlan:
    """One client's audio and where each utterance's speech ends (sample index)."""

    pcm: bytes
    speech_spans: list[tuple[int, int]]


@dataclass
class ClientResult:
    final_latencies: list[float] = field(default_factory=list)
    partials_per_speech_s: float = 0.0
    finals: list[tuple[int, int, str]] = field(default_factory=list)  # (start sample, end sample, text)
    missed: int = 0
    close_code: int | None = None
    close_reason: str = ""


def plan_client(utterances: int, rng: random.Random, clips: list[np.ndarray]) -> ClientPlan:
    """Silence, then ``utterances`` sentences each followed by a gap (random lead-in desynchronises clients)."""
    parts = [np.zeros(int(rng.uniform(0.2, 1.5) * SAMPLE_RATE), np.float32)]
    spans = []
    position = len(parts[0])
    for _ in range(utterances):
        clip = clips[rng.randrange(len(clips))]
        spans.append((position, position + len(clip)))
        parts += [clip, np.zeros(int(GAP_S * SAMPLE_RATE), np.float32)]
        position += len(clip) + int(GAP_S * SAMPLE_RATE)
    return ClientPlan(speech.to_pcm16(np.concatenate(parts)), spans)


async def run_client(url: str, token: str, plan: ClientPlan) -> ClientResult:
    frames = pcm_frames(plan.pcm, FRAME_MS)
    sent_at: list[float] = []
    outcome = await stream_pcm(
        url,
        frames,
        token=token,
        options={"itn": True},
        realtime=True,
        on_frame_sent=lambda index, at: sent_at.append(at),
    )
    result = ClientResult(close_code=outcome.close_code, close_reason=outcome.close_reason)
    speech_s = sum(end - start for start, end in plan.speech_spans) / SAMPLE_RATE
    result.partials_per_speech_s = len(outcome.partials) / speech_s if speech_s else 0.0
    result.finals = [(m["start_ms"] * 16, m["end_ms"] * 16, m["final"]) for _, m in outcome.finals]
    samples_per_frame = SAMPLE_RATE * FRAME_MS // 1000
    for start, end in plan.speech_spans:
        # The final(s) overlapping this utterance; the last of them completes it.
        matching = [(at, m) for at, m in outcome.finals if m["start_ms"] * 16 < end and m["end_ms"] * 16 > start]
        if not matching:
            result.missed += 1
            continue
        last_speech_frame = min((end - 1) // samples_per_frame, len(sent_at) - 1)
        result.final_latencies.append(max(at for at, _ in matching) - sent_at[last_speech_frame])
    return result


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus-style quantile from cumulative (upper bound, count) pairs."""
    total = buckets[-1][1]
    if total <= 0:
        return float("nan")
    rank = q * total
    previous_bound, previous_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return previous_bound
            width = count - previous_count
            return previous_bound + (bound - previous_bound) * ((rank - previous_count) / width if width else 0)
        previous_bound, previous_count = bound, count
    return previous_bound


def partial_buckets(metrics_text: str) -> list[tuple[float, float]]:
    """Cumulative buckets of senseops_partial_latency_seconds."""
    out = []
    for line in metrics_text.splitlines():
        if line.startswith("senseops_partial_latency_seconds_bucket"):
            bound = line.split('le="')[1].split('"')[0]
            out.append((float("inf") if bound == "+Inf" else float(bound), float(line.split()[-1])))
    return sorted(out)


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def offline_mismatches(engine: Engine | None, plans: list[ClientPlan], results: list[ClientResult]) -> int:
    """Finals whose text differs from decoding the same samples offline (alone, same backend); -1: unchecked."""
    if engine is None:
        return -1
    options = DecodeOptions(itn=True)
    mismatches = 0
    for plan, result in zip(plans, results, strict=True):
        for start, end, text in result.finals:
            offline = engine.transcribe(pcm16_to_float(plan.pcm[start * 2 : end * 2]), options).text
            if offline != text:
                mismatches += 1
                print(f"  final differs from offline decode: {text!r} != {offline!r}", flush=True)
    return mismatches


async def run_level(
    server: RuntimeServer, secret: str, clients: int, utterances: int, seed: int, offline: Engine | None = None
) -> dict[str, object]:
    rng = random.Random(seed)
    clips = [s.synthesize() for s in KNOWN_SENTENCES]
    plans = [plan_client(utterances, rng, clips) for _ in range(clients)]
    config = AuthConfig(hs256_secret=secret)
    tokens = [
        issue_token(config, secret, f"bench-{i}", f"bench-{i}", ["stream"], False, time.time()) for i in range(clients)
    ]
    async with httpx.AsyncClient() as http:
        before = partial_buckets((await http.get(f"{server.http}/metrics")).text)
    assert server.proc is not None
    pid = server.proc.pid
    cpu_before, wall_before = proc_cpu_seconds(pid), time.monotonic()
    peak_rss = proc_rss_mib(pid)
    done = asyncio.Event()

    async def sample_rss() -> None:
        nonlocal peak_rss
        while not done.is_set():
            peak_rss = max(peak_rss, proc_rss_mib(pid))
            await asyncio.sleep(0.25)

    sampler = asyncio.create_task(sample_rss())
    results = await asyncio.gather(*(run_client(server.ws, t, p) for t, p in zip(tokens, plans, strict=True)))
    done.set()
    await sampler
    cpu = (proc_cpu_seconds(pid) - cpu_before) / (time.monotonic() - wall_before) * 100
    async with httpx.AsyncClient() as http:
        after = partial_buckets((await http.get(f"{server.http}/metrics")).text)
    delta = [(b, a - c) for (b, a), (_, c) in zip(after, before or [(b, 0.0) for b, _ in after], strict=True)]
    finals = sorted(x for r in results for x in r.final_latencies)
    rates = sorted(r.partials_per_speech_s for r in results)
    mismatches = await asyncio.to_thread(offline_mismatches, offline, plans, results)

    def pct(values: list[float], q: float) -> float:
        return (
            statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]
            if len(values) > 1
            else (values[0] if values else float("nan"))
        )

    return {
        "clients": clients,
        "partial_p50": histogram_quantile(0.5, delta),
        "partial_p95": histogram_quantile(0.95, delta),
        "partials": int(delta[-1][1]) if delta else 0,
        "final_p50": pct(finals, 0.50),
        "final_p95": pct(finals, 0.95),
        "finals": len(finals),
        "updates_min": rates[0] if rates else float("nan"),
        "updates_p50": statistics.median(rates) if rates else float("nan"),
        "offline_mismatches": mismatches,
        "missed": sum(r.missed for r in results),
        "bad_closes": sum(1 for r in results if r.close_code != 1000),
        "close_reasons": sorted({f"{r.close_code} {r.close_reason}" for r in results if r.close_code != 1000}),
        "cpu": cpu,
        "rss": peak_rss,
    }


def ensure_model(model_dir: Path, backend: str) -> Path:
    """The full-size random model (built once), exported to ONNX when an ONNX backend is asked for."""
    if not (model_dir / "model.pt").is_file():
        print(f"building full-size random model in {model_dir} …", flush=True)
        build_fullsize_random(model_dir)
    if backend.startswith("onnx"):
        from senseops_runtime.engine.export import ensure_exported

        onnx_dir = model_dir.with_name(model_dir.name + "-onnx")
        ensure_exported(model_dir, onnx_dir)
        return onnx_dir
    return model_dir


def main(argv: list[str] | None = None) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per /metrics scrape otherwise
    cache = Path(os.environ.get("SENSEOPS_CACHE", Path.home() / ".cache" / "senseops"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=cache / "models" / "fullsize-random-seed0")
    parser.add_argument("--backends", default="onnx-int8,torch")
    parser.add_argument("--clients", default="1,4,8,16,24")
    parser.add_argument("--utterances", type=int, default=4, help="sentences per client per level")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="torch device of the server and the offline check (cuda:0)")
    parser.add_argument(
        "--no-offline-check", action="store_true", help="skip decoding every final again offline (saves memory)"
    )
    parser.add_argument(
        "--server-env", action="append", default=[], metavar="SENSEOPS_X=V", help="extra server setting (A/B runs)"
    )
    args = parser.parse_args(argv)

    rows = []
    for backend in args.backends.split(","):
        model_dir = ensure_model(args.model_dir, backend)
        secret = secrets.token_urlsafe(32)
        work = Path(tempfile.mkdtemp(prefix="bench-streaming-"))
        env = {
            "SENSEOPS_MODEL_URI": f"file://{model_dir}",
            "SENSEOPS_BACKEND": backend,
            "SENSEOPS_THREADS": str(args.threads),
            "SENSEOPS_JWT_HS256_SECRET": secret,
            "SENSEOPS_MAX_STREAMS_PER_SUBJECT": "4",
            "SENSEOPS_AUDIO_MINUTES_PER_DAY": "100000",
            "OMP_NUM_THREADS": str(args.threads),
            "SENSEOPS_DEVICE": args.device,
        }
        env.update(item.split("=", 1) for item in args.server_env)
        server = RuntimeServer(env, work / "runtime.log")
        started = time.monotonic()
        server.start(ready_timeout_s=900)
        print(f"[{backend}] server ready in {time.monotonic() - started:.0f} s (log {server.log_path})", flush=True)
        offline = None if args.no_offline_check else load_engine(model_dir, backend, args.device, threads=args.threads)
        try:
            for n in (int(c) for c in args.clients.split(",")):
                row = asyncio.run(run_level(server, secret, n, args.utterances, seed=n, offline=offline))
                row["backend"] = backend
                rows.append(row)
                print(f"[{backend}] {n} clients done: {row}", flush=True)
        finally:
            server.stop()

    cpu_name = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    print(
        f"\nStreaming, full-size random-init SenseVoice-Small, {os.cpu_count()} vCPU ({cpu_name}), "
        f"{args.threads} model threads, {args.utterances} utterances per client, 100 ms frames, real time, "
        f"device {args.device}"
    )
    print("final latency = last speech frame sent -> final received (includes the 400 ms end-of-speech wait)")
    print("partial latency = newest audio in the partial arrived -> partial sent (server histogram, interpolated)")
    print("updates/s = partials received per second of speech sent, per stream: min over streams / median")
    print("offline = finals whose text differs from an offline decode of the same samples (-1: not checked)\n")
    header = (
        f"| {'backend':9} | {'clients':>7} | {'partial p50':>11} | {'partial p95':>11} | {'final p50':>9} | "
        f"{'final p95':>9} | {'updates/s min/p50':>17} | {'finals':>6} | {'offline':>7} | "
        f"{'missed':>6} | {'bad closes':>10} | {'CPU %':>6} | {'RSS MiB':>7} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for r in rows:
        print(
            f"| {r['backend']:9} | {r['clients']:>7} | {r['partial_p50'] * 1000:>8.0f} ms | "
            f"{r['partial_p95'] * 1000:>8.0f} ms | {r['final_p50'] * 1000:>6.0f} ms | "
            f"{r['final_p95'] * 1000:>6.0f} ms | "
            f"{r['updates_min']:>8.1f} / {r['updates_p50']:>4.1f} | "
            f"{r['finals']:>6} | {r['offline_mismatches']:>7} | "
            f"{r['missed']:>6} | {r['bad_closes']:>10} | {r['cpu']:>6.0f} | {r['rss']:>7.0f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
