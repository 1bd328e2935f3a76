// Events as they commit: of every object (in commit order), or of one object (by seq).
//
// Events are kept as they arrive (the newest few hundred) and shown once per animation
// frame, newest on top, so a busy tail costs one DOM update a frame however many events
// came.

import { clock, count, el, failure, perFrame } from "./dom.js";
import { follow } from "./stream.js";

/** Rows kept on screen. */
const MOST_ROWS = 500;

/** Show the tail of object ``name`` (or, with none, of every object) in ``view``. */
export function openTail(view, name) {
  const controller = new AbortController();
  const every = !name;
  const path = every ? "tail" : `objects/${encodeURIComponent(name)}/tail`;
  let pending = [];
  let received = 0;
  let status = "connecting";
  let after = null;

  const pause = el("button", { type: "button", id: "tail-pause", "aria-pressed": "false" }, "Pause");
  const messagesOnly = el("input", { type: "checkbox", id: "tail-messages" });
  const clear = el("button", { type: "button" }, "Clear");
  const facts = el("span", { class: "meta", id: "tail-status" });
  const body = el("tbody");
  const problem = el("div");
  const headings = ["Time", ...(every ? ["Object"] : []), "Seq", "Type", "Sender", "What"];
  view.append(
    el(
      "section",
      { class: every ? "panel" : "" },
      every ? el("h1", {}, "Live tail") : null,
      el("div", { class: "toolbar" }, pause, el("label", {}, messagesOnly, " Messages only"), clear, facts),
      problem,
      el(
        "table",
        { class: "grid events", id: "tail" },
        el("thead", {}, el("tr", {}, headings.map((heading) => el("th", { class: heading === "Seq" ? "number" : null }, heading)))),
        body,
      ),
    ),
  );

  function row(event) {
    const link = `#/object/${event.object_id}/timeline?seq=${event.seq}`;
    return el(
      "tr",
      { dataset: { seq: event.seq, object: event.object ?? "" } },
      el("td", { class: "mono" }, el("time", { datetime: event.recorded_at, title: event.recorded_at }, clock(event.recorded_at))),
      every ? el("td", {}, el("a", { href: `#/object/${event.object_id}/presence` }, event.object)) : null,
      el("td", { class: "number mono" }, el("a", { href: link, title: "The state at this event" }, event.seq)),
      el("td", {}, el("span", { class: `type ${event.type}` }, event.type)),
      el("td", {}, event.sender ?? ""),
      el("td", { class: "what", title: event.text }, event.text),
    );
  }

  function wanted(event) {
    return !messagesOnly.checked || event.type === "message_received";
  }

  const render = perFrame(() => {
    facts.textContent = `${status}${after === null ? "" : ` · from ${every ? "position" : "event"} ${count(after)}`} · ${count(received)} events received`;
    if (pause.getAttribute("aria-pressed") === "true") return;
    const shown = pending.filter(wanted);
    pending = [];
    if (!shown.length) return;
    const rows = document.createDocumentFragment();
    for (let i = shown.length - 1; i >= 0 && rows.childNodes.length < MOST_ROWS; i -= 1) rows.append(row(shown[i]));
    body.prepend(rows);
    while (body.rows.length > MOST_ROWS) body.lastElementChild.remove();
  });

  pause.addEventListener("click", () => {
    const paused = pause.getAttribute("aria-pressed") !== "true";
    pause.setAttribute("aria-pressed", String(paused));
    pause.textContent = paused ? "Resume" : "Pause";
    render();
  });
  clear.addEventListener("click", () => body.replaceChildren());

  follow(
    path,
    {},
    {
      onReady: (start) => {
        after = start.after;
        render();
      },
      onEvent: (event) => {
        received += 1;
        pending.push(event);
        // While paused (or hidden: no frames), keep only what could be shown.
        if (pending.length > MOST_ROWS) pending.splice(0, pending.length - MOST_ROWS);
        render();
      },
      onStatus: (state, message) => {
        status = state;
        if (state === "failed") problem.replaceChildren(failure(new Error(message)));
        render();
      },
    },
    controller.signal,
  );
  return () => controller.abort();
}
