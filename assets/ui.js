// mlbuild ui: the one script, embedded in the binary. Every page reads without it; with it,
// times show in the reader's local time and live pages follow the latest run.
"use strict";

// Times are recorded in UTC (`<time datetime>`); show them in local time, UTC on hover.
function localTimes(root) {
  for (const t of root.querySelectorAll("time[datetime]")) {
    const utc = t.getAttribute("datetime");
    const at = new Date(utc);
    if (utc && !Number.isNaN(at.getTime())) {
      t.textContent = at.toLocaleString();
      t.title = utc + " (UTC)";
    }
  }
}

// A live page (`<main data-live>`) is fetched again whenever the run it shows changes:
// `/api/events` sends the document the page was rendered from on every change.
function follow(main) {
  let shown = main.dataset.live;
  let latest = shown;
  let fetching = false;
  let again = false;
  async function refresh() {
    if (fetching) {
      again = true;
      return;
    }
    fetching = true;
    let replaced = false;
    try {
      const answer = await fetch(location.href, { headers: { Accept: "text/html" } });
      if (answer.ok) {
        const page = new DOMParser().parseFromString(await answer.text(), "text/html");
        const fresh = page.querySelector("main");
        if (fresh) {
          // Keep the output panel open across refreshes if the reader opened it.
          const open = main.querySelector("details[open]") !== null;
          main.replaceChildren(...fresh.childNodes);
          if (open) {
            const details = main.querySelector("details");
            if (details) details.open = true;
          }
          localTimes(main);
          if (fresh.dataset.live === undefined) {
            // The page stopped being live (the run it shows ended).
            delete main.dataset.live;
            events.close();
            return;
          }
          shown = fresh.dataset.live;
          main.dataset.live = shown;
          replaced = true;
        }
      }
    } finally {
      fetching = false;
      // Behind again already (a step ended while the page was fetched): once more. A fetch that
      // failed waits for the next change instead.
      if (again || (replaced && latest !== shown)) {
        again = false;
        refresh();
      }
    }
  }
  const events = new EventSource("/api/events");
  events.addEventListener("live", (event) => {
    latest = event.data;
    if (latest !== shown) refresh();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes(document);
  const main = document.querySelector("main[data-live]");
  if (main && window.EventSource) follow(main);
});
