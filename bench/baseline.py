"""
The relay as it was before a change, to run beside the current one in the
same ``python -m bench`` invocation: ``git archive`` of a commit of this
repository, unpacked into a temporary directory whose path is put first on
the relay's ``PYTHONPATH``.  Only the relay runs the old code; the
simulator, the receiver and the harness are the current ones, so the two
relays meet the same load.
"""

from __future__ import annotations

import atexit
import io
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator

from bench.processes import REPO

#: the relay before issue 15's work (CPU per dispatch, cold delivery, GC stalls)
BEFORE_ISSUE_15 = "6901f30"

_exported: dict[str, str] = {}


def alternating(before: str | None, repeats: int) -> Iterator[tuple[int, str, str]]:
    """
    ``repeats`` rounds of the relay now, then as it was (``before``, a
    source tree, if any): ``(round, "now" or "before", source tree)``, so
    that the machine's noise falls on both alike.
    """
    codes = [("now", REPO)] + ([("before", before)] if before else [])
    for n in range(repeats):
        for label, code in codes:
            yield n, label, code


def source_tree(ref: str) -> str:
    """
    A directory holding the tree of commit ``ref`` (exported once per
    process, removed at exit).
    """
    if ref not in _exported:
        archive = subprocess.run(
            ["git", "-C", REPO, "archive", "--format=tar", ref, "dccrelay", "twisted"],
            check=True, capture_output=True, timeout=120,
        ).stdout
        path = tempfile.mkdtemp(prefix=f"dcc-bench-{ref}-")
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(path, filter="data")
        atexit.register(shutil.rmtree, path, True)
        _exported[ref] = path
    return _exported[ref]


def describe(ref: str) -> str:
    """``ref`` as a short commit id and subject line."""
    done = subprocess.run(
        ["git", "-C", REPO, "log", "-1", "--format=%h %s", ref],
        check=True, capture_output=True, text=True, timeout=30,
    )
    line = done.stdout.strip()
    return line if len(line) <= 90 else line[:87] + "..."
