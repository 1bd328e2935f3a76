// The dashboard's router: the view named by the URL's fragment, opened in <main>, and
// closed (its reads and tails stopped) when another is opened.
//
//   #/objects?binding=&name=&live=     the catalog, searched
//   #/object/REF/presence              who is connected, live
//   #/object/REF/timeline?seq=N        its events, and the state at event N
//   #/object/REF/tail                  its events as they commit
//   #/tail                             every object's events as they commit

import { forgetToken, token } from "./api.js";
import { openObject } from "./object.js";
import { openObjects } from "./objects.js";
import { openTail } from "./tail.js";

const view = document.getElementById("view");
const forget = document.getElementById("forget-token");
let close = null;

function route() {
  close?.();
  close = null;
  view.replaceChildren();
  const fragment = location.hash.replace(/^#\/?/, "");
  const [path, search = ""] = fragment.split("?", 2);
  const query = new URLSearchParams(search);
  const parts = path.split("/").filter(Boolean);
  const section = parts[0] === "object" && parts[1] ? "object" : parts[0] === "tail" ? "tail" : "objects";
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.toggleAttribute("aria-current", link.dataset.nav === section || (section === "object" && link.dataset.nav === "objects"));
  }
  if (section === "object") {
    const name = decodeURIComponent(parts[1]);
    document.title = `${name} · admin · durable objects`;
    close = openObject(view, name, parts[2] ?? "presence", query);
  } else if (section === "tail") {
    document.title = "Live tail · admin · durable objects";
    close = openTail(view, null);
  } else {
    document.title = "Objects · admin · durable objects";
    close = openObjects(view, query);
  }
  forget.hidden = token() === null;
}

forget.addEventListener("click", () => {
  forgetToken();
  location.reload();
});
document.addEventListener("token-given", () => {
  forget.hidden = false;
});
window.addEventListener("hashchange", route);
route();
