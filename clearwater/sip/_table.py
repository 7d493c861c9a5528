"""The SIP header table: canonical names, compact forms (RFC 3261 §7.3.3) and list headers.

A header's *key* is its lower-cased long name; a :class:`HeaderSpec` ties a key to the
function that parses one of its values. Headers whose grammar is ``X *(COMMA X)`` may be
comma-joined on one line (RFC 3261 §7.3.1); the table says which.
"""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from typing_extensions import override

__all__ = ["HeaderSpec", "canonical_name", "header_key", "is_list_header"]

T_co = TypeVar("T_co", covariant=True)

# (canonical name, compact form or "", comma-list allowed)
_TABLE: tuple[tuple[str, str, bool], ...] = (
    ("Accept", "", True),
    ("Accept-Contact", "a", True),
    ("Accept-Encoding", "", True),
    ("Accept-Language", "", True),
    ("Alert-Info", "", True),
    ("Allow", "", True),
    ("Allow-Events", "u", True),
    ("Authentication-Info", "", False),
    ("Authorization", "", False),
    ("Call-ID", "i", False),
    ("Call-Info", "", True),
    ("Contact", "m", True),
    ("Content-Disposition", "", False),
    ("Content-Encoding", "e", True),
    ("Content-Language", "", True),
    ("Content-Length", "l", False),
    ("Content-Type", "c", False),
    ("CSeq", "", False),
    ("Date", "", False),
    ("Error-Info", "", True),
    ("Event", "o", False),
    ("Expires", "", False),
    ("From", "f", False),
    ("History-Info", "", True),
    ("Identity", "y", False),
    ("In-Reply-To", "", True),
    ("Max-Forwards", "", False),
    ("Min-Expires", "", False),
    ("Min-SE", "", False),
    ("MIME-Version", "", False),
    ("Organization", "", False),
    ("P-Access-Network-Info", "", True),
    ("P-Asserted-Identity", "", True),
    ("P-Associated-URI", "", True),
    ("P-Called-Party-ID", "", False),
    ("P-Charging-Function-Addresses", "", False),
    ("P-Charging-Vector", "", False),
    ("P-Preferred-Identity", "", True),
    ("P-Profile-Key", "", False),
    ("P-Served-User", "", False),
    ("P-Visited-Network-ID", "", True),
    ("Path", "", True),
    ("Priority", "", False),
    ("Privacy", "", False),
    ("Proxy-Authenticate", "", False),
    ("Proxy-Authorization", "", False),
    ("Proxy-Require", "", True),
    ("RAck", "", False),
    ("Reason", "", True),
    ("Record-Route", "", True),
    ("Refer-To", "r", False),
    ("Referred-By", "b", False),
    ("Reject-Contact", "j", True),
    ("Reply-To", "", False),
    ("Request-Disposition", "d", True),
    ("Require", "", True),
    ("Retry-After", "", False),
    ("Route", "", True),
    ("RSeq", "", False),
    ("Security-Client", "", True),
    ("Security-Server", "", True),
    ("Security-Verify", "", True),
    ("Server", "", False),
    ("Service-Route", "", True),
    ("Session-Expires", "x", False),
    ("Subject", "s", False),
    ("Subscription-State", "", False),
    ("Supported", "k", True),
    ("Timestamp", "", False),
    ("To", "t", False),
    ("Unsupported", "", True),
    ("User-Agent", "", False),
    ("Via", "v", True),
    ("Warning", "", True),
    ("WWW-Authenticate", "", False),
)

#: lower-cased name, canonical name or compact form -> (key, canonical name, comma-list
#: allowed). The key of a header is its lower-cased long name; unknown headers are keyed by
#: their lower-cased name. The canonical spelling ("Call-ID") is what most messages use: it is
#: found without lower-casing first.
_BY_NAME: dict[str, tuple[str, str, bool]] = {}
for _name, _compact, _is_list in _TABLE:
    _entry = (_name.lower(), _name, _is_list)
    _BY_NAME[_name.lower()] = _entry
    _BY_NAME[_name] = _entry
    if _compact:
        _BY_NAME[_compact] = _entry
del _name, _compact, _is_list, _entry


def header_key(name: str) -> str:
    """The lookup key of a header name: its lower-cased long form (``"v"`` -> ``"via"``)."""
    entry = _BY_NAME.get(name)
    if entry is None:
        lname = name.lower()
        entry = _BY_NAME.get(lname)
        if entry is None:
            return lname
    return entry[0]


def canonical_name(name: str) -> str:
    """The long form with the usual capitalisation for known headers, else ``name`` itself."""
    entry = _BY_NAME.get(name.lower())
    return name if entry is None else entry[1]


def is_list_header(name: str) -> bool:
    """True if the header's grammar allows several comma-separated values on one line."""
    entry = _BY_NAME.get(name.lower())
    return entry is not None and entry[2]


class HeaderSpec(Generic[T_co]):
    """How to get typed values of one header: ``msg.headers.parsed(VIA)`` -> ``list[Via]``.

    :ivar name: canonical header name.
    :ivar key: lookup key (lower-cased long name).
    :ivar multi: the header may carry several comma-separated values per line.
    :ivar parse: parses one value (one list element for ``multi`` headers); raises ParseError.
    """

    __slots__ = ("key", "multi", "name", "parse")

    def __init__(self, name: str, parse: Callable[[str], T_co]) -> None:
        self.name = canonical_name(name)
        self.key = header_key(name)
        self.multi = is_list_header(name)
        self.parse = parse

    @override
    def __repr__(self) -> str:
        return "HeaderSpec(" + self.name + ")"
