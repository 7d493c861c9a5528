"""Expected outcome of each RFC 4475 §3 torture message (file in rfc4475/),
with the subsection it comes from."""

from __future__ import annotations

import enum
from typing import NamedTuple, Optional


class Outcome(enum.Enum):
    # well formed: parse and accept (RFC says process normally)
    ACCEPT = "accept"
    # the message parser must reject it (400 for requests, or drop for responses; status given)
    PARSE_ERROR = "parse-error"
    # syntactically parseable; a later layer rejects or drops it with `status`
    LATER = "later"


class Case(NamedTuple):
    file: str  # "wsinv.dat"
    section: str  # "3.1.1.1"
    title: str  # the RFC subsection title, e.g. "A Short Tortuous INVITE"
    outcome: Outcome
    status: Optional[int]  # response the RFC names; None if none (accept, or drop)
    layer: Optional[str]  # for LATER: "transport", "transaction", "proxy", "uas", "registrar"
    note: str  # one line: what is tortuous about it and what the RFC says to do


# RFC 4475 numbers its sections 3.1.1 (valid), 3.1.2 (invalid), 3.2 (transaction layer),
# 3.3 (application layer) and 3.4 (backward compatibility); the section strings below are the
# RFC's own numbers.
CASES: tuple[Case, ...] = (
    # 3.1.1 Valid Messages
    Case(
        file="wsinv.dat",
        section="3.1.1.1",
        title="A Short Tortuous INVITE",
        outcome=Outcome.ACCEPT,
        status=None,
        layer=None,
        note="Folding, LWS around ':' ';' '=' and '/', escaped quotes, mixed short/long header"
        " names, odd case, leading zeros in Max-Forwards/CSeq, unknown header with ';;,,;;,;'"
        ' value; "All elements should treat this as a well-formed request."',
    ),
    Case(
        file="intmeth.dat",
        section="3.1.1.2",
        title="Wide Range of Valid Characters",
        outcome=Outcome.ACCEPT,
        status=None,
        layer=None,
        note="Unknown method made of every token char ('%' is not an escape there), odd"
        " Request-URI, quoted NUL/BEL/DEL in To, UTF-8 param value; well formed: a proxy"
        " forwards it (404 if it does not know the URI), an endpoint answers 501 with Allow.",
    ),
    Case(
        file="esc01.dat",
        section="3.1.1.3",
        title="Valid Use of the % Escaping Mechanism",
        outcome=Outcome.ACCEPT,
        status=None,
        layer=None,
        note="%HEX escapes in Request-URI user, From/To users and Contact URI params"
        ' ("v%61lue%25%34%31" is "value%41", not "valueA": no recursive unescaping);'
        ' "A parser must accept this as a well-formed message."',
    ),
    Case(
        file="escnull.dat",
        section="3.1.1.4",
        title="Escaped Nulls in URIs",
        outcome=Outcome.ACCEPT,
        status=None,
        layer=None,
        note="REGISTER with %00 in AOR and Contact userparts; parsers must accept; unescaping"
        " must not truncate the user; it registers two distinct contacts (%00 and %00%00).",
    ),
    Case(
        file="esc02.dat",
        section="3.1.1.5",
        title="Use of % When It Is Not an Escape",
        outcome=Outcome.ACCEPT,
        status=None,
        layer=None,
        note="Method RE%47IST%45R is an unknown method, not REGISTER; 'C%6Fntact' is an"
        ' extension header, so two Contacts; "A parser should accept this message as well'
        ' formed"; a proxy forwards or rejects per the Request-URI; "An endpoint would reject'
        ' this message with a 501."',
    ),
    Case(
        file="lwsdisp.dat",
        section="3.1.1.6",
        title="Message with No LWS between Display Name and <",
        outcome=Outcome.ACCEPT,
        status=None,
        layer=None,
        note="From: caller<sip:...> violates the RFC 3261 grammar, a known spec bug;"
        ' "Elements should accept this request as well formed."',
    ),
    Case(
        file="longreq.dat",
        section="3.1.1.7",
        title="Long Values in Header Fields",
        outcome=Outcome.ACCEPT,
        status=None,
        layer=None,
        note="Very long display name, tag, Call-ID, branch, unknown header/params and 34 Via"
        " values in assorted name cases; well-formed request, must be accepted.",
    ),
    Case(
        file="dblreq.dat",
        section="3.1.1.8",
        title="Extra Trailing Octets in a UDP Datagram",
        outcome=Outcome.ACCEPT,
        status=None,
        layer=None,
        note="REGISTER (Content-Length 0) followed in the same datagram by an INVITE;"
        " per RFC 3261 18.3 the trailing octets are noise: handle the REGISTER normally,"
        " ignore the rest and never forward it.",
    ),
    Case(
        file="semiuri.dat",
        section="3.1.1.9",
        title="Semicolon-Separated Parameters in URI User Part",
        outcome=Outcome.ACCEPT,
        status=None,
        layer=None,
        note='Request-URI sip:user;par=u%40example.net@example.com: user part is "user;par=u@'
        'example.net"; "Receiving elements will accept this as a well-formed message."',
    ),
    Case(
        file="transports.dat",
        section="3.1.1.10",
        title="Varied and Unknown Transport Types",
        outcome=Outcome.ACCEPT,
        status=None,
        layer=None,
        note="Via values with UDP, SCTP, TLS, UNKNOWN and TCP transports; parsers must accept;"
        " processed exactly as if the lower Vias named UDP.",
    ),
    Case(
        file="mpart01.dat",
        section="3.1.1.11",
        title="Multipart MIME Message",
        outcome=Outcome.ACCEPT,
        status=None,
        layer=None,
        note="MESSAGE with multipart/mixed body whose second part is binary with 0x00 octets;"
        " frame by Content-Length; parsers must accept even without multipart/signed support.",
    ),
    Case(
        file="unreason.dat",
        section="3.1.1.12",
        title="Unusual Reason Phrase",
        outcome=Outcome.ACCEPT,
        status=None,
        layer=None,
        note='200 response with reason phrase "= 2**3 * 5**2" plus UTF-8 text; well formed;'
        ' "A parser must accept this message."',
    ),
    Case(
        file="noreason.dat",
        section="3.1.1.13",
        title="Empty Reason Phrase",
        outcome=Outcome.ACCEPT,
        status=None,
        layer=None,
        note='"SIP/2.0 100 " with an empty reason phrase (the SP after the code is present);'
        ' "A parser must accept this message."',
    ),
    # 3.1.2 Invalid Messages
    Case(
        file="badinv01.dat",
        section="3.1.2.1",
        title="Extraneous Header Field Separators",
        outcome=Outcome.PARSE_ERROR,
        status=400,
        layer=None,
        note='Via "192.0.2.15;;,;,," and Contact "...>;;;;" have empty params/values;'
        ' syntactically invalid; "should respond with a 400 Bad Request error."',
    ),
    Case(
        file="clerr.dat",
        section="3.1.2.2",
        title="Content Length Larger Than Message",
        outcome=Outcome.PARSE_ERROR,
        status=400,
        layer=None,
        note="Content-Length 9999 exceeds the body; over UDP respond 400; over a stream"
        " transport wait for more data and close the connection if none comes.",
    ),
    Case(
        file="ncl.dat",
        section="3.1.2.3",
        title="Negative Content-Length",
        outcome=Outcome.PARSE_ERROR,
        status=400,
        layer=None,
        note='Content-Length -999; "should respond with an error" (400 here); discard the'
        " rest of the datagram; over TCP the framing error is fatal: close the connection.",
    ),
    Case(
        file="scalar02.dat",
        section="3.1.2.4",
        title="Request Scalar Fields with Overlarge Values",
        outcome=Outcome.PARSE_ERROR,
        status=400,
        layer=None,
        note="CSeq > 2**32-1, Max-Forwards 300, Expires and Contact expires > 2**32-1; 400"
        ' "due to the CSeq error" (Max-Forwards alone could be ignored, expiries alone'
        " treated as the 3600 default).",
    ),
    Case(
        file="scalarlg.dat",
        section="3.1.2.5",
        title="Response Scalar Fields with Overlarge Values",
        outcome=Outcome.PARSE_ERROR,
        status=None,
        layer=None,
        note="503 response with CSeq > 2**32-1, huge Retry-After, 4-digit warn-code;"
        ' "An element receiving this response will simply discard it."',
    ),
    Case(
        file="quotbal.dat",
        section="3.1.2.6",
        title="Unterminated Quoted String in Display Name",
        outcome=Outcome.PARSE_ERROR,
        status=400,
        layer=None,
        note='To: "Mr. J. User <sip:...> has no closing quote; "should return a 400 Bad'
        ' Request error" (an element could try to infer the quote).',
    ),
    Case(
        file="ltgtruri.dat",
        section="3.1.2.7",
        title="<> Enclosing Request-URI",
        outcome=Outcome.PARSE_ERROR,
        status=400,
        layer=None,
        note='Request-URI written as <sip:user@example.com>; "reasonable always to reject'
        ' ... with a 400" (a liberal element may strip the brackets, never forward them).',
    ),
    Case(
        file="lwsruri.dat",
        section="3.1.2.8",
        title="Malformed SIP Request-URI (embedded LWS)",
        outcome=Outcome.PARSE_ERROR,
        status=400,
        layer=None,
        note='Request-URI "sip:user@example.com; lr" has LWS inside it; "should respond with'
        ' a 400 Bad Request" (could ignore the LWS where unambiguous).',
    ),
    Case(
        file="lwsstart.dat",
        section="3.1.2.9",
        title="Multiple SP Separating Request-Line Elements",
        outcome=Outcome.PARSE_ERROR,
        status=400,
        layer=None,
        note='Two SPs between Request-Line elements; "acceptable to reject this request as'
        ' malformed" (a liberal element may ignore them and must not forward them).',
    ),
    Case(
        file="trws.dat",
        section="3.1.2.10",
        title="SP Characters at End of Request-Line",
        outcome=Outcome.PARSE_ERROR,
        status=400,
        layer=None,
        note='Two SPs after "SIP/2.0" before CRLF; "acceptable to reject this request as'
        ' malformed" (a liberal element may ignore them and must not forward them).',
    ),
    Case(
        file="escruri.dat",
        section="3.1.2.11",
        title="Escaped Headers in SIP Request-URI",
        outcome=Outcome.PARSE_ERROR,
        status=400,
        layer=None,
        note='Request-URI carries "?Route=%3Csip:example.com%3E", not allowed in a'
        ' Request-URI; "acceptable ... to reject this request with a 400" (or ignore the'
        " headers and never forward or apply them).",
    ),
    Case(
        file="baddate.dat",
        section="3.1.2.12",
        title="Invalid Time Zone in Date Header Field",
        outcome=Outcome.ACCEPT,
        status=None,
        layer=None,
        note='Date uses "EST" (only "GMT" is valid); rejecting is allowed but an element'
        " \"shouldn't do that unless the contents of the Date header field were actually"
        ' important"; the parser does not validate Date and nothing here uses it: accept.',
    ),
    Case(
        file="regbadct.dat",
        section="3.1.2.13",
        title="Failure to Enclose name-addr URI in <>",
        outcome=Outcome.PARSE_ERROR,
        status=400,
        layer=None,
        note="Contact URI with an escaped '?Route=' header is not in <> (RFC 3261 20: URIs"
        ' with , ? or ; must be); "This REGISTER request is malformed", 400 "is reasonable"'
        " (a liberal element could infer the brackets here).",
    ),
    Case(
        file="badaspec.dat",
        section="3.1.2.14",
        title="Spaces within addr-spec",
        outcome=Outcome.PARSE_ERROR,
        status=400,
        layer=None,
        note='To: "Watson, Thomas" < sip:t.watson@example.org > has spaces inside <>;'
        ' parsers must not break; "reasonable to reject ... with a 400" (may ignore spaces).',
    ),
    Case(
        file="baddn.dat",
        section="3.1.2.15",
        title="Non-token Characters in Display Name",
        outcome=Outcome.PARSE_ERROR,
        status=400,
        layer=None,
        note="Unquoted display names with a comma (Bell, Alexander) in From and To;"
        ' "reasonable always to reject this kind of error with a 400" (a proxy inferring'
        " quotes must not propagate the error).",
    ),
    Case(
        file="badvers.dat",
        section="3.1.2.16",
        title="Unknown Protocol Version",
        outcome=Outcome.PARSE_ERROR,
        status=505,
        layer=None,
        note='Request-Line and Via say SIP/7.0; "should respond to the request with a 505'
        ' Version Not Supported error."',
    ),
    Case(
        file="mismatch01.dat",
        section="3.1.2.17",
        title="Start Line and CSeq Method Mismatch",
        outcome=Outcome.PARSE_ERROR,
        status=400,
        layer=None,
        note='OPTIONS request with "CSeq: 8 INVITE"; "Any element receiving this request will'
        ' respond with a 400 Bad Request."',
    ),
    Case(
        file="mismatch02.dat",
        section="3.1.2.18",
        title="Unknown Method with CSeq Method Mismatch",
        outcome=Outcome.PARSE_ERROR,
        status=400,
        layer=None,
        note='NEWMETHOD request with "CSeq: 8 INVITE"; "should respond with a 501 Not'
        ' Implemented. A 400 Bad Request is also acceptable": the parser, which does not'
        " know which methods an element implements, answers 400.",
    ),
    Case(
        file="bigcode.dat",
        section="3.1.2.19",
        title="Overlarge Response Code",
        outcome=Outcome.PARSE_ERROR,
        status=None,
        layer=None,
        note='Status code 4294967301 (> 699, overflows 32 bits); "An element receiving this'
        ' response should simply drop it."',
    ),
    # 3.2 Transaction Layer Semantics
    Case(
        file="badbranch.dat",
        section="3.2.1",
        title="Missing Transaction Identifier",
        outcome=Outcome.LATER,
        status=400,
        layer="transaction",
        note='branch is exactly "z9hG4bK" (magic cookie, no identifier); parser must not'
        " break; reject with 400 (preferably statelessly) or fall back to RFC 2543-style"
        " transaction matching.",
    ),
    # 3.3 Application-Layer Semantics
    Case(
        file="insuf.dat",
        section="3.3.1",
        title="Missing Required Header Fields",
        outcome=Outcome.PARSE_ERROR,
        status=400,
        layer=None,
        note='INVITE without Call-ID, From and To; must not break; "Ideally, it will respond'
        ' with a 400 Bad Request error." The parser checks these headers.',
    ),
    Case(
        file="unkscm.dat",
        section="3.3.2",
        title="Request-URI with Unknown Scheme",
        outcome=Outcome.LATER,
        status=416,
        layer="proxy",
        note="Request-URI nobodyKnowsThisScheme:totallyopaquecontent; parser must accept;"
        ' "An element receiving this request will reject it with a 416"; never route on To.',
    ),
    Case(
        file="novelsc.dat",
        section="3.3.3",
        title="Request-URI with Known but Atypical Scheme",
        outcome=Outcome.LATER,
        status=416,
        layer="proxy",
        note="Request-URI soap.beep://192.0.2.103:3002 (IANA-registered scheme); parser must"
        " accept; 416 if the scheme is never meaningful here, else 404 for URIs not accepted.",
    ),
    Case(
        file="unksm2.dat",
        section="3.3.4",
        title="Unknown URI Schemes in Header Fields",
        outcome=Outcome.LATER,
        status=400,
        layer="registrar",
        note="REGISTER with isbn: To, http: From, name: Contact; syntactically valid, parsers"
        " must not fail; proxies treat it normally; a registrar answers 400 (To must be a"
        " SIP/SIPS AOR).",
    ),
    Case(
        file="bext01.dat",
        section="3.3.5",
        title="Proxy-Require and Require",
        outcome=Outcome.LATER,
        status=420,
        layer="proxy",
        note="Unsupported option tags in Require and Proxy-Require; any element answers 420"
        " with Unsupported listing the Proxy-Require tags (proxy) or Require tags (UAS).",
    ),
    Case(
        file="invut.dat",
        section="3.3.6",
        title="Unknown Content-Type",
        outcome=Outcome.LATER,
        status=415,
        layer="uas",
        note="INVITE body is application/unknownformat; syntactically valid; a proxy processes"
        ' it like any INVITE; "An endpoint ... would reject it with a 415".',
    ),
    Case(
        file="regaut01.dat",
        section="3.3.7",
        title="Unknown Authorization Scheme",
        outcome=Outcome.LATER,
        status=401,
        layer="registrar",
        note="Authorization: NoOneKnowsThisScheme ...; well formed; proxies forward it"
        " unmodified; an authenticating registrar answers 401 with a challenge it understands"
        " (a non-authenticating one ignores it; a non-registrar UAS answers 405).",
    ),
    Case(
        file="multi01.dat",
        section="3.3.8",
        title="Multiple Values in Single Value Required Fields",
        outcome=Outcome.PARSE_ERROR,
        status=400,
        layer=None,
        note="Two each of Call-ID, To, From, Max-Forwards and CSeq; must not break;"
        ' "would respond with a 400 Bad Request error." The parser checks these headers.',
    ),
    Case(
        file="mcl01.dat",
        section="3.3.9",
        title="Multiple Content-Length Values",
        outcome=Outcome.PARSE_ERROR,
        status=400,
        layer=None,
        note='Content-Length 13 and 5: framing is undefined; "should respond with an error"'
        " (400 here); discard the datagram remainder; over TCP close the connection.",
    ),
    Case(
        file="bcast.dat",
        section="3.3.10",
        title="200 OK Response with Broadcast Via Header Field Value",
        outcome=Outcome.LATER,
        status=None,
        layer="transport",
        note="Second Via sent-by is 255.255.255.255; well formed, parsers must not fail;"
        " an endpoint discards it and a proxy must drop it rather than forward it to the"
        " broadcast address.",
    ),
    Case(
        file="zeromf.dat",
        section="3.3.11",
        title="Max-Forwards of Zero",
        outcome=Outcome.LATER,
        status=483,
        layer="proxy",
        note='Legal request with Max-Forwards: 0; "A proxy should not forward the request and'
        ' should respond 483"; an endpoint processes it as if Max-Forwards were positive.',
    ),
    Case(
        file="cparam01.dat",
        section="3.3.12",
        title="REGISTER with a Contact Header Parameter",
        outcome=Outcome.ACCEPT,
        status=None,
        layer=None,
        note="Contact sip:...;unknownparam without <>: unknownparam is a contact-param, not a"
        ' url-param; "This REGISTER should succeed"; never echo it as a url-parameter.',
    ),
    Case(
        file="cparam02.dat",
        section="3.3.13",
        title="REGISTER with a url-parameter",
        outcome=Outcome.ACCEPT,
        status=None,
        layer=None,
        note="Contact <sip:...;unknownparam>: unknownparam is a url-parameter; the register"
        " should succeed and later fetches must show it as a url-parameter.",
    ),
    Case(
        file="regescrt.dat",
        section="3.3.14",
        title="REGISTER with a URL Escaped Header",
        outcome=Outcome.ACCEPT,
        status=None,
        layer=None,
        note="Contact <sip:user@example.com?Route=%3Csip:sip.example.com%3E> (in <>, so legal);"
        " the register should succeed and the binding keeps the escaped Route header.",
    ),
    Case(
        file="sdp01.dat",
        section="3.3.15",
        title="Unacceptable Accept Offering",
        outcome=Outcome.LATER,
        status=406,
        layer="uas",
        note="INVITE with Accept: text/nobodyKnowsThis (no application/sdp); the recipient"
        " could answer 406 with Warning 399, or 400 since every INVITE UA must support SDP.",
    ),
    # 3.4 Backward Compatibility
    Case(
        file="inv2543.dat",
        section="3.4.1",
        title="INVITE with RFC 2543 Syntax",
        outcome=Outcome.ACCEPT,
        status=None,
        layer=None,
        note="No Via branch, no From tag, no Content-Length (body is rest of datagram), no"
        " Max-Forwards; legal RFC 2543, to be accepted by elements keeping backward"
        " compatibility.",
    ),
)
