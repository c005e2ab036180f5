"""
The namespace for filter backend plugins (twisted.plugin).

dccrelay's own backends are in :mod:`dccrelay.plugins.dcc_mongo` and
:mod:`dccrelay.plugins.dcc_jsonpath`. Another
distribution adds backends by shipping a module in a ``dccrelay/plugins/``
directory of its own, without an ``__init__.py``; the line below adds every
such directory on ``sys.path`` to this package's search path. See
:class:`dccrelay.filters.IFilterBackend`.
"""

from twisted.plugin import pluginPackagePaths

__path__.extend(pluginPackagePaths(__name__))
__all__: list[str] = []
