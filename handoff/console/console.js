// kefu agent console: plain JS, no build step, on the kefu UI kit (kit.js: el, api, login, toast).
// Everything a shopper typed is put on the page as text (textContent / text nodes), never as HTML.
"use strict";

(() => {
  const GROUPS = { presale: "售前 Pre-sales", aftersale: "售后 After-sales", logistics: "物流 Logistics" };
  const PRIORITIES = { normal: "普通 Normal", high: "高 High", urgent: "紧急 Urgent" };
  const REASONS = {
    explicit_request: "要求人工 Asked for a human",
    low_confidence: "机器人无法回答 Bot unsure",
    repeated_failure: "多次未解决 Repeated failure",
    complaint: "投诉 Complaint",
    offline_message: "留言 Message",
    reopened: "重新打开 Reopened",
  };
  const CHANNELS = { web: "网页 Web", telegram: "Telegram", api: "API" };
  // What a shopper's button click says in the transcript when its button is no longer known.
  const CLICKED = {
    "/feedback_helpful": "有帮助 👍", "/feedback_not_helpful": "没帮助 👎", "/request_human": "转人工",
    "/back_to_bot": "返回智能助手", "/none_of_these": "都不是", "/leave_message": "留言给客服",
    "/keep_with_bot": "继续问智能助手",
  };
  const ROLES = { shopper: "顾客 Shopper", bot: "机器人 Bot", agent: "客服 Agent", system: "系统 System" };
  const STATUSES = {
    waiting: "排队中 Waiting", claimed: "服务中 Claimed", resolved: "已解决 Resolved",
    returned: "已转回机器人 Returned", cancelled: "已取消 Cancelled",
  };

  const { $, el, clear, toast, api, authHeaders } = kefu;
  const state = {
    me: null, config: null, agents: [],
    tickets: new Map(), knownWaiting: null, unread: new Set(),
    current: null, currentTicket: null, turnIds: new Set(), lastTurnId: null,
    stream: null, timers: [], refreshTimer: null,
    titles: new Map(), // button payload -> its title, from every turn shown
    letGo: new Set(), // tickets this agent released, transferred or resolved: no more heartbeats
    history: null, // the closed ticket shown read-only, in the history view
    order: { number: null, at: 0, data: null, error: null }, // the order panel's last lookup
  };

  // --- formatting ----------------------------------------------------------------------------

  function duration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    const mm = h ? String(m).padStart(2, "0") : String(m);
    return (h ? h + ":" : "") + mm + ":" + String(r).padStart(2, "0");
  }

  // Redis stream ids "ms-seq": compare numerically, part by part.
  function laterId(a, b) {
    const [am, as] = a.split("-").map(Number), [bm, bs] = b.split("-").map(Number);
    return am !== bm ? am > bm : as > bs;
  }

  function since(iso) {
    return (Date.now() - new Date(iso).getTime()) / 1000;
  }

  function shortTime(iso) {
    const d = new Date(iso);
    const pad = (n) => String(n).padStart(2, "0");
    return `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }

  // "网页访客 #1234 · 网页 Web · 首次 12-07 09:30": who the shopper is, where and since when.
  function shopperLine(ctx) {
    return `${ctx.shopper} · ${CHANNELS[ctx.channel] || ctx.channel} · 首次 First seen ${shortTime(ctx.first_seen)}`;
  }

  // What the shopper saw and did: a clicked button reads "点了：<its title>", never its payload.
  function shownText(turn, ticket) {
    const text = turn.text;
    if (turn.role !== "shopper" || !text.startsWith("/")) return { text, clicked: false };
    const rate = /^\/rate\s*(?:\{"score":\s*)?(\d)/.exec(text);
    if (rate) return { text: `评分：${rate[1]} ★`, clicked: true };
    let title = state.titles.get(text) || CLICKED[text];
    const chosen = /^\/choose_option\s*\{"entry_id":\s*"([^"]+)"\}/.exec(text);
    if (!title && chosen && ticket) {
      const all = ticket.context.analyses.flatMap((a) => a.candidates);
      const found = all.find((c) => c.entry_id === chosen[1]);
      title = found ? found.question : chosen[1];
    }
    return { text: "点了：" + (title || text.replace(/^\//, "").split("{")[0]), clicked: true };
  }

  // A shopper's photo (the server puts its file id in meta.photo): a thumbnail fetched with the
  // agent's token (an <img> cannot send it); a click opens it full size. A caption stays text.
  function photoItem(turn, ticket) {
    const box = el("div", { class: "text photo", testid: "turn-text" });
    const caption = turn.meta.attachment && turn.meta.attachment.caption;
    const url = `/api/v1/tickets/${encodeURIComponent(ticket.id)}/photos/${encodeURIComponent(turn.meta.photo)}`;
    fetch(url, { headers: authHeaders() })
      .then((res) => { if (!res.ok) throw new Error(String(res.status)); return res.blob(); })
      .then((blob) => {
        const src = URL.createObjectURL(blob);
        box.prepend(el("a", { href: src, target: "_blank", rel: "noopener", testid: "turn-photo-link",
                              title: "查看原图 Full size" },
          el("img", { class: "thumb", testid: "turn-photo", alt: "顾客的图片 Shopper's photo", src })));
      })
      .catch(() => box.prepend(el("span", { class: "photo-gone", testid: "turn-photo-gone" },
        "[图片已过期或无法获取 Photo expired or unavailable]")));
    if (caption) box.append(el("div", { class: "caption" }, caption));
    return box;
  }

  function turnItem(turn, ticket) {
    for (const b of turn.buttons || []) state.titles.set(b.payload, b.title);
    const who = turn.role === "agent" && turn.meta && turn.meta.agent_name ? turn.meta.agent_name : ROLES[turn.role];
    const photo = turn.meta && turn.meta.photo && ticket;
    const shown = photo ? { text: "", clicked: false } : shownText(turn, ticket);
    return el("li", { class: "msg role-" + turn.role + (shown.clicked ? " clicked" : ""), testid: "turn",
                      dataset: { role: turn.role, turnId: turn.id } },
      el("div", { class: "meta" }, who, " · ", new Date(turn.at).toLocaleTimeString("zh-CN")),
      photo ? photoItem(turn, ticket) : el("div", { class: "text", testid: "turn-text" }, shown.text),
      turn.buttons && turn.buttons.length
        ? el("div", { class: "buttons" }, turn.buttons.map((b) => el("span", { class: "chip" }, b.title)))
        : null);
  }

  // --- session -------------------------------------------------------------------------------

  function stopAll() {
    if (state.stream) state.stream.abort();
    state.stream = null;
    state.timers.forEach(clearInterval);
    state.timers = [];
    document.dispatchEvent(new CustomEvent("kefu:console-stop"));
  }

  async function start() {
    const me = await api("GET", "/api/v1/agent/me");
    state.me = me.agent;
    state.config = me.config;
    state.knownWaiting = null;
    $("me").textContent = `${me.agent.display_name} (${me.agent.username}) · ${me.agent.groups.map((g) => GROUPS[g] || g).join(" / ")}`;
    $("presence").value = me.agent.presence === "away" ? "away" : "online";
    if (me.agent.presence !== "online" && me.agent.presence !== "away") await setPresence("online");
    await refreshQueue();
    connectStream();
    state.timers.push(setInterval(heartbeat, state.config.heartbeat_seconds * 1000));
    state.timers.push(setInterval(tick, 1000));
    document.dispatchEvent(new CustomEvent("kefu:console-start", { detail: { me: state.me } }));
  }

  async function setPresence(status) {
    const agent = await api("POST", "/api/v1/agent/presence", { status });
    state.me = agent;
    $("presence").value = status;
  }

  // --- queue ---------------------------------------------------------------------------------

  function myGroups() {
    return state.me.role === "manager" ? state.config.groups : state.me.groups;
  }

  function scheduleRefresh() {
    clearTimeout(state.refreshTimer);
    state.refreshTimer = setTimeout(refreshQueue, 150);
  }

  async function refreshQueue() {
    const tickets = await api("GET", "/api/v1/tickets");
    state.tickets = new Map(tickets.map((t) => [t.id, t]));
    const waiting = tickets.filter((t) => t.status === "waiting" && myGroups().includes(t.group));
    if (state.knownWaiting !== null) {
      const fresh = waiting.filter((t) => !state.knownWaiting.has(t.id) && !sentByMe(t));
      if (fresh.length) alertNew(fresh);
    }
    state.knownWaiting = new Set(waiting.map((t) => t.id));
    renderQueue(tickets, waiting);
    if (state.current && state.tickets.has(state.current)) {
      state.currentTicket = state.tickets.get(state.current);
      renderHead();
      renderContext();
    }
  }

  function renderQueue(tickets, waiting) {
    const groupsBox = $("queue-groups");
    clear(groupsBox);
    for (const group of myGroups()) {
      const items = waiting.filter((t) => t.group === group);
      groupsBox.append(el("section", { class: "queue-group", testid: "queue-group", dataset: { group } },
        el("h3", {}, GROUPS[group] || group, el("span", { class: "count" }, String(items.length))),
        el("ul", { class: "ticket-list" }, items.map((t, i) => ticketItem(t, "queue-item", i + 1)))));
    }
    const mine = tickets.filter((t) => t.status === "claimed" && t.agent === state.me.username);
    const others = tickets.filter((t) => t.status === "claimed" && t.agent !== state.me.username);
    clear($("my-tickets"));
    $("my-tickets").append(...mine.map((t) => ticketItem(t, "my-ticket")));
    clear($("other-tickets"));
    $("other-tickets").append(...others.map((t) => ticketItem(t, "other-ticket")));
    $("others-head").hidden = others.length === 0;
    const badge = $("badge");
    badge.textContent = String(waiting.length);
    badge.hidden = waiting.length === 0;
    document.title = (waiting.length ? `(${waiting.length}) ` : "") + "客服工作台 · Agent console";
  }

  function ticketItem(t, testid, position) {
    const ctx = t.context;
    const classes = ["ticket", "prio-" + t.priority];
    if (t.id === state.current) classes.push("active");
    if (state.unread.has(t.id)) classes.push("unread");
    if (t.offline) classes.push("offline");
    return el("li", { class: classes.join(" "), testid, dataset: { ticketId: t.id }, tabindex: 0,
                      onclick: () => openTicket(t.id), onkeydown: (e) => { if (e.key === "Enter") openTicket(t.id); } },
      el("div", { class: "line" },
        position ? el("span", { class: "pos" }, "#" + position) : null,
        el("span", { class: "tag prio" }, PRIORITIES[t.priority] || t.priority),
        el("span", { class: "who", testid: "ticket-shopper" }, ctx.shopper),
        t.offline ? el("span", { class: "tag" }, "留言 Message") : null,
        el("span", { class: "timer", dataset: { since: t.created_at, sla: "1" } }, duration(since(t.created_at)))),
      el("div", { class: "summary", testid: "ticket-summary" }, ctx.summary),
      el("div", { class: "where" }, `${CHANNELS[ctx.channel] || ctx.channel} · 首次 ${shortTime(ctx.first_seen)}`),
      t.agent && testid !== "my-ticket" ? el("div", { class: "owner" }, "客服 " + t.agent) : null);
  }

  function lastTransfer(t) {
    return t.transfers.length ? t.transfers[t.transfers.length - 1] : null;
  }

  // A ticket this agent just transferred away is not news to them.
  function sentByMe(t) {
    const tr = lastTransfer(t);
    return !!tr && tr.by === state.me.username && tr.to_group === t.group;
  }

  function transferAlert(tr) {
    return `转接 from ${tr.by_name || tr.by}` + (tr.note ? `: ${tr.note}` : "");
  }

  function alertNew(fresh) {
    beep();
    const first = fresh[0];
    const tr = lastTransfer(first);
    if (tr && tr.to_group === first.group) {
      toast(transferAlert(tr), "alert");
      return;
    }
    toast(`新会话 New chat: ${first.context.summary}`, "alert");
    if ("Notification" in window && Notification.permission === "granted") {
      try {
        new Notification("新的排队会话 New chat", { body: first.context.summary, tag: first.id });
      } catch (e) { /* some browsers only allow notifications from a service worker */ }
    }
  }

  function beep() {
    try {
      const ctx = beep.ctx || (beep.ctx = new (window.AudioContext || window.webkitAudioContext)());
      const osc = ctx.createOscillator(), gain = ctx.createGain();
      osc.frequency.value = 880;
      gain.gain.setValueAtTime(0.15, ctx.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.001, ctx.currentTime + 0.4);
      osc.connect(gain).connect(ctx.destination);
      osc.start();
      osc.stop(ctx.currentTime + 0.4);
    } catch (e) { /* no audio: the badge and title still show it */ }
  }

  async function claimNext() {
    const ticket = await api("POST", "/api/v1/tickets/next");
    if (!ticket) { toast("没有排队的会话 Nobody is waiting"); return; }
    await refreshQueue();
    await openTicket(ticket.id);
  }

  // --- conversation --------------------------------------------------------------------------

  async function openTicket(id) {
    state.current = id;
    state.unread.delete(id);
    state.turnIds = new Set();
    state.lastTurnId = null;
    clear($("transcript"));
    clear($("canned-results"));
    $("empty-state").hidden = true;
    $("conversation-body").hidden = false;
    state.currentTicket = await api("GET", `/api/v1/tickets/${encodeURIComponent(id)}`);
    renderHead();
    renderContext();
    await loadTurns();
    await loadTransferTargets();
    document.dispatchEvent(new CustomEvent("kefu:ticket-open", { detail: { ticket: state.currentTicket } }));
    for (const item of document.querySelectorAll(".ticket")) {
      item.classList.toggle("active", item.dataset.ticketId === id);
      if (item.dataset.ticketId === id) item.classList.remove("unread");
    }
  }

  async function loadTurns() {
    if (!state.current) return;
    const id = state.current;
    const query = state.lastTurnId ? `?after=${encodeURIComponent(state.lastTurnId)}` : "";
    const turns = await api("GET", `/api/v1/tickets/${encodeURIComponent(id)}/transcript${query}`);
    if (state.current === id) turns.forEach(appendTurn);
  }

  function appendTurn(turn) {
    if (state.turnIds.has(turn.id)) return;
    state.turnIds.add(turn.id);
    if (!state.lastTurnId || laterId(turn.id, state.lastTurnId)) state.lastTurnId = turn.id;
    const box = $("transcript");
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
    box.append(turnItem(turn, state.currentTicket));
    if (atBottom || turn.role !== "shopper") box.scrollTop = box.scrollHeight;
  }

  function mine(t) {
    return t && t.status === "claimed" && t.agent === state.me.username;
  }

  function renderHead() {
    const t = state.currentTicket;
    if (!t) return;
    $("conv-title").textContent = shopperLine(t.context);
    $("conv-status").textContent = STATUSES[t.status] + (t.agent ? ` · ${t.agent}` : "");
    $("conv-status").dataset.status = t.status;
    const open = t.status === "waiting" || t.status === "claimed";
    const manager = state.me.role === "manager";
    $("claim-button").hidden = t.status !== "waiting";
    $("release-button").hidden = !mine(t);
    $("reply-input").disabled = !mine(t);
    $("reply-send").disabled = !mine(t);
    const canManage = open && (mine(t) || manager || t.status === "waiting");
    for (const id of ["transfer-button", "resolve-button", "transfer-target", "transfer-note", "resolve-note"]) {
      $(id).disabled = !canManage;
    }
  }

  // --- the order panel: the ticket's order, looked up live in the store's order system ------
  const ORDER_STATUSES = {
    pending_payment: "待付款 Unpaid", deposit_paid: "预售已付定金 Deposit paid", paid: "待发货 Paid",
    shipped: "已发货 Shipped", delivered: "已签收 Delivered", cancelled: "已取消 Cancelled",
    refunding: "退款中 Refunding", refunded: "已退款 Refunded",
  };
  const REFUND_STATUSES = {
    requested: "已申请 Requested", approved: "已同意 Approved", returned: "已退货 Returned",
    completed: "已完成 Completed", rejected: "已拒绝 Rejected",
  };
  const GIFT_STATUSES = { pending: "未发出 Pending", shipped: "已发出 Shipped", delivered: "已送达 Delivered" };
  const ORDER_FRESH_MS = 30_000; // looked up again after this long, or when the number changes

  async function renderOrder(number) {
    const panel = $("order-panel");
    panel.hidden = !number;
    if (!number) return;
    const seen = state.order;
    if (seen.number !== number || Date.now() - seen.at > ORDER_FRESH_MS) {
      state.order = { number, at: Date.now(), data: null, error: null, loading: true };
      try {
        state.order.data = await api("GET", "/api/v1/orders/" + encodeURIComponent(number));
      } catch (error) {
        state.order.error = error.code === "order_not_found" ? "订单系统中没有这个订单 Not found"
          : error.code === "order_system_not_configured" ? "未接入订单系统 No order system" : error.message;
      }
      state.order.loading = false;
    }
    if (state.order.number === number && !state.order.loading) drawOrder(state.order);
  }

  function drawOrder({ data, error }) {
    const body = $("order-body");
    clear(body);
    if (error) { body.append(el("p", { class: "muted", testid: "order-error" }, error)); return; }
    const money = (v) => "¥" + v;
    body.append(el("dl", { class: "order-facts" },
      el("dt", {}, "状态 Status"), el("dd", { testid: "order-status" }, ORDER_STATUSES[data.status] || data.status),
      el("dt", {}, "金额 Total"), el("dd", { testid: "order-total" }, money(data.total) + (data.paid !== data.total ? ` (已付 ${money(data.paid)})` : "")),
      el("dt", {}, "下单 Placed"), el("dd", {}, shortTime(data.placed_at)),
      ...(data.ship_by ? [el("dt", {}, "承诺发货 Ship by"), el("dd", { testid: "order-ship-by" }, shortTime(data.ship_by))] : [])));
    body.append(el("ul", { class: "order-items", testid: "order-items" }, data.items.map((i) =>
      el("li", { testid: "order-item" }, `${i.name} × ${i.quantity} · ${money(i.unit_price)}`))));
    if (data.tracking) {
      const events = [...data.tracking.events].reverse();
      body.append(el("h4", {}, `物流 Tracking · ${data.tracking.carrier} ${data.tracking.waybill}`),
        el("ol", { class: "order-tracking", testid: "order-tracking" }, events.map((e) =>
          el("li", { testid: "tracking-event" }, `${shortTime(e.at)} ${e.location} ${e.description}`))));
    }
    if (data.refund) {
      body.append(el("h4", {}, "退款 Refund"), el("p", { testid: "order-refund" },
        `${money(data.refund.amount)} · ${REFUND_STATUSES[data.refund.status] || data.refund.status}` +
        (data.refund.reason ? ` · ${data.refund.reason}` : "")));
    }
    if (data.gift) {
      body.append(el("h4", {}, "赠品 Gift"), el("p", { testid: "order-gift" },
        `${data.gift.name} · ${GIFT_STATUSES[data.gift.status] || data.gift.status}`));
    }
  }

  function renderContext() {
    const t = state.currentTicket;
    const facts = $("context-facts");
    clear(facts);
    clear($("context-analyses"));
    if (!t) { renderOrder(null); return; }
    const ctx = t.context;
    const order = ctx.slots.order_number || ctx.slots.order_id || "—";
    renderOrder(ctx.slots.order_number || ctx.slots.order_id || null);
    const rows = [
      ["原因 Reason", REASONS[ctx.reason] || ctx.reason, "context-reason"],
      ["优先级 Priority", PRIORITIES[t.priority] || t.priority, "context-priority"],
      ["技能组 Group", GROUPS[t.group] || t.group, "context-group"],
      ["渠道 Channel", CHANNELS[ctx.channel] || ctx.channel, "context-channel"],
      ["顾客 Shopper", ctx.shopper, "context-shopper"],
      ["首次 First seen", shortTime(ctx.first_seen), "context-first-seen"],
      ["订单号 Order", order, "context-order"],
      ["摘要 Summary", ctx.summary, "context-summary"],
    ];
    for (const [k, v, testid] of rows) facts.append(el("dt", {}, k), el("dd", { testid }, v));
    for (const [name, value] of Object.entries(ctx.slots)) {
      if (name !== "order_number" && name !== "order_id") facts.append(el("dt", {}, name), el("dd", {}, value));
    }
    facts.append(el("dt", {}, "SLA"), t.first_response_at
      ? el("dd", { testid: "sla-timer" }, "首次响应 First reply " + duration((new Date(t.first_response_at) - new Date(t.created_at)) / 1000))
      : el("dd", { testid: "sla-timer", class: "timer", dataset: { since: t.created_at, sla: "1" } }, duration(since(t.created_at))));
    for (const tr of t.transfers) {
      facts.append(el("dt", {}, "转接 Transfer"), el("dd", { testid: "context-transfer" },
        `${tr.by_name || tr.by}: ${GROUPS[tr.from_group] || tr.from_group} → ${tr.to_agent || GROUPS[tr.to_group] || tr.to_group}` + (tr.note ? ` · ${tr.note}` : "")));
    }
    for (const a of ctx.analyses.slice(-5).reverse()) {
      const confidence = a.intent_confidence === null ? "—" : Math.round(a.intent_confidence * 100) + "%";
      $("context-analyses").append(el("li", { class: "analysis", testid: "analysis" },
        el("div", { class: "said" }, a.text),
        el("div", { class: "facts" },
          el("span", { class: "tag" }, "意图 " + (a.intent || "—")),
          el("span", { class: "tag", testid: "analysis-confidence" }, "置信度 " + confidence),
          el("span", { class: "tag" }, "决策 " + (a.decision || "—"))),
        el("ol", { class: "candidates" }, a.candidates.map((c) => el("li", { testid: "candidate" },
          el("span", { class: "score" }, c.score.toFixed(2)), " ", c.question, " ",
          el("button", { type: "button", testid: "insert-answer", onclick: () => insertCandidate(c) }, "插入 Insert"))))));
    }
  }

  async function insertCandidate(candidate) {
    try {
      const found = await api("GET", `/api/v1/knowledge/canned?q=${encodeURIComponent(candidate.question)}`);
      const match = found.find((f) => f.entry_id === candidate.entry_id) || found[0];
      if (match) insertText(match.answer);
      else toast("知识库中没有找到 Not found in the knowledge base");
    } catch (e) {
      toast("知识库不可用 Knowledge search unavailable", "error");
    }
  }

  function insertText(text) {
    const box = $("reply-input");
    box.value = box.value ? box.value + "\n" + text : text;
    box.focus();
  }

  async function searchCanned(event) {
    event.preventDefault();
    const q = $("canned-search").value.trim();
    const list = $("canned-results");
    clear(list);
    if (!q) return;
    try {
      const found = await api("GET", `/api/v1/knowledge/canned?q=${encodeURIComponent(q)}`);
      if (!found.length) list.append(el("li", {}, "无结果 No results"));
      for (const c of found) {
        list.append(el("li", { testid: "canned-result" },
          el("div", { class: "q" }, c.question, " ", el("span", { class: "score" }, c.score.toFixed(2))),
          el("div", { class: "a" }, c.answer),
          el("button", { type: "button", testid: "canned-insert", onclick: () => insertText(c.answer) }, "插入 Insert")));
      }
    } catch (e) {
      list.append(el("li", { class: "error" }, "知识库不可用 Knowledge search unavailable"));
    }
  }

  async function loadTransferTargets() {
    try { state.agents = await api("GET", "/api/v1/agents"); } catch (e) { state.agents = []; }
    const select = $("transfer-target");
    clear(select);
    const t = state.currentTicket;
    for (const g of state.config.groups) {
      if (!t || g !== t.group) select.append(el("option", { value: "group:" + g }, "组 Group: " + (GROUPS[g] || g)));
    }
    for (const a of state.agents) {
      if (a.username !== state.me.username && a.presence === "online") {
        select.append(el("option", { value: "agent:" + a.username }, `客服 Agent: ${a.display_name} (${a.groups.join(",")})`));
      }
    }
  }

  // letGo: the action hands the ticket on (release, transfer, resolve); its lease stops then.
  async function act(action, letGo = false) {
    const id = state.current;
    if (!id) return;
    if (letGo) state.letGo.add(id);
    else state.letGo.delete(id);
    try {
      await action(id);
    } catch (e) {
      state.letGo.delete(id);  // still the agent's, if it was
      if (e.status === 409 && e.data && e.data.code === "already_claimed") toast(`已被 ${e.data.agent} 接入 Already claimed`, "error");
      else toast(e.message, "error");
    }
    await refreshQueue();
    if (state.current === id) {
      try {
        state.currentTicket = await api("GET", `/api/v1/tickets/${encodeURIComponent(id)}`);
        renderHead();
        renderContext();
      } catch (e) { closeView(); }
    }
  }

  function closeView() {
    state.current = null;
    state.currentTicket = null;
    $("conversation-body").hidden = true;
    $("empty-state").hidden = false;
    clear($("context-facts"));
    clear($("context-analyses"));
  }

  async function sendReply(event) {
    event.preventDefault();
    const input = $("reply-input");
    const text = input.value.trim();
    if (!text || !state.current) return;
    try {
      const turn = await api("POST", `/api/v1/tickets/${encodeURIComponent(state.current)}/messages`, { text });
      input.value = "";
      appendTurn(turn);
      if (state.currentTicket && !state.currentTicket.first_response_at) {
        state.currentTicket = await api("GET", `/api/v1/tickets/${encodeURIComponent(state.current)}`);
        renderContext();
      }
    } catch (e) {
      toast(e.status === 409 ? "会话已不在你名下 This chat is no longer yours" : e.message, "error");
      if (e.code === "message_blocked") document.dispatchEvent(new CustomEvent("kefu:blocked", { detail: e.data }));
      scheduleRefresh();
    }
  }

  // --- history (resolved chats, read-only) ---------------------------------------------------

  function showHistory(on) {
    $("history-view").hidden = !on;
    $("workspace").hidden = on;
    $("history-button").setAttribute("aria-pressed", String(on));
    if (on) searchHistory().catch((e) => toast(e.message, "error"));
  }

  async function searchHistory(event) {
    if (event) event.preventDefault();
    const params = new URLSearchParams();
    const q = $("history-q").value.trim();
    if (q) params.set("q", q);
    if ($("history-from").value) params.set("date_from", $("history-from").value);
    if ($("history-to").value) params.set("date_to", $("history-to").value);
    const items = await api("GET", "/api/v1/history?" + params.toString());
    const list = clear($("history-list"));
    $("history-count").textContent = items.length ? `${items.length} 个会话 chats` : "没有找到 Nothing found";
    for (const item of items) list.append(historyItem(item));
  }

  function stars(rating) {
    return rating ? "★".repeat(rating) + "☆".repeat(5 - rating) : "未评分 Not rated";
  }

  function historyItem(item) {
    const t = item.ticket, ctx = t.context;
    const active = state.history && state.history.ticket.id === t.id;
    return el("li", { class: "ticket" + (active ? " active" : ""), testid: "history-item", dataset: { ticketId: t.id },
                      tabindex: 0, onclick: () => openHistory(t.id),
                      onkeydown: (e) => { if (e.key === "Enter") openHistory(t.id); } },
      el("div", { class: "line" },
        el("span", { class: "who", testid: "history-shopper" }, ctx.shopper),
        el("span", { class: "stars", testid: "history-rating" }, t.rating ? "★".repeat(t.rating) : ""),
        el("span", { class: "timer" }, shortTime(t.closed_at))),
      el("div", { class: "summary" }, ctx.summary),
      t.resolution_note ? el("div", { class: "summary", testid: "history-note" }, "处理结果 " + t.resolution_note) : null,
      item.wrote_again_at ? el("div", { class: "again", testid: "history-wrote-again" },
        "顾客又来消息 Wrote again " + shortTime(item.wrote_again_at)) : null);
  }

  async function openHistory(id) {
    const item = await api("GET", `/api/v1/history/${encodeURIComponent(id)}`);
    const t = item.ticket, ctx = t.context;
    state.history = item;
    for (const node of document.querySelectorAll("#history-list .ticket")) {
      node.classList.toggle("active", node.dataset.ticketId === id);
    }
    $("history-empty").hidden = true;
    $("history-body").hidden = false;
    $("history-title").textContent = shopperLine(ctx);
    $("reopen-button").hidden = !item.can_reopen;
    const facts = clear($("history-facts"));
    const rows = [
      ["结束 Closed", `${shortTime(t.closed_at)} · ${STATUSES[t.status] || t.status} · ${t.closed_by || ""}`, "history-closed"],
      ["评分 Rating", stars(t.rating), "history-stars"],
      ["处理结果 Note", t.resolution_note || "—", "history-resolution"],
      ["订单号 Order", ctx.slots.order_number || ctx.slots.order_id || "—", "history-order"],
      ["摘要 Summary", ctx.summary, "history-summary"],
      ["技能组 Group", GROUPS[t.group] || t.group, "history-group"],
    ];
    if (item.wrote_again_at) rows.push(["又来消息 Wrote again", shortTime(item.wrote_again_at), "history-again"]);
    for (const [k, v, testid] of rows) facts.append(el("dt", {}, k), el("dd", { testid }, v));
    let turns = await api("GET", `/api/v1/tickets/${encodeURIComponent(id)}/transcript`);
    if (!turns.length) turns = ctx.transcript; // the live record expired: the bot part is kept
    const box = clear($("history-transcript"));
    for (const turn of turns) box.append(turnItem(turn, t));
  }

  async function reopen() {
    if (!state.history) return;
    try {
      const ticket = await api("POST", `/api/v1/history/${encodeURIComponent(state.history.ticket.id)}/reopen`);
      toast("已重新打开 Reopened", "ok");
      showHistory(false);
      await refreshQueue();
      await openTicket(ticket.id);
    } catch (e) {
      toast(e.message, "error");
    }
  }

  // --- live ----------------------------------------------------------------------------------

  async function connectStream() {
    if (state.stream) state.stream.abort();
    const ctrl = new AbortController();
    state.stream = ctrl;
    try {
      const res = await fetch("/api/v1/agent/events", { headers: kefu.authHeaders(), signal: ctrl.signal });
      if (res.status === 401) { kefu.showLogin(kefu.EXPIRED); return; }
      if (!res.ok || !res.body) throw new Error("event stream " + res.status);
      await kefu.readFrames(res, handleFrame);
    } catch (e) {
      if (ctrl.signal.aborted) return;
    }
    setLive(false);
    if (state.stream === ctrl && kefu.token()) setTimeout(connectStream, 3000);
  }

  function setLive(on) {
    $("live").classList.toggle("off", !on);
    $("live").dataset.live = on ? "on" : "off";
  }

  function handleFrame(frame) {
    let type = "message", data = "";
    for (const line of frame.split("\n")) {
      if (line.startsWith("event:")) type = line.slice(6).trim();
      else if (line.startsWith("data:")) data += line.slice(5).trim();
    }
    if (type === "ready") {
      setLive(true);
      scheduleRefresh();
      loadTurns().catch(() => {});
      return;
    }
    if (!data || type === "message") return;
    onEvent(type, JSON.parse(data));
  }

  function onEvent(type, event) {
    if (type === "turn" && event.turn) {
      if (event.ticket_id === state.current) appendTurn(event.turn);
      else if (event.turn.role === "shopper" && event.agent === state.me.username) {
        state.unread.add(event.ticket_id);
        const item = document.querySelector(`.ticket[data-ticket-id="${CSS.escape(event.ticket_id)}"]`);
        if (item) item.classList.add("unread");
        beep();
      }
      return;
    }
    if (type === "ticket.claimed" && event.agent === state.me.username) state.letGo.delete(event.ticket_id);
    if (type === "ticket.claimed" && event.agent === state.me.username && event.previous_agent && event.previous_agent !== state.me.username) {
      api("GET", `/api/v1/tickets/${encodeURIComponent(event.ticket_id)}`).then((t) => {
        const tr = lastTransfer(t);
        toast(tr ? transferAlert(tr) : "有会话转接给你 A chat was transferred to you", "alert");
      }).catch(() => toast("有会话转接给你 A chat was transferred to you", "alert"));
      beep();
    }
    scheduleRefresh();
  }

  async function heartbeat() {
    for (const t of state.tickets.values()) {
      if (!mine(t) || state.letGo.has(t.id)) continue;
      try {
        await api("POST", `/api/v1/tickets/${encodeURIComponent(t.id)}/heartbeat`);
      } catch (e) {
        if (e.status === 409 && !state.letGo.has(t.id)) {
          toast("会话超时已回到队列 Lease expired: the chat went back to the queue", "error");
          scheduleRefresh();
        }
      }
    }
  }

  function tick() {
    const sla = state.config ? state.config.sla_seconds : 60;
    for (const node of document.querySelectorAll("[data-since]")) {
      const elapsed = since(node.dataset.since);
      node.textContent = duration(elapsed);
      if (node.dataset.sla) node.classList.toggle("breach", elapsed > sla);
    }
  }

  // --- wiring --------------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    $("presence").addEventListener("change", (e) => setPresence(e.target.value).catch((err) => toast(err.message, "error")));
    $("notify-enable").addEventListener("click", () => {
      if ("Notification" in window) Notification.requestPermission().then((p) => toast("提醒 Alerts: " + p));
      beep();
    });
    $("claim-next").addEventListener("click", () => claimNext().catch((e) => toast(e.message, "error")));
    $("claim-button").addEventListener("click", () => act((id) => api("POST", `/api/v1/tickets/${encodeURIComponent(id)}/claim`)));
    $("release-button").addEventListener("click", () => act((id) => api("POST", `/api/v1/tickets/${encodeURIComponent(id)}/release`), true));
    $("transfer-button").addEventListener("click", () => act(async (id) => {
      const [kind, target] = $("transfer-target").value.split(":");
      if (!target) return;
      const body = { note: $("transfer-note").value };
      body[kind === "agent" ? "agent" : "group"] = target;
      await api("POST", `/api/v1/tickets/${encodeURIComponent(id)}/transfer`, body);
      $("transfer-note").value = "";
      toast("已转接 Transferred");
    }, true));
    $("resolve-button").addEventListener("click", () => act(async (id) => {
      await api("POST", `/api/v1/tickets/${encodeURIComponent(id)}/resolve`, {
        note: $("resolve-note").value, return_to_bot: $("return-to-bot").checked,
      });
      $("resolve-note").value = "";
      toast("会话已结束 Resolved");
    }, true));
    $("reply-form").addEventListener("submit", sendReply);
    $("reply-input").addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); $("reply-form").requestSubmit(); }
    });
    $("canned-form").addEventListener("submit", searchCanned);
    $("history-button").addEventListener("click", () => showHistory($("history-view").hidden));
    $("history-form").addEventListener("submit", (e) => searchHistory(e).catch((err) => toast(err.message, "error")));
    $("reopen-button").addEventListener("click", reopen);
    // quality.js (supervisor alerts, whispers, take over) opens chats and reads the current one.
    window.kefuConsole = { openTicket, current: () => state.currentTicket, refresh: scheduleRefresh };
    kefu.mount({ start, stop: stopAll });
  });
})();
