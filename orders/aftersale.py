"""The after-sale request kinds (工单类型) in one catalogue: what each collects and who handles it.

One :class:`KindSpec` per :class:`WorkOrderKind`: its names (zh/en), the work-order number's
prefix, the owner group, the SLA, the orders it applies to and the fields the guided flow asks
for, in order. The chat side (``actions/aftersale.py``) drives one generic Rasa form from this
table; the work-order service (:mod:`orders.workorders`) takes the group and SLA from it; the
console shows the field labels. Adding a kind is a row here (plus its Rasa intent).

The validators below are pure functions: each takes what the shopper typed and returns the value
to keep, or ``None`` for "ask again".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum

from kefu.settings import store_zone
from orders.models import Order, OrderStatus


class WorkOrderKind(StrEnum):
    """What the shopper asked the back office to do."""

    GIFT_REGISTRATION = "gift_registration"  # a promised gift to be sent (or re-sent)
    EXCHANGE = "exchange"  # 换货: the item swapped for another size/colour or a sound one
    RETURN_PICKUP = "return_pickup"  # 退货上门取件: a courier collects the return at home
    REPAIR_BOOKING = "repair_booking"  # 维修/安装预约: a technician visits to repair or install
    INVOICE_REISSUE = "invoice_reissue"  # 补开/重开发票: an invoice issued or issued again


class FlowField(StrEnum):
    """A piece of information a flow collects (the key in the work order's ``fields``)."""

    ITEM = "item"  # one item of the order
    REASON = "reason"  # why, or what is wrong
    PHOTO = "photo"  # a photo of the problem: the channel's file reference
    ADDRESS = "address"  # name, phone and address
    TIME_SLOT = "time_slot"  # a visit's half-day slot
    INVOICE_TITLE = "invoice_title"  # 发票抬头: a company's name, or 个人
    TAX_ID = "tax_id"  # 税号: the company's unified social credit code (not for 个人)
    EMAIL = "email"  # where the electronic invoice goes


FIELD_LABELS: dict[FlowField, tuple[str, str]] = {
    FlowField.ITEM: ("商品", "Item"),
    FlowField.REASON: ("原因", "Reason"),
    FlowField.PHOTO: ("照片", "Photo"),
    FlowField.ADDRESS: ("地址", "Address"),
    FlowField.TIME_SLOT: ("上门时间", "Visit"),
    FlowField.INVOICE_TITLE: ("发票抬头", "Invoice title"),
    FlowField.TAX_ID: ("税号", "Tax id"),
    FlowField.EMAIL: ("邮箱", "Email"),
}

_RECEIVED = frozenset({OrderStatus.DELIVERED})  # the shopper has the goods
_INVOICEABLE = frozenset({OrderStatus.PAID, OrderStatus.SHIPPED, OrderStatus.DELIVERED})
_SIGNED = ("订单需已签收", "the order must have been delivered")
_PAID = ("订单需已付款且未退款", "the order must be paid and not refunded")


@dataclass(frozen=True)
class KindSpec:
    """One kind of after-sale request."""

    kind: WorkOrderKind
    names: tuple[str, str]  # zh, en
    prefix: str  # of the work-order number
    group: str  # the skill group that processes it
    sla: timedelta
    statuses: frozenset[OrderStatus]  # orders it applies to
    fields: tuple[FlowField, ...]  # asked in this order, after the order and its verification
    requirement: tuple[str, str] = ("", "")  # what an order needs, said when one does not fit
    # Else "跳过/skip" answers the photo question. Every shipped kind leaves the photo optional:
    # the web chat cannot send pictures yet, only Telegram can.
    photo_required: bool = False

    def name(self, language: str | None) -> str:
        """The kind's name in the shopper's language."""
        return self.names[1] if language == "en" else self.names[0]


_F = FlowField
_VISIT = (_F.ITEM, _F.REASON, _F.PHOTO, _F.ADDRESS, _F.TIME_SLOT)  # someone comes to the door

CATALOGUE: dict[WorkOrderKind, KindSpec] = {spec.kind: spec for spec in (
    KindSpec(WorkOrderKind.GIFT_REGISTRATION, ("赠品登记", "gift registration"), "GR",
             "aftersale", timedelta(hours=24), frozenset(OrderStatus), (_F.ADDRESS,)),
    KindSpec(WorkOrderKind.EXCHANGE, ("换货", "exchange"), "EX", "aftersale",
             timedelta(hours=48), _RECEIVED, (_F.ITEM, _F.REASON, _F.PHOTO), _SIGNED),
    KindSpec(WorkOrderKind.RETURN_PICKUP, ("退货上门取件", "return pickup"), "RP", "logistics",
             timedelta(hours=24), _RECEIVED, _VISIT, _SIGNED),
    KindSpec(WorkOrderKind.REPAIR_BOOKING, ("维修/安装预约", "repair/installation booking"),
             "RB", "aftersale", timedelta(hours=72), _RECEIVED, _VISIT, _SIGNED),
    KindSpec(WorkOrderKind.INVOICE_REISSUE, ("补开/重开发票", "invoice reissue"), "IV",
             "aftersale", timedelta(hours=72), _INVOICEABLE,
             (_F.INVOICE_TITLE, _F.TAX_ID, _F.EMAIL, _F.REASON), _PAID),
)}


def spec_of(kind: WorkOrderKind | str) -> KindSpec:
    """The catalogue's row for ``kind`` (KeyError/ValueError for an unknown one)."""
    return CATALOGUE[WorkOrderKind(kind)]


def fields_to_ask(spec: KindSpec, answers: dict[FlowField, str | None]) -> list[FlowField]:
    """The kind's fields still to ask, given the answers so far (个人 invoices have no tax id)."""
    personal = is_personal_title(answers.get(FlowField.INVOICE_TITLE) or "")
    return [f for f in spec.fields if answers.get(f) is None
            and not (f is FlowField.TAX_ID and personal)]


def applies_to(spec: KindSpec, order: Order) -> bool:
    """The kind can be asked for this order (e.g. a return only once the goods arrived)."""
    return order.status in spec.statuses


# --- the validators -------------------------------------------------------------------------

SKIP_WORDS = frozenset({"跳过", "没有", "没有照片", "不用", "无", "skip", "no photo", "none", "no"})
PHOTO_PREFIX = "photo:"  # a photo's reference as the chat channel delivered it
_PERSONAL = frozenset({"个人", "个人抬头", "personal", "individual", "me", "myself"})
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # GB 32100-2015: no I, O, S, V, Z
REASON_CHARS = (2, 200)
ADDRESS_CHARS = (8, 120)
TITLE_CHARS = (2, 60)


def _clean(text: str) -> str:
    return " ".join(text.split())


def is_skip(text: str) -> bool:
    """The shopper declined an optional answer ("跳过", "skip")."""
    return _clean(text).lower().strip("。.!！") in SKIP_WORDS


def photo_ref(text: str) -> str | None:
    """The photo reference in a photo answer (``photo:<channel reference>``), else ``None``."""
    text = text.strip()
    return text if text.startswith(PHOTO_PREFIX) and len(text) > len(PHOTO_PREFIX) else None


def photo_source(ref: str) -> tuple[str, str] | None:
    """``(channel, file id)`` of a kept photo reference ("photo:telegram:AgAD…")."""
    if photo_ref(ref) is None:
        return None
    channel, _, file_id = ref[len(PHOTO_PREFIX):].partition(":")
    return (channel, file_id) if channel and file_id else None


def valid_reason(text: str) -> str | None:
    """A reason of a few words at least, whitespace tidied."""
    text = _clean(text)
    low, high = REASON_CHARS
    return text if low <= len(text) <= high and not text.startswith("/") else None


def valid_address(text: str) -> str | None:
    """Name, phone and address: long enough and with a (house) number in it."""
    text = _clean(text)
    low, high = ADDRESS_CHARS
    return text if low <= len(text) <= high and any(c.isdigit() for c in text) else None


def is_personal_title(text: str) -> bool:
    """An invoice made out to a person (no tax id needed)."""
    return _clean(text).lower() in _PERSONAL


def valid_invoice_title(text: str) -> str | None:
    """个人, or a company's name."""
    text = _clean(text)
    if is_personal_title(text):
        return "个人"
    low, high = TITLE_CHARS
    return text if low <= len(text) <= high and not text.isdigit() else None


def valid_tax_id(text: str) -> str | None:
    """A unified social credit code (统一社会信用代码, 18 characters) whose check character fits."""
    code = re.sub(r"[\s-]", "", text).upper()
    if len(code) != 18 or any(c not in _USCC_CHARS for c in code):
        return None
    total = sum(_USCC_CHARS.index(c) * pow(3, i, 31) for i, c in enumerate(code[:17]))
    return code if _USCC_CHARS[(31 - total % 31) % 31] == code[17] else None


def valid_email(text: str) -> str | None:
    """An email address (one, plainly written)."""
    text = text.strip().strip("。.")
    return text if _EMAIL.match(text) and len(text) <= 120 else None


def pick_item(order: Order, text: str) -> str | None:
    """The order's item the shopper means: its name, its SKU, part of its name, or its number."""
    text = _clean(text)
    names = [item.name for item in order.items]
    if text.isdigit() and 1 <= int(text) <= len(names):
        return names[int(text) - 1]
    low = text.lower()
    for item in order.items:
        if low in (item.name.lower(), item.sku.lower()):
            return item.name
    partial = [n for n in names if len(low) >= 2 and low in n.lower()]
    return partial[0] if len(partial) == 1 else None


# --- visit time slots -----------------------------------------------------------------------

@dataclass(frozen=True)
class HalfDay:
    """One half-day a courier or technician can come: a label and its hours."""

    key: str
    zh: str
    en: str
    start: time
    end: time


HALF_DAYS = (HalfDay("am", "上午", "morning", time(9), time(12)),
             HalfDay("pm", "下午", "afternoon", time(14), time(18)))
SLOT_DAYS = 3  # how many days ahead the buttons offer
BOOKABLE_DAYS = 14  # how far ahead a typed slot may be
_WEEKDAYS_ZH = "一二三四五六日"
_HALF_WORDS = {"上午": "am", "早上": "am", "上午场": "am", "morning": "am", "am": "am",
               "下午": "pm", "下午场": "pm", "afternoon": "pm", "pm": "pm"}


@dataclass(frozen=True)
class TimeSlot:
    """A half-day on a date, in the store's time."""

    day: date
    half: HalfDay

    def label(self, language: str | None = "zh") -> str:
        """What a button says, and what the work order keeps: "12月08日（周二）上午 09:00-12:00"."""
        hours = f"{self.half.start:%H:%M}-{self.half.end:%H:%M}"
        if language == "en":
            return f"{self.day:%a %d %b} {self.half.en} {hours}"
        weekday = _WEEKDAYS_ZH[self.day.weekday()]
        return f"{self.day.month:02d}月{self.day.day:02d}日（周{weekday}）{self.half.zh} {hours}"

    def stored(self) -> str:
        """The slot as the work order keeps it: "2026-12-08 上午 09:00-12:00"."""
        hours = f"{self.half.start:%H:%M}-{self.half.end:%H:%M}"
        return f"{self.day.isoformat()} {self.half.zh} {hours}"

    def starts(self) -> datetime:
        """When the visit can begin."""
        return datetime.combine(self.day, self.half.start, store_zone())


def offered_slots(now: datetime) -> list[TimeSlot]:
    """The next :data:`SLOT_DAYS` days' half-days, from tomorrow (a visit needs a day's notice)."""
    today = now.astimezone(store_zone()).date()
    return [TimeSlot(today + timedelta(days=d), half)
            for d in range(1, SLOT_DAYS + 1) for half in HALF_DAYS]


_DATE_PATTERNS = (
    re.compile(r"(?P<y>20\d\d)[-/.年](?P<m>\d{1,2})[-/.月](?P<d>\d{1,2})"),
    re.compile(r"(?P<m>\d{1,2})\s*[月/.-]\s*(?P<d>\d{1,2})"),
)
_RELATIVE = {"今天": 0, "today": 0, "明天": 1, "tomorrow": 1, "后天": 2, "大后天": 3}
_MONTHS_EN = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug",
                                          "sep", "oct", "nov", "dec"), start=1)}


def _day_of(text: str, today: date) -> date | None:
    english = re.search(r"(?P<d>\d{1,2})\s+(?P<m>[a-z]{3})", text)
    if english and english.group("m") in _MONTHS_EN:
        try:
            return date(today.year, _MONTHS_EN[english.group("m")], int(english.group("d")))
        except ValueError:
            return None
    for pattern in _DATE_PATTERNS:
        found = pattern.search(text)
        if found:
            year = int(found.group("y")) if "y" in pattern.groupindex else today.year
            try:
                day = date(year, int(found.group("m")), int(found.group("d")))
            except ValueError:
                return None
            if "y" not in pattern.groupindex and day < today - timedelta(days=180):
                day = day.replace(year=year + 1)  # "1月3日" typed in December
            return day
    for word in sorted(_RELATIVE, key=len, reverse=True):
        if word in text:
            return today + timedelta(days=_RELATIVE[word])
    return None


class SlotProblem(StrEnum):
    """Why a typed time slot is refused."""

    UNREADABLE = "unreadable"  # no date and half-day found
    PAST = "past"  # already begun or over
    TOO_SOON = "too_soon"  # today: a visit needs a day's notice
    TOO_FAR = "too_far"  # beyond what can be booked


def read_slot(text: str, now: datetime) -> TimeSlot | SlotProblem:
    """A typed slot ("12月8日上午", "明天下午", "2026-12-08 pm", "08 Dec morning") or why not."""
    low = _clean(text).lower()
    today = now.astimezone(store_zone()).date()
    day = _day_of(low, today)
    half_key = next((key for word, key in sorted(_HALF_WORDS.items(), key=lambda w: -len(w[0]))
                     if word in low), None)
    if day is None or half_key is None:
        return SlotProblem.UNREADABLE
    slot = TimeSlot(day, next(h for h in HALF_DAYS if h.key == half_key))
    if slot.starts() <= now:
        return SlotProblem.PAST
    if day <= today:
        return SlotProblem.TOO_SOON
    if day > today + timedelta(days=BOOKABLE_DAYS):
        return SlotProblem.TOO_FAR
    return slot
