"""Plugin configuration: Clearwater's ``shared_config`` files and declarative option tables.

ARCHITECTURE.md §4: every plugin takes twistd options named after Clearwater's plus
``--config FILE`` in Clearwater's ``shared_config`` format (spec §8); the command line beats the
file, which beats the default; everything is validated once, in ``postOptions``, and a bad value
raises :class:`~twisted.python.usage.UsageError` naming the option (and, for a value read from a
file, the key and the file).

**The file format.** ``/etc/clearwater/shared_config`` and ``local_config`` are bash fragments
that Clearwater's init scripts ``source``. :func:`read_shared_config` reads the part of bash those
files use, and either reads a line exactly as bash would assign it or rejects it, so one file
means the same thing to Clearwater and to us:

- ``key=value``; blank lines and ``#`` comment lines are skipped; an ``export`` prefix is
  allowed (bash assigns the same way); whitespace around the line, the key and the value is
  dropped (the one leniency: bash takes ``key = value`` as a command, not an assignment);
- a value may be in single quotes (taken literally, as bash does) or in double quotes (which
  must not hold ``$``, a backquote or a backslash: bash would expand those and we do not);
- an unquoted value must not hold whitespace, quotes or shell metacharacters (``;&|<>()$`\\``):
  bash would read ``scscf_uri=sip:scscf.example.com;transport=tcp`` as two assignments;
- a comment may follow a value after whitespace (``key=value  # why``);
- a later assignment of a key replaces an earlier one, as in bash;
- an empty value (``public_ip=``) counts as not set: Clearwater's scripts test ``-n "$x"``.

**The option table.** A :class:`ConfigOptions` subclass lists its options once, as
:class:`Setting` (one value) and :class:`Repeated` (an option given any number of times) rows;
the class turns them into Twisted's ``optParameters`` and ``opt_<name>`` handlers, and its
``postOptions`` merges command line, files and defaults and converts every value.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Sequence
from typing import Any, Callable, ClassVar, Generic, Optional, TypeVar, Union, cast

import attrs
from twisted.python import usage
from typing_extensions import override

from clearwater.errors import ClearwaterError, ParseError
from clearwater.sip import parse_sip_uri

__all__ = [
    "AnySetting",
    "ConfigError",
    "ConfigOptions",
    "Repeated",
    "Setting",
    "comma_list",
    "diameter_peer",
    "directory",
    "host",
    "int_range",
    "ip_address",
    "parse_shared_config",
    "port_number",
    "read_shared_config",
    "readable_file",
    "seconds",
    "yes_no",
]

T = TypeVar("T")

_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EXPORT_RE = re.compile(r"export\s+")
_COMMENT_AFTER_VALUE_RE = re.compile(r"\s#")
# What bash would split on, expand or treat as syntax in an unquoted word.
_UNQUOTED_BAD_RE = re.compile(r"[\s'\";&|<>()$`\\]")
_DOUBLE_QUOTED_BAD_RE = re.compile(r"[$`\\]")


class ConfigError(ClearwaterError):
    """A configuration file that cannot be read or is not in ``shared_config`` format.

    :ivar path: the file.
    :ivar line: the 1-based line number of the bad line, or None if the file could not be read.
    """

    def __init__(self, path: str, line: Optional[int], problem: str) -> None:
        where = path if line is None else f"{path}, line {line}"
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.line = line


def _value(text: str) -> str:
    """The value bash would assign for ``text``, the stripped part of a line after ``=``."""
    if text[:1] in ("'", '"'):
        quote = text[0]
        end = text.find(quote, 1)
        if end == -1:
            raise ValueError("unterminated quote")
        rest = text[end + 1 :].strip()
        if rest and not rest.startswith("#"):
            raise ValueError("text after the closing quote")
        value = text[1:end]
        if quote == '"' and _DOUBLE_QUOTED_BAD_RE.search(value):
            raise ValueError("$, ` or \\ in double quotes (use single quotes)")
        return value
    comment = _COMMENT_AFTER_VALUE_RE.search(text)
    value = text if comment is None else text[: comment.start()].rstrip()
    if _UNQUOTED_BAD_RE.search(value):
        raise ValueError("unquoted value with whitespace, quotes or shell syntax (quote it)")
    return value


def parse_shared_config(text: str, path: str) -> dict[str, str]:
    """The assignments in ``text``, the contents of the file ``path`` (named in errors)."""
    values: dict[str, str] = {}
    for number, raw_line in enumerate(text.split("\n"), 1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        export = _EXPORT_RE.match(line)
        if export is not None:
            line = line[export.end() :]
        key, equals, rest = line.partition("=")
        key = key.rstrip()
        if not equals or _KEY_RE.fullmatch(key) is None:
            raise ConfigError(path, number, f"not a key=value line: {raw_line.strip()!r}")
        try:
            values[key] = _value(rest.strip())
        except ValueError as e:
            raise ConfigError(path, number, f"{key}: {e}") from None
    return values


def read_shared_config(path: str) -> dict[str, str]:
    """Read a Clearwater ``shared_config``-format file (see the module docstring) into a dict.

    Raises :class:`ConfigError`, naming the file and the line, for a line that is not an
    assignment, and naming the file when it cannot be read or is not UTF-8 text.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(path, None, f"cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ConfigError(path, None, "not UTF-8 text") from None
    return parse_shared_config(text, path)


# --- converters: text -> value, raising ValueError with a short reason -----------------------


def int_range(low: int, high: int) -> Callable[[str], int]:
    """A converter for a decimal integer from ``low`` to ``high`` inclusive."""

    def convert(text: str) -> int:
        digits = text.strip()
        if not (digits.isascii() and digits.isdigit()):
            raise ValueError("not a whole number")
        number = int(digits)
        if not low <= number <= high:
            raise ValueError(f"out of range {low}..{high}")
        return number

    return convert


port_number = int_range(0, 65535)
"""A TCP/UDP port, 0..65535 (0 usually means "none")."""


def yes_no(text: str) -> bool:
    """Clearwater's ``Y``/``N`` flags; ``yes``/``no`` and ``true``/``false`` also read."""
    word = text.strip().lower()
    if word in ("y", "yes", "true"):
        return True
    if word in ("n", "no", "false"):
        return False
    raise ValueError("expected Y or N")


def ip_address(text: str) -> str:
    """An IPv4 or IPv6 address (without brackets), in its normal text form."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise ValueError("not an IP address") from None


def host(text: str) -> str:
    """A host name or an IP address, as a SIP URI may carry it (RFC 3261 §25.1 ``host``).

    An IPv6 address may be given with or without brackets; it is kept as written.
    """
    name = text.strip()
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        return name
    try:
        uri = parse_sip_uri("sip:" + name)
    except ParseError:
        raise ValueError("not a host name or IP address") from None
    if uri.host != name:
        raise ValueError("not a host name or IP address")
    return name


def directory(text: str) -> str:
    """An existing directory, made absolute (twistd may change directory after parsing)."""
    if not os.path.isdir(text):
        raise ValueError("not a directory")
    return os.path.abspath(text)


def comma_list(item: Callable[[str], T]) -> Callable[[str], tuple[T, ...]]:
    """A converter for a comma-separated list whose items ``item`` converts; empty items are
    skipped, so ``""`` is the empty list."""

    def convert(text: str) -> tuple[T, ...]:
        values = []
        for part in text.split(","):
            if part.strip():
                try:
                    values.append(item(part.strip()))
                except ValueError as e:
                    raise ValueError(f"{part.strip()!r}: {e}") from None
        return tuple(values)

    return convert


def readable_file(text: str) -> str:
    """A readable file, made absolute (checked now, so a typo is a usage error naming the
    option; twistd may change directory after parsing)."""
    try:
        with open(text, "rb"):
            pass
    except OSError as e:
        raise ValueError(e.strerror or "cannot read") from None
    return os.path.abspath(text)


def seconds(low: float, high: float) -> Callable[[str], float]:
    """A converter for a number of seconds (decimals allowed) from ``low`` to ``high``."""

    def convert(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise ValueError("not a number of seconds") from None
        if not low <= value <= high:
            raise ValueError(f"out of range {low:g}..{high:g}")
        return value

    return convert


def diameter_peer(default_port: int) -> Callable[[str], tuple[str, str, int]]:
    """``NAME=ADDRESS[:PORT]``: a Diameter peer's identity (a host name) and where to reach it
    (an IP address, IPv6 in brackets when a port follows, or a host name), port 1-65535."""

    def convert(text: str) -> tuple[str, str, int]:
        name, sep, where = text.strip().partition("=")
        if not sep or not name or not where:
            raise ValueError("expected NAME=ADDRESS[:PORT]")
        name = host(name)
        port = default_port
        if where.startswith("["):
            end = where.find("]")
            if end == -1 or (where[end + 1 :] and not where[end + 1 :].startswith(":")):
                raise ValueError("expected [IPv6]:PORT")
            address, rest = where[1:end], where[end + 2 :]
            if rest:
                port = int_range(1, 65535)(rest)
        elif where.count(":") == 1:
            address, rest = where.split(":")
            port = int_range(1, 65535)(rest)
        else:
            address = where
        return name, host(address), port

    return convert


# --- the option table -------------------------------------------------------------------------


@attrs.frozen
class Setting(Generic[T]):
    """One option with one value, taken from the command line, a config file or a default.

    :ivar name: the long option name, without ``--``.
    :ivar key: the ``shared_config`` key it is read from, or None if files cannot set it.
    :ivar convert: text -> value; raises :class:`ValueError` with a short reason.
    :ivar default: the default as text (converted like any other source), or None: no value,
        unless the subclass derives one after merging (:meth:`ConfigOptions.value_or_derived`).
    :ivar help: one line for ``--help``.
    :ivar default_help: how ``--help`` describes a derived default.
    :ivar short: a one-letter synonym, or None.
    """

    name: str
    key: Optional[str]
    convert: Callable[[str], T]
    default: Optional[str] = None
    help: str = ""
    default_help: Optional[str] = None
    short: Optional[str] = None

    def describe(self) -> str:
        parts = [self.help]
        if self.key is not None:
            parts.append(f"[shared_config: {self.key}]")
        shown = self.default_help if self.default_help is not None else self.default
        if shown:
            parts.append(f"[default: {shown}]")
        return " ".join(parts)


@attrs.frozen
class Repeated(Generic[T]):
    """An option given any number of times on the command line; its value is the tuple of the
    converted arguments, in order. Config files cannot set it.
    """

    name: str
    convert: Callable[[str], T]
    help: str = ""
    short: Optional[str] = None

    def describe(self) -> str:
        return f"{self.help} [repeatable]"


AnySetting = Union[Setting[Any], Repeated[Any]]


def _collector(setting: Repeated[Any]) -> Callable[[ConfigOptions, str], None]:
    """The ``opt_<name>`` handler of a repeated option: it appends each argument."""

    def collect(self: ConfigOptions, value: str) -> None:
        self[setting.name].append(value)

    collect.__doc__ = setting.describe()
    return collect


def _convert(convert: Callable[[str], T], raw: str, where: str) -> T:
    try:
        return convert(raw)
    except ValueError as e:
        raise usage.UsageError(f"{where}: bad value {raw!r}: {e}") from None


class ConfigOptions(usage.Options):
    """``usage.Options`` whose options come from a table, with ``--config FILE``.

    A subclass sets ``settings: ClassVar[tuple[AnySetting, ...]]`` to its :class:`Setting` and
    :class:`Repeated` rows; a subclass of a subclass adds to its parent's table (the annotation
    keeps mypy from pinning the attribute to the first subclass's exact tuple type).

    After :meth:`parseOptions`, ``self[name]`` holds each converted value: from the command line
    if given there, else from the last ``--config`` file that sets its key to a non-empty value,
    else the converted default, else None. Read them typed with :meth:`setting_value`,
    :meth:`required_value` and :meth:`repeated_values`. A subclass extends :meth:`postOptions`
    to derive defaults (:meth:`value_or_derived`) and build its frozen config object.

    :ivar ignored_keys: the keys of the config files that no setting reads, in file order, for
        the service to log.
    """

    settings: ClassVar[tuple[AnySetting, ...]] = ()
    optParameters: ClassVar[list[list[Any]]] = []  # noqa: N815 (Twisted's name)

    @override
    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("settings", ())
        parameters = list(cls.__dict__.get("optParameters", []))
        for setting in own:
            if isinstance(setting, Setting):
                # Default None, so that "given on the command line" is "not None" afterwards.
                parameters.append([setting.name, setting.short, None, setting.describe()])
            else:
                handler = _collector(setting)
                setattr(cls, "opt_" + setting.name.replace("-", "_"), handler)
                if setting.short is not None:
                    setattr(cls, "opt_" + setting.short, handler)
        cls.optParameters = parameters
        _check_names(cls.table())

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # untyped in Twisted
        self.ignored_keys: tuple[str, ...] = ()
        self["config"] = []
        for setting in self.table():
            if isinstance(setting, Repeated):
                self[setting.name] = []

    @classmethod
    def table(cls) -> list[AnySetting]:
        """Every row of the option table, base classes' first."""
        rows: list[AnySetting] = []
        for klass in reversed(cls.__mro__):
            rows.extend(klass.__dict__.get("settings", ()))
        return rows

    @override
    def parseOptions(self, options: Optional[list[str]] = None) -> None:
        """Parse ``options`` (default ``sys.argv[1:]``), then run :meth:`postOptions`."""
        super().parseOptions(options)  # type: ignore[no-untyped-call]  # untyped in Twisted

    def opt_config(self, path: str) -> None:
        """Read options from a file in Clearwater's shared_config format (key=value); may be
        given more than once, later files win; the command line beats every file."""
        self["config"].append(path)

    def _read_files(self) -> tuple[dict[str, str], dict[str, str]]:
        """The merged assignments of every ``--config`` file, and the file each came from."""
        values: dict[str, str] = {}
        origins: dict[str, str] = {}
        for path in self["config"]:
            try:
                assignments = read_shared_config(path)
            except ConfigError as e:
                raise usage.UsageError(str(e)) from None
            for key, value in assignments.items():
                values[key] = value
                origins[key] = path
        return values, origins

    @override
    def postOptions(self) -> None:
        """Merge command line, files and defaults, converting (and so validating) each value."""
        file_values, origins = self._read_files()
        rows = self.table()
        known = {row.key for row in rows if isinstance(row, Setting) and row.key is not None}
        self.ignored_keys = tuple(key for key in file_values if key not in known)
        for row in rows:
            if isinstance(row, Repeated):
                self[row.name] = tuple(
                    _convert(row.convert, raw, "--" + row.name) for raw in self[row.name]
                )
                continue
            raw: Optional[str] = self[row.name]
            where = "--" + row.name
            if raw is None and row.key is not None and file_values.get(row.key):
                raw = file_values[row.key]
                where = f"--{row.name} (key {row.key} in {origins[row.key]})"
            elif raw is None and row.default is not None:
                raw = row.default
                where = f"--{row.name} (default)"
            self[row.name] = None if raw is None else _convert(row.convert, raw, where)

    def setting_value(self, setting: Setting[T]) -> Optional[T]:
        """The merged value of ``setting``, or None if no source gave one."""
        return cast(Optional[T], self[setting.name])

    def required_value(self, setting: Setting[T]) -> T:
        """The merged value of ``setting``; :class:`UsageError` if no source gave one."""
        value = self.setting_value(setting)
        if value is None:
            also = "" if setting.key is None else f" (or shared_config key {setting.key})"
            raise usage.UsageError(f"--{setting.name}{also} is required")
        return value

    def value_or_derived(self, setting: Setting[T], derived: str) -> T:
        """The merged value of ``setting``, else ``derived`` (text, converted and stored as its
        value): for defaults computed from other settings."""
        value = self.setting_value(setting)
        if value is None:
            value = _convert(setting.convert, derived, f"--{setting.name} (derived default)")
            self[setting.name] = value
        return value

    def repeated_values(self, setting: Repeated[T]) -> tuple[T, ...]:
        """The converted arguments of every ``--<name>`` on the command line, in order."""
        return cast(tuple[T, ...], self[setting.name])


def _check_names(rows: Sequence[AnySetting]) -> None:
    """Raise ValueError if two rows share a name: a bug in a table, found when it is defined."""
    seen: set[str] = set()
    for row in rows:
        if row.name in seen:
            raise ValueError(f"option --{row.name} declared twice")
        seen.add(row.name)
