"""
The ``jsonpath`` filter backend that ships with dccrelay, as a twisted.plugin
plugin (in its own module: see :mod:`dccrelay.plugins.dcc_mongo`).
"""

from dccrelay.filters.jsonpath import JSONPathBackend

#: RFC 9535 JSONPath queries, with match() and search() on RE2.
jsonpath = JSONPathBackend()
