// One object: what the catalog says of it, and its views (presence, timeline, tail).

import { get } from "./api.js";
import { ago, count, el, failure, moment, stateBadge, timeEl } from "./dom.js";
import { openPresence } from "./presence.js";
import { openTail } from "./tail.js";
import { openTimeline } from "./timeline.js";

const REFRESH_MS = 5000;

const TABS = {
  presence: ["Presence", openPresence],
  timeline: ["Timeline", openTimeline],
  tail: ["Tail", openTail],
};

/** Show object ``name`` (BINDING/NAME or id) in ``view`` at ``tab``; returns how to close it. */
export function openObject(view, name, tab, query) {
  const controller = new AbortController();
  const path = `objects/${encodeURIComponent(name)}`;
  const chosen = TABS[tab] ? tab : "presence";
  const title = el("h1", { id: "object-title" }, name);
  const id = el("div", { class: "id", id: "object-id" });
  const facts = el("dl", { class: "facts", id: "object-facts" });
  const problem = el("div");
  const content = el("div", { class: "tab-content" });
  const tabs = el(
    "nav",
    { class: "tabs" },
    Object.entries(TABS).map(([key, [label]]) =>
      el(
        "a",
        { href: `#/object/${encodeURIComponent(name)}/${key}`, "aria-current": key === chosen ? "page" : null },
        label,
      ),
    ),
  );
  view.append(el("section", { class: "panel object" }, title, id, facts, problem, tabs, content));

  function fact(term, ...value) {
    return [el("dt", {}, term), el("dd", {}, ...value)];
  }

  function show(object) {
    title.textContent = object.label;
    facts.replaceChildren(
      ...fact("State", stateBadge(object.live), object.owner_node ? el("span", { class: "mono" }, ` on ${object.owner_node}`) : ""),
      ...fact("Sockets", el("span", { id: "object-sockets" }, count(object.open_sockets))),
      ...fact("Events", count(object.last_seq)),
      ...fact("Last activity", timeEl(object.last_activity, `${ago(object.last_activity)} (${moment(object.last_activity)})`)),
      ...fact("Created", timeEl(object.created_at, moment(object.created_at))),
    );
    id.textContent = object.object_id;
  }

  async function load() {
    try {
      show(await get(path, {}, controller.signal));
      problem.replaceChildren();
    } catch (error) {
      if (!controller.signal.aborted) problem.replaceChildren(failure(error));
    }
  }

  load();
  const timer = setInterval(() => document.hidden || load(), REFRESH_MS);
  const closeTab = TABS[chosen][1](content, name, query);
  return () => {
    clearInterval(timer);
    controller.abort();
    closeTab();
  };
}
