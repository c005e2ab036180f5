"""
The operator's monitoring files (``etc/prometheus/dcc-alerts.yml``,
``etc/grafana/dcc-dashboard.json``, docs/operations.rst) name only series
that ``GET /metrics`` exports.
"""

from __future__ import annotations

import json
import os
import re

from prometheus_client.parser import text_string_to_metric_families
from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

import dccrelay
from dccrelay.web.metrics import MetricsPage
from tests.test_web_metrics import Node

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(dccrelay.__file__)))
SERIES = re.compile(r"\b(?:dcc|process)_[a-z_]+")


def _read(*path: str) -> str:
    with open(os.path.join(ROOT, *path), encoding="utf-8") as f:
        return f.read()


class MonitoringFilesTests(SynchronousTestCase):
    """
    Alert rules and the dashboard agree with the relay's metrics.
    """

    def exported(self) -> set[str]:
        node = Node(self)
        node.register("cookout")
        root = Resource()
        root.putChild(b"metrics", MetricsPage(node.manager))
        response = self.successResultOf(StubTreq(root).get("http://relay.example/metrics"))
        text = self.successResultOf(response.text())
        names: set[str] = set()
        for family in text_string_to_metric_families(text):
            names.update(sample.name for sample in family.samples)
            # a labelled family with no sample yet (no reconnect so far)
            suffixes = {
                "counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"],
            }.get(family.type, [""])
            names.update(family.name + suffix for suffix in suffixes)
        return names

    def test_alerts_and_dashboard(self) -> None:
        """
        Every ``dcc_*`` and ``process_*`` series the files use is exported;
        the dashboard is JSON with a query per panel.
        """
        exported = self.exported()
        rules = _read("etc", "prometheus", "dcc-alerts.yml")
        dashboard = json.loads(_read("etc", "grafana", "dcc-dashboard.json"))
        queries = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
        self.assertTrue(all(p["targets"] for p in dashboard["panels"]))
        used = set(SERIES.findall(rules)) | set(SERIES.findall(" ".join(queries)))
        self.assertTrue(used)
        self.assertEqual(used - exported, set())

    def test_operations_table(self) -> None:
        """
        The series table of docs/operations.rst names exported families.
        """
        exported = self.exported()
        table = _read("docs", "operations.rst").split("Monitoring", 1)[1]
        for name in set(SERIES.findall(table)):
            if name.endswith("_") or name == "process_":
                continue  # a family written as dcc_bot_dispatches_*_total
            self.assertTrue(
                any(e == name or e.startswith(name + "_") for e in exported), name
            )
