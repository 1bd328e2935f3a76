"""What every dashboard test checks of its page: the requests it made and the errors it met,
and that a view fits the window; and each view's screenshot in ``build/screenshots``."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.browser.chromium import SCREENSHOTS, NetworkLog
from tests.browser.dashboard_tour import SIZE


async def open_page(new_page: Any) -> tuple[Any, NetworkLog]:
    """A blank page of the dashboard's size, its requests and its console errors recorded
    (a script that fails, or a content security policy that blocks something, says so
    there)."""
    page = await new_page(width=SIZE["width"], height=SIZE["height"])
    network = await NetworkLog.of(page)
    page.on(
        "console",
        lambda message: message.type == "error" and network.failures.append(message.text),
    )
    page.on("pageerror", lambda error: network.failures.append(f"page error: {error}"))
    return page, network


async def capture(page: Any, view: str) -> None:
    """The view's screenshot, once nothing on it is wider than the window."""
    width = await page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= SIZE["width"], f"the {view} view is {width} px wide"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / f"dashboard-{view}.png")


def only_its_own(network: NetworkLog, base: str, *expected: str) -> None:
    """Every request went to the node (nothing from elsewhere) and none failed but as
    ``expected`` (and the tails the page closed on its way to another view)."""
    assert [url for url in network.requested if not url.startswith(base + "/")] == []
    # A refusal the page expects shows as a failed request and its console line.
    allowed = ("net::ERR_ABORTED", *expected)
    refused = tuple(
        f"Failed to load resource: the server responded with a status of {e}" for e in expected
    )
    assert [f for f in network.failures if not f.startswith(allowed + refused)] == []


async def lines_shown(page: Any) -> list[tuple[int, str]]:
    """The log lines the timeline shows, top to bottom: (the seq each carries, its message)."""
    shown = await page.eval_on_selector_all(
        "#events tr[data-log-seq]",
        "rows => rows.map(row => [Number(row.dataset.logSeq), row.cells[4].textContent])",
    )
    return [(seq, message) for seq, message in shown]


async def lines_logged(
    session: aiohttp.ClientSession, base: str, ref: str, since: int, until: int
) -> list[tuple[int, str]]:
    """The lines of the turns that ended at seqs ``since`` to ``until``, from the admin API,
    in the order the timeline shows them: newest seq first, each seq's in their order."""
    url = f"{base}/admin/api/objects/{ref}/logs"
    params = {"since": str(since), "until": str(until), "limit": "1000"}
    async with session.get(url, params=params) as response:
        assert response.status == 200, await response.text()
        answer = await response.json()
    assert answer["cursor"] is None, "more than one answer's lines"
    lines = [(line["seq"], line["message"]) for line in answer["logs"]]
    # sorted() keeps the order of lines of one seq.
    return sorted(lines, key=lambda line: -line[0])
