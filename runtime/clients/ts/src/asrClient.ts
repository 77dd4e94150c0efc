/**
 * WebSocket client for the SenseOps runtime (`WS /ws/stream`), for the Electron app and Node.
 *
 * - Sends 16 kHz / 16-bit / mono little-endian PCM frames (100-200 ms recommended).
 * - Emits partial and final transcripts.
 * - Reconnects with exponential backoff when the connection drops or the server closes with a
 *   retryable code (1006 abnormal, 1011 internal, 1012 restart, 1013 overloaded), and replays the
 *   audio the server has not acknowledged yet. A final acknowledges audio up to its `end_ms`; frames
 *   after it are kept (up to `maxReplayMs`) and replayed with `start_offset_ms` so segment times
 *   continue on the new connection's timeline. The server names the stream in its first message
 *   (`stream_id`); a reconnect sends it back as `resume`, so the server gives replayed speech the same
 *   identity (its sample offsets) and does not record it a second time.
 * - Auth/quota (1008) and bad-data (1003/1007) closes are not retried: they will not get better.
 */

export interface FinalMessage {
  final: string;
  segment_id: string;
  start_ms: number;
  end_ms: number;
  lang: string;
  emotion: string;
  event: string;
  confidence: number;
}

/** The subset of the browser WebSocket API this client uses (Electron's, or `ws` in Node). */
export interface WebSocketLike {
  binaryType: string;
  readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string | ArrayBufferLike | ArrayBufferView): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketFactory = (url: string) => WebSocketLike;

export type ClientState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

export interface ASRClientOptions {
  /** e.g. `wss://asr.example.com/ws/stream` */
  url: string;
  /** Returns a (fresh, short-lived) JWT; called on every connect. */
  getToken: () => string | Promise<string>;
  language?: string;
  itn?: boolean;
  /** Audio kept for replay after a drop, at most (default 10 s, the server's burst allowance). */
  maxReplayMs?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Give up after this many consecutive failed reconnects (default 8). */
  maxReconnects?: number;
  /** Defaults to `globalThis.WebSocket` (browser / Electron renderer). */
  webSocketFactory?: WebSocketFactory;
  onPartial?: (text: string) => void;
  onFinal?: (message: FinalMessage) => void;
  onStateChange?: (state: ClientState) => void;
  /** A permanent failure (not retried) or retries exhausted. */
  onError?: (code: number, reason: string) => void;
}

const SAMPLE_RATE = 16_000;
const BYTES_PER_MS = (SAMPLE_RATE * 2) / 1000;
const OPEN = 1;
const RETRYABLE = new Set([1001, 1005, 1006, 1011, 1012, 1013, 1014]);

interface BufferedFrame {
  startMs: number;
  data: Uint8Array;
}

/** Frames not yet acknowledged by a final, bounded in duration. Pure bookkeeping, no I/O. */
export class ReplayBuffer {
  private frames: BufferedFrame[] = [];
  private nextStartMs = 0;

  constructor(private readonly maxMs: number) {}

  /** Add a frame at the end of the stream timeline; drops the oldest beyond `maxMs`. */
  push(data: Uint8Array): BufferedFrame {
    if (data.byteLength % 2 !== 0) throw new Error("PCM frames must hold whole 16-bit samples");
    const frame = { startMs: this.nextStartMs, data };
    this.nextStartMs += data.byteLength / BYTES_PER_MS;
    this.frames.push(frame);
    while (this.frames.length > 1 && this.durationMs() > this.maxMs) this.frames.shift();
    return frame;
  }

  /** The server finalised everything up to `endMs`: forget frames that end at or before it. */
  acknowledge(endMs: number): void {
    this.frames = this.frames.filter((f) => f.startMs + f.data.byteLength / BYTES_PER_MS > endMs);
  }

  /** Frames to resend after a reconnect, oldest first. */
  pending(): readonly BufferedFrame[] {
    return this.frames;
  }

  /** Where replay starts on the stream timeline (ms since the first frame). */
  replayStartMs(): number {
    return this.frames.length ? this.frames[0].startMs : this.nextStartMs;
  }

  durationMs(): number {
    return this.frames.reduce((sum, f) => sum + f.data.byteLength / BYTES_PER_MS, 0);
  }

  /** Total audio pushed so far (ms). */
  timelineMs(): number {
    return this.nextStartMs;
  }
}

/** Next reconnect delay: exponential with full jitter, capped. */
export function backoffMs(attempt: number, initialMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** attempt);
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

export class ASRClient {
  private ws?: WebSocketLike;
  private readonly buffer: ReplayBuffer;
  private state: ClientState = "idle";
  private attempts = 0;
  private ending = false;
  private finished?: { resolve: () => void; reject: (e: Error) => void };
  private reconnectTimer?: ReturnType<typeof setTimeout>;
  private lastClose: [number, string] = [0, ""];
  private streamId?: string;
  /** How many times a connection was re-established after a drop (for tests and telemetry). */
  reconnects = 0;

  constructor(private readonly options: ASRClientOptions) {
    this.buffer = new ReplayBuffer(options.maxReplayMs ?? 10_000);
  }

  get currentState(): ClientState {
    return this.state;
  }

  /** The server's name for this stream (from its first message); sent back as `resume` on reconnect. */
  get currentStreamId(): string | undefined {
    return this.streamId;
  }

  /** Open the stream (resolves when the socket is open). */
  async connect(): Promise<void> {
    await this.open(false);
  }

  /** Send one PCM frame now, or buffer it while reconnecting. */
  sendPcm(chunk: ArrayBuffer | Uint8Array): void {
    if (this.state === "closed") throw new Error("stream is closed");
    const data = chunk instanceof Uint8Array ? chunk : new Uint8Array(chunk);
    this.buffer.push(data);
    if (this.state === "open" && this.ws?.readyState === OPEN) this.ws.send(data);
  }

  /** Tell the server the audio is complete; resolves after the last final, when the server closes. */
  end(): Promise<void> {
    this.ending = true;
    if (this.state === "closed") {
      const [code, reason] = this.lastClose;
      return code === 1000 ? Promise.resolve() : Promise.reject(new Error(`stream closed: ${code} ${reason}`));
    }
    return new Promise((resolve, reject) => {
      this.finished = { resolve, reject };
      if (this.state === "open" && this.ws?.readyState === OPEN) this.ws.send(JSON.stringify({ eof: true }));
    });
  }

  /** Close at once without waiting for finals. */
  close(): void {
    this.ending = true;
    clearTimeout(this.reconnectTimer);
    this.setState("closed");
    this.ws?.close(1000, "client closed");
  }

  private setState(state: ClientState): void {
    if (this.state !== state) {
      this.state = state;
      this.options.onStateChange?.(state);
    }
  }

  private async open(isReconnect: boolean): Promise<void> {
    this.setState(isReconnect ? "reconnecting" : "connecting");
    const token = await this.options.getToken();
    const factory =
      this.options.webSocketFactory ??
      ((url: string) => new (globalThis as unknown as { WebSocket: new (u: string) => WebSocketLike }).WebSocket(url));
    const separator = this.options.url.includes("?") ? "&" : "?";
    const ws = factory(`${this.options.url}${separator}token=${encodeURIComponent(token)}`);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    await new Promise<void>((resolve, reject) => {
      let opened = false;
      ws.onopen = () => {
        opened = true;
        this.attempts = 0;
        ws.send(
          JSON.stringify({
            language: this.options.language ?? "auto",
            itn: this.options.itn ?? true,
            start_offset_ms: Math.round(this.buffer.replayStartMs()),
            ...(this.streamId ? { resume: this.streamId } : {}),
          }),
        );
        // Replay what the server has not acknowledged (includes frames buffered while offline).
        for (const frame of this.buffer.pending()) ws.send(frame.data);
        if (isReconnect) this.reconnects += 1;
        this.setState("open");
        if (this.ending) ws.send(JSON.stringify({ eof: true }));
        resolve();
      };
      ws.onmessage = (ev) => this.onMessage(ev.data);
      ws.onerror = () => {
        /* onclose follows and decides */
      };
      ws.onclose = (ev) => {
        if (!opened) {
          // A failed connect counts as a drop: retry it unless the server refused us for good.
          reject(new Error(`connect failed: ${ev.code} ${ev.reason}`));
        }
        this.onClose(ev.code, ev.reason);
      };
    }).catch(() => undefined);
  }

  private onMessage(data: unknown): void {
    if (typeof data !== "string") return;
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(data) as Record<string, unknown>;
    } catch {
      return;
    }
    if (typeof message.stream_id === "string") {
      this.streamId = message.stream_id;
    } else if (typeof message.partial === "string") {
      this.options.onPartial?.(message.partial);
    } else if (typeof message.final === "string") {
      const final = message as unknown as FinalMessage;
      this.buffer.acknowledge(final.end_ms);
      this.options.onFinal?.(final);
    }
  }

  private onClose(code: number, reason: string): void {
    if (this.state === "closed") return;
    this.lastClose = [code, reason];
    if (code === 1000 && this.ending) {
      this.setState("closed");
      this.finished?.resolve();
      return;
    }
    const retryable = RETRYABLE.has(code) || (code === 1000 && !this.ending);
    if (!retryable || this.attempts >= (this.options.maxReconnects ?? 8)) {
      this.setState("closed");
      this.options.onError?.(code, reason);
      this.finished?.reject(new Error(`stream closed: ${code} ${reason}`));
      return;
    }
    const delay = backoffMs(this.attempts, this.options.initialBackoffMs ?? 250, this.options.maxBackoffMs ?? 5_000);
    this.attempts += 1;
    this.setState("reconnecting");
    this.reconnectTimer = setTimeout(() => void this.open(true), delay);
  }
}
