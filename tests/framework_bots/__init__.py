"""
Bots written as each framework's documentation writes them, run behind the
relay by ``dccrelay-bot`` in the end-to-end tests.
"""
