"""An admin API process of its own freezes its start-up heap; an app built in a test does not.

`app_from_env` (what `uvicorn --factory` runs) moves what start-up made out of the cyclic
collector's sight once the app has started, so a full collection scans only what requests
left behind; `create_app` leaves a shared process (the tests', a host's) as it is.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from admin_api_support import RecordingBus

from admin_api.app import create_app
from admin_api.settings import AdminApiSettings


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the test process's heap back in the collector's sight


@pytest.mark.parametrize("freeze", [True, False])
async def test_the_heap_is_frozen_once_started_only_when_asked(
    settings: AdminApiSettings, unfrozen: None, freeze: bool
) -> None:
    app = create_app(settings, bus=RecordingBus(), freeze_heap=freeze)
    assert gc.get_freeze_count() == 0  # built, not started
    async with app.router.lifespan_context(app):
        assert (gc.get_freeze_count() > 0) is freeze


def test_the_process_entry_point_asks_for_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import admin_api.app as module

    asked: list[bool] = []
    monkeypatch.setattr(module, "create_app", lambda _s, **kw: asked.append(kw["freeze_heap"]))
    monkeypatch.setenv("SESSIONS_ENVIRONMENT", "development")
    module.app_from_env()
    assert asked == [True]
