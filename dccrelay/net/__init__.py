"""
Outgoing connections: the private-address guard, TLS, websocket basics.
"""
