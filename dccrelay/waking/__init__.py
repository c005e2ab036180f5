"""
What the relay does for a bot that is not connected: wakeUrl, typing, deferred interactions.
"""
