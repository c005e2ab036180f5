"""
The ``mongo`` filter backend that ships with dccrelay, as a twisted.plugin
plugin.  Each built-in backend has a module of its own, so one that cannot
import (a missing dependency) does not take the others down with it.
"""

from dccrelay.filters.mongo import MongoBackend

#: MongoDB query selectors, as the prototype's sift 13 (13.5.4) evaluates them.
mongo = MongoBackend()
