"""`SESSIONS_PUBLISH_TIMEOUT_SECONDS`: a bound an operator sets; out of range it is refused.

0 or a negative value would refuse every write at once, a huge one would let a POST hang for
as long as an outage lasts again; both are refused at start-up, naming the setting.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from admin_api.settings import AdminApiSettings


@pytest.mark.parametrize("value", ["0", "-5", "0.5", "301", "nan", "inf", "twenty"])
def test_an_out_of_range_publish_timeout_is_refused(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSIONS_PUBLISH_TIMEOUT_SECONDS", value)
    with pytest.raises(ValidationError, match="publish_timeout_seconds"):
        AdminApiSettings(_env_file=None, environment="development")


def test_the_publish_timeout_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONS_PUBLISH_TIMEOUT_SECONDS", "7.5")
    assert (
        AdminApiSettings(_env_file=None, environment="development").publish_timeout_seconds == 7.5
    )
    monkeypatch.delenv("SESSIONS_PUBLISH_TIMEOUT_SECONDS")
    assert AdminApiSettings(_env_file=None, environment="development").publish_timeout_seconds == 20
