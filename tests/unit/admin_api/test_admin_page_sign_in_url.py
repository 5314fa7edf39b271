"""The admin page's "Sign in again" link is a local path or an http(s) URL with a host.

The page makes `sign_in_url` a link: a `javascript:` URL would run in the admin page's origin
when followed, and a scheme-relative `//host` one lead elsewhere than it reads (a review,
stop 67). Refused when the configuration is built, as the app starts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from admin_api.web.config import AdminPageConfig


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("javascript:alert(document.cookie)", "neither a local path nor an http"),
        ("//evil.example/sign_in", "scheme-relative"),
        ("/\\evil.example/sign_in", "scheme-relative"),  # browsers read \ as /
        ("data:text/html,<script>alert(1)</script>", "neither a local path nor an http"),
        ("https:/no-host", "neither a local path nor an http"),
        ("/sign in", "a space, a control"),
        ("/sign_in\r\nSet-Cookie: x=1", "a space, a control"),
        ("/sign_\u200bin", "non-ASCII"),
    ],
)
def test_a_sign_in_link_that_is_no_local_path_or_http_url_is_refused(url: str, why: str) -> None:
    with pytest.raises(ValidationError, match=f"the sign-in URL .* {why}"):
        AdminPageConfig(sign_in_url=url)


@pytest.mark.parametrize(
    "url", [None, "/oauth2/sign_in", "https://sso.example.com/oauth2/start?rd=/admin"]
)
def test_local_paths_and_http_urls_are_kept(url: str | None) -> None:
    assert AdminPageConfig(sign_in_url=url).sign_in_url == url
