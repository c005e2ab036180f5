"""
The filter backends that ship with dccrelay, as twisted.plugin plugins.
"""

from dccrelay.filters.jsonpath import JSONPathBackend
from dccrelay.filters.mongo import MongoBackend

#: MongoDB query selectors, as the prototype's sift 13.4 evaluated them.
mongo = MongoBackend()

#: RFC 9535 JSONPath queries, with match() and search() on RE2.
jsonpath = JSONPathBackend()
