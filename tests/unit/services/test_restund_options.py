"""``twistd restund``'s options: defaults, derived values and usage errors naming the option."""

from __future__ import annotations

import os
import tempfile

import pytest
from twisted.python import usage

from clearwater.services.restund.tap import RestundConfig, RestundOptions

USER = ["--user", "alice:secret"]


def parse(*args: str) -> RestundConfig:
    options = RestundOptions()
    options.parseOptions(list(args))
    return options.config()


def refused(*args: str) -> str:
    with pytest.raises(usage.UsageError) as e:
        parse(*args)
    return str(e.value)


def test_defaults() -> None:
    config = parse("--home-domain", "example.com", *USER)
    assert config.realm == "example.com"
    assert config.listen == (("127.0.0.1", 3478),)
    assert config.tls_listen == ()
    assert (config.relay_ipv4, config.relay_ipv6) == ("127.0.0.1", None)
    assert (config.min_port, config.max_port) == (49152, 65535)
    assert config.users == (("alice", "secret"),)
    assert config.credentials == "users"
    assert config.static_auth_secret is None
    assert config.hs_hostname is None
    assert not config.allow_loopback_peers
    assert config.allow_peers == config.deny_peers == ()
    assert (config.max_allocations, config.user_quota, config.bandwidth) == (512, 10, 0)
    assert (config.lifetime, config.max_lifetime) == (600, 3600)
    assert (config.http_address, config.http_port) == ("127.0.0.1", 8478)


def test_secrets_stay_out_of_the_repr() -> None:
    config = parse("--realm", "r", "--user", "alice:hunter2")
    assert "hunter2" not in repr(config)
    config = parse("--realm", "r", "--static-auth-secret", "hunter2")
    assert "hunter2" not in repr(config)
    assert config.credentials == "secret"


def test_everything_given() -> None:
    config = parse(
        "--realm=turn.example.com",
        "--listen=192.0.2.1:3478",
        "--listen=[2001:db8::1]:3479",
        "--relay-ip=192.0.2.2",
        "--min-port=50000",
        "--max-port=50010",
        "--static-auth-secret=north",
        "--allow-loopback-peers",
        "--allow-peer=10.1.2.3/8",
        "--deny-peer=192.0.2.0/24",
        "--deny-peer=2001:db8::/32",
        "--max-allocations=100",
        "--user-quota=2",
        "--bandwidth=125000",
        "--lifetime=300",
        "--max-lifetime=1200",
        "--http-address=::1",
        "--http-port=0",
    )
    assert config.realm == "turn.example.com"
    assert config.listen == (("192.0.2.1", 3478), ("2001:db8::1", 3479))
    # --relay-ip given: no IPv6 relay even though an IPv6 listen address is.
    assert (config.relay_ipv4, config.relay_ipv6) == ("192.0.2.2", None)
    assert (config.min_port, config.max_port) == (50000, 50010)
    assert config.credentials == "secret"
    assert config.allow_loopback_peers
    assert config.allow_peers == ("10.0.0.0/8",)
    assert config.deny_peers == ("192.0.2.0/24", "2001:db8::/32")
    assert (config.max_allocations, config.user_quota, config.bandwidth) == (100, 2, 125000)
    assert (config.lifetime, config.max_lifetime) == (300, 1200)
    assert (config.http_address, config.http_port) == ("::1", 0)


def test_listen_forms() -> None:
    config = parse("--realm=r", *USER, "--listen=192.0.2.1", "--listen=2001:db8::1")
    assert config.listen == (("192.0.2.1", 3478), ("2001:db8::1", 3478))
    assert (config.relay_ipv4, config.relay_ipv6) == ("192.0.2.1", "2001:db8::1")
    config = parse("--realm=r", *USER, "--listen=[::1]")
    assert config.listen == (("::1", 3478),)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen=example.com:3478"], "--listen: bad value 'example.com:3478': not an IP"),
        (["--listen=127.0.0.1:0"], "--listen: bad value '127.0.0.1:0': out of range 1..65535"),
        (["--listen=[::1:3478"], "--listen: bad value '[::1:3478': unclosed ["),
        (["--listen=[::1]x"], "--listen: bad value '[::1]x': expected HOST:PORT"),
        (["--listen=127.0.0.1", "--listen=127.0.0.1:3478"], "--listen 127.0.0.1:3478: that port"),
        (["--listen=0.0.0.0", "--listen=127.0.0.1"], "--listen 127.0.0.1:3478: that port"),
        (["--listen=0.0.0.0"], "--relay-ip is required"),
        (["--relay-ip=0.0.0.0"], "--relay-ip: bad value '0.0.0.0': a relay address must be"),
        (["--relay-ip=192.0.2.1", "--relay-ip=192.0.2.2"], "--relay-ip: at most one IPv4"),
        (["--min-port=60000", "--max-port=50000"], "--min-port 60000 is above --max-port 50000"),
        (["--max-port=65536"], "--max-port: bad value '65536'"),
        (["--lifetime=4000"], "--lifetime 4000 is above --max-lifetime 3600"),
        (["--lifetime=10"], "--lifetime: bad value '10': out of range 30..86400"),
        (["--deny-peer=10.0.0.0/33"], "--deny-peer: bad value '10.0.0.0/33'"),
        (["--allow-peer=nowhere"], "--allow-peer: bad value 'nowhere'"),
        (["--user-quota=0"], "--user-quota: bad value '0'"),
        (["--max-allocations=x"], "--max-allocations: bad value 'x'"),
        (["--bandwidth=-1"], "--bandwidth: bad value '-1'"),
        (["--http-address=localhost"], "--http-address: bad value 'localhost'"),
    ],
)
def test_bad_values_name_the_option(args: list[str], message: str) -> None:
    assert message in refused("--realm=r", *USER, *args)


def test_realm_defaults_to_the_home_domain_and_one_is_needed() -> None:
    assert parse("--home-domain=example.com", "--realm=other", *USER).realm == "other"
    assert "--realm or --home-domain" in refused(*USER)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no credentials: give --user, --static-auth-secret or --hs-hostname"),
        (["--user=alice:x", "--static-auth-secret=s"], "--user and --static-auth-secret: give one"),
        (
            ["--static-auth-secret=s", "--hs-hostname=hs"],
            "--static-auth-secret and --hs-hostname: give one",
        ),
        (["--user=alice"], "--user: bad value 'alice': expected NAME:PASSWORD"),
        (["--user=:x"], "--user: bad value ':x': expected NAME:PASSWORD"),
        (["--user=alice:"], "--user: bad value 'alice:': expected NAME:PASSWORD"),
        (["--user=alice:a\u0007b"], "--user: bad value 'alice:a\\x07b': SASLprep"),
        (["--user=alice:x", "--user=alice:y"], "--user alice given twice"),
        (["--static-auth-secret="], "--static-auth-secret: bad value '': empty secret"),
        (["--hs-hostname=hs:99999"], "--hs-hostname: bad value 'hs:99999'"),
    ],
)
def test_credentials_errors(args: list[str], message: str) -> None:
    assert message in refused("--realm=r", *args)


def test_user_password_may_hold_colons_and_several_users() -> None:
    config = parse("--realm=r", "--user=alice:a:b", "-u", "bob:0x" + "00" * 16)
    assert config.users == (("alice", "a:b"), ("bob", "0x" + "00" * 16))


def test_homestead_credentials() -> None:
    config = parse("--home-domain=example.com", "--hs-hostname=hs.example.com")
    assert config.credentials == "homestead"
    assert config.hs_hostname == ("hs.example.com", 8888)
    assert config.homestead_timeout == 1.2
    assert config.key_cache_ttl == 30
    config = parse(
        "--realm=r",
        "--hs-hostname=[2001:db8::5]:8889",
        "--homestead-timeout=500",
        "--key-cache-ttl=0",
    )
    assert config.hs_hostname == ("2001:db8::5", 8889)
    assert config.homestead_timeout == 0.5
    assert config.key_cache_ttl == 0


def _config_file(text: str) -> str:
    fd, path = tempfile.mkstemp()
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def test_shared_config_gives_realm_and_homestead() -> None:
    path = _config_file("home_domain=example.com\nhs_hostname=hs.example.com:8888\n")
    try:
        config = parse("--config", path)
        assert config.realm == "example.com"
        assert config.credentials == "homestead"
        assert config.hs_hostname == ("hs.example.com", 8888)
        # A scheme on the command line beats the file's homestead.
        config = parse("--config", path, "--user=alice:x")
        assert config.credentials == "users"
        assert config.hs_hostname is None
    finally:
        os.unlink(path)


def test_tls() -> None:
    path = _config_file("not really PEM, but readable")
    try:
        config = parse(
            "--realm=r", *USER, "--listen=192.0.2.1", "--tls-cert", path, "--tls-key", path
        )
        assert config.tls_listen == (("192.0.2.1", 5349),)
        assert (config.tls_cert, config.tls_key) == (path, path)
        config = parse(
            "--realm=r",
            *USER,
            "--tls-cert",
            path,
            "--tls-key",
            path,
            "--tls-listen=127.0.0.1:443",
            "--tls-listen=[::1]",
        )
        assert config.tls_listen == (("127.0.0.1", 443), ("::1", 5349))
        assert "--tls-cert and --tls-key go together" in refused(
            "--realm=r", *USER, "--tls-cert", path
        )
        assert "--tls-listen needs --tls-cert" in refused(
            "--realm=r", *USER, "--tls-listen=127.0.0.1"
        )
        assert "--tls-listen 127.0.0.1:3478 and --listen use the same TCP port" in refused(
            "--realm=r", *USER, "--tls-cert", path, "--tls-key", path, "--tls-listen=127.0.0.1:3478"
        )
    finally:
        os.unlink(path)
    assert "--tls-cert: bad value" in refused("--realm=r", *USER, "--tls-cert=/nonexistent/x")


def test_config_before_parse_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        RestundOptions().config()


def test_plugin_is_registered() -> None:
    from twisted.application.service import IServiceMaker
    from twisted.plugin import getPlugins

    import twisted.plugins

    makers = {m.tapname: m for m in getPlugins(IServiceMaker, twisted.plugins)}
    assert makers["restund"].options is RestundOptions
