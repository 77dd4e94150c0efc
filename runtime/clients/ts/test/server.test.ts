/**
 * Against a real runtime started by tests/runtime/test_ts_client.py, which passes:
 * RUNTIME_WS_URL, RUNTIME_TOKENS (JSON list, one fresh subject per test), RUNTIME_PCM (16 kHz s16le
 * file of a known utterance), RUNTIME_EXPECTED (its transcript).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import net from "node:net";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import WebSocket from "ws";

import { ASRClient, type FinalMessage, type WebSocketLike } from "../src/asrClient.js";

const url = process.env.RUNTIME_WS_URL ?? "";
const tokens: string[] = JSON.parse(process.env.RUNTIME_TOKENS ?? "[]");
const pcm = readFileSync(process.env.RUNTIME_PCM ?? "/dev/null");
const expected = process.env.RUNTIME_EXPECTED ?? "";
const FRAME_BYTES = 3200; // 100 ms

const factory = (u: string) => new WebSocket(u) as unknown as WebSocketLike;

async function streamRealtime(client: ASRClient, onFrame?: (index: number) => Promise<void>): Promise<void> {
  const start = Date.now();
  for (let i = 0, offset = 0; offset < pcm.length; i++, offset += FRAME_BYTES) {
    const due = start + i * 100 - Date.now();
    if (due > 0) await sleep(due);
    client.sendPcm(new Uint8Array(pcm.subarray(offset, offset + FRAME_BYTES)));
    if (onFrame) await onFrame(i);
  }
}

test("streams in real time: partials, then the known final", { timeout: 60_000 }, async () => {
  assert.ok(url && tokens.length >= 3 && pcm.length > 0, "the pytest wrapper sets the environment");
  const partials: string[] = [];
  const finals: FinalMessage[] = [];
  const client = new ASRClient({
    url,
    getToken: () => tokens[0],
    itn: false,
    webSocketFactory: factory,
    onPartial: (t) => partials.push(t),
    onFinal: (m) => finals.push(m),
  });
  await client.connect();
  await streamRealtime(client);
  await client.end();
  assert.deepEqual(finals.map((f) => f.final), [expected]);
  assert.ok(partials.length > 0, "expected partials while speaking");
  assert.equal(client.currentState, "closed");
});

test("reconnects after a dropped connection and replays unacknowledged audio", { timeout: 60_000 }, async () => {
  // A TCP proxy in front of the server lets the test cut the connection mid-utterance.
  const target = new URL(url);
  const sockets = new Set<net.Socket>();
  const proxy = net.createServer((downstream) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    for (const s of [downstream, upstream]) {
      sockets.add(s);
      s.on("error", () => s.destroy());
      s.on("close", () => sockets.delete(s));
    }
    downstream.pipe(upstream).pipe(downstream);
    downstream.on("close", () => upstream.destroy());
    upstream.on("close", () => downstream.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  const port = (proxy.address() as net.AddressInfo).port;
  const finals: FinalMessage[] = [];
  const states: string[] = [];
  const client = new ASRClient({
    url: `ws://127.0.0.1:${port}${target.pathname}`,
    getToken: () => tokens[1],
    itn: false,
    initialBackoffMs: 50,
    webSocketFactory: factory,
    onFinal: (m) => finals.push(m),
    onStateChange: (s) => states.push(s),
  });
  await client.connect();
  // Cut every connection 1.2 s in, while the utterance is being spoken (0.6 s of leading silence).
  await streamRealtime(client, async (i) => {
    if (i === 12) for (const s of sockets) s.destroy();
  });
  await client.end();
  proxy.close();
  assert.ok(client.reconnects >= 1, `expected a reconnect, states: ${states.join(",")}`);
  assert.deepEqual(finals.map((f) => f.final), [expected]);
  // Timeline continued across the reconnect: the segment starts where the speech starts.
  assert.ok(finals[0].start_ms >= 300 && finals[0].start_ms <= 700, `start_ms ${finals[0].start_ms}`);
});

test("an auth refusal is reported and not retried", { timeout: 30_000 }, async () => {
  const errors: Array<[number, string]> = [];
  const client = new ASRClient({
    url,
    getToken: () => "not-a-jwt",
    webSocketFactory: factory,
    onError: (code, reason) => errors.push([code, reason]),
  });
  await client.connect();
  await assert.rejects(client.end(), /1008/);
  assert.equal(errors.length, 1);
  assert.equal(errors[0][0], 1008);
  assert.match(errors[0][1], /malformed token/);
  assert.equal(client.reconnects, 0);
});
