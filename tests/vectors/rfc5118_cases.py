"""Expected outcome of each RFC 5118 §4 IPv6 torture message (file in rfc5118/), with the
subsection it comes from."""

from __future__ import annotations

from tests.vectors.rfc4475_cases import Case, Outcome

__all__ = ["CASES", "Case", "Outcome"]

# File names are the RFC's own "Message Details" names (also the names in its Appendix A
# archive) plus ".dat". Three Content-Length values differ from the RFC's: see rfc5118/README.md.
CASES: tuple[Case, ...] = (
    Case(
        file="ipv6-good.dat",
        section="4.1",
        title="Valid SIP Message with an IPv6 Reference",
        outcome=Outcome.ACCEPT,
        status=None,
        layer=None,
        note="IPv6 references in Request-URI sip:[2001:db8::10], Via sent-by and Contact;"
        ' "well-formatted according to the grammar in [RFC3261]."',
    ),
    Case(
        file="ipv6-bad.dat",
        section="4.2",
        title="Invalid SIP Message with an IPv6 Reference",
        outcome=Outcome.PARSE_ERROR,
        status=400,
        layer=None,
        note='Request-URI sip:2001:db8::10 lacks the mandated "[" "]" delimiters; "should'
        ' respond with a 400 Bad Request error."',
    ),
    Case(
        file="port-ambiguous.dat",
        section="4.3",
        title="Port Ambiguous in a SIP URI",
        outcome=Outcome.ACCEPT,
        status=None,
        layer=None,
        note="Request-URI sip:[2001:db8::10:5070]: the intended port sits inside the brackets"
        ' and is the last group of the address; "From a parsing perspective ... well-formed":'
        " host is 2001:db8::10:5070 with no port (it just will not reach port 5070).",
    ),
    Case(
        file="port-unambiguous.dat",
        section="4.4",
        title="Port Unambiguous in a SIP URI",
        outcome=Outcome.ACCEPT,
        status=None,
        layer=None,
        note="Request-URI sip:[2001:db8::10]:5070: host [2001:db8::10], port 5070;"
        ' "well formatted per the grammar in [RFC3261]."',
    ),
    Case(
        file="via-received-param-with-delim.dat",
        section="4.5",
        title="IPv6 Reference Delimiters in Via Header",
        outcome=Outcome.ACCEPT,
        status=None,
        layer=None,
        note="Via received=[2001:db8::9:255] with brackets: invalid by a strict reading of"
        ' via-received = IPv6address, yet "robust implementations must nonetheless be able to'
        ' parse the topmost Via header field and continue processing the request."',
    ),
    Case(
        file="via-received-param-no-delim.dat",
        section="4.5",
        title="IPv6 Reference Delimiters in Via Header",
        outcome=Outcome.ACCEPT,
        status=None,
        layer=None,
        note="Via received=2001:db8::9:255 without brackets; valid per RFC 3261; accept the"
        ' received param with or without brackets, and "When sending ... must not put" them.',
    ),
    Case(
        file="ipv6-in-sdp.dat",
        section="4.6",
        title="SIP Request with IPv6 Addresses in Session Description Protocol (SDP) Body",
        outcome=Outcome.ACCEPT,
        status=None,
        layer=None,
        note="INVITE with IPv6 references in SIP and bare IPv6 (no brackets) in SDP o=/c=;"
        " valid and well-formed. RFC prints Content-Length 268; file uses 251 (CRLF body).",
    ),
    Case(
        file="mult-ip-in-header.dat",
        section="4.7",
        title="Multiple IP Addresses in SIP Headers",
        outcome=Outcome.ACCEPT,
        status=None,
        layer=None,
        note="BYE whose Via list mixes [2001:db8::9:1]:6050, 192.0.2.1 and [2001:db8::9:255]"
        " with received=192.0.2.200; valid and well-formed.",
    ),
    Case(
        file="mult-ip-in-sdp.dat",
        section="4.8",
        title="Multiple IP Addresses in SDP",
        outcome=Outcome.ACCEPT,
        status=None,
        layer=None,
        note="SDP with an IPv4 c= on the audio m= line and an IPv6 c= on the video line;"
        " valid and well-formed. RFC prints Content-Length 181; file uses 189 (CRLF body).",
    ),
    Case(
        file="ipv4-mapped-ipv6.dat",
        section="4.9",
        title="IPv4-Mapped IPv6 Addresses",
        outcome=Outcome.ACCEPT,
        status=None,
        layer=None,
        note="[::ffff:192.0.2.10]:19823 and [::ffff:192.0.2.2] in Vias, Contact and SDP; must"
        " be parsed successfully. RFC prints Content-Length 236; file uses 245 (CRLF body).",
    ),
    Case(
        file="ipv6-bug-abnf-3-colons.dat",
        section="4.10",
        title="IPv6 Reference Bug in RFC 3261 ABNF",
        outcome=Outcome.ACCEPT,
        status=None,
        layer=None,
        note="[2001:db8:::192.0.2.1] (extra colon) matches the RFC 3261 ABNF but not RFC 4291;"
        ' "an implementation must tolerate both" constructs (may ignore the extra colon; a'
        " proxy may re-serialize without it).",
    ),
    Case(
        file="ipv6-correct-abnf-2-colons.dat",
        section="4.10",
        title="IPv6 Reference Bug in RFC 3261 ABNF",
        outcome=Outcome.ACCEPT,
        status=None,
        layer=None,
        note="[2001:db8::192.0.2.1], the correct form of the 4.10 address in Request-URI and"
        ' To; "the correct syntax for the IPv6 reference in the R-URI."',
    ),
)
