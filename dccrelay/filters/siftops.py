"""
sift 13.5's evaluation model, as compiled closures.

sift does not evaluate a query as a boolean formula. Each field condition is
a *walk* along the field's dotted path that feeds *candidate* values, one at a
time, to the field's operations: the value at the end of the path, and also,
whenever the walk meets an array where the next step is not a numeric index,
each element of that array first (recursively, so nested arrays are
flattened) and then the array itself, with what lies past it. Every operation
is a small state machine with two flags, *keep* (sift's ``success``) and
*done*; a group (the operations of one field, ``$and``, a query) re-feeds
every child on every candidate, keeps when all children keep, and stops the
walk once all children are done. The answer is the root's *keep* once the
walks end.

This is not always MongoDB's answer (see the mongo module's notes), and
results can depend on the order of a group's children, which is why the
compiler only reorders groups it knows are fed exactly once.

Here an operation's state is its status (:data:`KEEP` | :data:`DONE` bits); a
:data:`Step` maps the previous status and a candidate ``(value, key, owner)``
to the next. Operations whose state is more than a status (groups, ``$not``,
``$or``) build a fresh step per evaluation in :attr:`Op.start`, unless they
are fed once per evaluation and can keep it in one call; either way compiled
criteria hold no state between payloads.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Optional

from dccrelay.filters.jsvalues import (
    MISSING,
    Test,
    array_index,
    has_own,
    is_numeric,
    utf16_length,
    utf16_unit,
)

KEEP = 1
DONE = 2
KEEP_DONE = KEEP | DONE

#: ``(previous status, value, key, owner) -> status``
Step = Callable[[int, Any, Any, Any], int]
#: ``(value, key, owner) -> whether to go on walking``
Sink = Callable[[Any, Any, Any], bool]


class Op(NamedTuple):
    """A compiled operation."""

    #: Returns the step for one evaluation (sift's ``reset()``).
    start: Callable[[], Step]
    #: The status after ``reset()``.
    initial: int
    #: A rough evaluation cost, for ordering groups that may be reordered.
    cost: int
    #: The step of an operation without state: callers fed once call it
    #: directly, without a fresh step per evaluation.
    step: Optional[Step] = None
    #: A value test's test (:func:`value_test`), which a path fed once
    #: applies itself to the value at its end.
    test: Optional[Test] = None
    #: Whether a candidate that is not an array leaves the status 0 whatever
    #: came before (``$elemMatch``).
    arrays_only: bool = False


def _stateless(
    step: Step, cost: int, initial: int = 0, test: Optional[Test] = None, arrays_only: bool = False
) -> Op:
    # repeat(step).__next__ hands out the same step without a Python frame.
    return Op(itertools.repeat(step).__next__, initial, cost, step, test, arrays_only)


#: ``(step, initial status)`` of each operation of a group without state
Fixed = tuple[tuple[Step, int], ...]


def _fixed(ops: Sequence[Op]) -> Optional[Fixed]:
    # The steps of a group's operations when none has state, else None.
    if any(op.step is None for op in ops):
        return None
    return tuple((op.step, op.initial) for op in ops)  # type: ignore[misc]


def _fed_once(ops: Sequence[Op]) -> Fixed:
    # The steps of operations fed one value per evaluation, which the
    # compiler builds without state (every operation of a query fed once is
    # itself fed once).
    fixed = _fixed(ops)
    if fixed is None:
        raise ValueError("an operation fed once per evaluation must have no state")
    return fixed


class PathStep(NamedTuple):
    """One dotted-path component, with what sift derives from it precomputed."""

    key: str
    #: Whether arrays met before this step are walked element by element:
    #: sift's ``isNaN(Number(key))``.
    spreads: bool
    #: The array index the key denotes, if any.
    position: Optional[int]


def parse_path(dotted: str) -> tuple[PathStep, ...]:
    """Split a criteria field name such as ``"d.author.id"`` into steps."""
    return tuple(
        PathStep(key, not is_numeric(key), array_index(key))
        for key in dotted.split(".")
    )


def _get(item: Any, step: PathStep) -> Any:
    # JavaScript's item[key] for a JSON value that is not null or undefined.
    t = type(item)
    if t is dict:
        return item.get(step.key, MISSING)
    if t is list:
        if step.position is not None:
            return item[step.position] if step.position < len(item) else MISSING
        return len(item) if step.key == "length" else MISSING
    if t is str:
        if step.key == "length":
            return utf16_length(item)
        if step.position is not None:
            return utf16_unit(item, step.position)
    return MISSING


def walk(item: Any, path: tuple[PathStep, ...], key: Any, owner: Any, sink: Sink) -> bool:
    """
    Feed ``sink`` the candidates for ``path`` from ``item``, in sift's order
    (its ``walkKeyPathValues``), until it returns False. Iterative, so deeply
    nested payloads cannot exhaust the stack.
    """
    end = len(path)
    # Entries: (item, depth, key, owner, elements already pushed?)
    stack: list[tuple[Any, int, Any, Any, bool]] = [(item, 0, key, owner, False)]
    pop = stack.pop
    push = stack.append
    while stack:
        item, depth, key, owner, spread = pop()
        if not spread and type(item) is list and (depth == end or path[depth].spreads):
            push((item, depth, key, owner, True))
            for i in range(len(item) - 1, -1, -1):
                push((item[i], depth, i, item, False))
            continue
        if depth == end or item is None or item is MISSING:
            if not sink(item, key, owner):
                return False
            continue
        step = path[depth]
        push((_get(item, step), depth + 1, step.key, item, False))
    return True


def _descend(item: Any, path: tuple[PathStep, ...], key: Any, owner: Any) -> Optional[tuple[Any, Any, Any]]:
    # The common case: objects all along the path and no array at its end,
    # which gives exactly one candidate; None when the walk is needed.
    for step in path:
        if type(item) is not dict:
            break
        owner, key, item = item, step.key, item.get(step.key, MISSING)
    else:
        return None if type(item) is list else (item, key, owner)
    return (item, key, owner) if item is None or item is MISSING else None


def _array_at_end(
    item: Any, path: tuple[PathStep, ...], key: Any, owner: Any
) -> Optional[tuple[list[Any], Any, Any]]:
    # The other common case: objects all along the path and, at its end, an
    # array holding no arrays (d.mentions), which the walk feeds element by
    # element and then whole; None when the walk is needed.
    for step in path:
        if type(item) is not dict:
            return None
        owner, key, item = item, step.key, item.get(step.key, MISSING)
    if type(item) is not list:
        return None
    for element in item:
        if type(element) is list:
            return None
    return item, key, owner


def _feed_array(
    steps: list[Step], statuses: list[int], array: list[Any], key: Any, owner: Any
) -> int:
    # What the walk does with _array_at_end's array, without its stack.
    for index, element in enumerate(array):
        status = _children_next(steps, statuses, element, index, array)
        if status & DONE:
            return status
    return _children_next(steps, statuses, array, key, owner)


def _children_next(steps: list[Step], statuses: list[int], value: Any, key: Any, owner: Any) -> int:
    # sift 13's GroupOperation.childrenNext: every child is fed again even
    # when done; the first child done without keeping ends the round.
    done = DONE
    keep = KEEP
    for i in range(len(steps)):
        status = statuses[i] = steps[i](statuses[i], value, key, owner)
        if not status & KEEP:
            keep = 0
            if status & DONE:
                break
            done = 0
        elif not status & DONE:
            done = 0
    return keep | done


def _one_round(ops: tuple[Op, ...], value: Any, key: Any, owner: Any) -> int:
    # childrenNext on fresh children, for a group fed one value per
    # evaluation. The first child that does not keep decides the group's
    # status, so the rest need not run: their state is never read again.
    done = DONE
    for op in ops:
        status = op.start()(op.initial, value, key, owner)
        if not status & KEEP:
            return done & status
        if not status & DONE:
            done = 0
    return KEEP | done


def _fixed_round(fixed: Fixed, value: Any, key: Any, owner: Any) -> int:
    # _one_round for children without state: their steps, called directly.
    done = DONE
    for step, initial in fixed:
        status = step(initial, value, key, owner)
        if not status & KEEP:
            return done & status
        if not status & DONE:
            done = 0
    return KEEP | done


def group(children: Sequence[Op], once: bool = False) -> Op:
    """
    Children fed the same candidates; keeps when all keep (queries, ``$and``).

    :param once: the group is fed one value per evaluation, so it needs no
        state and can stop at the first child that does not keep.
    """
    ops = tuple(children)
    cost = 1 + sum(op.cost for op in ops)
    if once:
        steps = _fed_once(ops)
        if len(ops) == 1:
            # One round of one child is the child's own status.
            return ops[0]._replace(cost=cost)

        def once_step(previous: int, value: Any, key: Any, owner: Any) -> int:
            return _fixed_round(steps, value, key, owner)

        return _stateless(once_step, cost)
    initial = [op.initial for op in ops]

    def start() -> Step:
        steps = [op.start() for op in ops]
        statuses = initial.copy()

        def step(previous: int, value: Any, key: Any, owner: Any) -> int:
            return _children_next(steps, statuses, value, key, owner)

        return step

    return Op(start, 0, cost)


def nested(path: tuple[PathStep, ...], children: Sequence[Op], once: bool = False) -> Op:
    """
    A group fed the candidates of ``path`` (sift's NestedOperation).

    :param once: the operation is fed one value per evaluation (its children
        may still see many candidates), so its state can live in one call.
    """
    ops = tuple(children)
    initial = [op.initial for op in ops]
    cost = len(path) + sum(op.cost for op in ops)

    def run(value: Any, key: Any, owner: Any, steps: list[Step], statuses: list[int]) -> int:
        array = _array_at_end(value, path, key, owner)
        if array is not None:
            return _feed_array(steps, statuses, *array)
        status = 0

        def sink(value: Any, key: Any, owner: Any) -> bool:
            nonlocal status
            status = _children_next(steps, statuses, value, key, owner)
            return not status & DONE

        walk(value, path, key, owner, sink)
        return status

    if once:

        def once_step(previous: int, value: Any, key: Any, owner: Any) -> int:
            single = _descend(value, path, key, owner)
            if single is not None:
                return _one_round(ops, *single)
            return run(value, key, owner, [op.start() for op in ops], initial.copy())

        return _stateless(_nested_once(path, ops, once_step), cost)

    def start() -> Step:
        steps = [op.start() for op in ops]
        statuses = initial.copy()
        status = 0

        def step(previous: int, value: Any, key: Any, owner: Any) -> int:
            nonlocal status
            single = _descend(value, path, key, owner)
            if single is not None:
                status = _children_next(steps, statuses, *single)
            else:
                status = run(value, key, owner, steps, statuses)
            return status

        return step

    return Op(start, 0, cost)


def _nested_once(path: tuple[PathStep, ...], ops: tuple[Op, ...], general: Step) -> Step:
    """
    The step of a path fed once, specialised for the shapes criteria
    usually have; ``general`` (the walk) answers whatever else comes.
    """
    keys = tuple(step.key for step in path)
    tests = tuple(op.test for op in ops if op.test is not None)
    if keys and tests and len(tests) == len(ops):
        # Plain values compared at the end of a path through objects
        # (``"t": "MESSAGE_CREATE"``, ``"d.author.bot": true``): the one
        # candidate, tested here, as _descend and value_test would.
        only = tests[0] if len(tests) == 1 else None

        def tested(previous: int, value: Any, key: Any, owner: Any) -> int:
            item = value
            if item is MISSING:
                return general(previous, value, key, owner)
            for name in keys:
                if type(item) is not dict:
                    if item is None or item is MISSING:
                        break
                    return general(previous, value, key, owner)
                item = item.get(name, MISSING)
            else:
                if type(item) is list:
                    return general(previous, value, key, owner)
            if only is not None:
                return KEEP_DONE if only(item) else 0
            for test in tests:
                if not test(item):
                    return 0
            return KEEP_DONE

        return tested
    fixed = _fixed(ops)
    if fixed is None:
        return general
    steps = fixed
    array_decides = len(ops) == 1 and ops[0].arrays_only

    def fixed_step(previous: int, value: Any, key: Any, owner: Any) -> int:
        single = _descend(value, path, key, owner)
        if single is not None:
            return _fixed_round(steps, *single)
        if array_decides:
            # A lone $elemMatch: the array's elements, fed first, each
            # leave it at 0; the array decides.
            array = _array_at_end(value, path, key, owner)
            if array is not None:
                return steps[0][0](0, *array)
        return general(previous, value, key, owner)

    return fixed_step


def value_test(test: Test, cost: int = 1) -> Op:
    """
    sift's EqualsOperation (implicit equality, ``$eq``, comparisons,
    ``$regex``, ``$mod``, ``$type``): keeps once a candidate passes ``test``.
    """

    def step(previous: int, value: Any, key: Any, owner: Any) -> int:
        # sift skips what an array lacks (arr.hasOwnProperty(key) is false),
        # such as arr.b, met when a path goes on past an array.
        if value is MISSING and type(owner) is list:
            return previous
        return KEEP_DONE if test(value) else previous

    return _stateless(step, cost, test=test)


def not_equal(test: Test) -> Op:
    """``$ne``: keeps until a candidate passes ``test``, including absent elements."""

    def step(previous: int, value: Any, key: Any, owner: Any) -> int:
        return DONE if test(value) else previous

    return _stateless(step, 1, initial=KEEP)


def member(test: Test) -> Op:
    """``$in``: decided afresh by each candidate."""

    def step(previous: int, value: Any, key: Any, owner: Any) -> int:
        return KEEP_DONE if test(value) else 0

    return _stateless(step, 2)


def not_member(test: Test) -> Op:
    """``$nin``: decided afresh by each candidate; done only when one is a member."""

    def step(previous: int, value: Any, key: Any, owner: Any) -> int:
        return DONE if test(value) else KEEP

    return _stateless(step, 2)


def exists(flag: bool) -> Op:
    """``$exists``: keeps once a candidate's owner has (or lacks) its key."""

    def step(previous: int, value: Any, key: Any, owner: Any) -> int:
        return KEEP_DONE if has_own(owner, key) is flag else previous

    return _stateless(step, 1)


def size(length: int) -> Op:
    """``$size`` (sift 13.5's ``$Size``): keeps once a candidate is an array of ``length``."""

    def step(previous: int, value: Any, key: Any, owner: Any) -> int:
        return KEEP_DONE if type(value) is list and len(value) == length else previous

    return _stateless(step, 1)


def never() -> Op:
    """sift's NopeOperation (``$gt: null`` and friends): done, never keeps."""

    def step(previous: int, value: Any, key: Any, owner: Any) -> int:
        return DONE

    return _stateless(step, 0)


def elem_match(query: Op) -> Op:
    """
    ``$elemMatch`` (sift 13.5's ``$ElemMatch``): a candidate that is an array
    is searched, the query run afresh on each element, and makes it done,
    kept if an element (or an earlier array candidate) kept; any other
    candidate, such as an element the walk spreads before its array, undoes
    it (neither kept nor done).
    """
    [(query_step, query_initial)] = _fed_once([query])

    def step(previous: int, value: Any, key: Any, owner: Any) -> int:
        if type(value) is not list:
            return 0
        if previous & KEEP:
            return KEEP_DONE
        for index, element in enumerate(value):
            if query_step(query_initial, element, index, value) & KEEP:
                return KEEP_DONE
        return DONE

    return _stateless(step, 5 + query.cost, arrays_only=True)


def negate(query: Op, once: bool = False) -> Op:
    """
    ``$not``: the query's status with *keep* inverted; the query accumulates.

    :param once: fed one value per evaluation, so no state is needed.
    """
    cost = 1 + query.cost
    if once:
        [(query_step, query_initial)] = _fed_once([query])

        def once_step(previous: int, value: Any, key: Any, owner: Any) -> int:
            return query_step(query_initial, value, key, owner) ^ KEEP

        return _stateless(once_step, cost)

    def start() -> Step:
        inner = query.start()
        status = query.initial

        def step(previous: int, value: Any, key: Any, owner: Any) -> int:
            nonlocal status
            status = inner(status, value, key, owner)
            return status ^ KEEP

        return step

    return Op(start, 0, cost)


def any_of(queries: Sequence[Op], invert: bool = False, once: bool = False) -> Op:
    """
    ``$or`` (``$nor`` when ``invert``): keeps when a query keeps after this
    candidate; the queries accumulate and are fed until one keeps.

    :param once: fed one value per evaluation, so no state is needed.
    """
    ops = tuple(queries)
    cost = 1 + sum(op.cost for op in ops)
    flip = KEEP if invert else 0
    if once:
        steps = _fed_once(ops)

        def once_step(previous: int, value: Any, key: Any, owner: Any) -> int:
            for step, initial in steps:
                if step(initial, value, key, owner) & KEEP:
                    return KEEP_DONE ^ flip
            return flip

        return _stateless(once_step, cost)
    initial = [op.initial for op in ops]

    def start() -> Step:
        steps = [op.start() for op in ops]
        statuses = initial.copy()

        def step(previous: int, value: Any, key: Any, owner: Any) -> int:
            for i in range(len(steps)):
                status = statuses[i] = steps[i](statuses[i], value, key, owner)
                if status & KEEP:
                    return KEEP_DONE ^ flip
            return flip

        return step

    return Op(start, 0, cost)
