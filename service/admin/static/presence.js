// Who is connected to one object, kept up to date as clients join and leave.
//
// The sockets open now come from the presence table; the object's tail then brings every
// event from the seq read just before them. Events already reflected in those rows are
// applied again harmlessly (an accept sets, a close removes), so the two meet without a
// gap. Each event changes the model at once; the table is brought up to date once per
// animation frame, only for the sockets that changed, so a burst of joins and leaves costs
// one small DOM update, never a new read.

import { get } from "./api.js";
import { clock, compact, count, el, failure, perFrame, timeEl } from "./dom.js";
import { follow } from "./stream.js";

const MOST_SOCKETS = 10000;
const RECENT = 8;

/** Show the presence of object ``name`` in ``view``; returns how to close it. */
export function openPresence(view, name) {
  const controller = new AbortController();
  const path = `objects/${encodeURIComponent(name)}`;
  const sockets = new Map();
  const rows = new Map();
  const dirty = new Set();
  const recent = [];
  let through = null;
  let joins = 0;
  let leaves = 0;
  let status = "connecting";

  const total = el("strong", { id: "presence-count" }, "…");
  const facts = el("span", { class: "meta", id: "presence-facts" });
  const body = el("tbody");
  const empty = el("tr", { class: "empty-row" }, el("td", { colspan: 5, class: "empty" }, "No socket is open."));
  const activity = el("ol", { class: "activity", id: "presence-activity" });
  const problem = el("div");
  view.append(
    el("p", { class: "summary" }, total, " open sockets ", facts),
    problem,
    el(
      "div",
      { class: "columns presence" },
      el(
        "table",
        { class: "grid", id: "presence" },
        el(
          "thead",
          {},
          el("tr", {}, el("th", {}, "User"), el("th", {}, "Socket"), el("th", {}, "Tags"), el("th", {}, "Attachment"), el("th", {}, "Connected")),
        ),
        body,
      ),
      el("aside", { class: "side" }, el("h2", {}, "Joins and leaves"), activity),
    ),
  );

  function row(socket) {
    return el(
      "tr",
      { dataset: { socket: socket.socket_id, user: socket.user ?? "" } },
      el("td", { class: "user" }, socket.user ?? "—"),
      el("td", { class: "mono", title: socket.socket_id }, socket.socket_id.slice(0, 12)),
      el("td", {}, socket.tags.map((tag) => el("span", { class: "tag" }, tag))),
      el("td", { class: "mono value" }, socket.attachment === null ? "—" : compact(socket.attachment)),
      el("td", {}, timeEl(socket.connected_at, clock(socket.connected_at))),
    );
  }

  const render = perFrame(() => {
    for (const id of dirty) {
      const socket = sockets.get(id);
      const old = rows.get(id);
      if (!socket) {
        old?.remove();
        rows.delete(id);
        continue;
      }
      const fresh = row(socket);
      if (old) old.replaceWith(fresh);
      else body.append(fresh);
      rows.set(id, fresh);
    }
    dirty.clear();
    if (sockets.size && empty.isConnected) empty.remove();
    if (!sockets.size && !empty.isConnected) body.append(empty);
    total.textContent = count(sockets.size);
    const header = document.getElementById("object-sockets");
    if (header) header.textContent = count(sockets.size);
    facts.textContent = `· ${status} · through event ${through === null ? "…" : count(through)} · ${count(joins)} joined and ${count(leaves)} left since this page opened`;
    activity.replaceChildren(
      ...recent.map(([at, who, what]) => el("li", { class: what }, timeEl(at, clock(at)), ` ${who} ${what}`)),
    );
  });

  function note(at, who, what) {
    recent.unshift([at, who ?? "?", what]);
    recent.length = Math.min(recent.length, RECENT);
  }

  function apply(event) {
    const id = event.socket_id;
    through = event.seq;
    if (event.type === "websocket_accepted") {
      const known = sockets.get(id);
      sockets.set(id, {
        socket_id: id,
        user: event.sender,
        tags: event.data.tags,
        attachment: known ? known.attachment : null,
        connected_at: known ? known.connected_at : event.recorded_at,
      });
      if (!known) {
        joins += 1;
        note(event.recorded_at, event.sender, "joined");
      }
    } else if (event.type === "attachment_set") {
      const socket = sockets.get(id);
      if (socket) {
        socket.attachment = event.data.attachment;
        socket.user = event.sender ?? socket.user;
      }
    } else if (event.type === "websocket_closed" || event.type === "websocket_errored") {
      const socket = sockets.get(id);
      if (socket) {
        sockets.delete(id);
        leaves += 1;
        note(event.recorded_at, socket.user, "left");
      }
    } else {
      render();
      return;
    }
    dirty.add(id);
    render();
  }

  async function start() {
    try {
      const object = await get(path, {}, controller.signal);
      const page = await get("presence", { object: name, limit: MOST_SOCKETS }, controller.signal);
      for (const socket of page.sockets) {
        sockets.set(socket.socket_id, socket);
        dirty.add(socket.socket_id);
      }
      if (page.more) problem.replaceChildren(el("p", { class: "meta" }, `Only the oldest ${count(MOST_SOCKETS)} sockets are shown.`));
      through = object.last_seq;
      render();
      await follow(
        `${path}/tail`,
        { from: object.last_seq },
        {
          onEvent: apply,
          onStatus: (state, message) => {
            status = state;
            if (state === "failed") problem.replaceChildren(failure(new Error(message)));
            render();
          },
        },
        controller.signal,
      );
    } catch (error) {
      if (!controller.signal.aborted) problem.replaceChildren(failure(error));
    }
  }

  start();
  return () => controller.abort();
}
