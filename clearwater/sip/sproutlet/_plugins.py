"""Sproutlet plugins: how the sproutlets are found and loaded at start-up (spec §2.10, §2.4).

Sprout loaded every plugin in its plugin directory, called each one's ``load(options, list)``
and aborted start-up on any failure; the names of all the sproutlets, aliases included, had to
be unique (spec §2.4: a clash is a start-up error). Here a plugin is an object providing
twisted's ``IPlugin`` and :class:`ISproutletPlugin`, in a module of a twisted.plugin package:

- :mod:`clearwater.plugins`, for the plugins shipped with clearwater;
- each directory given with ``--plugin-path DIR``. It needs no ``__init__.py``: it becomes a
  synthetic package, named after the directory's real path, whose ``__path__`` is ``[DIR]``.

:func:`discover` finds the plugins, :func:`load_sproutlets` hands each one its
``-N/--plugin-option PLUGIN,NAME,VALUE`` options (:func:`parse_plugin_option`) and collects the
sproutlets. Every failure raises :class:`PluginError`, naming the module, directory or plugin.

twisted.plugin logs and skips a module that fails to import, so :func:`discover` first imports
every module of the package itself and raises on the first failure; what twisted.plugin logs
while it scans (a plugin listed in a ``dropin.cache`` that cannot be loaded) is caught with a
log observer and raised too. A ``dropin.cache`` that cannot be written (read-only directory)
is no error: twisted.plugin logs it and goes on.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import os
import sys
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Optional

from twisted.logger import ILogObserver, LogEvent, globalLogPublisher
from twisted.plugin import IPlugin, getPlugins
from twisted.python.failure import Failure
from twisted.python.modules import getModule
from zope.interface import Attribute, Interface, implementer
from zope.interface.exceptions import Invalid
from zope.interface.verify import verifyObject

import clearwater.plugins
from clearwater.errors import ClearwaterError
from clearwater.sip.sproutlet._api import Sproutlet

__all__ = [
    "ISproutletPlugin",
    "PluginError",
    "discover",
    "load_sproutlets",
    "parse_plugin_option",
]

# sys.modules names of the synthetic packages made for plugin directories start with this.
_SYNTHETIC_PREFIX = "_clearwater_plugin_path_"


class ISproutletPlugin(Interface):
    """A sproutlet plugin (Sprout's ``SproutletPlugin``).

    A plugin module holds an instance of a class declared
    ``@implementer(IPlugin, ISproutletPlugin)``; twisted.plugin finds only objects that provide
    ``IPlugin``.
    """

    name = Attribute(
        "The plugin's name (a non-empty str without commas): the PLUGIN of its -N options."
    )

    def load(options: Mapping[str, str]) -> list[Sproutlet]:  # noqa: N805 (zope: no self)
        """The sproutlets of this plugin, built from ``options`` (its ``-N`` values by NAME).

        Raising stops start-up.
        """


class PluginError(ClearwaterError):
    """A sproutlet plugin could not be found or loaded; start-up stops.

    The message names the plugin, its module or its directory, and the problem.
    """


def parse_plugin_option(text: str) -> tuple[str, str, str]:
    """``PLUGIN,NAME,VALUE`` (a ``-N`` option) as a tuple; VALUE may hold commas or be empty.

    :raises ValueError: PLUGIN or NAME is missing or empty.
    """
    parts = text.split(",", 2)
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise ValueError("plugin option " + repr(text) + " is not PLUGIN,NAME,VALUE")
    return parts[0], parts[1], parts[2]


def discover(
    plugin_paths: Sequence[str] = (), *, package: Optional[types.ModuleType] = None
) -> list[ISproutletPlugin]:
    """The plugins in ``package`` (default :mod:`clearwater.plugins`), then in each directory.

    An object found twice (a directory given twice, a plugin imported by another plugin
    module) is one plugin. The synthetic package of a directory stays in ``sys.modules`` when
    the scan succeeds, so plugins may import their sibling modules later (in ``load``); it is
    removed, with its modules, when the scan fails.

    :raises PluginError: a directory is missing; a module fails to import; an object provides
        ISproutletPlugin without IPlugin or does not implement ISproutletPlugin; a plugin listed
        in a ``dropin.cache`` cannot be loaded; two plugins have the same name.
    """
    importlib.invalidate_caches()  # modules written since the interpreter started
    if package is None:
        package = clearwater.plugins
    found = _scan(package, "package " + package.__name__)
    for path in plugin_paths:
        directory = os.path.realpath(path)
        if not os.path.exists(directory):
            raise PluginError("plugin directory " + repr(path) + " does not exist")
        if not os.path.isdir(directory):
            raise PluginError("plugin directory " + repr(path) + " is not a directory")
        found.extend(_scan_directory(directory))
    plugins: list[ISproutletPlugin] = []
    origin_of_name: dict[str, str] = {}
    seen: set[int] = set()
    for plugin, origin in found:
        if id(plugin) in seen:
            continue
        seen.add(id(plugin))
        if plugin.name in origin_of_name:
            raise PluginError(
                "two sproutlet plugins are named "
                + repr(plugin.name)
                + ": one in "
                + origin_of_name[plugin.name]
                + ", one in "
                + origin
            )
        origin_of_name[plugin.name] = origin
        plugins.append(plugin)
    return plugins


def load_sproutlets(
    plugins: Sequence[ISproutletPlugin], options: Iterable[tuple[str, str, str]]
) -> list[Sproutlet]:
    """Every plugin's sproutlets, in plugin order, each plugin given its own ``-N`` options.

    ``options`` are ``(PLUGIN, NAME, VALUE)`` tuples; for a repeated NAME the last VALUE wins.
    Service names and aliases share one namespace (spec §2.4); a name that two sproutlets claim
    is a clash (one sproutlet may repeat its own name).

    :raises PluginError: an option names no plugin; two plugins have the same name; a ``load``
        raises or returns something other than a list of Sproutlet; names clash.
    """
    by_plugin: dict[str, dict[str, str]] = {}
    for plugin in plugins:
        if plugin.name in by_plugin:
            raise PluginError("two sproutlet plugins are named " + repr(plugin.name))
        by_plugin[plugin.name] = {}
    for plugin_name, name, value in options:
        values = by_plugin.get(plugin_name)
        if values is None:
            raise PluginError(
                "plugin option "
                + repr(plugin_name + "," + name + "," + value)
                + " is for plugin "
                + repr(plugin_name)
                + ", which does not exist (plugins: "
                + (", ".join(sorted(by_plugin)) or "none")
                + ")"
            )
        values[name] = value
    sproutlets: list[Sproutlet] = []
    owner: dict[str, str] = {}  # service name or alias -> the sproutlet that has it
    for plugin in plugins:
        for sproutlet in _load_one(plugin, by_plugin[plugin.name]):
            who = "sproutlet " + repr(sproutlet.service_name) + " of plugin " + repr(plugin.name)
            names = dict.fromkeys((sproutlet.service_name, *sproutlet.aliases))
            for name in names:
                if name in owner:
                    raise PluginError(
                        "name " + repr(name) + " of " + who + " clashes with " + owner[name]
                    )
            owner.update(dict.fromkeys(names, who))
            sproutlets.append(sproutlet)
    return sproutlets


def _load_one(plugin: ISproutletPlugin, options: dict[str, str]) -> list[Sproutlet]:
    """``plugin.load`` on a read-only view of ``options``, its result checked."""
    what = "sproutlet plugin " + repr(plugin.name)
    try:
        result: object = plugin.load(types.MappingProxyType(options))
    except Exception as e:
        raise PluginError(what + " failed to load: " + _describe(e)) from e
    if not isinstance(result, list):
        raise PluginError(
            what + " returned " + type(result).__name__ + " from load, not a list of Sproutlet"
        )
    for index, item in enumerate(result):
        if not isinstance(item, Sproutlet):
            raise PluginError(
                what
                + " returned a list holding "
                + type(item).__name__
                + " at index "
                + str(index)
                + ", not a Sproutlet"
            )
    return result


def _scan_directory(directory: str) -> list[tuple[ISproutletPlugin, str]]:
    """The plugins in ``directory`` (a real path), scanned as a synthetic package.

    twisted.python.modules walks a package in ``sys.modules`` only if its ``__file__`` is an
    existing ``__init__`` file, and then walks the directories on its ``__path__``. The
    synthetic package borrows :mod:`clearwater.plugins`' ``__file__`` (that directory is not on
    its ``__path__``, so it is not walked). Its name derives from the real path, so names stored
    in ``dropin.cache`` stay valid from one start to the next.
    """
    digest = hashlib.sha256(directory.encode("utf-8", "surrogateescape")).hexdigest()
    name = _SYNTHETIC_PREFIX + digest[:24]
    package = sys.modules.get(name)
    if package is None:
        package = types.ModuleType(name, "Sproutlet plugins in " + directory)
        spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = [directory]
        package.__spec__ = spec
        package.__path__ = [directory]
        package.__file__ = clearwater.plugins.__file__
        package.__package__ = name
        sys.modules[name] = package
    try:
        return _scan(package, "directory " + repr(directory))
    except BaseException:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]
        raise


def _scan(package: types.ModuleType, where: str) -> list[tuple[ISproutletPlugin, str]]:
    """The plugins in ``package``, each with a description of the module holding it."""
    # Import every module first: twisted.plugin would log and skip one that fails.
    origins: dict[int, str] = {}
    modules = getModule(package.__name__).iterModules()  # type: ignore[no-untyped-call]
    for python_module in modules:
        path: str = python_module.filePath.path
        try:
            module = importlib.import_module(python_module.name)
        except Exception as e:
            raise PluginError("plugin module " + path + " failed to import: " + _describe(e)) from e
        for attribute, value in vars(module).items():
            if ISproutletPlugin.providedBy(value):
                if not IPlugin.providedBy(value):
                    raise PluginError(
                        "plugin module "
                        + path
                        + ": "
                        + attribute
                        + " provides ISproutletPlugin but not IPlugin,"
                        + " so twisted.plugin cannot find it"
                    )
                origins.setdefault(id(value), "module " + path)
    collector = _FailureCollector()
    globalLogPublisher.addObserver(collector)
    try:
        plugins = list(getPlugins(ISproutletPlugin, package))
    finally:
        globalLogPublisher.removeObserver(collector)
    if collector.failures:
        failure = collector.failures[0]
        raise PluginError(
            "twisted.plugin could not load a plugin listed for "
            + where
            + ": "
            + _describe(failure.value)
            + " (a stale dropin.cache?)"
        )
    found: list[tuple[ISproutletPlugin, str]] = []
    for plugin in plugins:
        origin = origins.get(id(plugin))
        if origin is None:
            raise PluginError(
                "twisted.plugin found "
                + repr(plugin)
                + " for "
                + where
                + ", in none of its modules (a stale dropin.cache?)"
            )
        _check_plugin(plugin, origin)
        found.append((plugin, origin))
    return found


def _check_plugin(plugin: ISproutletPlugin, origin: str) -> None:
    """Raise :class:`PluginError` unless ``plugin`` implements ISproutletPlugin, with a name."""
    try:
        verifyObject(ISproutletPlugin, plugin)
    except Invalid as e:
        raise PluginError(
            "plugin "
            + repr(plugin)
            + " in "
            + origin
            + " does not implement ISproutletPlugin: "
            + " ".join(str(e).split())
        ) from e
    name: Any = plugin.name
    if not isinstance(name, str) or not name or "," in name:
        raise PluginError(
            "plugin "
            + repr(plugin)
            + " in "
            + origin
            + " has name "
            + repr(name)
            + ", not a non-empty str without commas"
        )


@implementer(ILogObserver)
class _FailureCollector:
    """A log observer keeping the failures logged (twisted.plugin uses ``log.err``)."""

    def __init__(self) -> None:
        self.failures: list[Failure] = []

    def __call__(self, event: LogEvent) -> None:
        failure = event.get("log_failure", event.get("failure"))
        if isinstance(failure, Failure):
            self.failures.append(failure)


def _describe(error: object) -> str:
    return type(error).__name__ + ": " + str(error)
