/**
 * A LiveConsolePage-style component for the Electron renderer, without a UI framework: microphone →
 * AudioWorklet → 16 kHz PCM frames → ASRClient → partial and final lines with language/emotion/event tags,
 * connection state and reconnects. Type-checked with the package (`npm run build`); adapt the DOM to your
 * framework. In an app, import from "@senseops/asr-client" instead of "../src/index.js".
 *
 *   const page = await mountLiveConsolePage(document.getElementById("asr")!, {
 *     url: "wss://asr.example.com/ws/stream",
 *     getToken: () => window.api.asrToken(),   // from the main process over contextBridge, never hard-coded
 *     language: "zh",
 *   });
 *   // later: await page.stop();
 */
import { ASRClient, type ClientState, type FinalMessage, PcmFramer, PcmResampler, floatToPcm16 } from "../src/index.js";

export interface LiveConsoleOptions {
  url: string;
  getToken: () => string | Promise<string>;
  language?: string;
}

export interface LiveConsolePage {
  /** Stop the microphone, wait for the last final, close the connection. */
  stop(): Promise<void>;
}

// The worklet only forwards the device's float samples; resampling and framing run on the page.
const FORWARD_WORKLET = `
registerProcessor("senseops-forward", class extends AudioWorkletProcessor {
  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel) this.port.postMessage(channel.slice());
    return true;
  }
});`;

export async function mountLiveConsolePage(root: HTMLElement, options: LiveConsoleOptions): Promise<LiveConsolePage> {
  root.replaceChildren();
  const state = el("span", "state", "idle");
  const finals = el("ol", "finals");
  const partial = el("p", "partial");
  const problem = el("p", "reason");
  root.append(state, problem, finals, partial);

  const client = new ASRClient({
    url: options.url,
    getToken: options.getToken,
    language: options.language ?? "auto",
    onStateChange: (s: ClientState) => {
      state.textContent = s;
      state.className = `state ${s}`;
    },
    onPartial: (text) => {
      partial.textContent = text;
    },
    onFinal: (message) => {
      finals.append(finalLine(message));
      partial.textContent = "";
    },
    onError: (code, reason) => {
      problem.textContent = `closed ${code}: ${reason}`; // 1008: token or quota; 1003/1007: bad audio
    },
  });

  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: true, noiseSuppression: false, autoGainControl: true },
  });
  const context = new AudioContext();
  const workletUrl = URL.createObjectURL(new Blob([FORWARD_WORKLET], { type: "text/javascript" }));
  await context.audioWorklet.addModule(workletUrl);
  URL.revokeObjectURL(workletUrl);
  const node = new AudioWorkletNode(context, "senseops-forward");
  const resampler = new PcmResampler(context.sampleRate);
  const framer = new PcmFramer(100);
  node.port.onmessage = (event: MessageEvent<Float32Array>) => {
    for (const frame of framer.push(floatToPcm16(resampler.process(event.data)))) client.sendPcm(frame);
  };
  context.createMediaStreamSource(stream).connect(node);
  await client.connect();

  return {
    async stop() {
      stream.getTracks().forEach((track) => track.stop());
      await context.close();
      const tail = framer.flush();
      if (tail.length) client.sendPcm(tail);
      await client.end();
    },
  };
}

function finalLine(message: FinalMessage): HTMLLIElement {
  const line = el("li", "final");
  line.append(el("span", "time", `${(message.start_ms / 1000).toFixed(1)}–${(message.end_ms / 1000).toFixed(1)} s`));
  line.append(el("span", "text", message.final));
  for (const tag of [message.lang, message.emotion, message.event]) if (tag) line.append(el("span", "tag", tag));
  return line;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className: string, text = ""): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  node.textContent = text;
  return node;
}
