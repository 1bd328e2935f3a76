// An object's state at one event, as the replay rebuilds it (the API's state endpoint),
// and what that event changed (its diff from the event before).

import { get } from "./api.js";
import { compact, count, el, failure, json, moment } from "./dom.js";

/** Most storage keys shown in the table (all are in the raw JSON). */
const MOST_KEYS = 200;

/** A pane that shows the state at the seq it is given; answers to older asks are dropped. */
export function statePane(pane, path, signal) {
  let asked = 0;
  pane.replaceChildren(
    el("h2", {}, "Time travel"),
    el("p", { class: "meta" }, "Click an event, or move the slider, to see the state right after it."),
  );

  return async function show(seq, recordedAt) {
    const mine = ++asked;
    pane.replaceChildren(el("h2", { id: "state-title" }, `State after event ${count(seq)}`), el("p", { class: "meta" }, "Rebuilding…"));
    try {
      const [state, diff] = await Promise.all([
        get(`${path}/state`, { at: seq }, signal),
        seq > 0 ? get(`${path}/diff`, { from: seq - 1, to: seq }, signal) : Promise.resolve(null),
      ]);
      if (mine !== asked) return;
      pane.replaceChildren(...render(state, diff, recordedAt).filter((part) => part !== null));
      pane.dataset.seq = String(seq);
    } catch (error) {
      if (mine === asked && !signal.aborted) pane.replaceChildren(failure(error));
    }
  };
}

function render(state, diff, recordedAt) {
  const keys = Object.keys(state.storage);
  const replay = state.snapshot_seq
    ? `rebuilt from the snapshot at event ${count(state.snapshot_seq)} and ${count(state.folded)} events after it`
    : `rebuilt from the first event (${count(state.folded)} events folded)`;
  return [
    el("h2", { id: "state-title" }, `State after event ${count(state.seq)}`),
    el("p", { class: "meta" }, [recordedAt ? `recorded ${moment(recordedAt)} · ` : "", replay, ` · ${count(state.messages)} inbound messages so far`]),
    el("h3", {}, state.seq > 0 ? `What event ${count(state.seq)} changed` : "Before the first event"),
    diff ? changes(diff) : el("p", { class: "meta" }, "Nothing yet."),
    el("h3", {}, `Storage (${count(keys.length)} keys)`),
    keys.length
      ? el(
          "table",
          { class: "grid compact", id: "state-storage" },
          el("tbody", {}, keys.slice(0, MOST_KEYS).map((key) => el("tr", {}, el("th", { class: "mono key" }, key), el("td", {}, el("pre", { class: "json" }, compact(state.storage[key])))))),
        )
      : el("p", { class: "meta" }, "Empty."),
    keys.length > MOST_KEYS ? el("p", { class: "meta" }, `The first ${MOST_KEYS} keys; every key is in the JSON below.`) : null,
    el("h3", {}, `Sockets (${count(state.sockets.length)})`),
    state.sockets.length
      ? el(
          "table",
          { class: "grid compact", id: "state-sockets" },
          el("thead", {}, el("tr", {}, el("th", {}, "Socket"), el("th", {}, "Tags"), el("th", {}, "Attachment"))),
          el("tbody", {}, state.sockets.map(socketRow)),
        )
      : el("p", { class: "meta" }, "None open."),
    el("h3", {}, "Settings"),
    el(
      "dl",
      { class: "facts" },
      el("dt", {}, "Auto-response"),
      el("dd", { class: "mono" }, state.auto_response ? `${compact(state.auto_response.request)} → ${compact(state.auto_response.response)}` : "none"),
      el("dt", {}, "Alarm"),
      el("dd", { class: "mono" }, state.alarm ?? "none"),
      el("dt", {}, "Event timeout"),
      el("dd", { class: "mono" }, state.event_timeout_ms === null ? "none" : `${state.event_timeout_ms} ms`),
    ),
    el("details", {}, el("summary", {}, "The state as JSON (durable state --json)"), el("pre", { class: "json", id: "state-json" }, json(state))),
    diff ? el("details", {}, el("summary", {}, "The change as JSON (durable diff --json)"), el("pre", { class: "json", id: "diff-json" }, json(diff))) : null,
  ];
}

function socketRow(socket) {
  return el(
    "tr",
    { dataset: { socket: socket.socket_id } },
    el("td", { class: "mono", title: socket.socket_id }, socket.socket_id.slice(0, 12), socket.close_sent ? " (closing)" : ""),
    el("td", {}, socket.tags.map((tag) => el("span", { class: "tag" }, tag))),
    el("td", {}, socket.attachment === null ? "—" : el("pre", { class: "json" }, compact(socket.attachment))),
  );
}

function changes(diff) {
  const items = [];
  for (const change of diff.storage) {
    const shown =
      change.change === "added"
        ? ["= ", compact(change.new)]
        : change.change === "removed"
          ? ["(was ", compact(change.old), ")"]
          : [compact(change.old), " → ", compact(change.new)];
    items.push(el("li", { class: change.change }, el("span", { class: "badge" }, change.change), " ", el("span", { class: "mono key" }, change.key), " ", el("span", { class: "mono value" }, ...shown)));
  }
  for (const socket of diff.sockets_opened) {
    items.push(el("li", { class: "added" }, el("span", { class: "badge" }, "socket opened"), " ", el("span", { class: "mono" }, socket.socket_id.slice(0, 12)), " ", socket.tags.join(", ")));
  }
  for (const socket of diff.sockets_closed) {
    items.push(el("li", { class: "removed" }, el("span", { class: "badge" }, "socket closed"), " ", el("span", { class: "mono" }, socket.socket_id.slice(0, 12)), " ", socket.tags.join(", ")));
  }
  for (const change of diff.sockets_changed) {
    const differ = Object.keys(change.after).filter((key) => compact(change.before[key]) !== compact(change.after[key]));
    items.push(
      el(
        "li",
        { class: "changed" },
        el("span", { class: "badge" }, "socket changed"),
        " ",
        el("span", { class: "mono" }, change.socket_id.slice(0, 12)),
        differ.map((key) => [" ", el("span", { class: "mono value" }, `${key}: `, compact(change.before[key]), " → ", compact(change.after[key]))]),
      ),
    );
  }
  for (const field of diff.fields) {
    items.push(el("li", { class: "changed" }, el("span", { class: "badge" }, field.name), " ", el("span", { class: "mono value" }, compact(field.old), " → ", compact(field.new))));
  }
  if (!items.length) return el("p", { class: "meta", id: "diff-changes" }, "Nothing in the state changed (a message that stored nothing, or a request).");
  return el("ul", { class: "changes", id: "diff-changes" }, items);
}
