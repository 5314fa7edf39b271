"""Device labels come from a bounded prefix of the User-Agent, so a hostile one costs no more to
parse than that prefix; real User-Agents keep the labels they had (`python -m bench.devices`
measures the cost)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.devices import HOSTILE_SHAPES, REAL_USER_AGENTS, hostile_user_agent
from session_registry.domain import devices
from session_registry.domain.devices import MAX_PARSED_USER_AGENT, device_label

LABELS_BEFORE = [
    "Chrome on macOS",
    "Chrome on Windows",
    "Edge on Windows",
    "Opera on Windows",
    "Firefox on Windows",
    "Firefox on macOS",
    "Safari on macOS",
    "Chrome on Linux",
    "Firefox on Ubuntu",
    "Chrome on ChromeOS",
    "iPhone",
    "iPad",
    "Pixel 8",
    "Samsung SM-S918B",
    "IE on Windows",
    "okhttp",
    "Samsung SM-S918B",
    "iPhone",
    "iPhone",
    "Samsung SM-G991B",
    "V2145A",
]
"""What `device_label` gave `REAL_USER_AGENTS` when it parsed them whole."""


@pytest.mark.parametrize(
    ("user_agent", "label"), list(zip(REAL_USER_AGENTS, LABELS_BEFORE, strict=True))
)
def test_real_user_agents_keep_their_labels(user_agent: str, label: str) -> None:
    assert len(user_agent) <= MAX_PARSED_USER_AGENT  # the longest in common use fit whole
    assert device_label(user_agent) == label


@settings(max_examples=200, deadline=None, database=None)
@given(
    st.sampled_from([*REAL_USER_AGENTS, *(hostile_user_agent(s, 7) for s in HOSTILE_SHAPES)]),
    st.text(max_size=700),
    st.text(max_size=700),
)
def test_the_label_depends_on_the_prefix_alone(base: str, filler: str, suffix: str) -> None:
    prefix = f"{base} {filler}".ljust(MAX_PARSED_USER_AGENT, ";")[:MAX_PARSED_USER_AGENT]
    assert device_label(prefix + suffix) == device_label(prefix)


def test_ua_parser_never_sees_more_than_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    parse = devices.parse

    def measured(user_agent: str) -> Any:
        seen.append(len(user_agent))
        return parse(user_agent)

    monkeypatch.setattr(devices, "parse", measured)
    devices.parsed_label.cache_clear()
    for shape in HOSTILE_SHAPES:
        hostile = hostile_user_agent(shape, 12345)
        assert len(hostile) == 1024
        device_label(hostile)
    devices.parsed_label.cache_clear()
    assert seen and max(seen) == MAX_PARSED_USER_AGENT
