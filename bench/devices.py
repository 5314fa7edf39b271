"""What a device label costs: real User-Agents against hostile ones, in the same run.

    python -m bench.devices [--labels 300] [--rounds 5]

The registry derives a label from every `session.created` without one (`device_label`). Every
User-Agent here is new, so every call misses both the label cache and ua-parser's, as it would
for a producer sending a different User-Agent each time. Contenders, in alternating rounds,
each labelling `--labels` User-Agents per round:

1. ordinary: real User-Agents of the browsers and in-app browsers in common use (80-297
   characters), through `device_label` (ua-parser's Rust resolver, ua-parser-rs);
2. hostile: 1 KiB (the contract's maximum) User-Agents shaped to make ua-parser's expressions
   scan far or match none, through `device_label` (the first 320 characters);
3. hostile, unbounded: the same strings parsed whole by the Rust resolver;
4. and 5. before: ordinary and hostile (first 320 characters) through ua-parser's pure Python
   resolver, as the registry labelled them until ua-parser-rs.

Prints labels/s and ms per label (median of the rounds) and what a hostile label costs against
an ordinary one, now and before; a registry applying only such creates could label that many
per second on one core.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import string
import time
from collections.abc import Callable, Sequence

from ua_parser import BasicResolver, Parser, load_builtins

from session_registry.domain.devices import (
    MAX_PARSED_USER_AGENT,
    device_label,
    label_of,
    parsed_label,
)

MAX_USER_AGENT = 1024
"""The longest User-Agent the contract accepts."""

REAL_USER_AGENTS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/119.0.0.0 Safari/537.36 OPR/105.0.0.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.144 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
    "Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 6.1; WOW64; Trident/4.0; SLCC2; "
    ".NET CLR 2.0.50727; .NET CLR 3.5.30729; .NET CLR 3.0.30729; Media Center PC 6.0; "
    ".NET4.0C; .NET4.0E; InfoPath.3)",
    "okhttp/4.12.0",
    # in-app browsers (Facebook, Instagram, WeChat): the longest User-Agents in common use
    "Mozilla/5.0 (Linux; Android 13; SM-S918B Build/TP1A.220624.014; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/119.0.6045.163 Mobile Safari/537.36 "
    "[FB_IAB/FB4A;FBAV/442.0.0.37.109;]",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/444.0.0.35.110;FBBV/541093486;"
    "FBDV/iPhone14,5;FBMD/iPhone;FBSN/iOS;FBSV/17.1.2;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5;"
    "FBRV/543219612]",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 Instagram 309.0.2.18.119 (iPhone15,3; iOS 17_1_1; "
    "en_US; en; scale=3.00; 1290x2796; 537288532)",
    "Mozilla/5.0 (Linux; Android 12; SM-G991B Build/SP1A.210812.016; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/118.0.5993.111 Mobile Safari/537.36 "
    "Instagram 307.0.0.34.111 Android (31/12; 480dpi; 1080x2176; samsung; SM-G991B; o1s; "
    "exynos2100; en_US; 532277880)",
    "Mozilla/5.0 (Linux; Android 12; V2145A Build/SP1A.210812.003; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/107.0.5304.141 Mobile Safari/537.36 XWEB/5023 "
    "MMWEBSDK/20230303 MMWEBID/1592 MicroMessenger/8.0.34.2340(0x2800225B) WeChat/arm64 "
    "Weixin NetType/WIFI Language/zh_CN ABI/arm64",
)
"""User-Agents of real clients, with the labels `device_label` gave them before it was bounded
(the unit tests check that it still does)."""

_DIGITS = re.compile(r"\d+")


def real_user_agent(n: int) -> str:
    """The `n`-th of `REAL_USER_AGENTS` in turn, made unique (and so uncached, by ua-parser's
    cache too) by digits added to its last number within the parsed prefix: a build number
    that changes no label."""
    user_agent = REAL_USER_AGENTS[n % len(REAL_USER_AGENTS)]
    last = [m for m in _DIGITS.finditer(user_agent) if m.end() <= MAX_PARSED_USER_AGENT][-1]
    return f"{user_agent[: last.end()]}{n}{user_agent[last.end() :]}"


_PRINTABLE = string.ascii_letters + string.digits + " /;()._-,"
HOSTILE_SHAPES: dict[str, Callable[[int], str]] = {
    "open parenthesis, '; ' repeated": lambda n: f"Mozilla/5.0 ({n}" + "; " * 600,
    "Android, ' ;' repeated": lambda n: f"Mozilla/5.0 (Linux; Android {n}" + " ;" * 600,
    "'; Build/' and letters": lambda n: f"; Build/{n}" + "a" * 1100,
    "one letter": lambda n: f"{n}" + "a" * 1100,
    "spaces": lambda n: f"{n}" + " " * 1100,
    "'1.' repeated": lambda n: f"{n}" + "1." * 600,
    "random printable": lambda n: "".join(random.Random(n).choices(_PRINTABLE, k=1100)),
}
"""1 KiB User-Agents (legal in the contract) that make ua-parser work hardest; `n` makes each
one different, so no cache can help."""


def hostile_user_agent(shape: str, n: int) -> str:
    """The `n`-th hostile User-Agent of a shape, exactly the contract's 1024 characters."""
    return HOSTILE_SHAPES[shape](n)[:MAX_USER_AGENT]


def python_resolver_label() -> Callable[[str], str | None]:
    """`device_label` as it was before ua-parser-rs: ua-parser's pure Python resolver (`re`),
    on the same 320-character prefix, uncached."""
    python = Parser(BasicResolver(load_builtins()))

    def label(user_agent: str) -> str | None:
        return label_of(python.parse(user_agent[:MAX_PARSED_USER_AGENT])) if user_agent else None

    return label


def _timed(label: Callable[[str], str | None], user_agents: Sequence[str]) -> float:
    """Seconds per label."""
    started = time.perf_counter()
    for user_agent in user_agents:
        label(user_agent)
    return (time.perf_counter() - started) / len(user_agents)


def main(labels: int, rounds: int) -> None:
    """Measure and print."""
    shapes = list(HOSTILE_SHAPES)
    before_label = python_resolver_label()
    _timed(device_label, REAL_USER_AGENTS)  # ua-parser compiles its expressions on first use
    _timed(before_label, REAL_USER_AGENTS)
    seconds: dict[str, list[float]] = {}
    for round_ in range(rounds):
        # fresh strings every round: no cache (ours, or ua-parser's 2,000 entries) can help
        numbers = range(round_ * labels, (round_ + 1) * labels)
        ordinary = [real_user_agent(n) for n in numbers]
        hostile = [hostile_user_agent(shapes[n % len(shapes)], n) for n in numbers]
        contenders: dict[str, tuple[Callable[[str], str | None], list[str]]] = {
            "ordinary (real User-Agents)": (device_label, ordinary),
            f"hostile 1 KiB, first {MAX_PARSED_USER_AGENT} parsed": (device_label, hostile),
            "hostile 1 KiB, parsed whole": (parsed_label, hostile),
            "ordinary, Python resolver (before)": (before_label, ordinary),
            f"hostile 1 KiB, first {MAX_PARSED_USER_AGENT}, Python (before)": (
                before_label,
                hostile,
            ),
        }
        for name, (label, user_agents) in contenders.items():
            seconds.setdefault(name, []).append(_timed(label, user_agents))
    cost = {name: statistics.median(values) for name, values in seconds.items()}
    print(f"{'contender':44} {'labels/s':>10} {'ms/label':>9}")
    for name, each in cost.items():
        print(f"{name:44} {1 / each:>10,.0f} {each * 1e3:>9.2f}")

    print("\nper hostile shape (ms/label: bounded / whole / bounded with the Python resolver):")
    for shape in shapes:
        first = rounds * labels + shapes.index(shape) * labels
        strings = [hostile_user_agent(shape, n) for n in range(first, first + labels // 4)]
        bounded = _timed(device_label, strings)
        whole = _timed(parsed_label, strings)
        python = _timed(before_label, strings)
        print(f"  {shape:34} {bounded * 1e3:6.3f} / {whole * 1e3:6.3f} / {python * 1e3:6.2f}")

    now_ordinary, now_hostile, _, before_ordinary, before_hostile = cost.values()
    print(
        f"\nhostile label / ordinary label: {now_hostile / now_ordinary:.2f}x the cost "
        f"(before: {before_hostile / before_ordinary:.2f}x); "
        f"hostile labels/s {1 / now_hostile:,.0f} (before {1 / before_hostile:,.0f}), "
        f"ordinary {1 / now_ordinary:,.0f} (before {1 / before_ordinary:,.0f})"
    )


def cli() -> None:
    """Entry point: parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=300, help="per contender and round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    main(args.labels, args.rounds)


if __name__ == "__main__":
    cli()
