/**
 * Microphone samples → what the runtime expects: 16 kHz, 16-bit little-endian, mono, in 100 ms frames.
 * Pure and DOM-free, so the Electron renderer, an AudioWorklet or Node can use them.
 */

export const SAMPLE_RATE = 16_000;
export const BYTES_PER_MS = (SAMPLE_RATE * 2) / 1000;

/** Float samples in [-1, 1] (Web Audio's format) → 16-bit little-endian PCM bytes; out-of-range values clip. */
export function floatToPcm16(samples: Float32Array): Uint8Array {
  const out = new Uint8Array(samples.length * 2);
  const view = new DataView(out.buffer);
  for (let i = 0; i < samples.length; i++) {
    const v = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(i * 2, v < 0 ? Math.round(v * 0x8000) : Math.round(v * 0x7fff), true);
  }
  return out;
}

/** A Hann-windowed sinc low-pass with unity gain at DC; `cutoff` is a fraction of the input rate. */
export function lowPassTaps(count: number, cutoff: number): Float32Array {
  const taps = new Float32Array(count);
  const mid = (count - 1) / 2;
  let sum = 0;
  for (let i = 0; i < count; i++) {
    const x = i - mid;
    const sinc = x === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * x) / (Math.PI * x);
    taps[i] = sinc * (0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (count - 1)));
    sum += taps[i];
  }
  for (let i = 0; i < count; i++) taps[i] /= sum;
  return taps;
}

/**
 * Streaming resampler from the audio device's rate (44.1 or 48 kHz) to 16 kHz: a low-pass below the new
 * Nyquist frequency, then linear interpolation. Keeps its state between calls, so chunk boundaries do
 * not click. At 16 kHz input it passes samples through unchanged.
 */
export class PcmResampler {
  private readonly step: number;
  private readonly taps: Float32Array | null;
  private readonly history: Float32Array;
  private head = 0;
  private position = 0;
  private previous = 0;

  constructor(readonly inputRate: number, readonly outputRate: number = SAMPLE_RATE) {
    if (!(inputRate > 0 && outputRate > 0)) throw new RangeError("sample rates must be positive");
    this.step = inputRate / outputRate;
    // Cut-off at 90 % of the output's Nyquist frequency (7.2 kHz for 16 kHz).
    this.taps = inputRate === outputRate ? null : lowPassTaps(63, (0.45 * outputRate) / inputRate);
    this.history = new Float32Array(this.taps ? this.taps.length : 1);
  }

  /** Resample the next chunk; returns the output samples it completes. */
  process(input: Float32Array): Float32Array {
    if (!this.taps) return input.slice();
    const out: number[] = [];
    for (let i = 0; i < input.length; i++) {
      const current = this.filter(input[i]);
      while (this.position <= 1) {
        out.push(this.previous + (current - this.previous) * this.position);
        this.position += this.step;
      }
      this.position -= 1;
      this.previous = current;
    }
    return Float32Array.from(out);
  }

  private filter(sample: number): number {
    const taps = this.taps as Float32Array;
    const n = taps.length;
    this.history[this.head] = sample;
    let acc = 0;
    for (let k = 0, i = this.head; k < n; k++, i = i === 0 ? n - 1 : i - 1) acc += taps[k] * this.history[i];
    this.head = (this.head + 1) % n;
    return acc;
  }
}

/** Collects PCM bytes into frames of exactly `frameMs` (default 100 ms) for `ASRClient.sendPcm`. */
export class PcmFramer {
  private readonly frameBytes: number;
  private pending = new Uint8Array(0);

  constructor(frameMs = 100) {
    if (!(frameMs > 0)) throw new RangeError("frameMs must be positive");
    this.frameBytes = frameMs * BYTES_PER_MS;
  }

  /** Add bytes; returns the frames now complete (the rest waits for the next call). */
  push(bytes: Uint8Array): Uint8Array[] {
    const joined = new Uint8Array(this.pending.length + bytes.length);
    joined.set(this.pending);
    joined.set(bytes, this.pending.length);
    const frames: Uint8Array[] = [];
    let offset = 0;
    for (; offset + this.frameBytes <= joined.length; offset += this.frameBytes) {
      frames.push(joined.slice(offset, offset + this.frameBytes));
    }
    this.pending = joined.slice(offset);
    return frames;
  }

  /** The incomplete tail (an even number of bytes), e.g. before `ASRClient.end()`. */
  flush(): Uint8Array {
    const tail = this.pending.slice(0, this.pending.length - (this.pending.length % 2));
    this.pending = new Uint8Array(0);
    return tail;
  }
}
