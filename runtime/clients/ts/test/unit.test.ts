import assert from "node:assert/strict";
import { test } from "node:test";

import { ReplayBuffer, backoffMs } from "../src/asrClient.js";

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
