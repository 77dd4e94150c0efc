// AudioWorklet: microphone float samples -> 16 kHz mono s16le frames of 100 ms, posted to the page.
// When the context does not run at 16 kHz, a windowed-sinc low-pass (cut-off 7.2 kHz) and linear
// interpolation resample first.
const TARGET_RATE = 16000;
const FRAME = 1600; // 100 ms

class Pcm16kProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / TARGET_RATE; // input samples per output sample
    this.out = new Int16Array(FRAME);
    this.n = 0;
    this.taps = this.step === 1 ? null : lowPass(63, 7200 / sampleRate);
    this.history = new Float32Array(this.taps ? this.taps.length : 1);
    this.h = 0; // write index into history
    this.pos = 0; // position of the next output sample, in input samples since the last one consumed
    this.prev = 0; // last filtered sample
  }

  push(sample) {
    const v = Math.max(-1, Math.min(1, sample));
    this.out[this.n++] = v < 0 ? v * 0x8000 : v * 0x7fff;
    if (this.n === FRAME) {
      this.port.postMessage(this.out.buffer, [this.out.buffer]);
      this.out = new Int16Array(FRAME);
      this.n = 0;
    }
  }

  filtered(x) {
    const taps = this.taps;
    this.history[this.h] = x;
    let acc = 0;
    for (let k = 0, i = this.h; k < taps.length; k++, i = i === 0 ? taps.length - 1 : i - 1) acc += taps[k] * this.history[i];
    this.h = (this.h + 1) % taps.length;
    return acc;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    if (!this.taps) {
      for (let i = 0; i < channel.length; i++) this.push(channel[i]);
      return true;
    }
    for (let i = 0; i < channel.length; i++) {
      const cur = this.filtered(channel[i]);
      // Emit every output sample that falls between the previous and the current input sample.
      while (this.pos <= 1) {
        this.push(this.prev + (cur - this.prev) * this.pos);
        this.pos += this.step;
      }
      this.pos -= 1;
      this.prev = cur;
    }
    return true;
  }
}

function lowPass(n, cutoff) {
  const taps = new Float32Array(n);
  const mid = (n - 1) / 2;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const x = i - mid;
    const sinc = x === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * x) / (Math.PI * x);
    const hann = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (n - 1));
    taps[i] = sinc * hann;
    sum += taps[i];
  }
  for (let i = 0; i < n; i++) taps[i] /= sum;
  return taps;
}

registerProcessor("pcm16k", Pcm16kProcessor);
