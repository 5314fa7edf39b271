"""A short device label from a User-Agent string ("Chrome on macOS", "iPhone").

Only the first `MAX_PARSED_USER_AGENT` characters are parsed. ua-parser tries about a thousand
regular expressions, each scanning the text, so its cost grows with the length: a made-up 1 KiB
User-Agent that matches none of them took 7-34 ms, about 8x a real one, and no cache helps when
every such string differs. Real User-Agents fit the bound (the longest in common use, in-app
browsers of Facebook, Instagram and WeChat, are 250-300 characters) and say what the label needs
near the start: the platform in the first parentheses, the browser token after it. So the label
depends on the prefix alone, and a hostile User-Agent costs at most what 320 characters cost,
about 3x a typical real one (`python -m bench.devices` measures both in one run).
"""

from __future__ import annotations

from functools import lru_cache

from ua_parser import parse

# ua-parser's family names, as admins know them
_OS_NAMES = {"Mac OS X": "macOS", "Chrome OS": "ChromeOS"}
_HANDHELD_OS = {"iOS", "iPadOS", "Android"}
_VAGUE_DEVICES = {"Other", "Generic Smartphone", "Generic Tablet", "Generic Feature Phone", "K"}
MAX_LABEL = 128
MAX_PARSED_USER_AGENT = 320
"""Characters of a User-Agent that are parsed: the longest real ones in common use (~300) fit."""


def device_label(user_agent: str | None) -> str | None:
    """The device label for a User-Agent: the handset for phones and tablets, else browser on OS.

    Derived from the first `MAX_PARSED_USER_AGENT` characters only.
    """
    if not user_agent:
        return None
    return parsed_label(user_agent[:MAX_PARSED_USER_AGENT])


@lru_cache(maxsize=4096)
def parsed_label(user_agent: str) -> str | None:
    """The label ua-parser's reading of exactly this text gives (unbounded: callers bound it)."""
    result = parse(user_agent)
    browser = result.user_agent.family if result.user_agent else None
    os_family = result.os.family if result.os else None
    device = result.device.family if result.device else None
    if (
        device
        and device not in _VAGUE_DEVICES
        and (os_family in _HANDHELD_OS or device[:2] == "iP")
    ):
        label = device
    elif browser and browser != "Other" and os_family and os_family != "Other":
        label = f"{browser} on {_OS_NAMES.get(os_family, os_family)}"
    elif browser and browser != "Other":
        label = browser
    elif os_family and os_family != "Other":
        label = _OS_NAMES.get(os_family, os_family)
    else:
        return None
    return label[:MAX_LABEL]
