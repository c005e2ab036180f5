"""
The commands an identified client sends on a simulated gateway connection:
Update Presence (op 3) and Request Guild Members (op 8), checked and
answered as :mod:`dccrelay.testing.members` says.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dccrelay.testing import codes, members

if TYPE_CHECKING:
    from dccrelay.testing.connection import SimulatedConnection
    from dccrelay.testing.simulator import DiscordSimulator


class ClientCommands:
    """
    Handles the commands of one identified connection.
    """

    def __init__(self, connection: SimulatedConnection, simulator: DiscordSimulator) -> None:
        self._connection = connection
        self._sim = simulator

    def presence_update(self, d: dict[str, Any]) -> None:
        """
        Keep the presence for the connection's shard, or close with 4002.
        """
        connection = self._connection
        problem = members.presence_problem(d)
        if problem is not None:
            connection.close(codes.DECODE_ERROR, problem)
            return
        assert connection.bot is not None and connection.shard_id is not None
        connection.bot.presences[connection.shard_id] = d
        self._sim.record("presence", connection.shard_id)

    def request_guild_members(self, d: dict[str, Any]) -> None:
        """
        Answer with Guild Members Chunk dispatches, or close with 4002.
        """
        connection = self._connection
        problem = members.request_problem(d)
        if problem is not None:
            connection.close(codes.DECODE_ERROR, problem)
            return
        bot = connection.bot
        assert bot is not None and connection.session is not None
        bot.member_requests.append((connection.shard_id, d))
        self._sim.record("member_request", d.get("nonce"))
        answers = members.answer_request(
            connection,
            d,
            bot.guild_members,
            bot.all_members_asked,
            self._sim.clock.seconds(),
            self._sim.member_chunk_size,
        )
        for t, answer in answers:
            connection.send_dispatch(connection.session.next_dispatch(t, answer))
