"""What the S-CSCF sproutlets are configured with (spec §3, §8.1): one frozen value, built
by ``twistd sprout`` from its options and by tests directly."""

from __future__ import annotations

import enum

import attrs

__all__ = [
    "AUTH_CHALLENGE_EXPIRES",
    "AUTH_TIMER_INTERVAL",
    "MAX_FORKS",
    "NonRegisterAuthentication",
    "ScscfConfig",
]

#: Seconds a fresh challenge is kept (Clearwater's ``AUTH_CHALLENGE_INIT_EXPIRES``, spec §3.2).
AUTH_CHALLENGE_EXPIRES = 40

#: Seconds before an unanswered challenge is reported to homestead as
#: ``dereg-auth-timeout`` (spec §3.2: the Chronos timer of the challenge).
AUTH_TIMER_INTERVAL = 30

#: The most bindings a terminating request is forked to (Clearwater's ``MAX_FORKING``, §3.10).
MAX_FORKS = 10


class NonRegisterAuthentication(enum.Enum):
    """When initial non-REGISTER requests are challenged (``non_register_authentication``,
    spec §3.1)."""

    #: The request carries Proxy-Authorization.
    IF_PROXY_AUTHORIZATION_PRESENT = "if_proxy_authorization_present"
    #: The top Route has ``username=``: the endpoint registered with digest.
    INITIAL_REQ_FROM_REG_DIGEST_ENDPOINT = "initial_req_from_reg_digest_endpoint"


@attrs.frozen
class ScscfConfig:
    """The S-CSCF's settings.

    ``scscf_uri`` is the S-CSCF's cluster URI (``sip:scscf.<sprout hostname>;transport=tcp``):
    the ``server_name`` given to homestead, and, with ``lr`` and ``orig``, the Service-Route.
    ``home_domains`` are the home domain first, then the additional ones.
    """

    home_domains: tuple[str, ...]
    scscf_uri: str
    auth_realm: str = ""  # default: the home domain
    reg_max_expires: int = 300
    sub_max_expires: int = 0  # default: reg_max_expires + 161
    authentication: bool = True
    nonce_count_supported: bool = False
    non_register_authentication: frozenset[NonRegisterAuthentication] = frozenset()
    #: Digest algorithms challenged with, in order: MD5 always first (many phones and SIPp
    #: answer only the first challenge); SHA-256 (RFC 8760) only when configured.
    digest_algorithms: tuple[str, ...] = ("MD5",)
    #: Host names of this node (besides the home domains) a REGISTER's Request-URI may name.
    local_hosts: tuple[str, ...] = ()
    #: Shortest registration accepted, seconds: shorter gets 423 (RFC 3261 §10.3 step 7);
    #: 0 (Clearwater's behaviour) accepts any.
    reg_min_expires: int = 0
    #: Challenge every initial request whose Route has ``auto-reg`` (what the all-in-one's
    #: phone port puts on requests from phones), not only those with Proxy-Authorization.
    authenticate_auto_reg: bool = False
    #: Reg-event NOTIFYs after a subscription's first carry partial state (RFC 3680 §5.2:
    #: only what changed, ``version`` counted per subscription); False: full state every
    #: time, versioned by the AoR's ``notify_cseq``, as Clearwater sent them.
    reg_event_partial_state: bool = False
    #: Session-Expires asked of the INVITEs and UPDATEs the S-CSCF Record-Routes (spec §3.8,
    #: RFC 4028 §8: ``default_session_expires``; at least 90).
    session_expires: int = 600

    @property
    def home_domain(self) -> str:
        return self.home_domains[0]

    @property
    def realm(self) -> str:
        return self.auth_realm or self.home_domains[0]

    @property
    def max_subscription_expires(self) -> int:
        return self.sub_max_expires or self.reg_max_expires + 161

    def is_home_domain(self, host: str) -> bool:
        host = host.lower()
        return any(host == domain.lower() for domain in self.home_domains)

    def is_local_host(self, host: str) -> bool:
        """A home domain or one of this node's names."""
        host = host.lower()
        return self.is_home_domain(host) or any(host == h.lower() for h in self.local_hosts)
