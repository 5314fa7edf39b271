"""What the page needs to know about the deployment: where tokens come from, how often to poll."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from session_contracts.links import followable_url

APP_STATE_KEY = "admin_page_config"
"""`app.state.admin_page_config` holds the deployment's `AdminPageConfig`, when it has one."""


class AdminPageConfig(BaseModel):
    """Served to the page as `/admin/config.json` (see docs/admin-page.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    token_url: str | None = Field(
        default=None,
        description="Same-origin URL that answers {'access_token': ...} for the signed-in admin "
        "(e.g. an OIDC reverse proxy's token endpoint); fetched with cookies when the page "
        "has no token or the API answered 401.",
    )
    token_header: str | None = Field(
        default=None,
        exclude=True,
        description="The request header in which the identity-aware proxy in front passes the "
        "admin's token; `GET /admin/token` answers it as {'access_token': ...} (not served "
        "to the page).",
    )
    sign_in_url: str | None = Field(
        default=None,
        description="Where 'Sign in again' leads; the page appends ?return_to=<page URL>. A "
        "local path (/oauth2/sign_in) or an http(s) URL with a host.",
    )
    live_interval_seconds: float = Field(
        default=5.0,
        ge=1.0,
        le=300.0,
        description="Live mode polls the list this often.",
    )
    page_size: int = Field(default=50, ge=10, le=500, description="Rows per list request.")
    fragment_sign_in: bool = Field(
        default=False,
        description="Development only (create_app refuses it otherwise): the page signs in "
        "from a #token= link. Off, the page strips such a fragment and ignores it.",
    )

    @field_validator("sign_in_url")
    @classmethod
    def _a_link_an_admin_can_follow(cls, url: str | None) -> str | None:
        """A local path or an http(s) URL (`followable_url`): the page makes it a link on the
        admin's page, so a `javascript:` URL would run in the page's origin, and a
        scheme-relative `//host` one lead elsewhere than it reads (a review, stop 67)."""
        return None if url is None else followable_url(url, "the sign-in URL")
