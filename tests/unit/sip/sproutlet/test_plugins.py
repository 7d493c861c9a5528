"""Sproutlet plugins (spec §2.10, §2.4): discovery through twisted.plugin, -N options, failures.

Every test writes real plugin modules into its own ``tmp_path`` directory and discovers them;
the synthetic packages it adds to ``sys.modules`` are removed afterwards.
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from twisted.plugin import getPlugins
from zope.interface import implementer
from zope.interface.verify import verifyObject

import clearwater.plugins
from clearwater.errors import ClearwaterError
from clearwater.sip.sproutlet import Sproutlet
from clearwater.sip.sproutlet._plugins import (
    _SYNTHETIC_PREFIX,
    ISproutletPlugin,
    PluginError,
    discover,
    load_sproutlets,
    parse_plugin_option,
)

_TEST_PACKAGE = "clearwater_test_plugin_package"

_HEADER = """\
from twisted.plugin import IPlugin
from zope.interface import implementer

from clearwater.sip.sproutlet import Sproutlet
from clearwater.sip.sproutlet._plugins import ISproutletPlugin


class Service(Sproutlet):
    def get_tsx(self, helper, alias, request):
        return None
"""


def _plugin_source(
    name: object, load_body: str, interfaces: str = "IPlugin, ISproutletPlugin"
) -> str:
    """A plugin module: ``plugin`` is named ``name``; ``load_body`` is the body of its load."""
    return (
        _HEADER
        + "\n\n@implementer("
        + interfaces
        + ")\nclass Plugin:\n    name = "
        + repr(name)
        + "\n\n    def load(self, options):\n"
        + "        self.received = dict(options)\n"
        + "        self.options_type = type(options).__name__\n"
        + textwrap.indent(textwrap.dedent(load_body), "        ")
        + "\n\nplugin = Plugin()\n"
    )


def _write(directory: Path, filename: str, source: str) -> Path:
    path = directory / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    return path


def _directory(tmp_path: Path, name: str = "plugins") -> Path:
    directory = tmp_path / name
    directory.mkdir()
    return Path(os.path.realpath(directory))


def _forget_new_modules(before: set[str]) -> None:
    """Remove the synthetic and test packages added since ``before`` (a new process, as it were)."""
    for key in list(sys.modules):
        if key not in before and key.startswith((_SYNTHETIC_PREFIX, _TEST_PACKAGE)):
            del sys.modules[key]


@pytest.fixture(autouse=True)
def _no_leaking_modules() -> Iterator[None]:
    for key in _synthetic_modules():  # left by other test files (sprout's service tests)
        del sys.modules[key]
    before = set(sys.modules)
    yield
    _forget_new_modules(before)


def _synthetic_modules() -> list[str]:
    return [key for key in sys.modules if key.startswith(_SYNTHETIC_PREFIX)]


@implementer(ISproutletPlugin)
class _InlinePlugin:
    """A plugin built in a test, for :func:`load_sproutlets` alone."""

    def __init__(self, name: str, sproutlets: list[Sproutlet]) -> None:
        self.name = name
        self.sproutlets = sproutlets

    def load(self, options: Mapping[str, str]) -> list[Sproutlet]:
        return self.sproutlets


# --- discovery ------------------------------------------------------------------------------


def test_a_plugin_with_two_sproutlets(tmp_path: Path) -> None:
    directory = _directory(tmp_path)
    _write(
        directory,
        "greeter.py",
        _plugin_source(
            "greeter",
            """
            return [
                Service("greeter", 5070, aliases=(options.get("alias", "hello"),)),
                Service("farewell", network_function="greeter"),
            ]
            """,
        ),
    )
    _write(directory, "helper.py", "VALUE = 1\n")  # a module without plugins is fine

    plugins = discover([str(directory)])

    assert [p.name for p in plugins] == ["greeter"]
    assert verifyObject(ISproutletPlugin, plugins[0])
    module = type(plugins[0]).__module__
    assert module.startswith(_SYNTHETIC_PREFIX) and module.endswith(".greeter")
    assert sys.modules[module].__file__ == str(directory / "greeter.py")
    sproutlets = load_sproutlets(plugins, [("greeter", "alias", "hi")])
    assert [
        (type(s).__name__, s.service_name, s.port, s.aliases, s.network_function)
        for s in sproutlets
    ] == [
        ("Service", "greeter", 5070, ("hi",), "greeter"),
        ("Service", "farewell", 0, (), "greeter"),
    ]
    assert (directory / "dropin.cache").is_file()


def test_a_plugin_can_import_from_its_directory_later(tmp_path: Path) -> None:
    directory = _directory(tmp_path)
    _write(directory, "impl/__init__.py", "")
    _write(directory, "impl/services.py", _HEADER + "\nclass Lazy(Service):\n    pass\n")
    _write(
        directory,
        "lazy.py",
        _plugin_source("lazy", "from .impl.services import Lazy\nreturn [Lazy('lazy')]\n"),
    )
    plugins = discover([str(directory)])
    assert [type(s).__name__ for s in load_sproutlets(plugins, [])] == ["Lazy"]


def test_a_module_with_a_syntax_error_stops_discovery(tmp_path: Path) -> None:
    directory = _directory(tmp_path)
    _write(directory, "good.py", _plugin_source("good", "return []"))
    broken = _write(directory, "broken.py", "def broken(:\n    pass\n")

    with pytest.raises(PluginError) as caught:
        discover([str(directory)])

    assert str(caught.value).startswith(
        "plugin module " + str(broken) + " failed to import: SyntaxError: "
    )
    assert isinstance(caught.value.__cause__, SyntaxError)
    assert isinstance(caught.value, ClearwaterError)
    assert _synthetic_modules() == []  # a failed scan leaves nothing behind


def test_a_module_raising_import_error_stops_discovery(tmp_path: Path) -> None:
    directory = _directory(tmp_path)
    module = _write(directory, "needs_lib.py", "raise ImportError('libgreeting is missing')\n")

    with pytest.raises(PluginError) as caught:
        discover([str(directory)])

    assert str(caught.value) == (
        "plugin module " + str(module) + " failed to import: ImportError: libgreeting is missing"
    )
    assert _synthetic_modules() == []


def test_a_plugin_without_iplugin_stops_discovery(tmp_path: Path) -> None:
    directory = _directory(tmp_path)
    module = _write(
        directory, "hidden.py", _plugin_source("hidden", "return []", interfaces="ISproutletPlugin")
    )
    with pytest.raises(PluginError) as caught:
        discover([str(directory)])
    assert str(caught.value) == (
        "plugin module "
        + str(module)
        + ": plugin provides ISproutletPlugin but not IPlugin, so twisted.plugin cannot find it"
    )


@pytest.mark.parametrize(
    ("name", "problem"), [("", "''"), ("a,b", "'a,b'"), (7, "7")], ids=["empty", "comma", "int"]
)
def test_a_plugin_with_a_bad_name_stops_discovery(
    tmp_path: Path, name: object, problem: str
) -> None:
    directory = _directory(tmp_path)
    module = _write(directory, "named.py", _plugin_source(name, "return []"))
    with pytest.raises(PluginError) as caught:
        discover([str(directory)])
    message = str(caught.value)
    assert message.startswith("plugin <" + _SYNTHETIC_PREFIX)
    assert message.endswith(
        " in module "
        + str(module)
        + " has name "
        + problem
        + ", not a non-empty str without commas"
    )


def test_a_plugin_without_load_stops_discovery(tmp_path: Path) -> None:
    directory = _directory(tmp_path)
    source = _HEADER + (
        "\n\n@implementer(IPlugin, ISproutletPlugin)\nclass Plugin:\n    name = 'loadless'\n"
        "\n\nplugin = Plugin()\n"
    )
    module = _write(directory, "loadless.py", source)
    with pytest.raises(PluginError) as caught:
        discover([str(directory)])
    message = str(caught.value)
    assert " in module " + str(module) + " does not implement ISproutletPlugin: " in message
    assert "ISproutletPlugin.load(options) attribute was not provided." in message


def test_two_plugins_with_the_same_name(tmp_path: Path) -> None:
    first = _directory(tmp_path, "first")
    second = _directory(tmp_path, "second")
    one = _write(first, "one.py", _plugin_source("greeter", "return []"))
    two = _write(second, "two.py", _plugin_source("greeter", "return []"))

    with pytest.raises(PluginError) as caught:
        discover([str(first), str(second)])

    assert str(caught.value) == (
        "two sproutlet plugins are named 'greeter': one in module "
        + str(one)
        + ", one in module "
        + str(two)
    )


def test_a_directory_given_twice_and_a_re_exported_plugin_count_once(tmp_path: Path) -> None:
    directory = _directory(tmp_path)
    _write(directory, "greeter.py", _plugin_source("greeter", "return []"))
    _write(directory, "reexport.py", "from .greeter import plugin\n")
    alias = tmp_path / "alias"
    alias.symlink_to(directory)
    plugins = discover([str(directory), str(alias), str(directory) + "/"])
    assert [p.name for p in plugins] == ["greeter"]


def test_a_missing_directory(tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere")
    with pytest.raises(PluginError) as caught:
        discover([missing])
    assert str(caught.value) == "plugin directory " + repr(missing) + " does not exist"


def test_a_file_is_not_a_plugin_directory(tmp_path: Path) -> None:
    path = tmp_path / "greeter.py"
    path.write_text("")
    with pytest.raises(PluginError) as caught:
        discover([str(path)])
    assert str(caught.value) == "plugin directory " + repr(str(path)) + " is not a directory"


def _chmod_stops_writes(directory: Path) -> bool:
    """Whether ``directory`` (mode 0o555) is read-only for us: not for root (``os.geteuid()`` 0)
    unless it lacks CAP_DAC_OVERRIDE, hence a probe."""
    probe = directory / "probe"
    try:
        probe.touch()
    except PermissionError:
        return True
    probe.unlink()
    return False


def test_a_read_only_directory(tmp_path: Path) -> None:
    directory = _directory(tmp_path)
    _write(directory, "greeter.py", _plugin_source("greeter", "return [Service('greeter')]"))
    directory.chmod(0o555)
    try:
        if not _chmod_stops_writes(directory):
            pytest.skip("chmod does not stop this user writing (euid " + str(os.geteuid()) + ")")
        plugins = discover([str(directory)])
    finally:
        directory.chmod(0o755)
    assert [p.name for p in plugins] == ["greeter"]
    assert [s.service_name for s in load_sproutlets(plugins, [])] == ["greeter"]
    assert sorted(os.listdir(directory)) == ["greeter.py"]  # no dropin.cache


def test_a_dropin_cache_that_cannot_be_written(tmp_path: Path) -> None:
    # The same failure as a read-only directory (OSError from the write), even for root.
    directory = _directory(tmp_path)
    _write(directory, "greeter.py", _plugin_source("greeter", "return [Service('greeter')]"))
    (directory / "dropin.cache").mkdir()
    plugins = discover([str(directory)])
    assert [p.name for p in plugins] == ["greeter"]
    assert [s.service_name for s in load_sproutlets(plugins, [])] == ["greeter"]
    assert (directory / "dropin.cache").is_dir()


def test_the_dropin_cache_serves_the_next_start(tmp_path: Path) -> None:
    directory = _directory(tmp_path)
    module = _write(directory, "greeter.py", _plugin_source("greeter", "return []"))
    before = set(sys.modules)
    discover([str(directory)])
    cache = directory / "dropin.cache"
    _make_older(module, cache)
    cached = cache.read_bytes()
    _forget_new_modules(before)

    plugins = discover([str(directory)])

    assert [p.name for p in plugins] == ["greeter"]
    assert cache.read_bytes() == cached  # read, not rewritten


def _make_older(module: Path, cache: Path) -> None:
    """Date ``module`` well before ``cache``, so that twisted.plugin trusts the cache."""
    written = cache.stat().st_mtime
    os.utime(module, (written - 100, written - 100))


@pytest.mark.parametrize("new_process", [True, False], ids=["new-process", "same-process"])
def test_a_dropin_cache_copied_from_another_directory(tmp_path: Path, new_process: bool) -> None:
    original = _directory(tmp_path, "original")
    _write(original, "greeter.py", _plugin_source("greeter", "return []"))
    before = set(sys.modules)
    (found,) = discover([str(original)])
    original_module = type(found).__module__
    copy = Path(shutil.copytree(original, tmp_path / "copy"))
    _make_older(copy / "greeter.py", copy / "dropin.cache")
    if new_process:
        _forget_new_modules(before)

    with pytest.raises(PluginError) as caught:
        discover([str(copy)])

    message = str(caught.value)
    if new_process:
        assert message == (
            "twisted.plugin could not load a plugin listed for directory "
            + repr(str(copy))
            + ": ObjectNotFound: "
            + repr(original_module + ".plugin")
            + " does not name an object (a stale dropin.cache?)"
        )
    else:
        assert message.startswith("twisted.plugin found <" + original_module + ".Plugin object")
        assert message.endswith(
            " for directory " + repr(str(copy)) + ", in none of its modules (a stale dropin.cache?)"
        )
    assert message.endswith("(a stale dropin.cache?)")


def test_clearwater_plugins_ships_no_plugin_yet() -> None:
    assert discover() == []
    assert list(getPlugins(ISproutletPlugin, clearwater.plugins)) == []
    here = os.path.dirname(clearwater.plugins.__file__ or "")
    assert clearwater.plugins.__path__[0] == here
    assert len(clearwater.plugins.__path__) > 1  # extended with pluginPackagePaths
    suffix = os.path.join("clearwater", "plugins")
    assert all(path.endswith(suffix) for path in clearwater.plugins.__path__)


def test_another_plugin_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _directory(tmp_path, "site")
    package_dir = root / _TEST_PACKAGE
    _write(package_dir, "__init__.py", "")
    module = _write(package_dir, "greeter.py", _plugin_source("greeter", "return []"))
    monkeypatch.syspath_prepend(str(root))
    import clearwater_test_plugin_package as package  # type: ignore[import-not-found]

    plugins = discover(package=package)

    assert [(p.name, type(p).__module__) for p in plugins] == [
        ("greeter", _TEST_PACKAGE + ".greeter")
    ]
    other = _directory(tmp_path, "other")
    twin = _write(other, "twin.py", _plugin_source("greeter", "return []"))
    with pytest.raises(PluginError) as caught:
        discover([str(other)], package=package)
    assert str(caught.value) == (
        "two sproutlet plugins are named 'greeter': one in module "
        + str(module)
        + ", one in module "
        + str(twin)
    )


# --- options and loading --------------------------------------------------------------------


def test_options_reach_the_plugin_they_name(tmp_path: Path) -> None:
    directory = _directory(tmp_path)
    for name in ("alpha", "beta", "gamma"):
        _write(directory, name + ".py", _plugin_source(name, "return []"))
    plugins = discover([str(directory)])
    options = [
        parse_plugin_option(text)
        for text in ("alpha,greeting,Hello, world", "beta,x,1", "alpha,greeting,Hi", "alpha,e,")
    ]

    assert load_sproutlets(plugins, options) == []

    received = {p.name: vars(p)["received"] for p in plugins}
    assert received == {"alpha": {"greeting": "Hi", "e": ""}, "beta": {"x": "1"}, "gamma": {}}
    assert {vars(p)["options_type"] for p in plugins} == {"mappingproxy"}


def test_an_option_for_an_unknown_plugin(tmp_path: Path) -> None:
    directory = _directory(tmp_path)
    _write(directory, "alpha.py", _plugin_source("alpha", "return []"))
    _write(directory, "beta.py", _plugin_source("beta", "return []"))
    plugins = discover([str(directory)])
    with pytest.raises(PluginError) as caught:
        load_sproutlets(plugins, [("alpha", "a", "1"), ("greeter", "greeting", "hi")])
    assert str(caught.value) == (
        "plugin option 'greeter,greeting,hi' is for plugin 'greeter', which does not exist"
        " (plugins: alpha, beta)"
    )
    with pytest.raises(PluginError) as caught:
        load_sproutlets([], [("greeter", "greeting", "hi")])
    assert str(caught.value).endswith("which does not exist (plugins: none)")


def test_a_plugin_whose_load_raises(tmp_path: Path) -> None:
    directory = _directory(tmp_path)
    _write(directory, "boom.py", _plugin_source("boom", "raise RuntimeError('no HSS configured')"))
    plugins = discover([str(directory)])
    with pytest.raises(PluginError) as caught:
        load_sproutlets(plugins, [])
    assert (
        str(caught.value)
        == "sproutlet plugin 'boom' failed to load: RuntimeError: no HSS configured"
    )
    assert isinstance(caught.value.__cause__, RuntimeError)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("return (Service('a'),)", "returned tuple from load, not a list of Sproutlet"),
        ("return None", "returned NoneType from load, not a list of Sproutlet"),
        (
            "return [Service('a'), 'b']",
            "returned a list holding str at index 1, not a Sproutlet",
        ),
    ],
    ids=["tuple", "none", "not-a-sproutlet"],
)
def test_a_plugin_whose_load_returns_no_list_of_sproutlets(
    tmp_path: Path, body: str, problem: str
) -> None:
    directory = _directory(tmp_path)
    _write(directory, "odd.py", _plugin_source("odd", body))
    plugins = discover([str(directory)])
    with pytest.raises(PluginError) as caught:
        load_sproutlets(plugins, [])
    assert str(caught.value) == "sproutlet plugin 'odd' " + problem


def test_an_alias_clash_between_plugins(tmp_path: Path) -> None:
    directory = _directory(tmp_path)
    _write(directory, "core.py", _plugin_source("core", "return [Service('scscf', 5054)]"))
    _write(
        directory,
        "auth.py",
        _plugin_source("auth", "return [Service('authentication', aliases=['scscf'])]"),
    )
    plugins = sorted(discover([str(directory)]), key=lambda p: p.name != "core")
    with pytest.raises(PluginError) as caught:
        load_sproutlets(plugins, [])
    assert str(caught.value) == (
        "name 'scscf' of sproutlet 'authentication' of plugin 'auth' clashes with"
        " sproutlet 'scscf' of plugin 'core'"
    )


def test_names_are_unique_across_sproutlets() -> None:
    def plugin(name: str, *sproutlets: Sproutlet) -> ISproutletPlugin:
        provider: ISproutletPlugin = _InlinePlugin(name, list(sproutlets))
        return provider

    # One sproutlet may repeat its own name.
    itself = Sproutlet("registrar", aliases=("registrar", "reg", "reg"))
    assert load_sproutlets([plugin("one", itself)], []) == [itself]
    # Within one plugin, a service name against a service name, an alias against an alias.
    with pytest.raises(PluginError) as caught:
        load_sproutlets([plugin("one", Sproutlet("bgcf"), Sproutlet("bgcf", port=5053))], [])
    assert str(caught.value) == (
        "name 'bgcf' of sproutlet 'bgcf' of plugin 'one' clashes with sproutlet 'bgcf' of plugin"
        " 'one'"
    )
    with pytest.raises(PluginError) as caught:
        load_sproutlets(
            [
                plugin("one", Sproutlet("icscf", aliases=("cscf",))),
                plugin("two", Sproutlet("scscf", aliases=("cscf",))),
            ],
            [],
        )
    assert str(caught.value) == (
        "name 'cscf' of sproutlet 'scscf' of plugin 'two' clashes with sproutlet 'icscf' of plugin"
        " 'one'"
    )
    with pytest.raises(PluginError) as caught:
        load_sproutlets([plugin("one"), plugin("one")], [])
    assert str(caught.value) == "two sproutlet plugins are named 'one'"


# --- -N parsing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("greeter,greeting,Hello", ("greeter", "greeting", "Hello")),
        ("greeter,greeting,Hello, world,again", ("greeter", "greeting", "Hello, world,again")),
        ("greeter,greeting,", ("greeter", "greeting", "")),
        (" greeter , greeting , x ", (" greeter ", " greeting ", " x ")),
    ],
)
def test_parse_plugin_option(text: str, parsed: tuple[str, str, str]) -> None:
    assert parse_plugin_option(text) == parsed


@pytest.mark.parametrize("text", ["", "greeter", "greeter,greeting", ",greeting,x", "greeter,,x"])
def test_parse_plugin_option_rejects(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_plugin_option(text)
    assert str(caught.value) == "plugin option " + repr(text) + " is not PLUGIN,NAME,VALUE"
