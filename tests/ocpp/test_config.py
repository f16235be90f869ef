"""The [ocpp] table of the site file."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sitegate.common.sitefile import ConfigError, parse_config

SITE = """
gateway_id = "gw-1"

[ocpp]
port = 9000
[ocpp.security]
profile = 1
unknown_chargers = "pending"
[ocpp.load_management]
enabled = true
connection_limit = 63
fallback_current = 6.5

[[ocpp.charge_points]]
id = "garage-1"
password = "long-random-password"
max_current = 16
phases = [2]

[[ocpp.charge_points]]
id = "laundry-box"
kind = "laundry"

[[ocpp.badges]]
id = "04:A2:3B:C1"
account = "tenant-7"
expires = 2030-01-01T00:00:00Z
"""


def test_site_file_with_ocpp() -> None:
    cfg = parse_config(SITE).ocpp
    assert cfg is not None
    assert cfg.load_management.fallback_current == Decimal("6.5")
    cp = cfg.charge_point("garage-1")
    assert cp is not None and cp.phases == [2] and cp.max_current == 16
    assert cfg.charge_point("laundry-box").kind == "laundry"  # type: ignore[union-attr]


def test_misspelt_key_is_named() -> None:
    with pytest.raises(ConfigError, match=r"ocpp\.charge_points\[0\]\.max_curent: unknown key"):
        parse_config(SITE.replace("max_current = 16", "max_curent = 16"))


def test_accepting_unknown_chargers_contradicts_basic_auth() -> None:
    text = SITE.replace('unknown_chargers = "pending"', 'unknown_chargers = "accept"')
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    [problem] = info.value.problems
    assert problem.path == "ocpp.security.unknown_chargers"
    assert problem.line == text.splitlines().index('unknown_chargers = "accept"') + 1
    assert "security profile 1 forbids" in problem.message and "'pending'" in problem.message
    # without a security profile there is no password to bypass
    cfg = parse_config(text.replace("profile = 1", "profile = 0")).ocpp
    assert cfg is not None and cfg.security.unknown_chargers == "accept"


def test_duplicate_charge_point_id_is_named() -> None:
    text = SITE.replace('id = "laundry-box"', 'id = "garage-1"')
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    [problem] = info.value.problems
    assert problem.path == "ocpp.charge_points"
    assert "garage-1 appears more than once" in problem.message
    assert problem.line == text.splitlines().index("[[ocpp.charge_points]]") + 1
