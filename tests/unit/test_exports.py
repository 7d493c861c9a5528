"""The public API of each package is pinned: what ``__all__`` lists, and where it comes from."""

from __future__ import annotations

import clearwater
import clearwater.aka
import clearwater.diameter
import clearwater.diameter.apps.cx
import clearwater.diameter.apps.rf
import clearwater.errors
import clearwater.homestead
import clearwater.homestead.api
import clearwater.homestead.hss
import clearwater.homestead.provisioning
import clearwater.http.homestead
import clearwater.http.homestead_client
import clearwater.http.homestead_prov
import clearwater.http.ralf
import clearwater.http.sprout
import clearwater.http.sprout_client
import clearwater.ralf
import clearwater.scscf
import clearwater.scscf.authentication
import clearwater.scscf.bindings
import clearwater.scscf.callerprefs
import clearwater.scscf.config
import clearwater.scscf.hss
import clearwater.scscf.identities
import clearwater.scscf.reginfo
import clearwater.scscf.registrar
import clearwater.scscf.scscf_proxy
import clearwater.scscf.subscribers
import clearwater.scscf.subscription
import clearwater.sip
import clearwater.sip.auth
import clearwater.sip.resolver
import clearwater.sip.stack
import clearwater.sip.transaction
import clearwater.sip.transport
import clearwater.sip.ua
import clearwater.stores
import clearwater.stores.memcached
import clearwater.stores.memory
import clearwater.stores.records
import clearwater.stores.redis
import clearwater.stores.sqlite
import clearwater.stores.typed
import clearwater.stores.urls
import clearwater.stun
import clearwater.testing
import clearwater.tools.provision
from clearwater.sip import _framing, _message, _parser, _uri, _values


def test_every_exported_name_exists() -> None:
    modules = (
        clearwater,
        clearwater.errors,
        clearwater.sip,
        clearwater.sip.headers,
        clearwater.sip.transaction,
        clearwater.sip.transport,
        clearwater.sip.auth,
        clearwater.sip.resolver,
        clearwater.sip.stack,
        clearwater.sip.ua,
        clearwater.testing,
        clearwater.aka,
        clearwater.homestead,
        clearwater.homestead.api,
        clearwater.homestead.hss,
        clearwater.diameter,
        clearwater.diameter.apps.cx,
        clearwater.diameter.apps.rf,
        clearwater.http.sprout_client,
        clearwater.http.ralf,
        clearwater.ralf,
        clearwater.http.homestead,
        clearwater.http.homestead_client,
        clearwater.http.homestead_prov,
        clearwater.http.sprout,
        clearwater.stores,
        clearwater.stores.memcached,
        clearwater.stores.memory,
        clearwater.stores.records,
        clearwater.stores.redis,
        clearwater.stores.sqlite,
        clearwater.stores.typed,
        clearwater.stores.urls,
        clearwater.stun,
        clearwater.tools.provision,
        clearwater.homestead.provisioning,
        clearwater.scscf,
        clearwater.scscf.authentication,
        clearwater.scscf.bindings,
        clearwater.scscf.callerprefs,
        clearwater.scscf.config,
        clearwater.scscf.hss,
        clearwater.scscf.identities,
        clearwater.scscf.reginfo,
        clearwater.scscf.registrar,
        clearwater.scscf.scscf_proxy,
        clearwater.scscf.subscribers,
        clearwater.scscf.subscription,
    )
    for module in modules:
        for name in module.__all__:
            assert hasattr(module, name), (module.__name__, name)


def test_sip_facade_re_exports_the_private_implementations() -> None:
    sip = clearwater.sip
    assert sip.parse_message is _parser.parse_message
    assert sip.Request is _message.Request and sip.Response is _message.Response
    assert sip.Headers is _message.Headers
    assert sip.SipUri is _uri.SipUri and sip.TelUri is _uri.TelUri
    assert sip.parse_uri is _uri.parse_uri
    assert sip.StreamFramer is _framing.StreamFramer
    assert sip.Via is _values.Via and sip.NameAddr is _values.NameAddr
    assert sip.ParseError is clearwater.errors.ParseError


def test_sip_public_names() -> None:
    assert set(clearwater.sip.__all__) >= {
        "AbsoluteUri",
        "CSeq",
        "FramedMessage",
        "HeaderSpec",
        "Headers",
        "KeepAlivePing",
        "KeepAlivePong",
        "NameAddr",
        "ParseError",
        "Request",
        "Response",
        "SipUri",
        "StreamFramer",
        "TelUri",
        "Via",
        "headers",
        "parse_message",
        "parse_uri",
    }


def test_stun_public_names() -> None:
    assert set(clearwater.stun.__all__) >= {
        "Attr",
        "ChannelData",
        "Class",
        "Message",
        "Method",
        "StreamFramer",
        "long_term_key",
        "parse_datagram",
        "parse_message",
        "saslprep",
        "unknown_comprehension_required",
    }
