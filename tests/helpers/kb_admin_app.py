"""A small kefu app for knowledge-admin tests: the admin router, the agent console's auth and the
knowledge router over one real Redis and one knowledge runtime (like ``bot.app`` wires them)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from fastapi import FastAPI

from handoff import api as handoff_api
from handoff.service import HandoffService
from handoff.settings import HandoffSettings
from kefu.accounts import AgentRole
from kefu.conversation import ConversationStore
from kefu.http import install_error_handlers
from kefu.redis import async_client
from knowledge import api as knowledge_api
from knowledge.curation import admin_api
from knowledge.curation.admin import AdminService
from knowledge.models import Category, Entry, KnowledgeBase, TestQuestion
from knowledge.retrieval import Encoder
from knowledge.runtime import KnowledgeRuntime
from knowledge.settings import KnowledgeSettings

CST = timezone(timedelta(hours=8))
PASSWORD = "s3cret-pass"
MANAGER, AGENT = "wang", "li"


@dataclass
class AdminApp:
    app: FastAPI
    runtime: KnowledgeRuntime
    admin: AdminService


def create_admin_app(settings: KnowledgeSettings, encoder: Encoder) -> AdminApp:
    """The app; its Redis client and runtime live in the loop that serves it."""
    redis = async_client(settings.redis_url)
    runtime = KnowledgeRuntime(settings, redis=redis, encoders=(encoder, None))
    handoff = HandoffService(redis, ConversationStore(redis),
                             HandoffSettings(redis_url=settings.redis_url, bcrypt_rounds=4))
    admin = AdminService(runtime, redis, encoder=encoder)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()
            await redis.aclose()

    app = FastAPI(lifespan=lifespan)
    app.include_router(knowledge_api.create_router(runtime.service, handoff.agents.authenticate))
    app.include_router(handoff_api.create_router(handoff))
    app.include_router(admin_api.create_router(admin, handoff.agents.authenticate))
    install_error_handlers(app)
    return AdminApp(app, runtime, admin)


async def add_accounts(redis_url: str) -> None:
    """A knowledge manager (``wang``) and an ordinary agent (``li``)."""
    redis = async_client(redis_url)
    service = HandoffService(redis, ConversationStore(redis),
                             HandoffSettings(redis_url=redis_url, bcrypt_rounds=4))
    await service.agents.add(MANAGER, PASSWORD, ["presale"], role=AgentRole.MANAGER,
                             display_name="王经理")
    await service.agents.add(AGENT, PASSWORD, ["presale"], role=AgentRole.AGENT,
                             display_name="小李")
    await redis.aclose()


# --- a small shop and its double-12 campaign --------------------------------------------------

D12_START = datetime(2026, 12, 8, 20, 0, tzinfo=CST)
D12_END = datetime(2026, 12, 12, 23, 59, 59, tzinfo=CST)
BEFORE_D12 = D12_START - timedelta(days=2)
INSIDE_D12 = D12_START + timedelta(hours=1)
AFTER_D12 = D12_END + timedelta(days=1)
COUPON_QUESTION = "现在有什么优惠券可以领？"


def _entry(entry_id: str, question: str, variants: tuple[str, ...], answer: str,
           category: Category, **window: object) -> Entry:
    return Entry(id=entry_id, question=question, variants=variants, answer=answer,
                 category=category, **window)  # type: ignore[arg-type]


def shop_store() -> KnowledgeBase:
    """The live knowledge base before the campaign (evergreen entries, with tests)."""
    return KnowledgeBase(entries=(
        _entry("coupons", "店铺优惠券有哪些？", ("有什么优惠券", "怎么领券", "有没有满减券"),
               "日常店铺券：满 199 减 10，在店铺首页领取。", Category.PRESALE),
        _entry("return-policy", "支持七天无理由退货吗", ("可以退货吗", "怎么申请退货", "不想要了能退吗"),
               "支持七天无理由退货，在订单页申请。", Category.AFTERSALE),
        _entry("ship-time", "下单后多久发货", ("什么时候发货", "几天能发货", "when will you ship"),
               "付款后 48 小时内发货。", Category.LOGISTICS),
        _entry("invoice", "可以开发票吗", ("怎么开发票", "能开电子发票吗", "do you issue invoices"),
               "可以，在订单详情里申请电子发票。", Category.AFTERSALE),
        _entry("pay-methods", "支持哪些付款方式", ("可以用支付宝吗", "能用微信支付吗", "可以刷信用卡吗"),
               "支持支付宝、微信支付和银行卡。", Category.PAYMENT),
        _entry("size-guide", "鞋码怎么选", ("尺码偏大还是偏小", "平时穿42买多大", "码数准吗"),
               "尺码标准，按平时的码数买即可。", Category.PRODUCT),
        _entry("points", "积分怎么用", ("积分可以抵现吗", "会员积分有什么用", "积分能换东西吗"),
               "100 积分抵 1 元，下单时勾选使用。", Category.ACCOUNT),
    ), tests=(
        TestQuestion(text="几天能发货呀", expected="ship-time"),
        TestQuestion(text="开发票怎么弄", expected="invoice"),
        TestQuestion(text="你们老板叫什么名字", expected=None),
    ))


def campaign_file() -> KnowledgeBase:
    """A campaign file to merge into the live version: double-12 coupons, with a test."""
    return KnowledgeBase(entries=(
        _entry("d12-coupons", "双12店铺优惠券有哪些？", ("双十二有什么券", "双12满减券怎么领", "双12优惠券怎么用"),
               "双12 店铺券：满 299 减 30、满 599 减 70，12 月 8 日 20:00 起可领。", Category.PRESALE,
               campaign="double12", valid_from=D12_START, valid_until=D12_END),
    ), tests=(
        TestQuestion(text="双十二的券在哪领", expected="d12-coupons", at=INSIDE_D12),
    ))
