"""What the demo's routes depend on, as `Annotated` dependencies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request

from auth_gateway import SessionGateway
from demo_service.policy import PolicySource
from demo_service.sessions import ExternalSession, SessionBook, SignIn, Visitor
from demo_service.settings import DemoSettings
from session_contracts.addresses import reported_ip


@dataclass
class DemoContext:
    """Everything built at start-up, stored on `app.state.demo`."""

    settings: DemoSettings
    gateway: SessionGateway
    book: SessionBook
    sign_in: SignIn
    policies: PolicySource


def _context(request: Request) -> DemoContext:
    context: DemoContext = request.app.state.demo
    return context


def _current_session(request: Request, context: Context) -> Visitor | None:
    # The gateway put the (well-formed, unrevoked) credential there; the book says if it is
    # one this service issued. Only then is the session authenticated, which tells the
    # gateway to report its activity: a credential nobody issued never becomes an event.
    state = request.state
    credential = getattr(state, "session_credential", None)
    if credential is None:
        return None
    session = context.book.use(credential, datetime.now(UTC))
    if session is not None:
        state.session_authenticated = True
        return session
    if context.settings.demo_admit_unknown_sessions:
        return ExternalSession(state.session_handle)  # admitted, not vouched for: no activity
    return None


def client_ip(request: Request) -> str:
    """The client's address as the gateway reports it (the peer, or what a trusted proxy
    forwarded for); the unspecified address when the server gives none (unix socket)."""
    context: DemoContext = request.app.state.demo
    return reported_ip(context.gateway.client_address(request.scope)) or "0.0.0.0"


Context = Annotated[DemoContext, Depends(_context)]
CurrentSession = Annotated[Visitor | None, Depends(_current_session)]
