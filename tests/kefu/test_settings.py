"""The store's time zone is one setting (``KEFU_TIMEZONE``) that every package reads."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from handoff.settings import HandoffSettings
from kefu.settings import KefuSettings, get_settings, store_zone
from knowledge.settings import KnowledgeSettings
from orders import aftersale


@pytest.fixture
def berlin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("KEFU_TIMEZONE", "Europe/Berlin")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_the_default_is_the_shops_in_china() -> None:
    assert KefuSettings().timezone == "Asia/Shanghai"


@pytest.mark.usefixtures("berlin")
def test_every_package_takes_the_stores_zone() -> None:
    assert store_zone() == ZoneInfo("Europe/Berlin")
    assert HandoffSettings().timezone == "Europe/Berlin"
    assert KnowledgeSettings().timezone == "Europe/Berlin"
    # 23:30 UTC is already the next day in Berlin: slots start the day after that
    late = datetime(2026, 12, 7, 23, 30, tzinfo=UTC)
    assert aftersale.offered_slots(late)[0].day.isoformat() == "2026-12-09"
    slot = aftersale.read_slot("明天上午", late)
    assert isinstance(slot, aftersale.TimeSlot)
    assert slot.starts() == datetime(2026, 12, 9, 9, 0, tzinfo=ZoneInfo("Europe/Berlin"))


@pytest.mark.usefixtures("berlin")
def test_a_package_may_still_be_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEFU_HANDOFF_TIMEZONE", "Asia/Tokyo")
    assert HandoffSettings().timezone == "Asia/Tokyo"


def test_an_unknown_zone_stops_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEFU_TIMEZONE", "Mars/Olympus")
    with pytest.raises(ValidationError, match="unknown time zone"):
        KefuSettings()
    with pytest.raises(ValidationError, match="unknown time zone"):
        HandoffSettings(timezone="Asia/Shanghaii")
