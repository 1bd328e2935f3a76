// A tail of the admin API (Server-Sent Events) read with fetch(), which, unlike
// EventSource, can send the token. Like EventSource it resumes after the last id it got
// (Last-Event-ID) when the stream breaks, so nothing is missed and nothing repeated.

import { ApiError, refusal, send, url } from "./api.js";

const FIRST_RETRY_MS = 500;
const LAST_RETRY_MS = 10000;

/**
 * Follow ``path`` until ``signal`` aborts: ``onReady({after})`` once connected,
 * ``onEvent(event)`` for each event as it commits, ``onStatus(state, message)`` with
 * "live", "reconnecting" or "failed" (a refusal that retrying will not change, e.g. 404).
 */
export async function follow(path, params, handlers, signal) {
  let lastId = null;
  let delay = FIRST_RETRY_MS;
  while (!signal.aborted) {
    try {
      const extra = { Accept: "text/event-stream" };
      if (lastId !== null) extra["Last-Event-ID"] = lastId;
      const response = await send(url(path, params), { headers: extra, signal });
      if (!response.ok) throw await refusal(response);
      handlers.onStatus?.("live", "");
      delay = FIRST_RETRY_MS;
      await read(response.body, signal, (message) => {
        if (message.id !== null) lastId = message.id;
        if (message.event === "ready") handlers.onReady?.(JSON.parse(message.data));
        else if (message.event === "event") handlers.onEvent(JSON.parse(message.data));
      });
      if (signal.aborted) return;
      handlers.onStatus?.("reconnecting", "the tail ended (the node may be restarting)");
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof ApiError && error.status >= 400 && error.status < 500) {
        handlers.onStatus?.("failed", error.message);
        return;
      }
      handlers.onStatus?.("reconnecting", error.message);
    }
    await sleep(delay, signal);
    delay = Math.min(delay * 2, LAST_RETRY_MS);
  }
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Parse an event stream (lines of "field: value", a blank line ending each message). */
async function read(body, signal, dispatch) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  const stop = () => reader.cancel().catch(() => {});
  signal.addEventListener("abort", stop);
  let buffer = "";
  let event = "message";
  let id = null;
  let data = [];
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let start = 0;
      for (let end = buffer.indexOf("\n"); end >= 0; end = buffer.indexOf("\n", start)) {
        let line = buffer.slice(start, end);
        start = end + 1;
        if (line.endsWith("\r")) line = line.slice(0, -1);
        if (line === "") {
          if (data.length) dispatch({ event, id, data: data.join("\n") });
          event = "message";
          data = [];
          continue;
        }
        if (line.startsWith(":")) continue; // a ping
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (field === "event") event = text;
        else if (field === "data") data.push(text);
        else if (field === "id") id = text;
      }
      buffer = buffer.slice(start);
    }
  } finally {
    signal.removeEventListener("abort", stop);
    stop();
  }
}
