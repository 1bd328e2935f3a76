// What an object's code logged, beside the timeline's events: the lines of one seq range,
// read a page of the logs endpoint at a time, and each line placed under the event whose
// seq it carries (the last event of the turn that logged it).
//
// A range is read by the log's primary key (object, seq, id), as a page of events is: a
// page of events costs one more read, however long the log.

import { get } from "./api.js";
import { clock, count, el } from "./dom.js";

/** Lines one answer holds (the endpoint's most). */
const LINES = 1000;

/** Answers read for one page of events before asking whether to read on. */
const READS = 5;

/**
 * The lines of the turns that ended at seqs ``since`` to ``until``, in the order they were
 * committed, from ``cursor`` on (the cursor of a read that stopped short): ``{lines,
 * cursor}``, the cursor null once the range is read to its end.
 */
export async function readLines(path, since, until, cursor, signal) {
  const lines = [];
  let next = cursor;
  for (let read = 0; read < READS; read += 1) {
    const answer = await get(`${path}/logs`, { since, until, cursor: next, limit: LINES }, signal);
    lines.push(...answer.logs);
    next = answer.cursor;
    if (next === null) break;
  }
  return { lines, cursor: next };
}

/** How a line stands out: its level's class (``warning`` and ``error`` are highlighted). */
function severity(levelno) {
  if (levelno >= 40) return "error";
  if (levelno >= 30) return "warning";
  if (levelno >= 20) return "info";
  return "debug";
}

/**
 * A line as a row of the events' table: its level, logger and message where an event has
 * its type, sender and text. ``alone``: no event of its seq is on the page, so the row says
 * its seq.
 */
function lineRow(line, alone) {
  const title = `${line.level} ${line.logger}, logged by the turn that ended at seq ${line.seq}`;
  return el(
    "tr",
    { class: `log ${severity(line.levelno)}`, dataset: { logSeq: line.seq, logId: line.id }, title },
    el("td", { class: "number mono" }, alone ? String(line.seq) : ""),
    el("td", { class: "mono" }, el("time", { datetime: line.logged_at, title: line.logged_at }, clock(line.logged_at))),
    el("td", {}, el("span", { class: "level" }, line.level)),
    el("td", { class: "logger" }, line.logger),
    el("td", { class: "what", title: line.message }, line.message),
  );
}

/** A row that reads the rest of a range cut short (``more``: what a click does). */
export function moreRow(read, more) {
  const button = el("button", { type: "button", id: "timeline-more-logs" }, "Read more log lines");
  button.addEventListener("click", () => {
    button.disabled = true;
    more();
  });
  return el(
    "tr",
    { class: "log more" },
    el("td", { colspan: 5 }, `${count(read)} log lines of these events read; later ones are not yet. `, button),
  );
}

/**
 * The rows of ``events`` (newest first, made by ``eventRow``) and of ``lines`` (in commit
 * order) merged: each event followed by the lines of its seq in their order, a line whose
 * event is not on the page where its seq falls, and ``cut`` (a row, or null) just above the
 * lines not read, those of seqs above ``cutSeq`` and after the last line read.
 */
export function mergedRows(events, eventRow, lines, cut, cutSeq) {
  // The lines by seq, newest seq first; each seq's lines in the order they were logged.
  const bySeq = new Map();
  for (const line of lines) {
    if (!bySeq.has(line.seq)) bySeq.set(line.seq, []);
    bySeq.get(line.seq).push(line);
  }
  const groups = [...bySeq.entries()].sort((a, b) => b[0] - a[0]);
  const rows = [];
  let group = 0;
  let cutShown = cut === null;
  const placeCut = (above) => {
    if (!cutShown && cutSeq >= above) {
      rows.push(cut);
      cutShown = true;
    }
  };
  for (const event of events) {
    for (; group < groups.length && groups[group][0] > event.seq; group += 1) {
      placeCut(groups[group][0]);
      rows.push(...groups[group][1].map((line) => lineRow(line, true)));
    }
    placeCut(event.seq);
    rows.push(eventRow(event));
    if (group < groups.length && groups[group][0] === event.seq) {
      rows.push(...groups[group][1].map((line) => lineRow(line, false)));
      group += 1;
    }
  }
  for (; group < groups.length; group += 1) {
    placeCut(groups[group][0]);
    rows.push(...groups[group][1].map((line) => lineRow(line, true)));
  }
  if (!cutShown) rows.push(cut);
  return rows;
}
