// The admin API as the page reads it: JSON over fetch(), with the token when one is set.
//
// The token is asked for the first time the API answers 401, kept in this tab's
// sessionStorage (gone when the tab closes) and sent as "Authorization: Bearer" with every
// request, the streamed tails included. No cookie is ever set: a request another site
// makes the browser send carries no token, so there is nothing to forge.

const TOKEN_KEY = "durable-admin-token";

/** Where the API is: beside the page (…/admin/ → …/admin/api/), whatever the prefix. */
export const API = new URL("api/", document.baseURI);

/** An answer other than 2xx: its status and the API's own message. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** The request headers: ``extra``, and the token if one was given. */
export function headers(extra = {}) {
  const given = token();
  return given ? { ...extra, Authorization: `Bearer ${given}` } : { ...extra };
}

/** The URL of an endpoint (a path under the API) with its query; empty values left out. */
export function url(path, params = {}) {
  const target = new URL(path.replace(/^\//, ""), API);
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    target.searchParams.append(name, String(value));
  }
  return target;
}

/** An object as a path segment: BINDING/NAME, or its id when it has no name. */
export function ref(object) {
  return encodeURIComponent(object.name === null ? object.object_id : object.label);
}

/** The message of a refusal: the API's ``error``, else the status line. */
export async function refusal(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON: a proxy's own page.
  }
  const message = body && typeof body.error === "string" ? body.error : response.statusText;
  return new ApiError(response.status, `${response.status}: ${message}`);
}

/**
 * fetch() with the token; on a 401, asks for the token (saying so if the one sent was
 * refused) and tries again with the new one.
 */
export async function send(target, init = {}) {
  for (;;) {
    const sent = token();
    const response = await fetch(target, {
      ...init,
      cache: "no-store",
      headers: headers(init.headers),
    });
    if (response.status !== 401) return response;
    // Several requests may be refused at once: only the first one asks.
    if (token() === sent) await askToken(sent !== null);
  }
}

/** The JSON answer of GET ``path``; an ApiError for anything but a 2xx. */
export async function get(path, params = {}, signal = undefined) {
  const response = await send(url(path, params), {
    headers: { Accept: "application/json" },
    signal,
  });
  if (!response.ok) throw await refusal(response);
  return response.json();
}

let asking = null;

/** Show the token form until a token is given; ``refused``: the last one was wrong. */
export function askToken(refused) {
  if (asking) return asking;
  const form = document.getElementById("token-form");
  const input = document.getElementById("token");
  const error = document.getElementById("token-error");
  const view = document.getElementById("view");
  error.hidden = !refused;
  error.textContent = refused
    ? "That token was refused (401 unauthorized): check it and give it again."
    : "";
  form.hidden = false;
  view.hidden = true;
  input.value = "";
  input.focus();
  asking = new Promise((resolve) => {
    form.onsubmit = (event) => {
      event.preventDefault();
      const given = input.value.trim();
      if (!given) return;
      sessionStorage.setItem(TOKEN_KEY, given);
      input.value = "";
      form.hidden = true;
      view.hidden = false;
      form.onsubmit = null;
      asking = null;
      document.dispatchEvent(new CustomEvent("token-given"));
      resolve();
    };
  });
  return asking;
}
