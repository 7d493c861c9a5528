"""``twistd sprout`` options: Clearwater's sprout command line and ``shared_config`` keys.

Implements the sprout part of spec §8.1 (shared_config keys -> sprout options, defaults) and
§2.9 (built-in sproutlets: each has a port, ``<name>``, 0 = disabled; a prefix, ``<name>_prefix``,
default the name; and a URI, ``<name>_uri``, default ``sip:<prefix>.<sprout_hostname>;
transport=tcp``), with the local and remote alias lists of §2.4. ARCHITECTURE.md §4: command
line beats ``--config`` file beats default, validated once, then frozen in :class:`SproutConfig`.

Choices where Clearwater differs or is silent:

- options are named after the shared_config keys (``--home-domain``, ``--local-ip``) where
  sprout's binary used other names (``--domain``, ``--localhost``);
- ``--http-address`` defaults to 127.0.0.1, not ``local_ip`` (ARCHITECTURE.md §6: HTTP binds
  to loopback unless told otherwise);
- enabled sproutlets must have distinct ports and prefixes (§2.4: an alias clash is a start-up
  error), and ``--sip-port`` must not be a sproutlet's port.
"""

from __future__ import annotations

import enum
import re
from typing import ClassVar, Optional, cast

import attrs
from twisted.application.service import IService
from twisted.python import usage
from typing_extensions import override

from clearwater._types import ISipReactor
from clearwater.errors import ParseError
from clearwater.scscf.config import NonRegisterAuthentication
from clearwater.services._options import (
    AnySetting,
    ConfigOptions,
    Repeated,
    Setting,
    comma_list,
    directory,
    host,
    int_range,
    ip_address,
    port_number,
    yes_no,
)
from clearwater.services.homestead.tap import default_store
from clearwater.sip import SipUri, parse_sip_uri
from clearwater.sip.auth import SUPPORTED_ALGORITHMS
from clearwater.stores.urls import StoreUrl, parse_store_url

__all__ = [
    "BUILTIN_SPROUTLETS",
    "Options",
    "RecordRoutingModel",
    "SproutConfig",
    "SproutOptions",
    "SproutletSettings",
    "makeService",
]

# Spec §2.9: (config name, default port). Port 0 = disabled.
BUILTIN_SPROUTLETS: tuple[tuple[str, int], ...] = (
    ("scscf", 5054),
    ("icscf", 5052),
    ("bgcf", 5053),
    ("mmtel", 5055),
    ("cdiv", 0),
    ("gemini", 0),
    ("mangelwurzel", 0),
    ("memento", 0),
)

_LABEL_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")


class RecordRoutingModel(enum.Enum):
    """Where sprout Record-Routes (``sprout_rr_level``, spec §3.8)."""

    PCSCF = "pcscf"  # start of originating and end of terminating processing
    PCSCF_ICSCF = "pcscf,icscf"  # also end of originating and start of terminating
    PCSCF_ICSCF_AS = "pcscf,icscf,as"  # also between every application server


def _record_routing_model(text: str) -> RecordRoutingModel:
    words = ",".join(word.strip() for word in text.lower().split(","))
    try:
        return RecordRoutingModel(words)
    except ValueError:
        raise ValueError("expected pcscf, pcscf,icscf or pcscf,icscf,as") from None


def _label(text: str) -> str:
    """A sproutlet prefix: one DNS label (RFC 3261 §25.1 ``domainlabel``), as it is the first
    label of the sproutlet's host."""
    if _LABEL_RE.fullmatch(text) is None:
        raise ValueError("not a host name label")
    return text


def _sip_uri(text: str) -> SipUri:
    try:
        return parse_sip_uri(text)
    except ParseError as e:
        raise ValueError(e.reason) from None


def _plugin_option(text: str) -> str:
    """``PLUGIN,NAME,VALUE`` (spec §2.10), kept as written: the plugin loader splits it."""
    parts = text.split(",", 2)
    if len(parts) != 3 or not parts[0].strip() or not parts[1].strip():
        raise ValueError("expected PLUGIN,NAME,VALUE")
    return text


@attrs.frozen
class SproutletSettings:
    """One built-in sproutlet's settings (spec §2.9)."""

    name: str
    port: int  # 0: disabled
    prefix: str
    uri: SipUri

    @property
    def enabled(self) -> bool:
        return self.port != 0


_MEMORY = StoreUrl("memory")


@attrs.frozen
class SproutConfig:
    """Sprout's validated configuration: what ``makeService`` builds from."""

    home_domain: str
    additional_home_domains: tuple[str, ...]
    sprout_hostname: str
    local_ip: str
    public_ip: Optional[str]
    public_hostname: Optional[str]
    sip_port: int  # 0: none
    http_address: str
    http_port: int
    timer_c: int
    max_sproutlet_depth: int
    local_aliases: tuple[str, ...]
    remote_aliases: tuple[str, ...]
    always_serve_remote_aliases: bool
    record_routing_model: RecordRoutingModel
    reg_max_expires: int
    sub_max_expires: int
    plugin_paths: tuple[str, ...]
    plugin_options: tuple[str, ...]  # raw "PLUGIN,NAME,VALUE"
    sproutlets: tuple[SproutletSettings, ...]
    # The S-CSCF (issue #6).
    hs_hostname: Optional[tuple[str, int]] = None  # None: homestead in process
    homestead_timeout: float = 1.2  # seconds
    registration_store: StoreUrl = _MEMORY
    impi_store: StoreUrl = _MEMORY
    subscriber_store: StoreUrl = _MEMORY
    subscriber_cache_ttl: int = 10  # seconds; 0: no cache
    reg_event_partial_state: bool = False
    authentication: bool = True
    nonce_count_supported: bool = False
    non_register_authentication: frozenset[NonRegisterAuthentication] = frozenset()
    digest_algorithms: tuple[str, ...] = ("MD5",)
    reg_min_expires: int = 0
    default_session_expires: int = 600

    def sproutlet(self, name: str) -> SproutletSettings:
        """The settings of the built-in sproutlet ``name``."""
        return next(s for s in self.sproutlets if s.name == name)


_HOSTS = comma_list(host)
_EXPIRES = int_range(1, 2**31 - 1)

HOME_DOMAIN = Setting("home-domain", "home_domain", host, help="Home SIP domain (required)")
ADDITIONAL_HOME_DOMAINS = Setting(
    "additional-home-domains",
    "additional_home_domains",
    _HOSTS,
    default="",
    help="Other domains served as home, comma-separated",
)
SPROUT_HOSTNAME = Setting(
    "sprout-hostname",
    "sprout_hostname",
    host,
    help="Cluster host name of sprout",
    default_help="sprout.<home domain>",
)
LOCAL_IP = Setting("local-ip", "local_ip", ip_address, "127.0.0.1", "This node's IP address")
PUBLIC_IP = Setting("public-ip", "public_ip", ip_address, help="This node's public IP address")
PUBLIC_HOSTNAME = Setting(
    "public-hostname", "public_hostname", host, help="This node's public host name"
)
SIP_PORT = Setting(
    "sip-port", None, port_number, "0", "Extra SIP port (UDP+TCP) bound to no sproutlet; 0: none"
)
HTTP_ADDRESS = Setting(
    "http-address", None, ip_address, "127.0.0.1", "Address the HTTP interface binds to"
)
HTTP_PORT = Setting("http-port", None, port_number, "9888", "Port of the HTTP interface")
TIMER_C = Setting(
    "timer-c",
    None,
    int_range(1, 3600),
    "180",
    "Seconds an INVITE fork may go without a provisional response (RFC 3261 §16.8 timer C)",
)
MAX_SPROUTLET_DEPTH = Setting(
    "max-sproutlet-depth",
    "max_sproutlet_depth",
    int_range(1, 1000),
    "50",
    "Sproutlet hops before 483 Too Many Hops",
)
LOCAL_ALIAS_LIST = Setting(
    "local-alias-list",
    "local_alias_list",
    _HOSTS,
    default="",
    help="Other host names and addresses of this node, comma-separated",
)
REMOTE_ALIAS_LIST = Setting(
    "remote-alias-list",
    "remote_alias_list",
    _HOSTS,
    default="",
    help="Host names of other sprout nodes served as local, comma-separated",
)
ALWAYS_SERVE_REMOTE_ALIASES = Setting(
    "always-serve-remote-aliases",
    "always_serve_remote_aliases",
    yes_no,
    "Y",
    "Serve remote aliases on internal hops too (Y/N)",
)
RECORD_ROUTING_MODEL = Setting(
    "record-routing-model",
    "sprout_rr_level",
    _record_routing_model,
    "pcscf",
    "Where to Record-Route: pcscf, pcscf,icscf or pcscf,icscf,as",
)
REG_MAX_EXPIRES = Setting(
    "reg-max-expires", "reg_max_expires", _EXPIRES, "300", "Longest registration, seconds"
)
DEFAULT_SESSION_EXPIRES = Setting(
    "default-session-expires",
    "default_session_expires",
    int_range(90, 2**31 - 1),
    "600",
    "Session-Expires of the calls the S-CSCF Record-Routes, seconds (RFC 4028; at least 90)",
)
SUB_MAX_EXPIRES = Setting(
    "sub-max-expires",
    "sub_max_expires",
    _EXPIRES,
    help="Longest subscription, seconds",
    default_help="reg-max-expires + 161",
)


def _host_port(text: str) -> tuple[str, int]:
    """``HOST[:PORT]`` (port 8888 when not given: homestead's)."""
    name, colon, port = text.rpartition(":")
    if not colon or "]" in port:
        name, port = text, "8888"
    return host(name.strip("[]")), port_number(port)


def _cas_store(text: str) -> StoreUrl:
    return parse_store_url(text, kinds=("memory", "redis", "memcached"))


def _subscriber_store(text: str) -> StoreUrl:
    return parse_store_url(text, kinds=("memory", "sqlite", "redis"))


def _non_register_authentication(text: str) -> frozenset[NonRegisterAuthentication]:
    values = [word.strip().lower() for word in text.split(",") if word.strip()]
    try:
        return frozenset(NonRegisterAuthentication(v) for v in values)
    except ValueError:
        allowed = ", ".join(v.value for v in NonRegisterAuthentication)
        raise ValueError("expected a comma-separated list of: " + allowed) from None


def _digest_algorithms(text: str) -> tuple[str, ...]:
    names = tuple(word.strip().upper() for word in text.split(",") if word.strip())
    if not names or names[0] != "MD5":
        raise ValueError("MD5 must come first (many phones answer only the first challenge)")
    for name in names:
        if name not in ("MD5", "SHA-256") or name not in SUPPORTED_ALGORITHMS:
            raise ValueError("unsupported digest algorithm " + name + " (MD5, SHA-256)")
    return names


HS_HOSTNAME = Setting(
    "hs-hostname",
    "hs_hostname",
    _host_port,
    help="Homestead HOST[:PORT] (port 8888); none: homestead in process over --subscriber-store",
)
HOMESTEAD_TIMEOUT = Setting(
    "homestead-timeout",
    "sprout_homestead_timeout_ms",
    int_range(10, 60000),
    "1200",
    "Milliseconds to wait for homestead",
)
REGISTRATION_STORE = Setting(
    "registration-store",
    "sprout_registration_store",
    _cas_store,
    "memory:",
    "Registrations: memory:, redis://HOST:PORT/DB or memcached://HOST:PORT",
)
IMPI_STORE = Setting(
    "impi-store",
    "sprout_impi_store",
    _cas_store,
    help="Authentication challenges (same forms)",
    default_help="--registration-store",
)
SUBSCRIBER_STORE = Setting(
    "subscriber-store",
    "homestead_store",
    _subscriber_store,
    help="Subscribers, for the in-process homestead: memory:, sqlite:PATH or redis://...",
    default_help=default_store(),
)
SUBSCRIBER_CACHE_TTL = Setting(
    "subscriber-cache-ttl",
    None,
    int_range(0, 3600),
    "10",
    "Seconds the in-process homestead reuses subscriber data read from a SQLite or Redis "
    "store (changes made through another process are seen within it); 0: no cache",
)
REG_EVENT_PARTIAL_STATE = Setting(
    "reg-event-partial-state",
    "reg_event_partial_state",
    yes_no,
    "N",
    "Y: reg-event NOTIFYs after a subscription's first carry only what changed (RFC 3680 "
    "partial state); N: full state every time, as Clearwater",
)
AUTHENTICATION = Setting(
    "authentication", "authentication", yes_no, "Y", "Authenticate REGISTERs (Y/N)"
)
NONCE_COUNT_SUPPORTED = Setting(
    "nonce-count-supported",
    "nonce_count_supported",
    yes_no,
    "N",
    "Accept digest answers re-using a nonce with a higher nc (Y/N)",
)
NON_REGISTER_AUTHENTICATION = Setting(
    "non-register-authentication",
    "non_register_authentication",
    _non_register_authentication,
    "",
    "When to challenge initial non-REGISTERs: if_proxy_authorization_present, "
    "initial_req_from_reg_digest_endpoint (comma-separated)",
)
DIGEST_ALGORITHMS = Setting(
    "digest-algorithms",
    "digest_algorithms",
    _digest_algorithms,
    "MD5",
    "Digest challenges offered, in order: MD5 or MD5,SHA-256 (RFC 8760)",
)
REG_MIN_EXPIRES = Setting(
    "reg-min-expires",
    "reg_min_expires",
    int_range(0, 2**31 - 1),
    "0",
    "Shortest registration, seconds; shorter gets 423; 0: any",
)
PLUGIN_PATH = Repeated("plugin-path", directory, "Directory to load sproutlet plugins from")
PLUGIN_OPTION = Repeated(
    "plugin-option", _plugin_option, "PLUGIN,NAME,VALUE: an option for a plugin", short="N"
)


@attrs.frozen
class _SproutletRows:
    name: str
    port: Setting[int]
    prefix: Setting[str]
    uri: Setting[SipUri]


def _sproutlet_rows(name: str, port: int) -> _SproutletRows:
    return _SproutletRows(
        name,
        Setting(name, name, port_number, str(port), f"Port of the {name} sproutlet; 0: disabled"),
        Setting(
            f"prefix-{name}",
            f"{name}_prefix",
            _label,
            name,
            f"First host label of the {name} sproutlet's URI",
        ),
        Setting(
            f"uri-{name}",
            f"{name}_uri",
            _sip_uri,
            help=f"URI of the {name} sproutlet",
            default_help="sip:<prefix>.<sprout hostname>;transport=tcp",
        ),
    )


_SPROUTLET_ROWS = tuple(_sproutlet_rows(name, port) for name, port in BUILTIN_SPROUTLETS)


class SproutOptions(ConfigOptions):
    """Options of ``twistd sprout``; :meth:`config` returns the frozen result."""

    longdesc = (
        "Sprout: S-CSCF, I-CSCF, BGCF and application servers as sproutlets. Options not given "
        "are read from --config files (Clearwater's shared_config format), else defaulted."
    )
    settings: ClassVar[tuple[AnySetting, ...]] = (
        HOME_DOMAIN,
        ADDITIONAL_HOME_DOMAINS,
        SPROUT_HOSTNAME,
        LOCAL_IP,
        PUBLIC_IP,
        PUBLIC_HOSTNAME,
        SIP_PORT,
        HTTP_ADDRESS,
        HTTP_PORT,
        TIMER_C,
        MAX_SPROUTLET_DEPTH,
        LOCAL_ALIAS_LIST,
        REMOTE_ALIAS_LIST,
        ALWAYS_SERVE_REMOTE_ALIASES,
        RECORD_ROUTING_MODEL,
        REG_MAX_EXPIRES,
        SUB_MAX_EXPIRES,
        DEFAULT_SESSION_EXPIRES,
        REG_EVENT_PARTIAL_STATE,
        REG_MIN_EXPIRES,
        HS_HOSTNAME,
        HOMESTEAD_TIMEOUT,
        REGISTRATION_STORE,
        IMPI_STORE,
        SUBSCRIBER_STORE,
        SUBSCRIBER_CACHE_TTL,
        AUTHENTICATION,
        NONCE_COUNT_SUPPORTED,
        NON_REGISTER_AUTHENTICATION,
        DIGEST_ALGORITHMS,
        PLUGIN_PATH,
        PLUGIN_OPTION,
        *(row for rows in _SPROUTLET_ROWS for row in (rows.port, rows.prefix, rows.uri)),
    )

    def __init__(self) -> None:
        super().__init__()
        self._config: Optional[SproutConfig] = None

    @override
    def postOptions(self) -> None:
        """Merge the sources, derive the dependent defaults, check and freeze the result."""
        super().postOptions()
        home_domain = self.required_value(HOME_DOMAIN)
        hostname = self.value_or_derived(SPROUT_HOSTNAME, "sprout." + home_domain)
        reg_max_expires = self.required_value(REG_MAX_EXPIRES)
        sproutlets = tuple(self._sproutlet(rows, hostname) for rows in _SPROUTLET_ROWS)
        sip_port = self.required_value(SIP_PORT)
        self._check_unique(sproutlets, sip_port)
        registration_store = self.required_value(REGISTRATION_STORE)
        self._config = SproutConfig(
            home_domain=home_domain,
            additional_home_domains=self.required_value(ADDITIONAL_HOME_DOMAINS),
            sprout_hostname=hostname,
            local_ip=self.required_value(LOCAL_IP),
            public_ip=self.setting_value(PUBLIC_IP),
            public_hostname=self.setting_value(PUBLIC_HOSTNAME),
            sip_port=sip_port,
            http_address=self.required_value(HTTP_ADDRESS),
            http_port=self.required_value(HTTP_PORT),
            timer_c=self.required_value(TIMER_C),
            max_sproutlet_depth=self.required_value(MAX_SPROUTLET_DEPTH),
            local_aliases=self.required_value(LOCAL_ALIAS_LIST),
            remote_aliases=self.required_value(REMOTE_ALIAS_LIST),
            always_serve_remote_aliases=self.required_value(ALWAYS_SERVE_REMOTE_ALIASES),
            record_routing_model=self.required_value(RECORD_ROUTING_MODEL),
            reg_max_expires=reg_max_expires,
            sub_max_expires=self.value_or_derived(SUB_MAX_EXPIRES, str(reg_max_expires + 161)),
            plugin_paths=self.repeated_values(PLUGIN_PATH),
            plugin_options=self.repeated_values(PLUGIN_OPTION),
            sproutlets=sproutlets,
            hs_hostname=self.setting_value(HS_HOSTNAME),
            homestead_timeout=self.required_value(HOMESTEAD_TIMEOUT) / 1000,
            registration_store=registration_store,
            impi_store=self.setting_value(IMPI_STORE) or registration_store,
            subscriber_store=self.value_or_derived(SUBSCRIBER_STORE, default_store()),
            subscriber_cache_ttl=self.required_value(SUBSCRIBER_CACHE_TTL),
            reg_event_partial_state=self.required_value(REG_EVENT_PARTIAL_STATE),
            authentication=self.required_value(AUTHENTICATION),
            nonce_count_supported=self.required_value(NONCE_COUNT_SUPPORTED),
            non_register_authentication=self.required_value(NON_REGISTER_AUTHENTICATION),
            digest_algorithms=self.required_value(DIGEST_ALGORITHMS),
            reg_min_expires=self.required_value(REG_MIN_EXPIRES),
            default_session_expires=self.required_value(DEFAULT_SESSION_EXPIRES),
        )

    def _sproutlet(self, rows: _SproutletRows, hostname: str) -> SproutletSettings:
        prefix = self.required_value(rows.prefix)
        uri = self.value_or_derived(rows.uri, f"sip:{prefix}.{hostname};transport=tcp")
        return SproutletSettings(rows.name, self.required_value(rows.port), prefix, uri)

    @staticmethod
    def _check_unique(sproutlets: tuple[SproutletSettings, ...], sip_port: int) -> None:
        ports = {sip_port: "--sip-port"} if sip_port else {}
        prefixes: dict[str, str] = {}
        for sproutlet in sproutlets:
            if not sproutlet.enabled:
                continue
            option = "--" + sproutlet.name
            if sproutlet.port in ports:
                raise usage.UsageError(
                    f"{ports[sproutlet.port]} and {option} both use port {sproutlet.port}"
                )
            ports[sproutlet.port] = option
            prefix = sproutlet.prefix.lower()
            if prefix in prefixes:
                raise usage.UsageError(
                    f"--prefix-{prefixes[prefix]} and --prefix-{sproutlet.name} are both "
                    f"{sproutlet.prefix!r}"
                )
            prefixes[prefix] = sproutlet.name

    def config(self) -> SproutConfig:
        """The frozen configuration; only after :meth:`parseOptions` succeeded."""
        if self._config is None:
            raise RuntimeError("SproutOptions.config() before parseOptions()")
        return self._config


#: twistd's name for the options class (``ServiceMaker`` looks up ``options``).
Options = SproutOptions


def makeService(options: SproutOptions) -> IService:  # noqa: N802 (twistd's name)
    """The ``twistd sprout`` service tree (see :mod:`clearwater.services.sprout.service`)."""
    from twisted.internet import reactor

    from clearwater.services.sprout.service import make_service

    return make_service(options.config(), cast(ISipReactor, reactor))
