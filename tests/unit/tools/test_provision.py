"""``clearwater-provision`` end to end (issue #5 item 5, spec §6.6).

The CLI blocks (http.client), so each run goes to a thread (``deferToThread``) while the real
reactor serves homestead-prov over a :class:`MemorySubscriberStore` on 127.0.0.1:0, and a
stand-in for homestead's ``GET /impu/<impu>/reg-data``. Assertions are on the store's records
and on what the tool prints.
"""

from __future__ import annotations

import hashlib
import io
import os
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, cast

import pytest
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort, IReactorTCP, IReactorTime
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest, TestCase
from twisted.web.resource import Resource
from twisted.web.server import Request, Site
from typing_extensions import override

from clearwater.http.homestead_prov import homestead_prov_resource, parse_service_profile_ifcs
from clearwater.stores.memory import MemorySubscriberStore
from clearwater.stores.records import PublicIdentity
from clearwater.tools import provision
from clearwater.tools.provision import default_ifcs, main

REACTOR = cast(IReactorTCP, _reactor)
CLOCK = cast(IReactorTime, _reactor)

IFC_FILE = (
    '<?xml version="1.0"?>\n<ServiceProfile>\n  <InitialFilterCriteria><Priority>0</Priority>'
    "<ApplicationServer><ServerName>sip:as.example.com</ServerName>"
    "<DefaultHandling>1</DefaultHandling></ApplicationServer></InitialFilterCriteria>\n"
    "</ServiceProfile>\n"
)


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


class _RegData(Resource):
    """homestead's ``GET /impu/<impu>/reg-data``, answering a fixed registration state."""

    isLeaf = True  # noqa: N815 (Twisted's name)

    def __init__(self, state: str) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # untyped in Twisted
        self.state = state
        self.paths: list[bytes] = []

    @override
    def render(self, request: Request) -> bytes:
        assert request.method == b"GET"
        self.paths.append(request.path)
        return (
            b"<ClearwaterRegData><RegistrationState>"
            + self.state.encode()
            + b"</RegistrationState><IMSSubscription/></ClearwaterRegData>"
        )


class _Impu(Resource):
    """``/impu/<anything>``: the reg-data stand-in."""

    def __init__(self, leaf: _RegData) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # untyped in Twisted
        self.leaf = leaf

    @override
    def getChild(self, path: bytes, request: Request) -> Resource:
        return self.leaf


class _Silent(Protocol):
    """Accepts a connection and never answers."""


class _SilentFactory(ServerFactory):
    protocol = _Silent


class _Result:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code = code
        self.out = out
        self.err = err

    def error_lines(self) -> list[str]:
        return self.err.splitlines()


class ProvisionTests(TestCase):
    timeout = 120

    @override
    def setUp(self) -> None:
        self.store = MemorySubscriberStore()
        self.connections = 0
        site = Site(homestead_prov_resource(self.store, "example.com", reactor=CLOCK, pacing=0))  # type: ignore[no-untyped-call]
        build = site.buildProtocol

        def counting(addr: Any) -> Any:
            self.connections += 1
            return build(addr)  # type: ignore[no-untyped-call]  # untyped in Twisted

        site.buildProtocol = counting  # type: ignore[method-assign]
        site.log = lambda request: None  # type: ignore[method-assign]  # no access log
        self.server = self._listen(site)
        self.reg_data = _RegData("REGISTERED")
        root = Resource()  # type: ignore[no-untyped-call]  # untyped in Twisted
        root.putChild(b"impu", _Impu(self.reg_data))
        homestead_site = Site(root)  # type: ignore[no-untyped-call]
        homestead_site.log = lambda request: None  # type: ignore[method-assign]
        self.homestead = self._listen(homestead_site)
        self.tmp = Path(tempfile.mkdtemp())

    def _listen(self, factory: ServerFactory[Any]) -> str:
        port: IListeningPort = REACTOR.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return "http://127.0.0.1:" + str(port.getHost().port)  # type: ignore[attr-defined]

    async def run_cli(self, *args: str, server: Optional[str] = None) -> _Result:
        out, err = io.StringIO(), io.StringIO()
        argv = ["--server", server or self.server, "--homestead", self.homestead, *args]
        code = await deferToThread(main, argv, stdout=out, stderr=err)
        return _Result(code, out.getvalue(), err.getvalue())

    async def publics(self) -> list[str]:
        return [p.impu for p in await self.store.list_publics("", 100000)]

    def write(self, name: str, text: str) -> str:
        path = self.tmp / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    # -- the life of one user

    async def test_create_show_update_delete(self) -> None:
        created = await self.run_cli("create-user", "sip:alice@example.com", "--password", "secret")
        assert (created.code, created.out, created.err) == (
            0,
            "created user sip:alice@example.com\n",
            "",
        )
        private = await self.store.get_private("alice@example.com")
        assert private is not None
        assert private.realm == "example.com"
        assert private.digest_ha1 == md5("alice@example.com:example.com:secret")
        assert private.plaintext_password is None
        (irs,) = await self.store.irs_of_private("alice@example.com")
        public = await self.store.get_public("sip:alice@example.com")
        assert public == PublicIdentity(
            impu="sip:alice@example.com",
            irs=irs,
            sp=public.sp if public else "",
            xml="<PublicIdentity><Identity>sip:alice@example.com</Identity></PublicIdentity>",
        )
        assert public is not None
        profile = await self.store.get_service_profile(irs, public.sp)
        assert profile is not None
        assert profile.ifcs_xml == parse_service_profile_ifcs(default_ifcs("example.com"))
        assert "<ServerName>sip:mmtel.example.com</ServerName>" in profile.ifcs_xml
        assert "<Method>INVITE</Method>" in profile.ifcs_xml
        assert "<DefaultHandling>0</DefaultHandling>" in profile.ifcs_xml

        shown = await self.run_cli("show-user", "sip:alice@example.com")
        assert shown.code == 0, shown.err
        lines = shown.out.splitlines()
        assert lines[:7] == [
            "IMPU: sip:alice@example.com",
            "IMPI: alice@example.com (realm example.com)",
            "IRS: " + irs,
            "Service profile: " + public.sp,
            "Public IDs: sip:alice@example.com",
            "Registration state: REGISTERED",
            "iFCs:",
        ]
        assert "<ServerName>sip:mmtel.example.com</ServerName>" in lines[7]
        assert self.reg_data.paths == [b"/impu/sip%3Aalice%40example.com/reg-data"]

        ifc_file = self.write("ifc.xml", IFC_FILE)
        updated = await self.run_cli(
            "update-user", "sip:alice@example.com", "--password", "n3w", "--ifc-file", ifc_file
        )
        assert (updated.code, updated.out, updated.err) == (
            0,
            "updated user sip:alice@example.com\n",
            "",
        )
        private = await self.store.get_private("alice@example.com")
        assert private is not None
        assert private.digest_ha1 == md5("alice@example.com:example.com:n3w")
        profile = await self.store.get_service_profile(irs, public.sp)
        assert profile is not None
        assert profile.ifcs_xml == parse_service_profile_ifcs(IFC_FILE.encode())

        deleted = await self.run_cli("delete-user", "sip:alice@example.com")
        assert (deleted.code, deleted.out, deleted.err) == (
            0,
            "deleted user sip:alice@example.com\n",
            "",
        )
        assert await self.store.get_private("alice@example.com") is None
        assert await self.store.get_public("sip:alice@example.com") is None
        assert await self.store.get_service_profile(irs, public.sp) is None
        again = await self.run_cli("delete-user", "sip:alice@example.com")
        assert again.code == 1
        assert again.error_lines() == [
            "clearwater-provision: error: user sip:alice@example.com does not exist on "
            + self.server
        ]

    async def test_create_user_options(self) -> None:
        ifc_file = self.write("ifc.xml", IFC_FILE)
        result = await self.run_cli(
            "create-user",
            "tel:+15551234",
            "--password",
            "pw",
            "--impi",
            "5551234@ims.example.net",
            "--domain",
            "ims.example.net",
            "--ifc-file",
            ifc_file,
        )
        assert result.code == 0, result.err
        private = await self.store.get_private("5551234@ims.example.net")
        assert private is not None
        assert private.realm == "ims.example.net"
        assert private.digest_ha1 == md5("5551234@ims.example.net:ims.example.net:pw")
        public = await self.store.get_public("tel:+15551234")
        assert public is not None
        profile = await self.store.get_service_profile(public.irs, public.sp)
        assert profile is not None and "sip:as.example.com" in profile.ifcs_xml

    async def test_create_user_errors(self) -> None:
        assert (
            await self.run_cli("create-user", "sip:bob@example.com", "--password", "x")
        ).code == 0
        twice = await self.run_cli("create-user", "sip:bob@example.com", "--password", "x")
        assert twice.code == 1
        assert twice.error_lines() == [
            "clearwater-provision: error: user sip:bob@example.com already exists on " + self.server
        ]
        shared = await self.run_cli(
            "create-user", "sip:bob2@example.com", "--password", "x", "--impi", "bob@example.com"
        )
        assert shared.error_lines() == [
            "clearwater-provision: error: private identity bob@example.com already exists on "
            + self.server
        ]
        tel = await self.run_cli("create-user", "tel:+1555", "--password", "x")
        assert tel.error_lines() == [
            "clearwater-provision: error: IMPU tel:+1555 is not a sip: URI: give the IMPI (--impi)"
        ]
        no_domain = await self.run_cli("create-user", "tel:+1555", "--password", "x", "--impi", "i")
        assert no_domain.error_lines() == [
            "clearwater-provision: error: IMPU tel:+1555 has no domain: "
            "give the home domain (--domain)"
        ]
        bad = await self.run_cli("create-user", "alice@example.com", "--password", "x")
        assert bad.error_lines() == [
            "clearwater-provision: error: bad IMPU 'alice@example.com': "
            "expected a sip:, sips: or tel: URI"
        ]
        bad_ifc = self.write("bad.xml", "<ServiceProfile><InitialFilterCriteria>")
        result = await self.run_cli(
            "create-user", "sip:c@example.com", "--password", "x", "--ifc-file", bad_ifc
        )
        assert result.code == 1
        (line,) = result.error_lines()
        assert line.startswith(
            "clearwater-provision: error: iFC file " + bad_ifc + ": Bad ServiceProfile XML: "
        )
        missing = await self.run_cli(
            "create-user",
            "sip:c@example.com",
            "--password",
            "x",
            "--ifc-file",
            str(self.tmp / "none.xml"),
        )
        assert missing.error_lines() == [
            "clearwater-provision: error: cannot read iFC file "
            + str(self.tmp / "none.xml")
            + ": No such file or directory"
        ]
        assert await self.publics() == ["sip:bob@example.com"]
        assert await self.store.get_private("c@example.com") is None

    async def test_create_user_rolls_back_when_a_step_fails(self) -> None:
        real = self.store.put_public

        def refuse(identity: PublicIdentity) -> Deferred[None]:
            from clearwater.stores.interfaces import StoreUnavailableError

            return Deferred.fromCoroutine(_raise(StoreUnavailableError("disk full")))

        self.store.put_public = refuse  # type: ignore[method-assign]
        result = await self.run_cli("create-user", "sip:dave@example.com", "--password", "x")
        self.store.put_public = real  # type: ignore[method-assign]
        assert result.code == 1
        (line,) = result.error_lines()
        assert line.startswith(
            "clearwater-provision: error: homestead-prov at "
            + self.server
            + " answered 503 to PUT /irs/"
        )
        assert line.endswith(
            "/public_ids/sip%3Adave%40example.com: Subscriber store unavailable: disk full"
        )
        assert await self.store.get_private("dave@example.com") is None
        assert await self.store.list_publics() == []

    async def test_shared_irs_delete_removes_only_that_identity(self) -> None:
        assert (
            await self.run_cli("create-user", "sip:eve@example.com", "--password", "x")
        ).code == 0
        public = await self.store.get_public("sip:eve@example.com")
        assert public is not None
        other = PublicIdentity(
            impu="tel:+15550000",
            irs=public.irs,
            sp=public.sp,
            xml="<PublicIdentity><Identity>tel:+15550000</Identity></PublicIdentity>",
        )
        await self.store.put_public(other)
        shown = await self.run_cli("show-user", "tel:+15550000")
        assert "Public IDs: sip:eve@example.com, tel:+15550000" in shown.out.splitlines()
        result = await self.run_cli("delete-user", "sip:eve@example.com")
        assert result.code == 0, result.err
        assert await self.publics() == ["tel:+15550000"]
        assert await self.store.get_private("eve@example.com") is not None
        assert await self.store.irs_of_private("eve@example.com") == [public.irs]

    async def test_update_user_errors(self) -> None:
        unknown = await self.run_cli("update-user", "sip:nobody@example.com", "--password", "x")
        assert unknown.error_lines() == [
            "clearwater-provision: error: user sip:nobody@example.com does not exist on "
            + self.server
        ]
        assert (await self.run_cli("create-user", "sip:f@example.com", "--password", "x")).code == 0
        wrong = await self.run_cli(
            "update-user", "sip:f@example.com", "--password", "y", "--impi", "g"
        )
        assert wrong.error_lines() == [
            "clearwater-provision: error: private identity g does not authenticate "
            "sip:f@example.com"
        ]
        assert (await self.run_cli("create-user", "sip:g@example.com", "--password", "x")).code == 0
        public = await self.store.get_public("sip:f@example.com")
        assert public is not None
        await self.store.associate(public.irs, "g@example.com")
        two = await self.run_cli("update-user", "sip:f@example.com", "--password", "y")
        assert two.error_lines() == [
            "clearwater-provision: error: user sip:f@example.com has 2 private identities: "
            "give --impi"
        ]
        chosen = await self.run_cli(
            "update-user", "sip:f@example.com", "--password", "y", "--impi", "g@example.com"
        )
        assert chosen.code == 0, chosen.err
        private = await self.store.get_private("g@example.com")
        assert private is not None and private.digest_ha1 == md5("g@example.com:example.com:y")

    async def test_show_user_with_homestead_down_or_unknown(self) -> None:
        assert (await self.run_cli("create-user", "sip:h@example.com", "--password", "x")).code == 0
        port = REACTOR.listenTCP(0, ServerFactory(), interface="127.0.0.1")
        closed = "http://127.0.0.1:" + str(port.getHost().port)  # type: ignore[attr-defined]
        await _stop(port)
        out, err = io.StringIO(), io.StringIO()
        argv = ["show-user", "sip:h@example.com", "--server", self.server, "--homestead", closed]
        code = await deferToThread(main, argv, stdout=out, stderr=err)
        assert code == 0, err.getvalue()
        assert "Registration state: unknown" in out.getvalue().splitlines()
        self.reg_data.state = ""
        shown = await self.run_cli("show-user", "sip:h@example.com")
        assert "Registration state: unknown" in shown.out.splitlines()
        missing = await self.run_cli("show-user", "sip:nobody@example.com")
        assert missing.code == 1
        assert missing.error_lines() == [
            "clearwater-provision: error: user sip:nobody@example.com does not exist on "
            + self.server
        ]

    async def test_list_users_pages(self) -> None:
        assert (
            await self.run_cli("create-user", "sip:a0000@example.com", "--password", "x")
        ).code == 0
        public = await self.store.get_public("sip:a0000@example.com")
        assert public is not None
        impus = [f"sip:a{i:04d}@example.com" for i in range(2500)]
        for impu in impus[1:]:
            await self.store.put_public(
                PublicIdentity(impu=impu, irs=public.irs, sp=public.sp, xml="")
            )
        before = self.connections
        result = await self.run_cli("list-users")
        assert result.code == 0, result.err
        assert result.out.splitlines() == impus
        assert self.connections == before + 1

    # -- bulk

    async def test_create_users_csv_with_bad_lines(self) -> None:
        lines = ["# impu,impi,password", ""]
        for i in range(200):
            lines.append(f"sip:user{i:03d}@example.com,,pw{i}")
        lines[10] = "sip:user008@example.com,only-two-fields"  # line 11
        lines[20] = "user018@example.com,,pw"  # line 21: not a URI
        lines[30] = "sip:user028@example.com,,"  # line 31: no password
        lines.append("sip:user000@example.com,,again")  # line 203: exists already
        lines.append('"sip:quoted@example.com","q@example.com","p,w"')  # line 204
        csv_file = self.write("users.csv", "\n".join(lines) + "\n")
        self.patch(provision, "PROGRESS_EVERY", 50)  # type: ignore[no-untyped-call]  # untyped
        before = self.connections
        result = await self.run_cli("create-users", "--csv", csv_file)
        assert result.code == 1
        assert result.error_lines() == [
            f"clearwater-provision: error: {csv_file}:11: "
            "expected impu,impi,password, found 2 field(s)",
            f"clearwater-provision: error: {csv_file}:21: bad IMPU 'user018@example.com': "
            "expected a sip:, sips: or tel: URI",
            f"clearwater-provision: error: {csv_file}:31: "
            "empty password for sip:user028@example.com",
            f"clearwater-provision: error: {csv_file}:203: user sip:user000@example.com already "
            f"exists on {self.server}",
        ]
        out = result.out.splitlines()
        assert out[:4] == [
            "50 users processed: 47 created, 3 failed",
            "100 users processed: 97 created, 3 failed",
            "150 users processed: 147 created, 3 failed",
            "200 users processed: 197 created, 3 failed",
        ]
        assert out[4].startswith("created 198 users, 4 failed, in ")
        assert self.connections == before + 1  # one keep-alive connection for everything
        publics = await self.publics()
        assert len(publics) == 198
        assert "sip:user008@example.com" not in publics
        quoted = await self.store.get_private("q@example.com")
        assert quoted is not None
        assert quoted.digest_ha1 == md5("q@example.com:example.com:p,w")
        user7 = await self.store.get_private("user007@example.com")
        assert user7 is not None and user7.digest_ha1 == md5("user007@example.com:example.com:pw7")

    async def test_create_users_unreadable_file(self) -> None:
        result = await self.run_cli("create-users", "--csv", str(self.tmp / "none.csv"))
        assert result.code == 1
        assert result.error_lines() == [
            f"clearwater-provision: error: cannot read {self.tmp / 'none.csv'}: "
            "No such file or directory"
        ]
        binary = self.tmp / "binary.csv"
        binary.write_bytes(b'sip:a@example.com,,pw\n\xff\xfe\n"sip:b@x,,p\nsip:c@example.com,,pw\n')
        result = await self.run_cli("create-users", "--csv", str(binary))
        assert result.code == 1
        first, second = result.error_lines()
        assert first == (
            f"clearwater-provision: error: {binary}:2: not UTF-8: 'utf-8' codec can't decode byte "
            "0xff in position 0: invalid start byte"
        )
        assert second.startswith(f"clearwater-provision: error: {binary}:3: bad CSV: ")
        assert second.endswith("unexpected end of data")
        assert await self.publics() == ["sip:a@example.com", "sip:c@example.com"]

    async def test_create_users_10000_timing(self) -> None:
        """The Must-show bulk run: 10,000 users finish (timing printed; no timed assertion)."""
        if platform.python_implementation() != "CPython" and not os.environ.get(
            "CLEARWATER_SLOW_TESTS"
        ):
            raise SkipTest("about 45 s on PyPy: set CLEARWATER_SLOW_TESTS=1 to run it there")
        lines = [f"sip:bulk{i:05d}@example.com,,pw{i}" for i in range(10000)]
        csv_file = self.write("bulk.csv", "\n".join(lines) + "\n")
        started = time.monotonic()
        result = await self.run_cli("create-users", "--csv", csv_file)
        elapsed = time.monotonic() - started
        print(f"\ncreate-users: 10,000 users in {elapsed:.1f} s ({10000 / elapsed:.0f} users/s)")
        assert result.code == 0, result.err
        assert result.out.splitlines()[9] == "10000 users processed: 10000 created, 0 failed"
        assert len(await self.publics()) == 10000

    # -- the server not there

    async def test_server_down_is_one_line_and_exit_1(self) -> None:
        port = REACTOR.listenTCP(0, ServerFactory(), interface="127.0.0.1")
        closed = "http://127.0.0.1:" + str(port.getHost().port)  # type: ignore[attr-defined]
        await _stop(port)
        for args in (
            ("create-user", "sip:a@example.com", "--password", "x"),
            ("delete-user", "sip:a@example.com"),
            ("show-user", "sip:a@example.com"),
            ("list-users",),
            ("update-user", "sip:a@example.com", "--password", "x"),
        ):
            result = await self.run_cli(*args, server=closed)
            assert result.code == 1
            (line,) = result.error_lines()
            assert line.startswith(
                f"clearwater-provision: error: cannot reach homestead-prov at {closed}: "
            )
            assert "refused" in line.lower()
        csv_file = self.write("two.csv", "sip:a@example.com,,x\nsip:b@example.com,,y\n")
        bulk = await self.run_cli("create-users", "--csv", csv_file, server=closed)
        assert bulk.code == 1
        (line,) = bulk.error_lines()
        assert line.startswith(
            f"clearwater-provision: error: cannot reach homestead-prov at {closed}: "
        )

    async def test_server_not_answering_times_out(self) -> None:
        silent = _SilentFactory()
        port = REACTOR.listenTCP(0, silent, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        url = "http://127.0.0.1:" + str(port.getHost().port)  # type: ignore[attr-defined]
        out, err = io.StringIO(), io.StringIO()
        argv = ["--timeout", "0.3", "show-user", "sip:a@example.com", "--server", url]
        started = time.monotonic()
        code = await deferToThread(main, argv, stdout=out, stderr=err)
        assert time.monotonic() - started < 5
        assert code == 1
        assert err.getvalue() == (
            f"clearwater-provision: error: homestead-prov at {url} did not answer GET "
            "/public/sip%3Aa%40example.com/service_profile within 0.3 s\n"
        )


async def _stop(port: IListeningPort) -> None:
    stopped = port.stopListening()
    if stopped is not None:
        await stopped


async def _raise(error: Exception) -> None:
    raise error


# --------------------------------------------------------------------------- usage


def _usage(argv: Sequence[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: clearwater-provision")
    return err.splitlines()[-1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["create-user", "sip:a@b"], "the following arguments are required: --password"),
        (["create-users"], "the following arguments are required: --csv"),
        (["update-user", "sip:a@b"], "update-user needs --password or --ifc-file"),
        (
            ["--server", "ftp://x", "list-users"],
            "--server: not an http:// or https:// URL: ftp://x",
        ),
        (
            ["list-users", "--server", "http://"],
            "--server: not an http:// or https:// URL: http://",
        ),
        (
            ["list-users", "--homestead", "http://h:99999"],
            "--homestead: bad port in URL: http://h:99999",
        ),
        (["list-users", "--timeout", "0"], "argument --timeout: must be positive: 0"),
        (["--timeout", "soon", "list-users"], "argument --timeout: not a number: soon"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert message in _usage(argv, capsys)


def test_options_go_before_or_after_the_command() -> None:
    parser = provision._parser()
    before = provision._parse(parser, ["--server", "http://a:1", "--timeout", "3", "list-users"])
    after = provision._parse(parser, ["list-users", "--server", "http://a:1", "--timeout", "3"])
    default = provision._parse(parser, ["list-users"])
    assert (before.server, before.timeout) == (after.server, after.timeout) == ("http://a:1", 3.0)
    assert (default.server, default.homestead, default.timeout) == (
        "http://127.0.0.1:8889",
        "http://127.0.0.1:8888",
        10.0,
    )


def test_default_ifcs_are_ellis_default() -> None:
    xml = default_ifcs("example.com")
    ifcs = parse_service_profile_ifcs(xml)
    assert ifcs == (
        "<InitialFilterCriteria><TriggerPoint><ConditionTypeCNF>0</ConditionTypeCNF>"
        "<SPT><ConditionNegated>0</ConditionNegated><Group>0</Group><Method>INVITE</Method>"
        "<Extension /></SPT></TriggerPoint><ApplicationServer>"
        "<ServerName>sip:mmtel.example.com</ServerName><DefaultHandling>0</DefaultHandling>"
        "</ApplicationServer></InitialFilterCriteria>"
    )
