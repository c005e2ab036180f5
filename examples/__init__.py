"""
Example bots built on :mod:`dccrelay.client`; not installed with dccrelay.
"""
