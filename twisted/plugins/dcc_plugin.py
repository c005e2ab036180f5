"""
Makes ``twistd dcc`` run the relay (see :mod:`dccrelay.tap`).
"""

from twisted.application.service import ServiceMaker

dcc = ServiceMaker(
    "dccrelay",
    "dccrelay.tap",
    "Relay Discord gateway dispatches to sleeping bots",
    "dcc",
)
