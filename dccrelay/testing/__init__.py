"""
A strict Discord simulator (gateway websockets and the REST calls a relay
makes) for dccrelay's tests and for trying the relay locally.

Import :class:`dccrelay.testing.simulator.DiscordSimulator`; run
``python -m dccrelay.testing --help`` for the stand-alone command.
"""
