/** `@senseops/asr-client`: the streaming client and the PCM helpers an Electron renderer needs. */
export * from "./asrClient.js";
export * from "./pcm.js";
