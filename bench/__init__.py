"""
Benchmarks: run one with ``python -m bench.<name>`` from the repository root.
They print figures; they assert nothing and are not part of the tests.
"""
