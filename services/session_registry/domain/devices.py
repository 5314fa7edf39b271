"""A short device label from a User-Agent string ("Chrome on macOS", "iPhone")."""

from __future__ import annotations

from functools import lru_cache

from ua_parser import parse

# ua-parser's family names, as admins know them
_OS_NAMES = {"Mac OS X": "macOS", "Chrome OS": "ChromeOS"}
_HANDHELD_OS = {"iOS", "iPadOS", "Android"}
_VAGUE_DEVICES = {"Other", "Generic Smartphone", "Generic Tablet", "Generic Feature Phone", "K"}
MAX_LABEL = 128


@lru_cache(maxsize=4096)
def device_label(user_agent: str | None) -> str | None:
    """The device label for a User-Agent: the handset for phones and tablets, else browser on OS."""
    if not user_agent:
        return None
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
