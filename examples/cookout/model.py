"""
The cookout's data model: a short, fixed list of items and the user id of
whoever brings each.

The whole list is small, so it lives in memory; but a bot behind a relay is
stopped and started whenever its host likes, so every change is also
written to disk at once, one file per item holding the volunteer's user id
(no file: nobody brings it yet), and read back at start-up.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

#: What the cookout tracks, in the order the page and the help list them.
ITEMS = ("plates", "hamburgers", "hot dogs", "buns", "drinks")


class Assignments:
    """
    Who brings which item, kept in ``data_dir``.

    :param data_dir: created (owner-only) if missing.
    :param items: the item names tracked.
    """

    def __init__(self, data_dir: str, items: tuple[str, ...] = ITEMS) -> None:
        self._dir = data_dir
        os.makedirs(data_dir, mode=0o700, exist_ok=True)
        self._volunteers: dict[str, str | None] = {item: self._load(item) for item in items}

    def __contains__(self, item: object) -> bool:
        return item in self._volunteers

    def __iter__(self) -> Iterator[tuple[str, str | None]]:
        """
        ``(item, volunteer id or None)`` in the tracked order.
        """
        return iter(list(self._volunteers.items()))

    def volunteer(self, item: str) -> str | None:
        """
        The user id bringing ``item``, or None.

        :raise KeyError: if ``item`` is not tracked.
        """
        return self._volunteers[item]

    def assign(self, item: str, user_id: str | None) -> None:
        """
        Record (and save) that ``user_id`` brings ``item``; None: nobody.

        :raise KeyError: if ``item`` is not tracked.
        """
        if item not in self._volunteers:
            raise KeyError(item)
        self._volunteers[item] = user_id
        self._save(item)

    def _path(self, item: str) -> str:
        return os.path.join(self._dir, item)

    def _load(self, item: str) -> str | None:
        try:
            with open(self._path(item), encoding="utf-8") as f:
                volunteer = f.read().strip()
        except FileNotFoundError:
            return None  # nobody brings it yet: a valid state
        return volunteer or None

    def _save(self, item: str) -> None:
        # Small files on a local disk: writing them on the reactor thread
        # takes far less time than the Discord call that follows.
        volunteer = self._volunteers[item]
        path = self._path(item)
        if volunteer is None:
            try:
                os.remove(path)
            except FileNotFoundError:
                pass  # nobody was bringing it; leave it that way
            return
        # Write aside, then rename: a host stopping the bot mid-write leaves
        # the old volunteer or the new one, never half an id.
        partial = path + ".partial"
        with open(partial, "w", encoding="utf-8") as f:
            f.write(volunteer)
        os.replace(partial, path)
