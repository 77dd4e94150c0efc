// SenseOps live console: microphone -> /ws/stream -> partials and finals on screen.
// Reconnects with backoff after a dropped connection and replays up to 10 s of audio captured meanwhile
// (the server accepts that much ahead of real time); start_offset_ms keeps segment times continuous.
"use strict";

const FRAME_MS = 100;
const MAX_BUFFER_MS = 10000;
const NO_RETRY_CODES = new Set([1003, 1007, 1008, 1009]); // bad data or refused: retrying cannot help
const $ = (id) => document.getElementById(id);

const s = {
  running: false,
  ws: null,
  audio: null, // {ctx, stream, node}
  pending: [], // ArrayBuffers captured while no socket is open
  pendingStartMs: 0, // audio time of pending[0]
  capturedMs: 0, // audio captured since Start
  retries: 0,
  reconnects: 0, // connections lost and re-established since Start
  retryTimer: null,
  finals: 0,
};

function setState(name, reason = "") {
  const el = $("state");
  el.textContent = name;
  el.className = `state ${name}`;
  $("reason").textContent = reason;
}

function fmt(ms) {
  const t = Math.max(0, Math.round(ms / 100)) / 10;
  const m = Math.floor(t / 60);
  return `${m}:${(t - m * 60).toFixed(1).padStart(4, "0")}`;
}

function tag(text, title) {
  const el = document.createElement("span");
  el.className = "tag";
  el.title = title;
  el.textContent = text;
  return el;
}

function showFinal(msg) {
  s.finals += 1;
  const li = document.createElement("li");
  li.dataset.segmentId = msg.segment_id || "";
  li.dataset.startMs = String(msg.start_ms);
  li.dataset.endMs = String(msg.end_ms);
  const time = document.createElement("span");
  time.className = "time";
  time.textContent = `${fmt(msg.start_ms)}–${fmt(msg.end_ms)}`;
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = msg.final;
  li.append(time, text);
  if (msg.lang) li.append(tag(msg.lang, "language"));
  if (msg.emotion) li.append(tag(msg.emotion, "emotion"));
  if (msg.event) li.append(tag(msg.event, "event"));
  $("finals").append(li);
  $("partial").textContent = "";
  li.scrollIntoView({ block: "nearest" });
}

function onMessage(event) {
  s.retries = 0; // the server is really serving us: the next drop starts the backoff afresh
  let msg;
  try {
    msg = JSON.parse(event.data);
  } catch {
    return;
  }
  if (typeof msg.final === "string") showFinal(msg);
  else if (typeof msg.partial === "string") $("partial").textContent = msg.partial;
  $("stats").textContent =
    `${s.finals} segment(s) · ${fmt(s.capturedMs)} of audio · ${s.reconnects} reconnect(s)`;
}

function onPcm(buffer) {
  s.capturedMs += FRAME_MS;
  if (s.ws && s.ws.readyState === WebSocket.OPEN) {
    s.ws.send(buffer);
    return;
  }
  s.pending.push(buffer);
  while (s.pending.length * FRAME_MS > MAX_BUFFER_MS) {
    s.pending.shift(); // the oldest audio is lost; later segment times stay right
    s.pendingStartMs += FRAME_MS;
  }
}

function serverUrl() {
  const base = $("server").value.trim();
  const token = $("token").value.trim();
  return token ? `${base}?token=${encodeURIComponent(token)}` : base;
}

function connect() {
  clearTimeout(s.retryTimer);
  setState(s.retries ? "reconnecting" : "connecting", $("reason").textContent);
  const ws = new WebSocket(serverUrl());
  ws.binaryType = "arraybuffer";
  s.ws = ws;
  ws.onopen = () => {
    const startMs = s.pending.length ? s.pendingStartMs : s.capturedMs;
    ws.send(JSON.stringify({ language: $("language").value, itn: true, start_offset_ms: startMs }));
    for (const buffer of s.pending) ws.send(buffer);
    s.pending = [];
    s.pendingStartMs = s.capturedMs;
    setState("live");
  };
  ws.onmessage = onMessage;
  ws.onclose = (event) => {
    if (s.ws !== ws) return;
    s.ws = null;
    s.pendingStartMs = s.capturedMs;
    if (!s.running) {
      setState("idle");
      return;
    }
    const reason = `closed ${event.code}${event.reason ? `: ${event.reason}` : ""}`;
    if (NO_RETRY_CODES.has(event.code)) {
      stop();
      setState("error", reason);
      return;
    }
    s.retries += 1;
    s.reconnects += 1;
    const delay = Math.min(10000, 500 * 2 ** (s.retries - 1));
    setState("reconnecting", `${reason} — retrying in ${(delay / 1000).toFixed(1)} s`);
    s.retryTimer = setTimeout(connect, delay);
  };
}

async function openMicrophone() {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
  });
  let ctx;
  try {
    ctx = new AudioContext({ sampleRate: 16000 }); // the browser resamples; the worklet then only converts
  } catch {
    ctx = new AudioContext();
  }
  await ctx.audioWorklet.addModule("/console/pcm-worklet.js");
  const node = new AudioWorkletNode(ctx, "pcm16k");
  node.port.onmessage = (event) => onPcm(event.data);
  let source;
  try {
    source = ctx.createMediaStreamSource(stream);
  } catch {
    // Some browsers cannot feed a 16 kHz context from the microphone: resample in the worklet instead.
    await ctx.close();
    ctx = new AudioContext();
    await ctx.audioWorklet.addModule("/console/pcm-worklet.js");
    const fallback = new AudioWorkletNode(ctx, "pcm16k");
    fallback.port.onmessage = (event) => onPcm(event.data);
    source = ctx.createMediaStreamSource(stream);
    source.connect(fallback);
    return { ctx, stream, node: fallback };
  }
  source.connect(node);
  return { ctx, stream, node };
}

async function start(event) {
  if (event) event.preventDefault();
  if (s.running) return;
  $("start").disabled = true;
  try {
    s.audio = await openMicrophone();
  } catch (err) {
    $("start").disabled = false;
    setState("error", `microphone: ${err.message || err}`);
    return;
  }
  Object.assign(s, { running: true, pending: [], pendingStartMs: 0, capturedMs: 0, retries: 0, reconnects: 0 });
  $("stop").disabled = false;
  connect();
}

function stop() {
  s.running = false;
  clearTimeout(s.retryTimer);
  if (s.audio) {
    s.audio.stream.getTracks().forEach((t) => t.stop());
    s.audio.ctx.close();
    s.audio = null;
  }
  if (s.ws && s.ws.readyState === WebSocket.OPEN) s.ws.send(JSON.stringify({ eof: true })); // finals still arrive
  $("start").disabled = false;
  $("stop").disabled = true;
}

function init() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  $("server").value = `${scheme}://${location.host}/ws/stream`;
  // The token may come in the URL fragment (never sent to the server, so it stays out of access logs).
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.get("token")) $("token").value = params.get("token");
  if (params.get("language")) $("language").value = params.get("language");
  if (params.get("server")) $("server").value = params.get("server");
  $("controls").addEventListener("submit", start);
  $("stop").addEventListener("click", stop);
  if (params.get("autostart") === "1") start();
}

document.addEventListener("DOMContentLoaded", init);
