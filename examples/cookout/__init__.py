"""
The prototype's sample bot (SEED.md, chapter 4), on dccrelay.client and
treq: it keeps track of who brings what to a cookout.

- :mod:`.model`: the items and their volunteers, saved to a data directory;
- :mod:`.commands`: what the bot answers to a message;
- :mod:`.discord`: the one Discord REST call it makes (create a message);
- :mod:`.web`: the page that lists what is covered;
- :mod:`.bot`: all of it wired to a relay; ``python -m examples.cookout``
  runs it;
- :mod:`.demo`: ``python -m examples.cookout.demo``, the whole path on
  loopback with the Discord simulator.
"""
