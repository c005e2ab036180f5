"""
What the cookout bot answers, as in the prototype's sample bot:

- ``cookout help``: the commands and the items;
- ``cookout I'll bring <item>`` (or just ``cookout bring <item>``): sign up;
- ``cookout I can't bring <item>``: back out;
- ``cookout who's bringing <item>``: ask.

The relay's criteria already limit what arrives to messages from people
that are direct messages, mention the bot or start with ``cookout``; here
the phrases are found anywhere in the text, so "@cookout I'll bring buns"
works too.
"""

from __future__ import annotations

import re

from examples.cookout.model import Assignments

# The prototype matched with JavaScript regexes, whose \w and \b are ASCII.
_FLAGS = re.IGNORECASE | re.ASCII
_APOSTROPHE = "['\u2019]?"  # phones type a curly one
_HELP = re.compile(r"\bhelp\b", _FLAGS)
_CANT_BRING = re.compile(rf"\bI can{_APOSTROPHE}t bring ([\w\s]+)\b", _FLAGS)
_WHOS_BRINGING = re.compile(rf"\bwho{_APOSTROPHE}s bringing ([\w\s]+)\b", _FLAGS)
# "I'll" may be left out; "can't bring" is matched before this so that it is
# not taken for "bring".
_BRING = re.compile(rf"\b(?:I{_APOSTROPHE}ll )?bring ([\w\s]+)\b", _FLAGS)


def reply_to(
    content: str, author_id: str, assignments: Assignments, web_url: str | None = None
) -> str:
    """
    The bot's answer to a message, after recording any change it asks for.

    :param content: the message text.
    :param author_id: who wrote it.
    :param web_url: where the covered-items page is, for the help text.
    """
    if _HELP.search(content):
        return _help(assignments, web_url)
    for pattern, answer in (
        (_CANT_BRING, _cant_bring),
        (_WHOS_BRINGING, _whos_bringing),
        (_BRING, _bring),
    ):
        found = pattern.search(content)
        if found:
            return answer(found.group(1), author_id, assignments)
    return 'I only understand a few phrases. Say "cookout help" to see them.'


def _mention(user_id: str) -> str:
    return f"<@{user_id}>"


def _help(assignments: Assignments, web_url: str | None) -> str:
    lines = [
        "Let's have a cookout! Tell me what you'll bring.",
        "",
        "**Commands:**",
        "cookout help",
        "cookout I'll bring <item>",
        "cookout I can't bring <item>",
        "cookout who's bringing <item>",
        "",
        "**Items:** " + ", ".join(item for item, _ in assignments),
    ]
    if web_url:
        lines += ["", f"See what's covered at {web_url}"]
    return "\n".join(lines)


def _bring(item: str, author_id: str, assignments: Assignments) -> str:
    key = item.lower()
    if key not in assignments:
        return f"We're not tracking {item}, but it sounds tasty."
    before = assignments.volunteer(key)
    if before == author_id:
        return f"You're already bringing {key}. :smile:"
    assignments.assign(key, author_id)
    if before is None:
        return f"Thanks, you're bringing {key}! :smile:"
    return (
        f"Thanks! :smile: {_mention(before)}, {_mention(author_id)} is bringing {key} now, "
        "so you don't have to."
    )


def _cant_bring(item: str, author_id: str, assignments: Assignments) -> str:
    key = item.lower()
    if key not in assignments:
        return f"No problem, we'll manage without {item}."
    before = assignments.volunteer(key)
    if before == author_id:
        assignments.assign(key, None)
        return f"Got it. Can someone else bring {key}?"
    if before is None:
        return f"Okay, we still need someone to bring {key}. :pleading_face:"
    return f"No worries, {_mention(before)} is bringing {key}. :smile:"


def _whos_bringing(item: str, author_id: str, assignments: Assignments) -> str:
    key = item.lower()
    if key not in assignments:
        return f"I don't know about {item}. :thinking:"
    volunteer = assignments.volunteer(key)
    if volunteer is None:
        return f"Nobody is bringing {key} yet! :scream:"
    if volunteer == author_id:
        return f"_You're_ bringing {key}! :laughing:"
    return f"{_mention(volunteer)} is bringing {key}."
