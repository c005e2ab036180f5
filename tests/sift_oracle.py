"""
The mongo backend beside sift: asking each for its answers, and the
documented departures that may make them differ.

sift is the npm package the Node.js prototype filtered with; ``.ci/run``
installs :data:`SIFT_VERSION` under ``tests/sift/node_modules`` (git-ignored),
where ``tests/sift/evaluate.js`` finds it.

An outcome is what one side made of one case: ``True`` or ``False``,
``{"refused": message}`` when the criteria were refused (sift threw when
compiling them; the backend raised :class:`CriteriaError`), or ``{"threw":
message}`` when sift threw while matching (the prototype would then have
failed on that dispatch). Two outcomes agree when they are the same answer,
or both refusals.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from dccrelay.filters import CriteriaError
from dccrelay.filters.mongo import MongoBackend

from tests.sift_cases import Case

#: The newest sift 13, which the prototype's ``"sift": "^13.4.0"`` installs.
SIFT_VERSION = "13.5.4"
SIFT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sift")
CORPUS = os.path.join(SIFT_DIR, "corpus.json")
#: Set (to anything non-empty) by .ci/run: a missing sift fails the test.
REQUIRE_ENV = "DCC_REQUIRE_SIFT"
INSTALL_COMMAND = f"npm install --no-save --no-package-lock --prefix tests/sift sift@{SIFT_VERSION}"

Outcome = Any  # bool | {"refused": str} | {"threw": str}


def sift_missing() -> Optional[str]:
    """Why sift cannot be asked here, or None when it can."""
    if shutil.which("node") is None:
        return f"node is not installed (then: {INSTALL_COMMAND})"
    manifest = os.path.join(SIFT_DIR, "node_modules", "sift", "package.json")
    try:
        with open(manifest, encoding="utf-8") as f:
            version = json.load(f)["version"]
    except OSError:
        return f"sift is not installed under tests/sift (run: {INSTALL_COMMAND})"
    if version != SIFT_VERSION:
        return f"tests/sift has sift {version}, not {SIFT_VERSION} (run: {INSTALL_COMMAND})"
    return None


def ask_sift(cases: Sequence[Case]) -> list[Outcome]:
    """sift's outcome for each case, from one run of ``evaluate.js``."""
    request = json.dumps([{"criteria": c.criteria, "payload": c.payload} for c in cases])
    result = subprocess.run(
        ["node", os.path.join(SIFT_DIR, "evaluate.js")],
        input=request,
        capture_output=True,
        text=True,
        check=True,
    )
    header, answers = result.stdout.splitlines()
    version = json.loads(header)["sift"]
    if version != SIFT_VERSION:
        raise RuntimeError(f"evaluate.js ran sift {version}, not {SIFT_VERSION}")
    outcomes: list[Outcome] = json.loads(answers)
    return outcomes


def ask_backend(cases: Sequence[Case], backend: Optional[MongoBackend] = None) -> list[Outcome]:
    """The mongo backend's outcome for each case, compiling each criteria once."""
    backend = MongoBackend() if backend is None else backend
    compiled: dict[str, Any] = {}
    outcomes: list[Outcome] = []
    for case in cases:
        key = json.dumps(case.criteria, sort_keys=False)
        if key not in compiled:
            try:
                compiled[key] = backend.compile(case.criteria)
            except CriteriaError as e:
                compiled[key] = {"refused": f"{e.message} at {e.pointer!r}"}
        predicate = compiled[key]
        outcomes.append(predicate if type(predicate) is dict else predicate(case.payload))
    return outcomes


def kind(outcome: Outcome) -> str:
    """``"true"``, ``"false"``, ``"refused"`` or ``"threw"``."""
    if type(outcome) is bool:
        return "true" if outcome else "false"
    return next(iter(outcome))


# Departures: where the backend means to differ from sift. Each names the
# sentence of docs/filters.rst that documents it, and says precisely which
# cases it excuses.


def _entries(value: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) of every object in ``value``, recursively."""
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is dict:
            for key, inner in item.items():
                yield key, inner
                stack.append(inner)
        elif type(item) is list:
            stack.extend(item)


def _strings(value: Any) -> Iterator[str]:
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is str:
            yield item
        elif type(item) is dict:
            stack.extend(item)
            stack.extend(item.values())
        elif type(item) is list:
            stack.extend(item)


def _numbers(value: Any) -> Iterator[int]:
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is int:
            yield item
        elif type(item) is dict:
            stack.extend(item.values())
        elif type(item) is list:
            stack.extend(item)


def _refused_for(ours: Outcome, *messages: str) -> bool:
    return kind(ours) == "refused" and any(m in ours["refused"] for m in messages)


# Properties every JavaScript object inherits from Object.prototype.
_INHERITED = frozenset(
    "constructor __proto__ hasOwnProperty isPrototypeOf propertyIsEnumerable"
    " toLocaleString toString valueOf __defineGetter__ __defineSetter__"
    " __lookupGetter__ __lookupSetter__".split()
)
# Regular expression syntax that JavaScript and RE2 read differently on
# text beyond ASCII: ``.`` (a UTF-16 unit or a code point) and ``\s``.
_DIALECT_SYNTAX = (".", "\\s", "\\S")


def _regex_dialect(criteria: Any, payload: Any, sift: Outcome, ours: Outcome) -> bool:
    if _refused_for(ours, "RE2", "invalid regular expression", "unknown $options letter"):
        return True
    patterns = [v for k, v in _entries(criteria) if k == "$regex" and type(v) is str]
    return any(s in p for p in patterns for s in _DIALECT_SYNTAX) and any(
        not s.isascii() for s in _strings(payload)
    )


def _crash_refused(criteria: Any, payload: Any, sift: Outcome, ours: Outcome) -> bool:
    return _refused_for(ours, "$exists applies to a field", "$type takes one of")


def _type_object(criteria: Any, payload: Any, sift: Outcome, ours: Outcome) -> bool:
    return kind(sift) == "threw" and ("$type", "object") in _entries(criteria)


def _malformed_refused(criteria: Any, payload: Any, sift: Outcome, ours: Outcome) -> bool:
    return kind(sift) != "refused" and _refused_for(
        ours,
        "$size takes a whole number",
        "$exists takes true or false",
        "$mod's divisor",
        "$mod takes [divisor, remainder]",
        "$options needs a $regex",
        "a regular expression must be a string",
        "$options takes a string",
        "compares with a number, a string, a boolean or null",
        "criteria must be a JSON object",
    )


def _verbose_option(criteria: Any, payload: Any, sift: Outcome, ours: Outcome) -> bool:
    return kind(sift) == "refused" and any(
        k == "$options" and type(v) is str and "x" in v for k, v in _entries(criteria)
    )


def _huge_numbers(criteria: Any, payload: Any, sift: Outcome, ours: Outcome) -> bool:
    return kind(ours) != "refused" and any(abs(n) > 2**53 for n in [*_numbers(criteria), *_numbers(payload)])


def _inherited(criteria: Any, payload: Any, sift: Outcome, ours: Outcome) -> bool:
    return kind(ours) != "refused" and any(
        part in _INHERITED for key, _ in _entries(criteria) for part in key.split(".")
    )


@dataclass(frozen=True)
class Departure:
    """One documented way the backend differs from sift."""

    name: str
    #: A phrase of docs/filters.rst's list of departures.
    documented: str
    applies: Callable[[Any, Any, Outcome, Outcome], bool] = field(repr=False)


DEPARTURES: tuple[Departure, ...] = (
    # The narrowest first: a case is excused by the first that applies.
    Departure("$options x", "``$options: \"x\"`` (MongoDB's", _verbose_option),
    Departure("$type object", "``$type: \"object\"``", _type_object),
    Departure("numbers beyond 2**53", "beyond ``2**53``", _huge_numbers),
    Departure("inherited properties", "inherited properties", _inherited),
    Departure("refused where sift crashes", "sift throws while matching", _crash_refused),
    Departure("malformed operands refused", "Operands of the wrong shape", _malformed_refused),
    Departure("regex dialect", "``$regex`` runs on RE2, so", _regex_dialect),
)


def departure_for(case: Case, sift: Outcome, ours: Outcome) -> Optional[Departure]:
    """The departure that excuses a disagreement, if one does."""
    for departure in DEPARTURES:
        if departure.applies(case.criteria, case.payload, sift, ours):
            return departure
    return None


@dataclass
class Comparison:
    """How the backend's outcomes compare with sift's over some cases."""

    total: int = 0
    agreed: int = 0
    departed: Counter[str] = field(default_factory=Counter)
    disagreements: list[tuple[Case, Outcome, Outcome]] = field(default_factory=list)

    def summary(self) -> str:
        departed = ", ".join(f"{n} {name}" for name, n in sorted(self.departed.items()))
        return (
            f"{self.agreed} of {self.total} agree ({100 * self.agreed / max(self.total, 1):.2f}%),"
            f" {sum(self.departed.values())} documented departures ({departed or 'none'}),"
            f" {len(self.disagreements)} disagreements"
        )

    def report(self, limit: int = 20) -> str:
        lines = [self.summary()]
        for case, sift, ours in self.disagreements[:limit]:
            lines.append(
                f"  {json.dumps(case.criteria)} on {json.dumps(case.payload)}:"
                f" sift {json.dumps(sift)}, mongo backend {json.dumps(ours)}"
            )
        return "\n".join(lines)


def compare(cases: Sequence[Case], sift: Sequence[Outcome], ours: Sequence[Outcome]) -> Comparison:
    result = Comparison(total=len(cases))
    for case, s, o in zip(cases, sift, ours, strict=True):
        if kind(s) == kind(o):
            result.agreed += 1
            continue
        departure = departure_for(case, s, o)
        if departure is None:
            result.disagreements.append((case, s, o))
        else:
            result.departed[departure.name] += 1
    return result
