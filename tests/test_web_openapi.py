"""
Tests for ``GET /openapi.json`` (:mod:`dccrelay.web.openapi`): the document
matches the resource tree route for route and method for method, its
request schema is the one the relay validates with, and a bounded
schemathesis run generated from it against a live relay on loopback finds
no server error and no 4xx without ``{"error"}`` (but from the HTML pages
for people, which refuse in HTML).
"""

from __future__ import annotations

from typing import Any, Generator, Iterator

import orjson
from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource

from dccrelay.settings import REGISTRATION_SCHEMA
from dccrelay.web.access import Access
from dccrelay.web.api_request import _ERROR_PAGES
from dccrelay.web.openapi import openapi_document
from dccrelay.web.site import build_site
from dccrelay.web.throttle import FailedAuthLimiter

from .api_harness import BODY, Node, answer, basic

#: a value for each path parameter, to walk the tree with
SAMPLE = {"alias": "sample"}

#: examples per operation in the fuzz run: bounded, a few seconds in all
FUZZ_EXAMPLES = 40

METHODS = ("GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS")


def _methods(resource: Resource) -> set[str]:
    if type(resource).render is not Resource.render:
        raise AssertionError(f"{resource!r} renders every method itself; list them by hand")
    return {m for m in METHODS if m != "HEAD" and hasattr(resource, f"render_{m}")}


def served_routes(root: Resource) -> Iterator[tuple[str, set[str]]]:
    """
    Every route of the tree, as an OpenAPI path template and its methods:
    static children by name, and ``getChild`` children by trying the
    sample value of each path parameter.
    """

    def walk(resource: Resource, path: str) -> Iterator[tuple[str, set[str]]]:
        methods = _methods(resource)
        if methods:
            yield (path or "/"), methods
        if resource.isLeaf:
            return
        children = dict(resource.children)
        for name, value in SAMPLE.items():
            child = resource.getChild(value.encode(), None)  # type: ignore[arg-type]
            if not isinstance(child, _ERROR_PAGES):
                children[b"{" + name.encode() + b"}"] = child
        for segment, child in sorted(children.items()):
            if segment == b"":
                if child is not resource:
                    yield from walk(child, path + "/")
                continue
            yield from walk(child, path + "/" + segment.decode())

    yield from walk(root, "")


class DocumentTests(SynchronousTestCase):
    """
    The document and the tree agree.
    """

    def setUp(self) -> None:
        self.node = Node()
        self.addCleanup(self.node.stop)
        self.document = openapi_document()

    def test_every_route_documented_and_served(self) -> None:
        """
        Every route and method the resource tree serves is documented, and
        everything documented is served.
        """
        served = {path: methods for path, methods in served_routes(self.node.resource)}
        documented = {
            path: {m.upper() for m in item if m != "parameters"}
            for path, item in self.document["paths"].items()
        }
        for path in sorted(set(served) | set(documented)):
            self.assertEqual(
                (path, served.get(path, set())),
                (path, documented.get(path, set())),
                f"{path}: the tree (left) and dccrelay/web/openapi.py (right) differ",
            )

    def test_request_schema_is_the_validators(self) -> None:
        """
        The PUT body's schema is REGISTRATION_SCHEMA itself.
        """
        self.assertIs(self.document["components"]["schemas"]["Registration"], REGISTRATION_SCHEMA)

    def test_served(self) -> None:
        """
        ``GET /openapi.json`` serves the document as JSON.
        """
        code, body, response = answer(self, self.node, "GET", "/openapi.json")
        self.assertEqual(code, 200)
        self.assertEqual(response.headers.getRawHeaders("Content-Type"), ["application/json"])
        self.assertEqual(body, orjson.loads(orjson.dumps(self.document)))
        self.assertEqual(body["openapi"], "3.1.0")

    def test_valid_openapi(self) -> None:
        """
        schemathesis accepts the document as OpenAPI 3.1.
        """
        import schemathesis

        schema = schemathesis.openapi.from_dict(self.document)
        operations = [result.ok() for result in schema.get_all_operations()]
        self.assertEqual(
            len(operations),
            sum(len(item) - ("parameters" in item) for item in self.document["paths"].values()),
        )

    def test_status_matches_schema(self) -> None:
        """
        A real status answer validates against the documented response
        schema (FullStatus).
        """
        import jsonschema

        code, status, _ = answer(self, self.node, "PUT", "/relays/cookout", BODY)
        self.assertEqual(code, 201)
        resolver_document = dict(self.document)
        schema = {"$ref": "#/components/schemas/FullStatus", **{"components": resolver_document["components"]}}
        jsonschema.validate(status, schema)
        _, listing, _ = answer(self, self.node, "GET", "/relays", headers=basic())
        public = {"$ref": "#/components/schemas/PublicStatus", "components": self.document["components"]}
        for entry in listing["relays"]:
            jsonschema.validate(entry, public)


def _fuzz(base_url: str, examples: int) -> tuple[list[tuple[str, str, int, str]], list[int]]:
    """
    Run schemathesis against ``base_url`` (in a thread: it blocks).

    :return: ``(method, path, status, problem)`` for each response that
        broke a rule (none, we hope), and every status seen.
    """
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import checks

    schema = schemathesis.openapi.from_dict(openapi_document())
    problems: list[tuple[str, str, int, str]] = []
    seen: list[int] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=examples,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            response = case.call(base_url=base_url, timeout=10)
            seen.append(response.status_code)
            code = response.status_code
            where = (case.method, case.formatted_path)
            if code >= 500 and not (code == 503 and case.method == "PUT"):
                problems.append((*where, code, "server error: " + response.text[:200]))
            elif 400 <= code < 500 and case.method != "HEAD" and not _for_people(case, response):
                try:
                    body = orjson.loads(response.content)
                except orjson.JSONDecodeError:
                    body = None
                if not (isinstance(body, dict) and isinstance(body.get("error"), str)):
                    problems.append((*where, code, "4xx without {error}: " + response.text[:200]))
            try:
                case.validate_response(
                    response,
                    checks=[
                        checks.status_code_conformance,
                        checks.content_type_conformance,
                        checks.response_schema_conformance,
                    ],
                )
            except (Exception, BaseExceptionGroup) as e:  # schemathesis: a group
                problems.append((*where, code, f"does not match the document: {e}"[:400]))

        run()
    return problems, seen


def _for_people(case: Any, response: Any) -> bool:
    # The HTML pages (/bots/{alias}) refuse in HTML, for the person reading.
    return bool(
        case.formatted_path.startswith("/bots/")
        and response.text.startswith("<!DOCTYPE html>")
    )


class FuzzTests(TestCase):
    """
    schemathesis, from the document, against the real site on loopback.
    """

    timeout = 300

    @inlineCallbacks
    def test_fuzz(self) -> Generator[Deferred[Any], Any, None]:
        """
        A bounded run of generated requests for every operation: no 5xx
        (but the documented 503 of a full relay), every 4xx has
        ``{"error": ...}``, and answers match the document.
        """
        node = Node(
            max_relays=3,
            access=Access(limiter=FailedAuthLimiter(global_reactor, burst=1000)),
        )
        self.addCleanup(node.stop)
        answer(self, node, "PUT", "/relays/sample", BODY)
        site = build_site(node.manager, node.resource.children[b"relays"]._parse_settings, reactor=global_reactor)  # type: ignore[attr-defined]
        site.resource = node.resource
        port = yield TCP4ServerEndpoint(global_reactor, 0, interface="127.0.0.1").listen(site)
        self.addCleanup(port.stopListening)
        base = f"http://127.0.0.1:{port.getHost().port}"
        problems, seen = yield deferToThread(_fuzz, base, FUZZ_EXAMPLES)
        self.assertEqual(problems, [])
        # it did reach the handlers, not only the front door
        self.assertGreater(len(seen), 100)
        self.assertTrue({200, 400, 404} <= set(seen), sorted(set(seen)))
