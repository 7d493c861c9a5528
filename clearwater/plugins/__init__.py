"""The twisted.plugin package for the sproutlet plugins shipped with clearwater (spec §2.10).

Sprout's own sproutlets came as plugins in one directory, each loaded at start-up. Here a
plugin is a module in this package holding an object that provides both ``IPlugin`` and
:class:`clearwater.sip.sproutlet._plugins.ISproutletPlugin`; start-up finds them with
``twisted.plugin.getPlugins``. None ship yet, so the package is empty.

As twisted.plugin requires of a plugin package, ``__path__`` is extended with
``pluginPackagePaths(__name__)``: a ``clearwater/plugins`` directory (without ``__init__.py``)
under any other ``sys.path`` entry adds its modules to this package.
"""

from __future__ import annotations

from twisted.plugin import pluginPackagePaths

__path__.extend(pluginPackagePaths(__name__))  # type: ignore[no-untyped-call]  # untyped in Twisted

__all__: list[str] = []
