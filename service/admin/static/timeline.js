// An object's events, a page at a time, from the newest back to the first, and the state
// at any of them (time travel: click an event, or move the slider over seq).
//
// Every page is one read of the log by (object_id, seq): newest first, or just below or
// above the page shown, or just below a seq to jump to; never the whole log, so a log of
// millions of events opens as fast as a short one. What the object's code logged in the
// turns of the page's seqs is read next (one read of object_logs by its key, more only for
// a range of over a thousand lines) and shown under the events (logs.js); a toggle hides it.

import { get } from "./api.js";
import { clock, count, debounce, el, failure } from "./dom.js";
import { mergedRows, moreRow, readLines } from "./logs.js";
import { statePane } from "./state.js";

const PAGE = 100;

/** Show the timeline of object ``name`` in ``view``; returns how to close it. */
export function openTimeline(view, name, query) {
  const controller = new AbortController();
  const path = `objects/${encodeURIComponent(name)}`;
  const wanted = Number.parseInt(query.get("seq") ?? "", 10);
  let types = query.get("type") ?? "";
  let shown = [];
  // The page's log lines: the seq range they are of, those read, the cursor of the rest.
  let span = null;
  let lines = [];
  let linesCursor = null;
  let linesRead = false;
  let page = 0;
  let reading = null;
  let last = 0;
  let hasOlder = false;
  let hasNewer = false;
  let selected = null;
  let loading = 0;

  const button = (label, title) => el("button", { type: "button", title, disabled: true }, label);
  const newest = button("Newest", "The newest events");
  const newer = button("← Newer", "The page of events after these");
  const older = button("Older →", "The page of events before these");
  const oldest = button("Oldest", "The first events");
  const range = el("span", { class: "meta", id: "timeline-range" });
  const filter = el("input", { id: "timeline-types", placeholder: "all types (e.g. message_received)", value: types, autocomplete: "off" });
  const logs = el("input", { type: "checkbox", id: "timeline-logs", checked: query.get("logs") !== "0" });
  const logCount = el("span", { id: "timeline-log-count" });
  const slider = el("input", { id: "seq-slider", type: "range", min: 0, max: 0, step: 1, value: 0, "aria-label": "Event" });
  const seqInput = el("input", { id: "seq-input", type: "number", min: 0, step: 1, "aria-label": "Go to event" });
  const body = el("tbody");
  const problem = el("div");
  const side = el("aside", { class: "state-pane", id: "state" });
  const show = statePane(side, path, controller.signal);

  view.append(
    el(
      "div",
      { class: "columns timeline" },
      el(
        "section",
        { class: "events-pane" },
        el("div", { class: "toolbar" }, newest, newer, older, oldest, el("label", {}, "Types ", filter)),
        el(
          "div",
          { class: "toolbar" },
          el("label", { class: "slider" }, "Event ", slider),
          seqInput,
          el("label", { title: "What the object's code logged, under the event its turn ended at" }, logs, " Logs ", logCount),
          range,
        ),
        problem,
        el(
          "table",
          { class: logs.checked ? "grid events" : "grid events no-logs", id: "events" },
          el("thead", {}, el("tr", {}, el("th", { class: "number" }, "Seq"), el("th", {}, "Time"), el("th", {}, "Type"), el("th", {}, "Sender"), el("th", {}, "What"))),
          body,
        ),
      ),
      side,
    ),
  );

  function row(event) {
    return el(
      "tr",
      { dataset: { seq: event.seq }, class: event.seq === selected ? "selected" : null, tabindex: 0 },
      el("td", { class: "number mono" }, event.seq),
      el("td", { class: "mono" }, el("time", { datetime: event.recorded_at, title: event.recorded_at }, clock(event.recorded_at))),
      el("td", {}, el("span", { class: `type ${event.type}` }, event.type)),
      el("td", {}, event.sender ?? ""),
      el("td", { class: "what", title: event.text }, event.text),
    );
  }

  function controls() {
    const busy = loading > 0;
    newest.disabled = busy;
    oldest.disabled = busy;
    older.disabled = busy || !hasOlder;
    newer.disabled = busy || !hasNewer;
    slider.max = String(last);
    seqInput.max = String(last);
    range.textContent = shown.length
      ? `events ${count(shown[shown.length - 1].seq)}–${count(shown[0].seq)} of ${count(last)}`
      : `no events of ${count(last)}`;
  }

  /** Read a page (``params``: its order and bounds) and show it newest first. */
  async function load(params) {
    loading += 1;
    controls();
    try {
      const answer = await get(`${path}/events`, { ...params, type: types, limit: PAGE }, controller.signal);
      last = answer.object.last_seq;
      const descending = params.order === "desc";
      const events = descending ? answer.events : [...answer.events].reverse();
      if (!events.length && shown.length && (params.cursor !== undefined)) {
        // Nothing past the page shown: it stays, and that way is closed.
        if (descending) hasOlder = false;
        else hasNewer = false;
        return;
      }
      shown = events;
      const top = events.length ? events[0].seq : 0;
      const bottom = events.length ? events[events.length - 1].seq : 0;
      hasOlder = descending ? answer.cursor !== null : bottom > 1;
      hasNewer = descending ? top < last : answer.cursor !== null;
      // The lines of the page's seqs; at either end of the log, those beyond its events too
      // (a turn that recorded no event logs at the seq the object was at: 0 at first).
      span = events.length
        ? { since: hasOlder && bottom > 1 ? bottom : 0, until: hasNewer ? top : Math.max(top, last) }
        : null;
      lines = [];
      linesCursor = null;
      linesRead = false;
      page += 1;
      render();
      if (!events.length) body.append(el("tr", {}, el("td", { colspan: 5, class: "empty" }, "No event matches.")));
      problem.replaceChildren();
      if (!performance.getEntriesByName("timeline-first-page").length) {
        performance.mark("timeline-first-page");
      }
    } catch (error) {
      if (!controller.signal.aborted) problem.replaceChildren(failure(error));
    } finally {
      loading -= 1;
      controls();
    }
    // Not awaited: the events (and the state of one to jump to) need not wait for them.
    if (logs.checked) readLogs();
  }

  /** The events shown, each with the lines of its seq under it. */
  function render() {
    const cut = linesCursor === null ? null : moreRow(lines.length, readLogs);
    const cutSeq = linesCursor === null ? null : Number(linesCursor.split(":")[0]);
    body.replaceChildren(...mergedRows(shown, row, lines, cut, cutSeq));
    logCount.textContent = linesRead ? `(${count(lines.length)}${linesCursor === null ? "" : "+"})` : "";
  }

  /** Read the page's lines (the rest of them, after a read that stopped short), once. */
  function readLogs() {
    if (span === null || (linesRead && linesCursor === null)) return Promise.resolve();
    if (reading?.page === page) return reading.done;
    const mine = page;
    const done = (async () => {
      try {
        const read = await readLines(path, span.since, span.until, linesCursor, controller.signal);
        if (mine !== page) return;
        lines = [...lines, ...read.lines];
        linesCursor = read.cursor;
        linesRead = true;
        render();
      } catch (error) {
        if (mine === page && !controller.signal.aborted) problem.replaceChildren(failure(error));
      } finally {
        if (reading?.done === done) reading = null;
      }
    })();
    reading = { page: mine, done };
    return done;
  }

  function select(seq) {
    selected = seq;
    for (const tr of body.querySelectorAll("tr.selected")) tr.classList.remove("selected");
    body.querySelector(`tr[data-seq="${seq}"]`)?.classList.add("selected");
    slider.value = String(seq);
    seqInput.value = String(seq);
    remember();
    show(seq, shown.find((event) => event.seq === seq)?.recorded_at);
  }

  /** The URL says the event selected, the types and whether logs are hidden. */
  function remember() {
    const kept = new URLSearchParams();
    if (selected !== null) kept.set("seq", String(selected));
    if (types) kept.set("type", types);
    if (!logs.checked) kept.set("logs", "0");
    history.replaceState(null, "", `#/object/${encodeURIComponent(name)}/timeline?${kept}`);
  }

  async function jump(seq) {
    const at = Math.max(0, Math.min(last || seq, seq));
    await load({ order: "desc", until: Math.max(at, 1) });
    select(at);
  }

  newest.addEventListener("click", () => load({ order: "desc" }));
  oldest.addEventListener("click", () => load({ order: "asc" }));
  older.addEventListener("click", () => load({ order: "desc", cursor: shown[shown.length - 1].seq }));
  newer.addEventListener("click", () => load({ order: "asc", cursor: shown[0].seq }));
  body.addEventListener("click", (event) => {
    if (event.target.closest("button")) return;
    // A line: the state after the turn that logged it.
    const tr = event.target.closest("tr[data-seq], tr[data-log-seq]");
    if (tr) select(Number(tr.dataset.seq ?? tr.dataset.logSeq));
  });
  body.addEventListener("keydown", (event) => {
    const tr = event.target.closest("tr[data-seq]");
    if (tr && event.key === "Enter") select(Number(tr.dataset.seq));
  });
  logs.addEventListener("change", () => {
    body.closest("table").classList.toggle("no-logs", !logs.checked);
    remember();
    if (logs.checked) readLogs();
  });
  slider.addEventListener("input", () => {
    seqInput.value = slider.value;
  });
  slider.addEventListener("change", () => jump(Number(slider.value)));
  seqInput.addEventListener("change", () => seqInput.value !== "" && jump(Number(seqInput.value)));
  filter.addEventListener(
    "input",
    debounce(() => {
      types = filter.value.trim();
      load({ order: "desc" });
    }, 300),
  );

  if (Number.isFinite(wanted)) jump(wanted);
  else load({ order: "desc" });
  return () => controller.abort();
}
