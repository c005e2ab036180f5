"""
Several nodes on one PostgreSQL store: leases, hand-over, remote bots.
"""
