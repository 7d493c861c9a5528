"""Transaction matching keys: RFC 3261 §17.1.3 (client), §17.2.3 (server) and §9.2 (CANCEL).

Pure functions from a parsed message to a hashable key; the transaction layer keeps its
transactions in dicts keyed by them.

- Client side (§17.1.3): a response belongs to the client transaction whose request had the same
  top-Via branch and the same CSeq method. :func:`client_key` works on the request sent and on
  the responses received alike.
- Server side (§17.2.3): when the top Via branch starts with the magic cookie ``z9hG4bK`` (and
  carries something after it), the key is branch + sent-by + method, with ACK mapped to INVITE
  (an ACK for a non-2xx final response belongs to the INVITE server transaction).
- RFC 2543 fallback (§17.2.3): without the cookie, requests match on Request-URI, From tag,
  Call-ID, CSeq number and the top Via, with ACK again mapped to INVITE. The RFC also compares the
  To tag (the INVITE's for retransmissions, the response's for an ACK); that depends on what the
  server transaction sent, so the layer checks it and the key leaves it out.
- CANCEL (§9.2): :func:`cancel_target_key` is the key of the INVITE server transaction a CANCEL
  refers to: the CANCEL's own key with the method INVITE.

A branch that is exactly the magic cookie (RFC 4475 §3.2.1) is not treated as RFC 3261 compliant:
it falls back to RFC 2543 matching.
"""

from __future__ import annotations

from typing import NamedTuple, Union

from clearwater.errors import ParseError
from clearwater.sip._message import Request, Response
from clearwater.sip._uri import Uri
from clearwater.sip._values import Via

__all__ = [
    "BRANCH_COOKIE",
    "ClientKey",
    "Rfc2543Key",
    "ServerKey",
    "cancel_target_key",
    "client_key",
    "has_rfc3261_branch",
    "server_key",
]

#: The prefix of every RFC 3261 branch (§8.1.1.7).
BRANCH_COOKIE = "z9hG4bK"


#: §17.1.3: ``(top-Via branch, CSeq method)``. Keys are plain tuples of strings, which the
#: cyclic garbage collector stops tracking (a tuple subclass stays tracked), and a loaded
#: server holds one per live transaction, for up to 64*T1 after it ends.
ClientKey = tuple[str, str]

#: §17.2.3 for RFC 3261 branches: ``(branch, sent-by with the host lower-cased, method)``.
ServerKey = tuple[str, str, str]


class Rfc2543Key(NamedTuple):
    """§17.2.3 fallback for requests without an RFC 3261 branch."""

    request_uri: Uri
    from_tag: str
    call_id: str
    cseq: int
    top_via: str
    method: str


def has_rfc3261_branch(via: Via) -> bool:
    """True if the Via's branch starts with the magic cookie and carries an identifier after it."""
    branch = via.branch
    return (
        branch is not None and len(branch) > len(BRANCH_COOKIE) and branch.startswith(BRANCH_COOKIE)
    )


def _tsx_method(method: str) -> str:
    return "INVITE" if method == "ACK" else method


def client_key(message: Union[Request, Response]) -> ClientKey:
    """The client transaction a request we send, or a response we receive, belongs to.

    Raises ParseError if the top Via has no branch (such a response matches no transaction).
    """
    branch = message.top_via.branch
    if not branch:
        raise ParseError("Missing Via branch")
    return (branch, _tsx_method(message.cseq.method))


def server_key(request: Request) -> Union[ServerKey, Rfc2543Key]:
    """The server transaction a received request belongs to (or would create)."""
    return _server_key(request, _tsx_method(request.method))


def cancel_target_key(cancel: Request) -> Union[ServerKey, Rfc2543Key]:
    """The key of the INVITE server transaction a CANCEL asks to cancel (§9.2)."""
    if cancel.method != "CANCEL":
        raise ValueError("not a CANCEL: " + cancel.method)
    return _server_key(cancel, "INVITE")


def _server_key(request: Request, method: str) -> Union[ServerKey, Rfc2543Key]:
    via = request.top_via
    if has_rfc3261_branch(via):
        return (via.branch or "", _sent_by(via), method)
    return Rfc2543Key(
        request.uri,  # compared by RFC 3261 §19.1.4 equality
        request.from_.tag or "",
        request.call_id,
        request.cseq.seq,
        str(Via(via.transport, via.host.lower(), via.port, via.params, via.protocol)),
        method,
    )


def _sent_by(via: Via) -> str:
    host = via.host.lower()
    return host if via.port is None else host + ":" + str(via.port)
