"""
Several nodes on one PostgreSQL store: leases, hand-over, published snapshots.
"""
