"""Which failed changes the admin page takes as possibly applied (`outcomeUnknown`, api.js), and
the key it names each termination with (`requestKey`): run in Node on the page's own module.

Before stop 66 the page read every failure as "Nothing was terminated", although a termination
whose answer was lost, or that the API answered 503 `outcome_unknown`, may have been applied.
"""

from __future__ import annotations

import re

from page_in_node import in_node

CASES = [
    # (status, reason, body from the API, may be applied)
    (0, None, False, True),  # no answer, or one that could not be read
    (503, "outcome_unknown", True, True),  # Kafka took it, or may have
    (500, None, True, True),
    (502, None, False, True),  # a proxy, after the request reached the API
    (503, None, False, True),  # a proxy's 503: it may have reached the API
    (504, None, False, True),
    (503, None, True, False),  # the API's own 503 without a reason: nothing was changed
    (503, "time_limit", True, False),
    (503, "schema_behind", True, False),
    (429, None, True, False),
    (422, None, True, False),
    (403, None, True, False),
    (401, None, True, False),
]


def test_a_change_may_be_applied_exactly_when_its_answer_does_not_say_otherwise() -> None:
    verdicts = in_node(
        "api.js",
        "[...data.map(([s, r, f]) => page.outcomeUnknown(new page.ApiError(s, 'm', null, r, f))),"
        " page.outcomeUnknown(new Error('not an answer of the API'))]",
        [list(case[:3]) for case in CASES],
    )
    assert verdicts == [case[3] for case in CASES] + [False]


def test_each_termination_is_named_by_a_key_of_its_own() -> None:
    keys = in_node("api.js", "Array.from({length: data}, () => page.requestKey())", 200)
    assert len(set(keys)) == 200
    assert all(re.fullmatch(r"[0-9a-f]{32}", key) for key in keys)  # a valid Idempotency-Key
