// Unit tests of the PCM helpers (run by tests/runtime/test_ts_package.py: `node --test dist/package-test/`).
import assert from "node:assert/strict";
import { test } from "node:test";

import { BYTES_PER_MS, PcmFramer, PcmResampler, floatToPcm16 } from "../src/index.js";

test("floats become little-endian int16 and clip", () => {
  const bytes = floatToPcm16(Float32Array.from([0, 1, -1, 0.5, 2, -2]));
  const view = new DataView(bytes.buffer);
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((i) => view.getInt16(i * 2, true)), [0, 32767, -32768, 16384, 32767, -32768]);
});

test("48 kHz becomes 16 kHz with the right length in any chunking", () => {
  const input = new Float32Array(48_000).map((_, i) => Math.sin((2 * Math.PI * 440 * i) / 48_000));
  const whole = new PcmResampler(48_000).process(input);
  const chunked = new PcmResampler(48_000);
  const parts: number[] = [];
  for (let i = 0; i < input.length; i += 128) parts.push(...chunked.process(input.subarray(i, i + 128)));
  assert.ok(Math.abs(whole.length - 16_000) <= 1, `length ${whole.length}`);
  assert.equal(parts.length, whole.length);
  assert.ok(parts.every((v, i) => Math.abs(v - whole[i]) < 1e-6), "chunking changes nothing");
});

test("speech-band tones pass and tones above 8 kHz are removed", () => {
  const rms = (rate: number, hz: number) => {
    const input = new Float32Array(rate).map((_, i) => Math.sin((2 * Math.PI * hz * i) / rate));
    const out = new PcmResampler(rate).process(input).subarray(200); // skip the filter's start-up
    return Math.sqrt(out.reduce((a, v) => a + v * v, 0) / out.length);
  };
  assert.ok(rms(48_000, 1000) > 0.65, "1 kHz keeps its level (sine RMS 0.707)");
  assert.ok(rms(44_100, 3000) > 0.6, "3 kHz at 44.1 kHz input");
  assert.ok(rms(48_000, 12_000) < 0.05, "12 kHz would alias; it is filtered out");
});

test("16 kHz input passes through unchanged", () => {
  const input = Float32Array.from([0.1, -0.2, 0.3]);
  assert.deepEqual(Array.from(new PcmResampler(16_000).process(input)), Array.from(input));
});

test("framer emits exact 100 ms frames and keeps the rest", () => {
  const framer = new PcmFramer(100);
  assert.equal(framer.push(new Uint8Array(BYTES_PER_MS * 60)).length, 0);
  const frames = framer.push(new Uint8Array(BYTES_PER_MS * 150 + 1));
  assert.deepEqual(frames.map((f) => f.length), [BYTES_PER_MS * 100, BYTES_PER_MS * 100]);
  assert.equal(framer.flush().length, BYTES_PER_MS * 10); // the odd byte is dropped
  assert.equal(framer.flush().length, 0);
});
