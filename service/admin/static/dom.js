// Small helpers of every view: elements built from data (text only, never HTML), the
// formats of times, numbers and JSON, and updates coalesced to one per animation frame.

/** An element with its properties and children (strings become text nodes). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(typeof child === "number" ? String(child) : child);
  }
  return node;
}

/** A value as JSON on several lines, for a <pre>. */
export function json(value) {
  return JSON.stringify(value, null, 2);
}

/** A value as JSON on one line. */
export function compact(value) {
  return JSON.stringify(value);
}

export function count(number) {
  return Number(number).toLocaleString("en");
}

function pad(number, width = 2) {
  return String(number).padStart(width, "0");
}

/** A time as the clock showed it here, to the millisecond. */
export function clock(iso) {
  if (!iso) return "";
  const at = new Date(iso);
  return `${pad(at.getHours())}:${pad(at.getMinutes())}:${pad(at.getSeconds())}.${pad(at.getMilliseconds(), 3)}`;
}

/** A date and time, local, to the second. */
export function moment(iso) {
  if (!iso) return "";
  const at = new Date(iso);
  return `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())} ${pad(at.getHours())}:${pad(at.getMinutes())}:${pad(at.getSeconds())}`;
}

/** How long ago, roughly ("4 s ago", "3 min ago", "2 h ago", "5 d ago"). */
export function ago(iso) {
  const seconds = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (seconds < 60) return `${Math.floor(seconds)} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

/** A <time> showing ``text``, the full ISO time on hover. */
export function timeEl(iso, text) {
  return el("time", { datetime: iso, title: iso }, text);
}

/** The badge of an object's state. */
export function stateBadge(live) {
  return el("span", { class: live ? "badge live" : "badge hibernated" }, live ? "live" : "hibernated");
}

/**
 * ``callback`` run at most once per animation frame, however often this is called: many
 * events arriving between two frames cost one DOM update.
 */
export function perFrame(callback) {
  let scheduled = false;
  return () => {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => {
      scheduled = false;
      callback();
    });
  };
}

/** ``callback`` once ``ms`` have passed without another call. */
export function debounce(callback, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => callback(...args), ms);
  };
}

/** A paragraph saying what went wrong. */
export function failure(error) {
  return el("p", { class: "error", role: "alert" }, error.message || String(error));
}
