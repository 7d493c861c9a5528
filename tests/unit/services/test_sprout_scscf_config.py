"""What the S-CSCF is configured with from ``twistd sprout``'s options
(clearwater.services.sprout.scscf.scscf_config)."""

from __future__ import annotations

import pytest
from twisted.python import usage

from clearwater.services.sprout.scscf import scscf_config
from clearwater.services.sprout.tap import SproutConfig, SproutOptions


def parse(*argv: str) -> SproutConfig:
    options = SproutOptions()
    options.parseOptions(list(argv))
    return options.config()


def test_scscf_settings_come_from_sprouts() -> None:
    config = parse("--home-domain=example.com", "--reg-max-expires=600", "--reg-min-expires=60")
    scscf = scscf_config(config)
    assert scscf.home_domains == ("example.com",)
    assert scscf.scscf_uri == "sip:scscf.sprout.example.com;transport=tcp"
    assert (scscf.reg_max_expires, scscf.reg_min_expires) == (600, 60)


def test_reg_event_partial_state_is_off_unless_sprout_says_so() -> None:
    assert scscf_config(parse("--home-domain=example.com")).reg_event_partial_state is False
    config = parse("--home-domain=example.com", "--reg-event-partial-state=Y")
    assert config.reg_event_partial_state is True
    assert scscf_config(config).reg_event_partial_state is True


def test_default_session_expires_is_600_and_at_least_90() -> None:
    assert scscf_config(parse("--home-domain=example.com")).session_expires == 600
    config = parse("--home-domain=example.com", "--default-session-expires=90")
    assert scscf_config(config).session_expires == 90
    with pytest.raises(usage.UsageError, match="default-session-expires"):
        parse("--home-domain=example.com", "--default-session-expires=89")
