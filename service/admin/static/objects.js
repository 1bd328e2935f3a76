// The objects: the catalog searched by binding and name, live or hibernated, with their
// sockets and last activity; the page shown is read again every few seconds.

import { get, ref } from "./api.js";
import { ago, count, debounce, el, failure, moment, stateBadge, timeEl } from "./dom.js";

const REFRESH_MS = 5000;
const PAGE = 50;

/** Show the catalog in ``view``, searched as ``query`` says; returns how to close it. */
export function openObjects(view, query) {
  const controller = new AbortController();
  const search = {
    binding: query.get("binding") || "",
    name: query.get("name") || "",
    live: query.get("live") || "",
  };
  // The cursors of the pages before this one, and this one's.
  let before = [];
  let cursor = null;
  let next = null;

  const binding = el("input", { id: "search-binding", placeholder: "e.g. CHAT", value: search.binding, autocomplete: "off" });
  const name = el("input", { id: "search-name", placeholder: "part of a name", value: search.name, autocomplete: "off" });
  const live = el(
    "select",
    { id: "search-live" },
    el("option", { value: "" }, "live and hibernated"),
    el("option", { value: "true" }, "live only"),
    el("option", { value: "false" }, "hibernated only"),
  );
  live.value = search.live;
  const body = el("tbody");
  const summary = el("p", { class: "meta", id: "objects-summary" });
  const previous = el("button", { type: "button", disabled: true }, "← Previous");
  const following = el("button", { type: "button", disabled: true }, "Next →");
  const problem = el("div");

  view.append(
    el(
      "section",
      { class: "panel" },
      el("h1", {}, "Objects"),
      el(
        "form",
        { class: "search", onsubmit: (event) => event.preventDefault() },
        el("label", {}, "Binding ", binding),
        el("label", {}, "Name contains ", name),
        el("label", {}, "State ", live),
      ),
      problem,
      el(
        "table",
        { class: "grid", id: "objects" },
        el(
          "thead",
          {},
          el(
            "tr",
            {},
            el("th", {}, "Object"),
            el("th", {}, "State"),
            el("th", { class: "number" }, "Sockets"),
            el("th", { class: "number" }, "Events"),
            el("th", {}, "Last activity"),
            el("th", {}, "Owner node"),
          ),
        ),
        body,
      ),
      el("div", { class: "pager" }, previous, following, summary),
    ),
  );

  function row(object) {
    return el(
      "tr",
      { dataset: { object: object.label } },
      el(
        "td",
        {},
        el("a", { href: `#/object/${ref(object)}/presence` }, object.label),
        el("div", { class: "id", title: object.object_id }, object.object_id.slice(0, 16) + "…"),
      ),
      el("td", {}, stateBadge(object.live)),
      el("td", { class: "number sockets" }, count(object.open_sockets)),
      el("td", { class: "number" }, count(object.last_seq)),
      el("td", {}, timeEl(object.last_activity, ago(object.last_activity)), el("div", { class: "meta" }, moment(object.last_activity))),
      el("td", { class: "mono" }, object.owner_node ?? "—"),
    );
  }

  async function load() {
    try {
      const page = await get(
        "objects",
        { binding: search.binding, name: search.name, live: search.live, limit: PAGE, cursor },
        controller.signal,
      );
      problem.replaceChildren();
      body.replaceChildren(...page.objects.map(row));
      if (!page.objects.length) {
        body.append(el("tr", {}, el("td", { colspan: 6, class: "empty" }, "No object matches.")));
      }
      next = page.cursor;
      previous.disabled = before.length === 0;
      following.disabled = next === null;
      const first = before.length * PAGE + 1;
      summary.textContent = page.objects.length
        ? `${count(first)}–${count(first + page.objects.length - 1)} · read ${moment(new Date().toISOString())}, again every ${REFRESH_MS / 1000} s`
        : "";
    } catch (error) {
      if (!controller.signal.aborted) problem.replaceChildren(failure(error));
    }
  }

  const searchAgain = debounce(() => {
    search.binding = binding.value.trim();
    search.name = name.value.trim();
    search.live = live.value;
    before = [];
    cursor = null;
    const shown = new URLSearchParams(Object.entries(search).filter(([, value]) => value));
    history.replaceState(null, "", `#/objects${shown.size ? "?" + shown : ""}`);
    load();
  }, 250);
  for (const input of [binding, name]) input.addEventListener("input", searchAgain);
  live.addEventListener("change", searchAgain);
  following.addEventListener("click", () => {
    before.push(cursor);
    cursor = next;
    load();
  });
  previous.addEventListener("click", () => {
    cursor = before.pop() ?? null;
    load();
  });

  load();
  const timer = setInterval(() => document.hidden || load(), REFRESH_MS);
  return () => {
    clearInterval(timer);
    controller.abort();
  };
}
