import assert from "node:assert/strict";
import { test } from "node:test";

import { ASRClient, ReplayBuffer, backoffMs, type WebSocketLike } from "../src/asrClient.js";

const ms = (n: number) => new Uint8Array(n * 32); // n milliseconds of 16 kHz s16le

test("replay buffer keeps frames after the last acknowledged final", () => {
  const buffer = new ReplayBuffer(10_000);
  for (let i = 0; i < 10; i++) buffer.push(ms(100));
  assert.equal(buffer.timelineMs(), 1000);
  buffer.acknowledge(450); // the frame 400-500 ends after 450: kept
  assert.deepEqual(buffer.pending().map((f) => f.startMs), [400, 500, 600, 700, 800, 900]);
  assert.equal(buffer.replayStartMs(), 400);
  buffer.acknowledge(1000);
  assert.equal(buffer.pending().length, 0);
  assert.equal(buffer.replayStartMs(), 1000);
});

test("replay buffer is bounded in duration", () => {
  const buffer = new ReplayBuffer(300);
  for (let i = 0; i < 10; i++) buffer.push(ms(100));
  assert.deepEqual(buffer.pending().map((f) => f.startMs), [700, 800, 900]);
});

test("odd-length frames are refused before they reach the server", () => {
  assert.throws(() => new ReplayBuffer(1000).push(new Uint8Array(3)), /whole 16-bit samples/);
});

test("backoff grows exponentially, is capped, and jitters within [ceiling/2, ceiling]", () => {
  assert.equal(backoffMs(0, 250, 5000, () => 0), 125);
  assert.equal(backoffMs(0, 250, 5000, () => 1), 250);
  assert.equal(backoffMs(3, 250, 5000, () => 1), 2000);
  assert.equal(backoffMs(10, 250, 5000, () => 1), 5000);
  assert.equal(backoffMs(10, 250, 5000, () => 0), 2500);
});

/** A scripted socket: records what the client sends; the test drives open/message/close. */
class ScriptedSocket implements WebSocketLike {
  binaryType = "";
  readyState = 0;
  sent: Array<string | Uint8Array> = [];
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  send(data: string | ArrayBufferLike | ArrayBufferView): void {
    this.sent.push(typeof data === "string" ? data : new Uint8Array(data as ArrayBuffer));
  }
  close(): void {}
  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }
  drop(): void {
    this.readyState = 3;
    this.onclose?.({ code: 1006, reason: "" });
  }
}

test("a reconnect resumes the stream the server named, from the first unacknowledged frame", async () => {
  const sockets: ScriptedSocket[] = [];
  const client = new ASRClient({
    url: "ws://127.0.0.1:1/ws/stream",
    getToken: () => "t",
    initialBackoffMs: 1,
    maxBackoffMs: 1,
    webSocketFactory: () => {
      const socket = new ScriptedSocket();
      sockets.push(socket);
      queueMicrotask(() => socket.open());
      return socket;
    },
  });
  await client.connect();
  sockets[0].onmessage?.({ data: JSON.stringify({ stream_id: "20260301T100000Z-0123456789ab", resumed: false }) });
  for (let i = 0; i < 5; i++) client.sendPcm(ms(100));
  sockets[0].onmessage?.({ data: JSON.stringify({ final: "x", segment_id: "s", start_ms: 0, end_ms: 200 }) });
  sockets[0].drop();
  while (sockets.length < 2 || sockets[1].readyState !== 1) await new Promise((r) => setTimeout(r, 5));
  assert.equal(client.currentStreamId, "20260301T100000Z-0123456789ab");
  assert.deepEqual(JSON.parse(sockets[0].sent[0] as string).resume, undefined);
  const options = JSON.parse(sockets[1].sent[0] as string);
  assert.equal(options.resume, "20260301T100000Z-0123456789ab");
  assert.equal(options.start_offset_ms, 200);
  assert.equal(sockets[1].sent.length, 1 + 3); // options, then the three frames after 200 ms
  client.close();
});

test("a draining server's 1012 close is retried at once with resume; a 1008 close is not retried", async () => {
  const sockets: ScriptedSocket[] = [];
  const errors: number[] = [];
  const client = new ASRClient({
    url: "ws://127.0.0.1:1/ws/stream",
    getToken: () => "t",
    initialBackoffMs: 1,
    maxBackoffMs: 1,
    onError: (code) => errors.push(code),
    webSocketFactory: () => {
      const socket = new ScriptedSocket();
      sockets.push(socket);
      queueMicrotask(() => socket.open());
      return socket;
    },
  });
  await client.connect();
  sockets[0].onmessage?.({ data: JSON.stringify({ stream_id: "20260301T100000Z-0123456789ab", resumed: false }) });
  for (let i = 0; i < 3; i++) client.sendPcm(ms(100));
  sockets[0].onmessage?.({ data: JSON.stringify({ final: "x", segment_id: "s", start_ms: 0, end_ms: 100 }) });
  sockets[0].readyState = 3;
  sockets[0].onclose?.({ code: 1012, reason: "server draining (shutting down); reconnect" });
  while (sockets.length < 2 || sockets[1].readyState !== 1) await new Promise((r) => setTimeout(r, 5));
  const options = JSON.parse(sockets[1].sent[0] as string);
  assert.equal(options.resume, "20260301T100000Z-0123456789ab");
  assert.equal(options.start_offset_ms, 100);
  assert.equal(sockets[1].sent.length, 1 + 2); // options, then the two frames after the final
  assert.equal(client.reconnects, 1);
  assert.deepEqual(errors, []);
  sockets[1].readyState = 3;
  sockets[1].onclose?.({ code: 1008, reason: "token expired" });
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(sockets.length, 2, "a policy close must not be retried");
  assert.deepEqual(errors, [1008]);
  assert.equal(client.currentState, "closed");
});
