"""``twistd sprout`` options: spec §8.1 keys and defaults, §2.9 sproutlet settings, §2.4 aliases."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
from twisted.python import usage

from clearwater.scscf.config import NonRegisterAuthentication
from clearwater.services.homestead.tap import default_store
from clearwater.services.sprout.tap import (
    BUILTIN_SPROUTLETS,
    RecordRoutingModel,
    SproutConfig,
    SproutletSettings,
    SproutOptions,
)
from clearwater.sip import parse_sip_uri
from clearwater.stores.urls import StoreUrl, parse_store_url


def parse(*argv: str) -> SproutConfig:
    options = SproutOptions()
    options.parseOptions(list(argv))
    return options.config()


def parse_error(*argv: str) -> str:
    with pytest.raises(usage.UsageError) as caught:
        SproutOptions().parseOptions(list(argv))
    return str(caught.value)


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "shared_config"
    path.write_text(text, encoding="utf-8")
    return str(path)


def sproutlet(config: SproutConfig, name: str) -> SproutletSettings:
    (found,) = [s for s in config.sproutlets if s.name == name]
    return found


def test_defaults() -> None:
    config = parse("--home-domain", "example.com")
    assert attrs.asdict(config, recurse=False, filter=lambda a, v: a.name != "sproutlets") == {
        "home_domain": "example.com",
        "additional_home_domains": (),
        "sprout_hostname": "sprout.example.com",
        "local_ip": "127.0.0.1",
        "public_ip": None,
        "public_hostname": None,
        "sip_port": 0,
        "http_address": "127.0.0.1",
        "http_port": 9888,
        "timer_c": 180,
        "max_sproutlet_depth": 50,
        "local_aliases": (),
        "remote_aliases": (),
        "always_serve_remote_aliases": True,
        "record_routing_model": RecordRoutingModel.PCSCF,
        "reg_max_expires": 300,
        "sub_max_expires": 461,
        "plugin_paths": (),
        "plugin_options": (),
        "hs_hostname": None,
        "homestead_timeout": 1.2,
        "registration_store": StoreUrl("memory"),
        "impi_store": StoreUrl("memory"),
        "subscriber_store": parse_store_url(default_store()),
        "authentication": True,
        "nonce_count_supported": False,
        "non_register_authentication": frozenset(),
        "digest_algorithms": ("MD5",),
        "reg_min_expires": 0,
        "default_session_expires": 600,
        "subscriber_cache_ttl": 10,
        "reg_event_partial_state": False,
    }


def test_scscf_options() -> None:
    config = parse(
        "--home-domain=example.com",
        "--hs-hostname=hs.example.com",
        "--homestead-timeout=500",
        "--registration-store=redis://127.0.0.1:6379/2",
        "--subscriber-store=memory:",
        "--authentication=N",
        "--non-register-authentication=if_proxy_authorization_present",
        "--digest-algorithms=MD5,SHA-256",
        "--reg-min-expires=60",
        "--subscriber-cache-ttl=0",
    )
    assert config.hs_hostname == ("hs.example.com", 8888)
    assert config.homestead_timeout == 0.5
    assert (
        config.registration_store
        == config.impi_store
        == StoreUrl("redis", host="127.0.0.1", port=6379, db=2)
    )
    assert config.subscriber_store == StoreUrl("memory")
    assert not config.authentication
    assert config.non_register_authentication == {
        NonRegisterAuthentication.IF_PROXY_AUTHORIZATION_PRESENT
    }
    assert config.digest_algorithms == ("MD5", "SHA-256")
    assert config.reg_min_expires == 60
    assert config.subscriber_cache_ttl == 0
    assert parse("--home-domain=a.com", "--hs-hostname=10.0.0.1:9999").hs_hostname == (
        "10.0.0.1",
        9999,
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ("--digest-algorithms=SHA-256", "MD5 must come first"),
        ("--digest-algorithms=MD5,SHA-512", "unsupported digest algorithm SHA-512"),
        ("--registration-store=sqlite:/tmp/x", "--registration-store"),
        ("--non-register-authentication=always", "expected a comma-separated list"),
        ("--hs-hostname=bad host", "--hs-hostname"),
        ("--subscriber-cache-ttl=-1", "--subscriber-cache-ttl"),
    ],
)
def test_scscf_option_errors(argv: str, message: str) -> None:
    assert message in parse_error("--home-domain=example.com", argv)


def test_every_builtin_sproutlet_has_spec_port_prefix_and_uri() -> None:
    config = parse("--home-domain", "example.com")
    rows = [(s.name, s.port, s.prefix, str(s.uri), s.enabled) for s in config.sproutlets]
    assert rows == [
        ("scscf", 5054, "scscf", "sip:scscf.sprout.example.com;transport=tcp", True),
        ("icscf", 5052, "icscf", "sip:icscf.sprout.example.com;transport=tcp", True),
        ("bgcf", 5053, "bgcf", "sip:bgcf.sprout.example.com;transport=tcp", True),
        ("mmtel", 5055, "mmtel", "sip:mmtel.sprout.example.com;transport=tcp", True),
        ("cdiv", 0, "cdiv", "sip:cdiv.sprout.example.com;transport=tcp", False),
        ("gemini", 0, "gemini", "sip:gemini.sprout.example.com;transport=tcp", False),
        (
            "mangelwurzel",
            0,
            "mangelwurzel",
            "sip:mangelwurzel.sprout.example.com;transport=tcp",
            False,
        ),
        ("memento", 0, "memento", "sip:memento.sprout.example.com;transport=tcp", False),
    ]
    assert [(s.name, s.port) for s in config.sproutlets] == list(BUILTIN_SPROUTLETS)
    assert sproutlet(config, "scscf").uri == parse_sip_uri(
        "sip:scscf.sprout.example.com;transport=tcp"
    )


def test_home_domain_is_required() -> None:
    assert parse_error() == "--home-domain (or shared_config key home_domain) is required"


def test_config_before_parsing_is_a_bug() -> None:
    with pytest.raises(RuntimeError):
        SproutOptions().config()


SHARED_CONFIG = """\
# Deployment definitions
home_domain=example.com
additional_home_domains=example.net,example.org
sprout_hostname=sprout.site1.example.com
hs_hostname=hs.example.com:8888
xdms_hostname=homer.example.com:7888
local_ip=10.0.0.5
public_ip=203.0.113.5
public_hostname=sprout-1.example.com
reg_max_expires=1800
sprout_rr_level=pcscf,icscf
max_sproutlet_depth=20
local_alias_list=10.0.0.5,sprout-1.example.com
remote_alias_list=sprout.site2.example.com
always_serve_remote_aliases=N
scscf=5064
icscf_prefix=i-cscf
bgcf_uri='sip:bgcf.internal.example.com:5053;transport=tcp'
mmtel=0
"""


def test_values_from_a_shared_config_file(tmp_path: Path) -> None:
    options = SproutOptions()
    options.parseOptions(["--config", write(tmp_path, SHARED_CONFIG)])
    config = options.config()
    assert config.home_domain == "example.com"
    assert config.additional_home_domains == ("example.net", "example.org")
    assert config.sprout_hostname == "sprout.site1.example.com"
    assert config.local_ip == "10.0.0.5"
    assert config.public_ip == "203.0.113.5"
    assert config.public_hostname == "sprout-1.example.com"
    assert config.reg_max_expires == 1800
    assert config.sub_max_expires == 1961  # derived from the file's reg_max_expires
    assert config.record_routing_model is RecordRoutingModel.PCSCF_ICSCF
    assert config.max_sproutlet_depth == 20
    assert config.local_aliases == ("10.0.0.5", "sprout-1.example.com")
    assert config.remote_aliases == ("sprout.site2.example.com",)
    assert config.always_serve_remote_aliases is False
    assert config.http_address == "127.0.0.1"
    assert options.ignored_keys == ("xdms_hostname",)
    assert config.hs_hostname == ("hs.example.com", 8888)
    rows = [(s.name, s.port, s.prefix, str(s.uri)) for s in config.sproutlets[:4]]
    assert rows == [
        ("scscf", 5064, "scscf", "sip:scscf.sprout.site1.example.com;transport=tcp"),
        ("icscf", 5052, "i-cscf", "sip:i-cscf.sprout.site1.example.com;transport=tcp"),
        ("bgcf", 5053, "bgcf", "sip:bgcf.internal.example.com:5053;transport=tcp"),
        ("mmtel", 0, "mmtel", "sip:mmtel.sprout.site1.example.com;transport=tcp"),
    ]


def test_command_line_beats_file_beats_default(tmp_path: Path) -> None:
    path = write(tmp_path, SHARED_CONFIG)
    config = parse(
        "--config",
        path,
        "--sprout-hostname",
        "sprout.cli.example.com",
        "--reg-max-expires",
        "600",
        "--scscf",
        "5054",
        "--prefix-icscf",
        "icscf2",
        "--always-serve-remote-aliases",
        "Y",
        "--remote-alias-list",
        "",
        "--http-port",
        "9999",
    )
    assert config.home_domain == "example.com"  # file
    assert config.sprout_hostname == "sprout.cli.example.com"  # command line over file
    assert config.reg_max_expires == 600
    assert config.sub_max_expires == 761  # derived from the command line's value
    assert config.always_serve_remote_aliases is True
    assert config.remote_aliases == ()  # an empty list on the command line clears the file's
    assert config.http_port == 9999  # command line over default
    assert config.max_sproutlet_depth == 20  # file over default
    scscf, icscf, bgcf = config.sproutlets[:3]
    assert (scscf.port, str(scscf.uri)) == (5054, "sip:scscf.sprout.cli.example.com;transport=tcp")
    assert str(icscf.uri) == "sip:icscf2.sprout.cli.example.com;transport=tcp"
    assert str(bgcf.uri) == "sip:bgcf.internal.example.com:5053;transport=tcp"  # file's own URI


def test_derived_defaults_lose_to_explicit_values() -> None:
    config = parse(
        "--home-domain",
        "example.com",
        "--sub-max-expires",
        "100",
        "--uri-scscf",
        "sip:10.0.0.1:5054;transport=tcp",
    )
    assert config.sprout_hostname == "sprout.example.com"
    assert config.sub_max_expires == 100
    assert str(sproutlet(config, "scscf").uri) == "sip:10.0.0.1:5054;transport=tcp"


def test_other_options() -> None:
    config = parse(
        "--home-domain=example.com",
        "--additional-home-domains=a.example.com, b.example.com",
        "--local-ip=::1",
        "--public-ip=2001:DB8::5",
        "--sip-port=5060",
        "--http-address=0.0.0.0",
        "--max-sproutlet-depth=1000",
        "--record-routing-model=PCSCF, ICSCF, AS",
        "--local-alias-list=[::1],localhost",
        "--cdiv=5056",
    )
    assert config.additional_home_domains == ("a.example.com", "b.example.com")
    assert config.local_ip == "::1"
    assert config.public_ip == "2001:db8::5"
    assert config.sip_port == 5060
    assert config.http_address == "0.0.0.0"
    assert config.max_sproutlet_depth == 1000
    assert config.record_routing_model is RecordRoutingModel.PCSCF_ICSCF_AS
    assert config.local_aliases == ("[::1]", "localhost")
    assert sproutlet(config, "cdiv").enabled


def test_plugin_path_and_plugin_option_repeat(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    config = parse(
        "--home-domain",
        "example.com",
        "--plugin-path",
        str(tmp_path / "one"),
        "-N",
        "greeter,greeting,Hello, world",
        "--plugin-path",
        str(tmp_path / "two"),
        "--plugin-option",
        "greeter,port,5099",
    )
    assert config.plugin_paths == (str(tmp_path / "one"), str(tmp_path / "two"))
    assert config.plugin_options == ("greeter,greeting,Hello, world", "greeter,port,5099")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--max-sproutlet-depth", "0"],
            "--max-sproutlet-depth: bad value '0': out of range 1..1000",
        ),
        (
            ["--max-sproutlet-depth", "1001"],
            "--max-sproutlet-depth: bad value '1001': out of range 1..1000",
        ),
        (["--scscf", "65536"], "--scscf: bad value '65536': out of range 0..65535"),
        (["--local-ip", "localhost"], "--local-ip: bad value 'localhost': not an IP address"),
        (
            ["--record-routing-model", "icscf"],
            "--record-routing-model: bad value 'icscf': "
            "expected pcscf, pcscf,icscf or pcscf,icscf,as",
        ),
        (
            ["--always-serve-remote-aliases", "maybe"],
            "--always-serve-remote-aliases: bad value 'maybe': expected Y or N",
        ),
        (
            ["--reg-max-expires", "0"],
            "--reg-max-expires: bad value '0': out of range 1..2147483647",
        ),
        (
            ["--prefix-scscf", "s.cscf"],
            "--prefix-scscf: bad value 's.cscf': not a host name label",
        ),
        (
            ["--uri-scscf", "tel:+15551234"],
            "--uri-scscf: bad value 'tel:+15551234': Bad URI: not a SIP URI",
        ),
        (
            ["--plugin-option", "greeter,greeting"],
            "--plugin-option: bad value 'greeter,greeting': expected PLUGIN,NAME,VALUE",
        ),
        (
            ["--plugin-option", ",name,value"],
            "--plugin-option: bad value ',name,value': expected PLUGIN,NAME,VALUE",
        ),
        (
            ["--plugin-path", "/nonexistent/plugins"],
            "--plugin-path: bad value '/nonexistent/plugins': not a directory",
        ),
    ],
)
def test_bad_command_line_values_name_the_option(argv: list[str], message: str) -> None:
    assert parse_error("--home-domain", "example.com", *argv) == message


def test_bad_file_values_name_option_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "home_domain=example.com\nmax_sproutlet_depth=0\n")
    assert parse_error("--config", path) == (
        f"--max-sproutlet-depth (key max_sproutlet_depth in {path}): bad value '0': "
        "out of range 1..1000"
    )
    path = write(tmp_path, "home_domain=example.com\nscscf_uri='sip:scscf example'\n")
    assert parse_error("--config", path).startswith(
        f"--uri-scscf (key scscf_uri in {path}): bad value 'sip:scscf example': Bad URI"
    )
    path = write(tmp_path, "home_domain=example.com\nsprout_rr_level=as\n")
    assert parse_error("--config", path) == (
        f"--record-routing-model (key sprout_rr_level in {path}): bad value 'as': "
        "expected pcscf, pcscf,icscf or pcscf,icscf,as"
    )


def test_derived_defaults_are_validated() -> None:
    # An IP address gives no host name to derive "sprout.<home domain>" or the sproutlet URIs from.
    assert parse_error("--home-domain", "10.0.0.1") == (
        "--sprout-hostname (derived default): bad value 'sprout.10.0.0.1': "
        "not a host name or IP address"
    )
    assert parse_error("--home-domain", "example.com", "--sprout-hostname", "10.0.0.1") == (
        "--uri-scscf (derived default): bad value 'sip:scscf.10.0.0.1;transport=tcp': "
        "Bad URI: bad host"
    )


def test_enabled_sproutlets_need_distinct_ports_and_prefixes() -> None:
    assert parse_error("--home-domain", "example.com", "--icscf", "5054") == (
        "--scscf and --icscf both use port 5054"
    )
    assert parse_error("--home-domain", "example.com", "--sip-port", "5052") == (
        "--sip-port and --icscf both use port 5052"
    )
    assert parse_error("--home-domain", "example.com", "--prefix-bgcf", "SCSCF") == (
        "--prefix-scscf and --prefix-bgcf are both 'SCSCF'"
    )
    # Disabled sproutlets (port 0) clash with nothing.
    config = parse("--home-domain", "example.com", "--prefix-cdiv", "scscf")
    assert sproutlet(config, "cdiv").prefix == "scscf"


def test_help_lists_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        SproutOptions().parseOptions(["--help"])
    assert caught.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for option in (
        "--config=",
        "--home-domain=",
        "--additional-home-domains=",
        "--sprout-hostname=",
        "--local-ip=",
        "--public-ip=",
        "--public-hostname=",
        "--sip-port=",
        "--http-port=",
        "--http-address=",
        "--max-sproutlet-depth=",
        "--local-alias-list=",
        "--remote-alias-list=",
        "--always-serve-remote-aliases=",
        "--record-routing-model=",
        "--reg-max-expires=",
        "--sub-max-expires=",
        "--plugin-path=",
        "-N, --plugin-option=",
    ):
        assert option in out
    for name, port in BUILTIN_SPROUTLETS:
        assert f"--{name}= Port of the {name} sproutlet; 0: disabled" in out
        assert f"[shared_config: {name}] [default: {port}]" in out
        assert f"--prefix-{name}= " in out and f"[shared_config: {name}_prefix]" in out
        assert f"--uri-{name}= URI of the {name} sproutlet [shared_config: {name}_uri]" in out
    assert "[default: sprout.<home domain>]" in out
    assert "[default: reg-max-expires + 161]" in out
    assert "[default: sip:<prefix>.<sprout hostname>;transport=tcp]" in out
