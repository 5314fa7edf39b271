"""A short device label from a User-Agent string ("Chrome on macOS", "iPhone").

ua-parser tries about a thousand regular expressions, each scanning the text. With its pure
Python resolver (Python's `re`) that cost grew with the length and the shape of the text: a
made-up 1 KiB User-Agent matching none of them took 7-34 ms, about 8x a real one (1-2.5 ms), and
no cache helps when every such string differs. Two things bound it now:

- ua-parser's Rust resolver (`ua-parser[regex]`, the `ua-parser-rs` package), whose regex engine
  matches in time linear in the text: a real User-Agent labels in about 0.05 ms, a hostile one
  no slower (`python -m bench.devices` measures both in one run). It is imported here, not
  picked silently, so an environment without it fails at import instead of labelling 25x
  slower. Its labels are those of the Python resolver on all 30,871 User-Agents of uap-core's
  test corpus.
- Only the first `MAX_PARSED_USER_AGENT` characters are parsed. Real User-Agents fit the bound
  (the longest in common use, in-app browsers of Facebook, Instagram and WeChat, are 250-300
  characters) and say what the label needs near the start: the platform in the first
  parentheses, the browser token after it. So the label depends on the prefix alone, and a
  hostile User-Agent costs at most what 320 characters cost.
"""

from __future__ import annotations

from functools import cache, lru_cache

from ua_parser import Parser, Result, load_lazy_builtins
from ua_parser.regex import Resolver as RegexResolver  # needs ua-parser-rs: ua-parser[regex]

# ua-parser's family names, as admins know them
_OS_NAMES = {"Mac OS X": "macOS", "Chrome OS": "ChromeOS"}
_HANDHELD_OS = {"iOS", "iPadOS", "Android"}
_VAGUE_DEVICES = {"Other", "Generic Smartphone", "Generic Tablet", "Generic Feature Phone", "K"}
MAX_LABEL = 128
MAX_PARSED_USER_AGENT = 320
"""Characters of a User-Agent that are parsed: the longest real ones in common use (~300) fit."""


@cache
def _parser() -> Parser:
    # built on first use (compiling the expressions takes about half a second), then shared;
    # no cache of ua-parser's own: `parsed_label` keeps one
    return Parser(RegexResolver(load_lazy_builtins()))


def parse(user_agent: str) -> Result:
    """ua-parser's reading of exactly this text, by its Rust resolver."""
    return _parser().parse(user_agent)


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
    return label_of(parse(user_agent))


def label_of(result: Result) -> str | None:
    """The label of one reading of a User-Agent, whichever resolver made it."""
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
