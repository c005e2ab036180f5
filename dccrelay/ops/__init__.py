"""
Running the node: logs, configuration files, key files, the lag probe, statistics.
"""
