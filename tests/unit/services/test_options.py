"""The shared_config reader, the value converters and the ConfigOptions merge (ARCHITECTURE §4).

The option-table tests use a small table of their own; sprout's table is tested in
``test_sprout_options``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import pytest
from twisted.python import usage
from typing_extensions import override

from clearwater.errors import ClearwaterError
from clearwater.services._options import (
    AnySetting,
    ConfigError,
    ConfigOptions,
    Repeated,
    Setting,
    comma_list,
    directory,
    host,
    int_range,
    ip_address,
    parse_shared_config,
    port_number,
    read_shared_config,
    yes_no,
)


def write(tmp_path: Path, text: str, name: str = "shared_config") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


# --- the file format ----------------------------------------------------------------------------


def test_reads_assignments_skipping_comments_and_blank_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "# Deployment definitions\n"
        "home_domain=example.com\n"
        "\n"
        "   \n"
        "  # indented comment\n"
        "sprout_hostname=sprout.example.com\n",
    )
    assert read_shared_config(path) == {
        "home_domain": "example.com",
        "sprout_hostname": "sprout.example.com",
    }


def test_strips_whitespace_quotes_export_and_trailing_comments() -> None:
    text = (
        "  local_ip = 10.0.0.1  \n"
        "scscf_uri='sip:scscf.sprout.example.com;transport=tcp'\n"
        'icscf_uri="sip:icscf.sprout.example.com;transport=tcp"  # the I-CSCF\n'
        "export reg_max_expires=1800\n"
        "export\tsub_max_expires=1961\n"
        "sprout_rr_level=pcscf   # default\n"
        "hash=a#b\n"
        "single='$HOME is literal'\n"
        "crlf=yes\r\n"
    )
    assert parse_shared_config(text, "f") == {
        "local_ip": "10.0.0.1",
        "scscf_uri": "sip:scscf.sprout.example.com;transport=tcp",
        "icscf_uri": "sip:icscf.sprout.example.com;transport=tcp",
        "reg_max_expires": "1800",
        "sub_max_expires": "1961",
        "sprout_rr_level": "pcscf",
        "hash": "a#b",
        "single": "$HOME is literal",
        "crlf": "yes",
    }


def test_empty_values_and_repeated_keys() -> None:
    text = "public_ip=\nquoted=''\nkey=first\nkey=second\n"
    assert parse_shared_config(text, "f") == {"public_ip": "", "quoted": "", "key": "second"}


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("home_domain", "not a key=value line: 'home_domain'"),
        ("=value", "not a key=value line: '=value'"),
        ("1st=value", "not a key=value line: '1st=value'"),
        ("my-key=value", "not a key=value line: 'my-key=value'"),
        (
            ". /etc/clearwater/local_config",
            "not a key=value line: '. /etc/clearwater/local_config'",
        ),
        ("export key", "not a key=value line: 'export key'"),
        ("key='open", "key: unterminated quote"),
        ('key="a"b', "key: text after the closing quote"),
        ('key="$home_domain"', "key: $, ` or \\ in double quotes (use single quotes)"),
        (
            "scscf_uri=sip:scscf.example.com;transport=tcp",
            "scscf_uri: unquoted value with whitespace, quotes or shell syntax (quote it)",
        ),
        ("key=two words", "key: unquoted value with whitespace, quotes or shell syntax (quote it)"),
        ("key=a'b'", "key: unquoted value with whitespace, quotes or shell syntax (quote it)"),
        (
            "key=$(hostname)",
            "key: unquoted value with whitespace, quotes or shell syntax (quote it)",
        ),
    ],
)
def test_bad_line_names_file_and_line_number(tmp_path: Path, line: str, problem: str) -> None:
    path = write(tmp_path, f"# header\nhome_domain=example.com\n\n{line}\nlater=1\n")
    with pytest.raises(ConfigError) as caught:
        read_shared_config(path)
    assert str(caught.value) == f"{path}, line 4: {problem}"
    assert caught.value.path == path
    assert caught.value.line == 4
    assert isinstance(caught.value, ClearwaterError)


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = str(tmp_path / "nope")
    with pytest.raises(ConfigError) as caught:
        read_shared_config(path)
    assert str(caught.value) == f"{path}: cannot read: No such file or directory"
    assert caught.value.line is None


def test_directory_and_binary_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        read_shared_config(str(tmp_path))
    assert str(caught.value) == f"{tmp_path}: cannot read: Is a directory"
    path = tmp_path / "binary"
    path.write_bytes(b"key=\xff\n")
    with pytest.raises(ConfigError) as caught:
        read_shared_config(str(path))
    assert str(caught.value) == f"{path}: not UTF-8 text"


# --- converters ---------------------------------------------------------------------------------


def test_integer_converters() -> None:
    assert port_number("0") == 0
    assert port_number("65535") == 65535
    assert int_range(1, 1000)(" 50 ") == 50
    for text, reason in [
        ("65536", "out of range 0..65535"),
        ("-1", "not a whole number"),
        ("5e3", "not a whole number"),
        ("1_000", "not a whole number"),
        ("\u0663", "not a whole number"),  # ARABIC-INDIC DIGIT THREE: int() would take it
        ("", "not a whole number"),
    ]:
        with pytest.raises(ValueError) as caught:
            port_number(text)
        assert str(caught.value) == reason


def test_yes_no() -> None:
    assert [yes_no(t) for t in ("Y", "y", "yes", "TRUE")] == [True] * 4
    assert [yes_no(t) for t in ("N", "n", "No", "false")] == [False] * 4
    with pytest.raises(ValueError, match=r"^expected Y or N$"):
        yes_no("1")


def test_addresses_and_hosts() -> None:
    assert ip_address("10.0.0.1") == "10.0.0.1"
    assert ip_address("2001:DB8:0::1") == "2001:db8::1"
    with pytest.raises(ValueError, match=r"^not an IP address$"):
        ip_address("example.com")
    assert host("example.com") == "example.com"
    assert host("sprout.example.com.") == "sprout.example.com."
    assert host("10.0.0.1") == "10.0.0.1"
    assert host("::1") == "::1"
    assert host("[2001:db8::1]") == "[2001:db8::1]"
    for bad in ("", "exa mple.com", "user@example.com", "example.com:5060", "a;lr", "-a.com"):
        with pytest.raises(ValueError, match=r"^not a host name or IP address$"):
            host(bad)


def test_comma_list() -> None:
    hosts = comma_list(host)
    assert hosts("") == ()
    assert hosts("a.example.com, 10.0.0.1,,b") == ("a.example.com", "10.0.0.1", "b")
    with pytest.raises(ValueError) as caught:
        hosts("a.example.com,bad host")
    assert str(caught.value) == "'bad host': not a host name or IP address"


def test_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "plugins").mkdir()
    monkeypatch.chdir(tmp_path)
    assert directory("plugins") == os.path.join(str(tmp_path), "plugins")
    with pytest.raises(ValueError, match=r"^not a directory$"):
        directory("missing")


# --- ConfigOptions ------------------------------------------------------------------------------

NAME = Setting("name", "name_key", host, help="A host")
COUNT = Setting("count", "count", int_range(1, 10), "5", "A count")
LABEL = Setting("label", "label", str, help="A label", default_help="<name>-label")
FLAG = Setting("flag", "flag", yes_no, "N", "A flag")
OPTIONAL = Setting("optional", None, str, help="Not in files")
ITEM = Repeated("item", int_range(0, 9), "A digit", short="i")


class _Options(ConfigOptions):
    settings: ClassVar[tuple[AnySetting, ...]] = (NAME, COUNT, LABEL, FLAG, OPTIONAL, ITEM)

    @override
    def postOptions(self) -> None:
        super().postOptions()
        name = self.required_value(NAME)
        self.derived = self.value_or_derived(LABEL, name + "-label")


def parse(*argv: str) -> _Options:
    options = _Options()
    options.parseOptions(list(argv))
    return options


def test_defaults_and_derived_default() -> None:
    options = parse("--name", "host.example.com")
    assert options.required_value(COUNT) == 5
    assert options.setting_value(FLAG) is False
    assert options.setting_value(OPTIONAL) is None
    assert options.setting_value(LABEL) == "host.example.com-label"
    assert options["label"] == "host.example.com-label"
    assert options.repeated_values(ITEM) == ()
    assert options.ignored_keys == ()


def test_file_beats_default_and_command_line_beats_file(tmp_path: Path) -> None:
    path = write(tmp_path, "name_key=file.example.com\ncount=7\nflag=Y\n")
    from_file = parse("--config", path)
    assert from_file["name"] == "file.example.com"
    assert from_file["count"] == 7
    assert from_file["flag"] is True
    assert from_file["label"] == "file.example.com-label"  # derived from the file's value

    from_both = parse("--config", path, "--count", "9", "--name=cli.example.com", "--flag", "N")
    assert from_both["name"] == "cli.example.com"
    assert from_both["count"] == 9
    assert from_both["flag"] is False
    assert from_both["label"] == "cli.example.com-label"  # derived after merging


def test_a_derived_default_loses_to_file_and_command_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name_key=file.example.com\nlabel=from-file\n")
    assert parse("--config", path)["label"] == "from-file"
    assert parse("--config", path, "--label", "from-cli")["label"] == "from-cli"


def test_later_files_win_and_empty_values_count_as_unset(tmp_path: Path) -> None:
    first = write(tmp_path, "name_key=first.example.com\ncount=2\nflag=Y\n", "local_config")
    second = write(tmp_path, "count=3\nflag=\n", "shared_config")
    options = parse("--config", first, "--config", second)
    assert options["name"] == "first.example.com"
    assert options["count"] == 3
    assert options["flag"] is False  # empty in the later file: the default, not the earlier file
    assert options["config"] == [first, second]


def test_unknown_keys_are_collected_in_file_order(tmp_path: Path) -> None:
    path = write(tmp_path, "hs_hostname=hs.example.com:8888\nname_key=a.com\nxdms_hostname=x\n")
    options = parse("--config", path, "--optional", "o")
    assert options.ignored_keys == ("hs_hostname", "xdms_hostname")
    assert options["optional"] == "o"


def test_keyless_settings_ignore_files(tmp_path: Path) -> None:
    path = write(tmp_path, "name_key=a.com\noptional=from-file\n")
    options = parse("--config", path)
    assert options["optional"] is None
    assert options.ignored_keys == ("optional",)


def test_bad_value_on_command_line_names_the_option() -> None:
    with pytest.raises(usage.UsageError) as caught:
        parse("--name", "a.com", "--count", "11")
    assert str(caught.value) == "--count: bad value '11': out of range 1..10"


def test_bad_value_in_file_names_option_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, "name_key='bad host'\n")
    with pytest.raises(usage.UsageError) as caught:
        parse("--config", path)
    assert str(caught.value) == (
        f"--name (key name_key in {path}): bad value 'bad host': not a host name or IP address"
    )


def test_a_bad_file_value_overridden_on_the_command_line_is_not_used(tmp_path: Path) -> None:
    path = write(tmp_path, "name_key=a.com\ncount=0\n")
    assert parse("--config", path, "--count", "1")["count"] == 1


def test_bad_derived_default_names_the_option() -> None:
    tag = Setting("tag", None, int_range(0, 9))

    class Strict(_Options):
        settings = (tag,)

        @override
        def postOptions(self) -> None:
            super().postOptions()
            self.value_or_derived(tag, "10")

    with pytest.raises(usage.UsageError) as caught:
        Strict().parseOptions(["--name", "a.com"])
    assert str(caught.value) == "--tag (derived default): bad value '10': out of range 0..9"


def test_required_value_missing() -> None:
    with pytest.raises(usage.UsageError) as caught:
        parse()
    assert str(caught.value) == "--name (or shared_config key name_key) is required"
    options = parse("--name", "a.com")
    with pytest.raises(usage.UsageError) as caught:
        options.required_value(OPTIONAL)
    assert str(caught.value) == "--optional is required"


def test_unreadable_config_file_is_a_usage_error(tmp_path: Path) -> None:
    path = str(tmp_path / "missing")
    with pytest.raises(usage.UsageError) as caught:
        parse("--config", path)
    assert str(caught.value) == f"{path}: cannot read: No such file or directory"
    bad = write(tmp_path, "oops\n")
    with pytest.raises(usage.UsageError) as caught:
        parse("--config", bad)
    assert str(caught.value) == f"{bad}, line 1: not a key=value line: 'oops'"


def test_repeated_option_long_and_short() -> None:
    options = parse("--name", "a.com", "--item", "3", "-i", "1", "-i4", "--item=0")
    assert options.repeated_values(ITEM) == (3, 1, 4, 0)
    with pytest.raises(usage.UsageError) as caught:
        parse("--name", "a.com", "-i", "1", "-i", "x")
    assert str(caught.value) == "--item: bad value 'x': not a whole number"


def test_subclass_of_subclass_extends_the_table() -> None:
    extra = Setting("extra", "extra", str, "e")

    class More(_Options):
        settings = (extra,)

    assert [row.name for row in More.table()] == [
        "name",
        "count",
        "label",
        "flag",
        "optional",
        "item",
        "extra",
    ]
    options = More()
    options.parseOptions(["--name", "a.com", "--count", "2"])
    assert options["extra"] == "e"
    assert options["count"] == 2


def test_a_name_declared_twice_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"^option --count declared twice$"):

        class Twice(_Options):
            settings = (Setting("count", None, str),)


def test_help_lists_options_with_keys_and_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        parse("--help")
    assert caught.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # undo the line wrapping
    assert "--name= A host [shared_config: name_key]" in out
    assert "--count= A count [shared_config: count] [default: 5]" in out
    assert "--label= A label [shared_config: label] [default: <name>-label]" in out
    assert "--optional= Not in files --" in out
    assert "-i, --item= A digit [repeatable]" in out
    assert "--config= Read options from a file in Clearwater's shared_config format" in out


def test_values_before_parsing() -> None:
    options = _Options()
    assert options.setting_value(COUNT) is None
    assert options.ignored_keys == ()
