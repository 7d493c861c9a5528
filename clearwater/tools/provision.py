# -*- test-case-name: tests.unit.tools.test_provision -*-
"""``clearwater-provision``: subscribers for homestead in HSS-less mode, over homestead-prov's
API (spec §6.6; :mod:`clearwater.http.homestead_prov`), as Ellis provisioned them (spec §6.7
"Number creation flow").

Subcommands::

    create-user IMPU --password P [--impi I] [--ifc-file F] [--domain D]
    create-users --csv FILE [--domain D]      # lines "impu,impi,password" (impi may be empty)
    delete-user IMPU
    list-users
    show-user IMPU                            # IMPI, IRS, public ids, iFCs, registration state
    update-user IMPU [--password P] [--ifc-file F] [--impi I]

Options (before or after the subcommand): ``--server URL`` (homestead-prov, default
``http://127.0.0.1:8889``), ``--homestead URL`` (homestead's own API, for the registration state
``show-user`` prints; default ``http://127.0.0.1:8888``), ``--timeout S`` (per request, default
10).

A user is what Ellis made for a number: a private identity (IMPI, default the IMPU without
``sip:``) holding HA1 = MD5(impi:realm:password) — realm the home domain, default the IMPU's
domain (``--domain``) — an implicit registration set associated with it, a service profile and the
public identity (IMPU) in it, and the service profile's iFCs: the ``<ServiceProfile>`` document of
``--ifc-file``, else Ellis' default (one iFC: INVITE to ``sip:mmtel.<domain>``, DefaultHandling
0; spec §3.9). The password is never stored in plain text.

The tool is synchronous (:mod:`http.client`, one keep-alive connection, one request at a time).
Errors print one line, ``clearwater-provision: error: ...``, on stderr and exit 1; usage errors
exit 2. ``create-users`` reports a bad line with its line number and goes on, and exits 1 at the
end if any line failed; it stops at once if the server cannot be reached.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import re
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any, Optional, TextIO
from urllib.parse import quote, unquote, urlsplit
from xml.sax.saxutils import escape

import attrs

from clearwater._xml import parse_xml
from clearwater.errors import ParseError
from clearwater.http.homestead_prov import parse_service_profile_ifcs
from clearwater.sip.auth import digest_ha1

__all__ = [
    "DEFAULT_HOMESTEAD",
    "DEFAULT_SERVER",
    "DEFAULT_TIMEOUT",
    "ProvisionError",
    "default_ifcs",
    "main",
]

PROG = "clearwater-provision"
DEFAULT_SERVER = "http://127.0.0.1:8889"
DEFAULT_HOMESTEAD = "http://127.0.0.1:8888"
DEFAULT_TIMEOUT = 10.0
PROGRESS_EVERY = 1000
_PAGE = 1000
_BAD_TEXT = re.compile(r"[\x00-\x20\x7f]")


class ProvisionError(Exception):
    """A provisioning step failed; the message is the one line the tool prints."""


class _UnreachableError(ProvisionError):
    """The server could not be reached or did not answer (no point going on)."""


def default_ifcs(domain: str) -> bytes:
    """Ellis' default subscriber iFCs: INVITE to ``sip:mmtel.<domain>``, DefaultHandling 0."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        "<ServiceProfile><InitialFilterCriteria>"
        "<TriggerPoint><ConditionTypeCNF>0</ConditionTypeCNF>"
        "<SPT><ConditionNegated>0</ConditionNegated><Group>0</Group>"
        "<Method>INVITE</Method><Extension></Extension></SPT></TriggerPoint>"
        "<ApplicationServer><ServerName>sip:mmtel." + escape(domain) + "</ServerName>"
        "<DefaultHandling>0</DefaultHandling></ApplicationServer>"
        "</InitialFilterCriteria></ServiceProfile>"
    ).encode("utf-8")


# --------------------------------------------------------------------------- HTTP


@attrs.frozen
class _Response:
    status: int
    reason: str
    body: bytes
    location: Optional[str]

    def error_text(self) -> str:
        try:
            value = json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            value = None
        if isinstance(value, dict) and isinstance(value.get("error"), str):
            return str(value["error"])
        text = self.body[:200].decode("utf-8", "replace").strip()
        return " ".join(text.split()) or self.reason

    def json(self, what: str) -> dict[str, Any]:
        try:
            value = json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            value = None
        if not isinstance(value, dict):
            raise ProvisionError("bad JSON answer to " + what)
        return value


def _segment(text: str) -> str:
    return quote(text, safe="")


class _Server:
    """One server, one persistent HTTP/1.1 connection, sequential requests."""

    def __init__(self, url: str, timeout: float, name: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("not an http:// or https:// URL: " + url)
        if parts.query or parts.fragment:
            raise ValueError("URL has a query or fragment: " + url)
        self.url = url.rstrip("/")
        self.name = name
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        try:
            self._port = parts.port or (443 if self._https else 80)
        except ValueError:
            raise ValueError("bad port in URL: " + url) from None
        self._base = parts.path.rstrip("/")
        self._timeout = timeout
        self._connection: Optional[http.client.HTTPConnection] = None
        self._used = False

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            if self._https:
                self._connection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout
                )
            else:
                self._connection = http.client.HTTPConnection(
                    self._host, self._port, timeout=self._timeout
                )
            self._used = False
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def request(
        self, method: str, path: str, body: bytes = b"", content_type: Optional[str] = None
    ) -> _Response:
        headers = {"Content-Type": content_type} if content_type else {}
        for attempt in (1, 2):
            connection = self._connect()
            reused = self._used
            try:
                connection.request(method, self._base + path, body or None, headers)
                self._used = True
                response = connection.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                self.close()
                if reused and attempt == 1:
                    continue  # the server closed an idle keep-alive connection: once more
                raise _UnreachableError(self._failure(method, path, e)) from None
            except (OSError, http.client.HTTPException) as e:
                self.close()
                raise _UnreachableError(self._failure(method, path, e)) from None
            if response.will_close:
                self.close()
            return _Response(response.status, response.reason, data, response.getheader("Location"))
        raise AssertionError("unreachable")  # pragma: no cover

    def _failure(self, method: str, path: str, error: BaseException) -> str:
        if isinstance(error, socket.timeout):
            return (
                f"{self.name} at {self.url} did not answer {method} {path} "
                f"within {self._timeout:g} s"
            )
        reason = str(error) or type(error).__name__
        return f"cannot reach {self.name} at {self.url}: {reason}"

    def call(
        self,
        method: str,
        path: str,
        expect: Sequence[int],
        body: bytes = b"",
        content_type: Optional[str] = None,
    ) -> _Response:
        """``request``, failing with ProvisionError unless the status is in ``expect``."""
        response = self.request(method, path, body, content_type)
        if response.status not in expect:
            raise ProvisionError(
                f"{self.name} at {self.url} answered {response.status} to {method} {path}: "
                + response.error_text()
            )
        return response


# --------------------------------------------------------------------------- operations


def _check_impu(impu: str) -> None:
    if not impu or _BAD_TEXT.search(impu) or not re.match(r"(sips?|tel):.", impu):
        raise ProvisionError("bad IMPU " + repr(impu) + ": expected a sip:, sips: or tel: URI")


def _default_impi(impu: str) -> str:
    if impu.startswith("sip:"):
        return impu[4:]
    raise ProvisionError("IMPU " + impu + " is not a sip: URI: give the IMPI (--impi)")


def _domain_of(impu: str) -> str:
    match = re.match(r"sips?:(?:[^@;?>]*@)?(\[[^\]]*\]|[^:;?>]+)", impu)
    if match is None:
        raise ProvisionError("IMPU " + impu + " has no domain: give the home domain (--domain)")
    return match.group(1)


def _irs_from(location: Optional[str]) -> str:
    match = re.search(r"irs/([^/]+)", location or "")
    if match is None:
        raise ProvisionError("no IRS in Location " + repr(location))
    return unquote(match.group(1))


def _sp_from(location: Optional[str]) -> tuple[str, str]:
    match = re.search(r"irs/([^/]+)/service_profiles?/([^/]+)", location or "")
    if match is None:
        raise ProvisionError("no service profile in Location " + repr(location))
    return unquote(match.group(1)), unquote(match.group(2))


def _json_strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProvisionError("bad JSON answer to " + what)
    return list(value)


def _registration_state(data: bytes) -> Optional[str]:
    try:
        root = parse_xml(data, "reg-data")
    except ParseError:
        return None
    element = root.find("RegistrationState")
    text = None if element is None else (element.text or "").strip()
    return text or None


class _Provisioner:
    """The subcommands' steps over homestead-prov's API."""

    def __init__(self, server: _Server, out: TextIO) -> None:
        self.server = server
        self.out = out

    def _where(self, impu: str) -> tuple[str, str]:
        """``(irs, sp)`` of an IMPU; ProvisionError if it is not provisioned."""
        path = "/public/" + _segment(impu) + "/service_profile"
        response = self.server.request("GET", path)
        if response.status == 404:
            raise ProvisionError(f"user {impu} does not exist on {self.server.url}")
        if response.status != 303:
            raise ProvisionError(
                f"{self.server.name} at {self.server.url} answered {response.status} to GET "
                f"{path}: {response.error_text()}"
            )
        return _sp_from(response.location)

    def create_user(self, impu: str, impi: str, password: str, realm: str, ifcs: bytes) -> None:
        server = self.server
        exists = server.call("GET", "/public/" + _segment(impu) + "/irs/", (303, 404))
        if exists.status == 303:
            raise ProvisionError(f"user {impu} already exists on {server.url}")
        private = "/private/" + _segment(impi)
        if server.call("GET", private, (200, 404)).status == 200:
            raise ProvisionError(f"private identity {impi} already exists on {server.url}")
        body = json.dumps({"digest_ha1": digest_ha1(impi, realm, password), "realm": realm})
        server.call("PUT", private, (200,), body.encode(), "application/json")
        irs = None
        try:
            irs = _irs_from(server.call("POST", "/irs/", (201,)).location)
            server.call(
                "PUT", private + "/associated_implicit_registration_sets/" + _segment(irs), (200,)
            )
            location = server.call("POST", "/irs/" + _segment(irs) + "/service_profiles", (201,))
            sp_irs, sp = _sp_from(location.location)
            profile = "/irs/" + _segment(sp_irs) + "/service_profiles/" + _segment(sp)
            xml = "<PublicIdentity><Identity>" + escape(impu) + "</Identity></PublicIdentity>"
            server.call(
                "PUT",
                profile + "/public_ids/" + _segment(impu),
                (200,),
                xml.encode("utf-8"),
                "application/xml",
            )
            server.call("PUT", profile + "/filter_criteria", (200,), ifcs, "application/xml")
        except ProvisionError:
            self._undo(irs, private)
            raise

    def _undo(self, irs: Optional[str], private: str) -> None:
        try:
            if irs is not None:
                self.server.request("DELETE", "/irs/" + _segment(irs))
            self.server.request("DELETE", private)
        except ProvisionError:
            pass  # best effort: the first error is the one to report

    def delete_user(self, impu: str) -> None:
        server = self.server
        irs, sp = self._where(impu)
        irs_path = "/irs/" + _segment(irs)
        what = "GET " + irs_path + "/public_ids"
        publics = _json_strings(
            server.call("GET", irs_path + "/public_ids", (200,)).json(what).get("public_ids"), what
        )
        what = "GET " + irs_path + "/private_ids"
        privates = _json_strings(
            server.call("GET", irs_path + "/private_ids", (200,)).json(what).get("private_ids"),
            what,
        )
        if publics != [impu]:
            # Other public identities share the IRS: remove just this one (and its profile
            # if it is left empty).
            profile = irs_path + "/service_profiles/" + _segment(sp)
            server.call("DELETE", profile + "/public_ids/" + _segment(impu), (200,))
            what = "GET " + profile + "/public_ids"
            left = server.call("GET", profile + "/public_ids", (200,)).json(what)
            if not _json_strings(left.get("public_ids"), what):
                server.call("DELETE", profile, (200, 204))
            return
        server.call("DELETE", irs_path, (200, 204))
        for impi in privates:
            path = "/private/" + _segment(impi)
            what = "GET " + path + "/associated_implicit_registration_sets"
            response = server.call("GET", path + "/associated_implicit_registration_sets", (200,))
            irss = response.json(what).get("associated_implicit_registration_sets")
            if not _json_strings(irss, what):
                server.call("DELETE", path, (200, 204))

    def list_users(self) -> int:
        after = ""
        count = 0
        while True:
            path = "/public/?excludeuuids=true&limit=" + str(_PAGE) + "&after=" + _segment(after)
            body = self.server.call("GET", path, (200,)).json("GET " + path)
            entries = body.get("public_ids")
            if not isinstance(entries, list):
                raise ProvisionError("bad JSON answer to GET " + path)
            for entry in entries:
                if not isinstance(entry, dict) or not isinstance(entry.get("public_id"), str):
                    raise ProvisionError("bad JSON answer to GET " + path)
                print(entry["public_id"], file=self.out)
                count += 1
            following = body.get("next")
            if not isinstance(following, str) or not entries or following <= after:
                return count
            after = following

    def show_user(self, impu: str, homestead: _Server) -> None:
        server = self.server
        irs, sp = self._where(impu)
        what = "GET /public/.../associated_private_ids"
        privates = _json_strings(
            server.call("GET", "/public/" + _segment(impu) + "/associated_private_ids", (200,))
            .json(what)
            .get("private_ids"),
            what,
        )
        irs_path = "/irs/" + _segment(irs)
        what = "GET " + irs_path + "/public_ids"
        publics = _json_strings(
            server.call("GET", irs_path + "/public_ids", (200,)).json(what).get("public_ids"), what
        )
        profile = irs_path + "/service_profiles/" + _segment(sp)
        ifcs = server.call("GET", profile + "/filter_criteria", (200, 404))
        print("IMPU: " + impu, file=self.out)
        for impi in privates:
            response = server.call("GET", "/private/" + _segment(impi), (200, 404))
            realm = (
                response.json("GET /private/...").get("realm") if response.status == 200 else None
            )
            suffix = " (realm " + realm + ")" if isinstance(realm, str) else ""
            print("IMPI: " + impi + suffix, file=self.out)
        if not privates:
            print("IMPI: (none)", file=self.out)
        print("IRS: " + irs, file=self.out)
        print("Service profile: " + sp, file=self.out)
        print("Public IDs: " + ", ".join(publics), file=self.out)
        print("Registration state: " + self._registration(impu, homestead), file=self.out)
        if ifcs.status == 200:
            print("iFCs:", file=self.out)
            print(ifcs.body.decode("utf-8", "replace"), file=self.out)
        else:
            print("iFCs: (none)", file=self.out)

    @staticmethod
    def _registration(impu: str, homestead: _Server) -> str:
        try:
            response = homestead.request("GET", "/impu/" + _segment(impu) + "/reg-data")
        except ProvisionError:
            return "unknown"
        state = _registration_state(response.body) if response.status == 200 else None
        return state or "unknown"

    def update_user(
        self, impu: str, password: Optional[str], ifcs: Optional[bytes], impi: Optional[str]
    ) -> None:
        server = self.server
        irs, sp = self._where(impu)
        if password is not None:
            what = "GET /public/.../associated_private_ids"
            privates = _json_strings(
                server.call("GET", "/public/" + _segment(impu) + "/associated_private_ids", (200,))
                .json(what)
                .get("private_ids"),
                what,
            )
            if impi is None:
                if len(privates) != 1:
                    raise ProvisionError(
                        f"user {impu} has {len(privates)} private identities: give --impi"
                    )
                impi = privates[0]
            elif impi not in privates:
                raise ProvisionError(f"private identity {impi} does not authenticate {impu}")
            path = "/private/" + _segment(impi)
            realm = server.call("GET", path, (200,)).json("GET " + path).get("realm")
            if not isinstance(realm, str) or not realm:
                raise ProvisionError("bad JSON answer to GET " + path)
            body = json.dumps({"digest_ha1": digest_ha1(impi, realm, password), "realm": realm})
            server.call("PUT", path, (200,), body.encode(), "application/json")
        if ifcs is not None:
            profile = "/irs/" + _segment(irs) + "/service_profiles/" + _segment(sp)
            server.call("PUT", profile + "/filter_criteria", (200,), ifcs, "application/xml")


# --------------------------------------------------------------------------- command line


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a number: " + text) from None
    if not 0 < value < 1e6:
        raise argparse.ArgumentTypeError("must be positive: " + text)
    return value


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--server",
        default=argparse.SUPPRESS,
        metavar="URL",
        help="homestead-prov's URL (default " + DEFAULT_SERVER + ")",
    )
    common.add_argument(
        "--homestead",
        default=argparse.SUPPRESS,
        metavar="URL",
        help="homestead's URL, for show-user's registration state (default "
        + DEFAULT_HOMESTEAD
        + ")",
    )
    common.add_argument(
        "--timeout",
        type=_positive_float,
        default=argparse.SUPPRESS,
        metavar="S",
        help=f"seconds to wait for each answer (default {DEFAULT_TIMEOUT:g})",
    )
    parser = argparse.ArgumentParser(
        prog=PROG,
        parents=[common],
        description="Provision subscribers through homestead-prov's API.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    domain_help = "home domain: digest realm and default iFC (default: the IMPU's domain)"
    create = commands.add_parser("create-user", parents=[common], help="create one subscriber")
    create.add_argument("impu", metavar="IMPU")
    create.add_argument("--password", required=True, metavar="P")
    create.add_argument("--impi", metavar="I", help="private identity (default: IMPU minus sip:)")
    create.add_argument("--ifc-file", metavar="F", help="<ServiceProfile> XML with the iFCs")
    create.add_argument("--domain", metavar="D", help=domain_help)

    bulk = commands.add_parser(
        "create-users", parents=[common], help="create subscribers from a CSV file"
    )
    bulk.add_argument("--csv", required=True, metavar="FILE", help="lines impu,impi,password")
    bulk.add_argument("--domain", metavar="D", help=domain_help)

    delete = commands.add_parser("delete-user", parents=[common], help="delete a subscriber")
    delete.add_argument("impu", metavar="IMPU")

    commands.add_parser("list-users", parents=[common], help="list every public identity")

    show = commands.add_parser("show-user", parents=[common], help="show a subscriber")
    show.add_argument("impu", metavar="IMPU")

    update = commands.add_parser("update-user", parents=[common], help="change a subscriber")
    update.add_argument("impu", metavar="IMPU")
    update.add_argument("--password", metavar="P")
    update.add_argument("--ifc-file", metavar="F", help="<ServiceProfile> XML with the iFCs")
    update.add_argument("--impi", metavar="I", help="which private identity's password")
    return parser


def _parse(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """Parse ``argv``; the shared options (SUPPRESSed so that they may come before or after
    the subcommand; the parsers share their action objects) get their defaults here."""
    args = parser.parse_args(argv)
    defaults = {
        "server": DEFAULT_SERVER,
        "homestead": DEFAULT_HOMESTEAD,
        "timeout": DEFAULT_TIMEOUT,
    }
    for name, value in defaults.items():
        if not hasattr(args, name):
            setattr(args, name, value)
    return args


def _read_ifcs(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(1024 * 1024 + 1)
    except OSError as e:
        raise ProvisionError(
            "cannot read iFC file " + path + ": " + (e.strerror or str(e))
        ) from None
    if len(data) > 1024 * 1024:
        raise ProvisionError("iFC file " + path + " is larger than 1 MiB")
    try:
        parse_service_profile_ifcs(data)
    except ParseError as e:
        raise ProvisionError("iFC file " + path + ": " + e.reason) from None
    return data


def _realm(impu: str, domain: Optional[str]) -> str:
    return domain if domain else _domain_of(impu)


def _create_one(
    provisioner: _Provisioner,
    impu: str,
    impi: Optional[str],
    password: str,
    domain: Optional[str],
    ifcs: Optional[bytes],
) -> None:
    _check_impu(impu)
    if not password:
        raise ProvisionError("empty password for " + impu)
    impi = impi or _default_impi(impu)
    if _BAD_TEXT.search(impi):
        raise ProvisionError("bad IMPI " + repr(impi))
    realm = _realm(impu, domain)
    provisioner.create_user(impu, impi, password, realm, ifcs or default_ifcs(realm))


def _csv_row(raw: bytes) -> Optional[tuple[str, Optional[str], str]]:
    """``(impu, impi or None, password)`` from one CSV line; None for a blank or ``#`` line;
    ProvisionError for a bad one."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ProvisionError("not UTF-8: " + str(e)) from None
    text = text.rstrip("\r\n")
    if not text.strip() or text.lstrip().startswith("#"):
        return None
    try:
        row = next(csv.reader([text], strict=True))
    except csv.Error as e:
        raise ProvisionError("bad CSV: " + str(e)) from None
    if len(row) != 3:
        raise ProvisionError(f"expected impu,impi,password, found {len(row)} field(s)")
    impu, impi, password = (field.strip() for field in row)
    return impu, impi or None, password


def _create_users(
    provisioner: _Provisioner, path: str, domain: Optional[str], out: TextIO, err: TextIO
) -> int:
    created = failed = 0
    started = time.monotonic()
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed below)
    except OSError as e:
        raise ProvisionError("cannot read " + path + ": " + (e.strerror or str(e))) from None
    with f:
        for line, raw in enumerate(f, 1):
            try:
                row = _csv_row(raw)
                if row is None:
                    continue
                impu, impi, password = row
                _create_one(provisioner, impu, impi, password, domain, None)
                created += 1
            except _UnreachableError:
                raise
            except ProvisionError as e:
                failed += 1
                print(f"{PROG}: error: {path}:{line}: {e}", file=err)
            done = created + failed
            if done % PROGRESS_EVERY == 0:
                print(f"{done} users processed: {created} created, {failed} failed", file=out)
                out.flush()
    elapsed = time.monotonic() - started
    print(f"created {created} users, {failed} failed, in {elapsed:.1f} s", file=out)
    return 1 if failed else 0


def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    server = _Server(args.server, args.timeout, "homestead-prov")
    provisioner = _Provisioner(server, out)
    try:
        command = args.command
        if command == "create-user":
            ifcs = None if args.ifc_file is None else _read_ifcs(args.ifc_file)
            _create_one(provisioner, args.impu, args.impi, args.password, args.domain, ifcs)
            print("created user " + args.impu, file=out)
        elif command == "create-users":
            return _create_users(provisioner, args.csv, args.domain, out, err)
        elif command == "delete-user":
            provisioner.delete_user(args.impu)
            print("deleted user " + args.impu, file=out)
        elif command == "list-users":
            provisioner.list_users()
        elif command == "show-user":
            homestead = _Server(args.homestead, args.timeout, "homestead")
            try:
                provisioner.show_user(args.impu, homestead)
            finally:
                homestead.close()
        elif command == "update-user":
            ifcs = None if args.ifc_file is None else _read_ifcs(args.ifc_file)
            provisioner.update_user(args.impu, args.password, ifcs, args.impi)
            print("updated user " + args.impu, file=out)
        return 0
    finally:
        server.close()


def main(
    argv: Optional[Sequence[str]] = None,
    *,
    stdout: Optional[TextIO] = None,
    stderr: Optional[TextIO] = None,
) -> int:
    """Run ``clearwater-provision`` with ``argv`` (``sys.argv[1:]`` when None); the exit code.

    Output goes to ``stdout`` and ``stderr`` (the process's when None). Usage errors exit 2
    through argparse (:exc:`SystemExit`)."""
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    parser = _parser()
    args = _parse(parser, argv)
    if args.command == "update-user" and args.password is None and args.ifc_file is None:
        parser.error("update-user needs --password or --ifc-file")
    for option in ("server", "homestead"):
        try:
            _Server(getattr(args, option), args.timeout, option).close()
        except ValueError as e:
            parser.error("--" + option + ": " + str(e))
    try:
        return _run(args, out, err)
    except ProvisionError as e:
        print(f"{PROG}: error: {e}", file=err)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: error: interrupted", file=err)
        return 130


if __name__ == "__main__":
    sys.exit(main())
