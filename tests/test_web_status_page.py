"""
Tests for the status pages of a node with many bots: the query
(:mod:`dccrelay.web.status_query`: search, state filters, paging, totals),
``GET /`` with it, and one bot's page (:mod:`dccrelay.web.bot_page`) with
its private part behind the bot's clientSecret.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase
from twisted.web.template import flattenString

from dccrelay.web.access import Access
from dccrelay.web.status_query import (
    MAX_PER_PAGE,
    StatusQuery,
    parse_query,
    problems,
    select,
    totals,
)
from dccrelay.web.wake_chart import bucket_counts, wake_histogram

from .api_harness import BODY, SECRET, Node, answer, basic, bearer


def status(alias: str, **changes: Any) -> dict[str, Any]:
    """
    A public status as a relay gives it, healthy unless changed.
    """
    return {
        "alias": alias,
        "enabled": True,
        "lastDisableReason": None,
        "gatewayError": None,
        "node": None,
        "shards": [{"id": 0, "state": "ready", "lastClose": None}],
        "delivery": {"state": "idle"},
        "queued": 0,
        "dropped": 0,
        "lastDeliveryError": None,
        "counters": {"received": 1, "matched": 1, "delivered": 1},
        **changes,
    }


class QueryTests(SynchronousTestCase):
    """
    Reading the query string, classifying bots, selecting a page.
    """

    def test_parse_forgiving(self) -> None:
        """
        Nonsense never fails the page: unknown states mean every bot, bad
        numbers the default, sizes are clamped to the maximum.
        """
        self.assertEqual(parse_query({}), StatusQuery())
        query = parse_query({
            b"q": [b" cook "], b"state": [b"failing"], b"page": [b"3"], b"per": [b"100000"],
        })
        self.assertEqual(query, StatusQuery("cook", "failing", 3, MAX_PER_PAGE))
        query = parse_query({b"state": [b"<x>"], b"page": [b"-2"], b"per": [b"lots"]})
        self.assertEqual(query, StatusQuery("", "all", 1, 50))

    def test_problems(self) -> None:
        """
        Each filter state describes the bots it names.
        """
        self.assertEqual(problems(status("ok")), [])
        self.assertEqual(problems(status("off", enabled=False, shards=[])), ["disabled"])
        self.assertEqual(
            problems(status("slow", shards=[{"id": 0, "state": "resuming", "lastClose": None}])),
            ["not-ready"],
        )
        self.assertEqual(
            problems(status("bad", delivery={"state": "waiting to retry"}, dropped=3)),
            ["failing", "dropping"],
        )

    def test_search_filter_and_pages(self) -> None:
        """
        The search is part of the alias, case-insensitive; the filter keeps
        bots with that problem; pages are bounded and past-the-end shows the
        last page.
        """
        statuses = [status(f"bot_{n:05}") for n in range(250)] + [
            status("Cookout_a", enabled=False, shards=[]),
            status("cookout_b", dropped=2),
        ]
        statuses.sort(key=lambda s: s["alias"])
        chosen = select(StatusQuery(search="COOK"), statuses)
        self.assertEqual([s["alias"] for s in chosen.rows], ["Cookout_a", "cookout_b"])
        chosen = select(StatusQuery(state="dropping"), statuses)
        self.assertEqual([s["alias"] for s in chosen.rows], ["cookout_b"])
        chosen = select(StatusQuery(page=2, per_page=100), statuses)
        self.assertEqual((chosen.page, chosen.pages, chosen.matched), (2, 3, 252))
        self.assertEqual(chosen.rows[0]["alias"], "bot_00099")  # after Cookout_a
        self.assertEqual(len(chosen.rows), 100)
        chosen = select(StatusQuery(page=99, per_page=100), statuses)
        self.assertEqual((chosen.page, len(chosen.rows)), (3, 52))
        empty = select(StatusQuery(search="nobody"), statuses)
        self.assertEqual((empty.rows, empty.page, empty.pages, empty.matched), ([], 1, 1, 0))

    def test_totals(self) -> None:
        """
        Totals count every bot and every problem.
        """
        total = totals([
            status("a"), status("b", enabled=False, shards=[], dropped=4, queued=2),
        ])
        self.assertEqual((total.bots, total.shards, total.shards_ready), (2, 1, 1))
        self.assertEqual(total.problems, {"disabled": 1, "not-ready": 0, "failing": 0, "dropping": 1})
        self.assertEqual((total.dropped, total.queued, total.received), (4, 2, 2))

    def test_links(self) -> None:
        """
        Links keep the query and leave defaults out.
        """
        query = StatusQuery(search="a b", state="failing")
        self.assertEqual(query.link(page=2), "?q=a+b&state=failing&page=2")
        self.assertEqual(StatusQuery().link(), "./")


class WakeChartTests(SynchronousTestCase):
    """
    The wake economy's histogram.
    """

    def test_counts_from_cumulative(self) -> None:
        """
        Cumulative Prometheus buckets become per-bucket counts.
        """
        self.assertEqual(
            bucket_counts({"0.25": 1, "0.5": 1, "60.0": 4, "+Inf": 5}),
            [("≤0.25 s", 1), ("≤0.5 s", 0), ("≤1 min", 3), ("more", 1)],
        )

    def test_svg(self) -> None:
        """
        The chart is inline SVG: one bar per bucket, titled with its count.
        """
        svg = self.successResultOf(
            flattenString(None, wake_histogram({"1.0": 2, "5.0": 3, "+Inf": 3}))
        ).decode("utf-8")
        self.assertTrue(svg.startswith("<svg "))
        self.assertEqual(svg.count("<rect "), 3)
        self.assertIn("<title>≤5 s: 1 dispatches</title>", svg)


class PagesTests(SynchronousTestCase):
    """
    ``GET /`` and ``GET /bots/{alias}`` served from a real relay manager.
    """

    def setUp(self) -> None:
        self.node = Node(max_relays=300, access=Access(operator_key="operator-key-0123"))
        self.addCleanup(self.node.stop)

    def page(self, path: str, headers: dict[str, list[str]] | None = None) -> tuple[int, str, Any]:
        code, body, response = answer(self, self.node, "GET", path, headers=headers)
        return code, body.decode("utf-8"), response

    def register(self, *aliases: str) -> None:
        for alias in aliases:
            body = {**BODY, "token": f"{BODY['token']}.{alias}"}
            code, _, _ = answer(self, self.node, "PUT", f"/relays/{alias}", body)
            self.assertEqual(code, 201)

    def test_overview_pages(self) -> None:
        """
        With many bots the overview shows totals of all, one page of 50 by
        default, and links to the next page keeping the search.
        """
        self.register(*[f"bot_{n:03}" for n in range(120)])
        code, html, _ = self.page("/")
        self.assertEqual(code, 200)
        self.assertIn("120 of at most 300", html)
        self.assertIn("page 1 of 3", html)
        self.assertIn('href="bots/bot_049"', html)
        self.assertNotIn('href="bots/bot_050"', html)
        self.assertIn('href="?page=2"', html)
        code, html, _ = self.page("/?q=bot_11&per=5")
        self.assertIn("10 bots match; page 1 of 2", html)
        self.assertIn('href="?q=bot_11&amp;page=2&amp;per=5"', html)

    def test_overview_filter(self) -> None:
        """
        ``state=disabled`` shows only disabled bots; the totals stay those of
        every bot.
        """
        self.register("alpha", "beta")
        self.assertEqual(answer(
            self, self.node, "POST", "/relays/beta/disable", headers=basic()
        )[0], 200)
        _, html, _ = self.page("/?state=disabled")
        self.assertIn('href="bots/beta"', html)
        self.assertNotIn('href="bots/alpha"', html)
        self.assertIn("2 of at most 300: 1 enabled, 1 disabled", html)
        _, html, _ = self.page("/?q=zzz")
        self.assertIn("No bot matches this search.", html)

    def test_bot_page_public(self) -> None:
        """
        Anyone sees a bot's shards, delivery and wake economy, and a link to
        the private part; no token, secret or dst.
        """
        self.register("cookout")
        code, html, _ = self.page("/bots/cookout")
        self.assertEqual(code, 200)
        self.assertIn("<h1>cookout</h1>", html)
        self.assertIn("Gateway shards", html)
        self.assertIn("Wake economy", html)
        self.assertIn('href="?private=1"', html)
        for hidden in (BODY["token"], SECRET, "bot.example", "MESSAGE_CREATE"):
            self.assertNotIn(hidden, html)

    def test_bot_page_private_needs_secret(self) -> None:
        """
        ``?private=1`` asks for Basic credentials (401 with a challenge, so a
        browser prompts); a wrong secret is refused; the right one, or the
        operator key, shows the settings with the token masked.
        """
        self.register("cookout")
        code, html, response = self.page("/bots/cookout?private=1")
        self.assertEqual(code, 401)
        self.assertIn("Basic", response.headers.getRawHeaders("WWW-Authenticate")[0])
        self.assertIn("clientSecret", html)
        code, html, _ = self.page("/bots/cookout", headers=basic("admin:wrong-one"))
        self.assertEqual(code, 401)
        self.assertNotIn("bot.example", html)
        for headers in (basic(), bearer("operator-key-0123")):
            code, html, _ = self.page("/bots/cookout?private=1", headers=headers)
            self.assertEqual(code, 200)
            self.assertIn("Settings (private)", html)
            self.assertIn("wss://bot.example/dcc/v1/cookout", html)
            self.assertNotIn(BODY["token"], html)

    def test_unknown_bot(self) -> None:
        """
        An unknown or invalid alias gets an HTML 404 that says so.
        """
        code, html, _ = self.page("/bots/nobody")
        self.assertEqual(code, 404)
        self.assertIn("no bot is registered as nobody", html)
        code, html, _ = self.page("/bots/%3Cscript%3E")
        self.assertEqual(code, 404)
        self.assertNotIn("<script>", html)
