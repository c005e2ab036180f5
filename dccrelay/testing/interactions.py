"""
Simulated interactions: slash commands and button presses, and the REST
endpoints that answer them, as strict as Discord about time.

Source: discord/discord-api-docs,
``developers/interactions/receiving-and-responding.mdx``.

- :meth:`Interactions.create` makes the ``d`` of an INTERACTION_CREATE
  dispatch, with an ``id`` and a ``token``; the 3 s start then;
- ``POST /interactions/{id}/{token}/callback`` (no Authorization needed)
  takes the first answer, an interaction response ``{"type", "data"?}``:
  types 4 (message), 5 (deferred message; ``data.flags`` may only be 64,
  ephemeral), 6 and 7 (deferred update, update: components and modals from
  components only), 8 (autocomplete), 9 (modal; not for a modal submit).
  204 within 3 s of creation; 404 ``Unknown interaction`` (10062) after
  them, or for an unknown id or token; 400 ``Interaction has already been
  acknowledged.`` (40060) for a second answer;
- an interaction without an answer after 3 s has *failed*: the person saw
  "This interaction failed";
- ``PATCH /webhooks/{application_id}/{token}/messages/@original`` (edit
  the original response) and ``POST /webhooks/{application_id}/{token}``
  (a follow-up message) work once the interaction was answered, for 15
  minutes; before the first answer they are 404 ``Unknown Webhook``
  (10015), after the 15 minutes 401 ``Invalid Webhook Token`` (50027).

Every answer, edit and follow-up is recorded with its time and the
caller's ``User-Agent``, so a test can tell the relay's answers (``DiscordBot
(dccrelay, ...)``) from the bot's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IDelayedCall

from dccrelay.testing import objects

if TYPE_CHECKING:
    from dccrelay.testing.simulator import DiscordSimulator, SimulatedBot

#: seconds to give the first answer
DEADLINE = 3.0

#: seconds an interaction token lasts
TOKEN_LIFETIME = 15 * 60.0

APPLICATION_COMMAND = 2
MESSAGE_COMPONENT = 3
AUTOCOMPLETE = 4
MODAL_SUBMIT = 5

_EPHEMERAL = 1 << 6

UNKNOWN_INTERACTION = {"message": "Unknown interaction", "code": 10062}
ALREADY_ACKNOWLEDGED = {"message": "Interaction has already been acknowledged.", "code": 40060}
UNKNOWN_WEBHOOK = {"message": "Unknown Webhook", "code": 10015}
INVALID_WEBHOOK_TOKEN = {"message": "Invalid Webhook Token", "code": 50027}


def _form_error(message: str) -> dict[str, Any]:
    return {
        "message": "Invalid Form Body",
        "code": 50035,
        "errors": {
            "type": {"_errors": [{"code": "INTERACTION_RESPONSE_TYPE", "message": message}]}
        },
    }


@dataclass
class SimulatedInteraction:
    """
    One interaction and what became of it.

    :ivar answered_at: when the first answer came (None: not yet).
    :ivar answer_type: the first answer's type.
    :ivar answered_by: its ``User-Agent``.
    :ivar failed: no answer came within 3 s.
    :ivar edits: ``(time, user agent, body)`` of each edit of the original.
    :ivar followups: ``(time, user agent, body)`` of each follow-up.
    """

    id: str
    token: str
    application_id: str
    kind: int
    created_at: float
    channel_id: str
    answered_at: float | None = None
    answer_type: int | None = None
    answered_by: str | None = None
    answer: dict[str, Any] | None = None
    failed: bool = False
    edits: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    followups: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    deadline: IDelayedCall | None = None

    @property
    def deferred(self) -> bool:
        """Whether the first answer was a deferred one (5 or 6)."""
        return self.answer_type in (5, 6)

    @property
    def outcome(self) -> str:
        """
        What the person saw in the end: ``"failed"``, ``"pending"`` (no
        answer yet, within 3 s), ``"answered"`` (a direct answer),
        ``"deferred"`` (still "thinking", or a silent update pending), or
        ``"deferred, then answered"`` (an edit or follow-up came).
        """
        if self.failed:
            return "failed"
        if self.answer_type is None:
            return "pending"
        if not self.deferred:
            return "answered"
        if self.edits or self.followups:
            return "deferred, then answered"
        return "deferred"

    def describe(self) -> dict[str, Any]:
        """JSON-ready, token left out."""
        return {
            "id": self.id,
            "type": self.kind,
            "outcome": self.outcome,
            "answer_type": self.answer_type,
            "answered_after": (
                None if self.answered_at is None else round(self.answered_at - self.created_at, 3)
            ),
            "answered_by": self.answered_by,
            "edits": len(self.edits),
            "followups": len(self.followups),
        }


class Interactions:
    """
    Every interaction the simulator made.
    """

    def __init__(self, simulator: DiscordSimulator) -> None:
        self._sim = simulator
        self.by_id: dict[str, SimulatedInteraction] = {}

    @property
    def all(self) -> list[SimulatedInteraction]:
        """Every interaction, oldest first."""
        return list(self.by_id.values())

    def summary(self) -> dict[str, int]:
        """How many interactions ended each way (see ``outcome``)."""
        counts: dict[str, int] = {}
        for interaction in self.by_id.values():
            counts[interaction.outcome] = counts.get(interaction.outcome, 0) + 1
        return counts

    def create(
        self,
        bot: SimulatedBot,
        *,
        kind: int,
        name: str,
        custom_id: str,
        guild_id: str | None,
        channel_id: str,
    ) -> dict[str, Any]:
        """
        A new interaction: the ``d`` of its INTERACTION_CREATE.
        """
        sim = self._sim
        now = sim.clock.seconds()
        interaction_id = sim.snowflake()
        token = "aW50ZXJhY3Rpb24" + f"{sim.random.getrandbits(160):040x}"
        record = SimulatedInteraction(
            id=interaction_id,
            token=token,
            application_id=bot.user_id,
            kind=kind,
            created_at=now,
            channel_id=channel_id,
        )
        record.deadline = sim.clock.callLater(DEADLINE, self._deadline, record)
        self.by_id[interaction_id] = record
        user = objects.user("4444", "someone")
        d: dict[str, Any] = {
            "id": interaction_id,
            "application_id": bot.user_id,
            "type": kind,
            "token": token,
            "version": 1,
            "channel_id": channel_id,
            "channel": {"id": channel_id, "type": 0 if guild_id else 1},
            "app_permissions": "562949953421311",
            "locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": guild_id or "0"},
            "context": 0 if guild_id else 1,
            "attachment_size_limit": 10485760,
        }
        if guild_id is not None:
            d["guild_id"] = guild_id
            d["guild_locale"] = "en-US"
            member = objects.member(objects.timestamp(now))
            member["user"] = user
            member["permissions"] = "2248473465835073"
            d["member"] = member
        else:
            d["user"] = user
        if kind in (APPLICATION_COMMAND, AUTOCOMPLETE):
            d["data"] = {"id": sim.snowflake(), "name": name, "type": 1}
        elif kind == MESSAGE_COMPONENT:
            d["data"] = {"custom_id": custom_id, "component_type": 2}
            d["message"] = objects.message(
                message_id=sim.snowflake(),
                channel_id=channel_id,
                guild_id=guild_id,
                author=objects.user(bot.user_id, bot.username, bot=True),
                content="Who brings the chips?",
                now=now,
            )
        elif kind == MODAL_SUBMIT:
            d["data"] = {"custom_id": custom_id, "components": []}
        sim.record("interaction", interaction_id)
        return d

    def _deadline(self, record: SimulatedInteraction) -> None:
        record.deadline = None
        if record.answer_type is None:
            record.failed = True
            self._sim.record("interaction_failed", record.id)

    def _find(self, interaction_id: str, token: str) -> SimulatedInteraction | None:
        record = self.by_id.get(interaction_id)
        if record is None or record.token != token:
            return None
        return record

    def callback(
        self, interaction_id: str, token: str, body: dict[str, Any], user_agent: str
    ) -> tuple[int, dict[str, Any] | None]:
        """
        ``POST /interactions/{id}/{token}/callback``.

        :return: the status and JSON body (None for 204).
        """
        now = self._sim.clock.seconds()
        record = self._find(interaction_id, token)
        if record is None or record.failed or now - record.created_at > DEADLINE:
            return 404, UNKNOWN_INTERACTION
        if record.answer_type is not None:
            return 400, ALREADY_ACKNOWLEDGED
        kind = body.get("type")
        problem = self._response_problem(record, body)
        if problem is not None:
            return 400, _form_error(problem)
        record.answer_type = kind
        record.answered_at = now
        record.answered_by = user_agent
        record.answer = body
        if record.deadline is not None and record.deadline.active():
            record.deadline.cancel()
        record.deadline = None
        self._sim.record("interaction_answered", (interaction_id, kind))
        return 204, None

    def callback_result(self, interaction_id: str) -> dict[str, Any]:
        """
        The body of a callback answered with ``?with_response=1``: the
        interaction and what the answer made (a message, for 4 and 7).
        """
        record = self.by_id[interaction_id]
        kind = record.answer_type
        answer = record.answer or {}
        data = answer.get("data") if isinstance(answer.get("data"), dict) else {}
        flags = data.get("flags", 0) if isinstance(data, dict) else 0
        resource: dict[str, Any] = {"type": kind}
        interaction: dict[str, Any] = {
            "id": record.id,
            "type": record.kind,
            "response_message_loading": kind == 5,
            "response_message_ephemeral": bool(flags & _EPHEMERAL),
        }
        if kind in (4, 7):
            message = self._message(record, data or {})
            resource["message"] = message
            interaction["response_message_id"] = message["id"]
        return {"interaction": interaction, "resource": resource}

    def _response_problem(self, record: SimulatedInteraction, body: dict[str, Any]) -> str | None:
        kind = body.get("type")
        data = body.get("data")
        if type(kind) is not int or kind not in (4, 5, 6, 7, 8, 9):
            return "Value must be one of {4, 5, 6, 7, 8, 9}."
        if data is not None and not isinstance(data, dict):
            return "data must be an object"
        from_component = record.kind == MESSAGE_COMPONENT
        if kind in (6, 7) and not from_component and record.kind != MODAL_SUBMIT:
            return "This response type is only valid for component interactions."
        if kind == 8 and record.kind != AUTOCOMPLETE:
            return "Autocomplete results are only valid for autocomplete interactions."
        if record.kind == AUTOCOMPLETE and kind != 8:
            return "Autocomplete interactions take autocomplete results."
        if kind == 9 and record.kind == MODAL_SUBMIT:
            return "A modal cannot answer a modal submit."
        if kind == 5 and data is not None and data.get("flags", 0) & ~_EPHEMERAL:
            return "A deferred message may only set the EPHEMERAL flag."
        return None

    def _webhook(
        self, application_id: str, token: str
    ) -> tuple[SimulatedInteraction | None, tuple[int, dict[str, Any]] | None]:
        now = self._sim.clock.seconds()
        for record in self.by_id.values():
            if record.token == token and record.application_id == application_id:
                if record.answer_type is None:
                    return None, (404, UNKNOWN_WEBHOOK)
                if now - record.created_at > TOKEN_LIFETIME:
                    return None, (401, INVALID_WEBHOOK_TOKEN)
                return record, None
        return None, (404, UNKNOWN_WEBHOOK)

    def edit_original(
        self, application_id: str, token: str, body: dict[str, Any], user_agent: str
    ) -> tuple[int, dict[str, Any]]:
        """
        ``PATCH /webhooks/{application_id}/{token}/messages/@original``.
        """
        record, refusal = self._webhook(application_id, token)
        if refusal is not None:
            return refusal
        assert record is not None
        record.edits.append((self._sim.clock.seconds(), user_agent, body))
        self._sim.record("interaction_edited", record.id)
        return 200, self._message(record, body)

    def followup(
        self, application_id: str, token: str, body: dict[str, Any], user_agent: str
    ) -> tuple[int, dict[str, Any]]:
        """
        ``POST /webhooks/{application_id}/{token}``.
        """
        record, refusal = self._webhook(application_id, token)
        if refusal is not None:
            return refusal
        assert record is not None
        record.followups.append((self._sim.clock.seconds(), user_agent, body))
        self._sim.record("interaction_followup", record.id)
        return 200, self._message(record, body)

    def _message(self, record: SimulatedInteraction, body: dict[str, Any]) -> dict[str, Any]:
        sim = self._sim
        bot = sim.bots_by_user_id().get(record.application_id)
        name = bot.username if bot is not None else "bot"
        return objects.message(
            message_id=sim.snowflake(),
            channel_id=record.channel_id,
            guild_id=None,
            author=objects.user(record.application_id, name, bot=True),
            content=str(body.get("content", "")),
            now=sim.clock.seconds(),
        )

    def stop(self) -> None:
        """Cancel every deadline."""
        for record in self.by_id.values():
            if record.deadline is not None and record.deadline.active():
                record.deadline.cancel()
            record.deadline = None
