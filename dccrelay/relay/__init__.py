"""
The relay of one bot, all the bots of a node, and what they share.
"""
