"""Clearwater's Sproutlet API on the RFC 3261 §16 proxy core (issue #4; spec §2).

- :class:`Sproutlet`: one service (spec §2.1), :class:`SproutletTsx`: one transaction at it, with
  Clearwater's callbacks (§2.2), acting through a :class:`SproutletTsxHelper` (§2.3);
- :class:`SproutletProxy`: the proxy that hosts them (spec §2.4-§2.7), in-process between
  sproutlets, on the network otherwise;
- the AppServer API (spec §2.8): :class:`AppServer` / :class:`AppServerTsx`, hosted through
  :class:`SproutletAppServerShim`;
- matching (spec §2.4): :func:`match_sproutlet` over a :class:`ServiceTable` (:func:`build_table`);
- plugins (spec §2.10): :class:`ISproutletPlugin` objects found with ``twisted.plugin`` in
  ``clearwater.plugins`` and in ``--plugin-path`` directories (:func:`discover`), whose
  ``load(options)`` returns their sproutlets (:func:`load_sproutlets`, options from
  ``-N PLUGIN,NAME,VALUE``: :func:`parse_plugin_option`); any failure is a :class:`PluginError`.
"""

from __future__ import annotations

from clearwater.sip.sproutlet._api import (
    ErrorState,
    ForkStatus,
    Sproutlet,
    SproutletTsx,
    SproutletTsxHelper,
)
from clearwater.sip.sproutlet._appserver import (
    DIALOG_ID_PARAM,
    AppServer,
    AppServerTsx,
    AppServerTsxHelper,
    SproutletAppServerShim,
    SproutletAppServerShimTsx,
    SproutletAppServerTsxHelper,
)
from clearwater.sip.sproutlet._matching import Match, ServiceTable, build_table, match_sproutlet
from clearwater.sip.sproutlet._plugins import (
    ISproutletPlugin,
    PluginError,
    discover,
    load_sproutlets,
    parse_plugin_option,
)
from clearwater.sip.sproutlet._proxy import (
    DEFAULT_MAX_SPROUTLET_DEPTH,
    ProxyObserver,
    SproutletProxy,
)

__all__ = [
    "DEFAULT_MAX_SPROUTLET_DEPTH",
    "DIALOG_ID_PARAM",
    "AppServer",
    "AppServerTsx",
    "AppServerTsxHelper",
    "ErrorState",
    "ForkStatus",
    "ISproutletPlugin",
    "Match",
    "PluginError",
    "ProxyObserver",
    "ServiceTable",
    "Sproutlet",
    "SproutletAppServerShim",
    "SproutletAppServerShimTsx",
    "SproutletAppServerTsxHelper",
    "SproutletProxy",
    "SproutletTsx",
    "SproutletTsxHelper",
    "build_table",
    "discover",
    "load_sproutlets",
    "match_sproutlet",
    "parse_plugin_option",
]
