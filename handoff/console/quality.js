// kefu console, quality control: supervisors' live alerts (badge + sound, the chat one click away),
// watching any conversation, whispering to the agent, taking a chat over; every agent sees the
// whispers on their chats and why a message was blocked. API: /api/v1/quality (quality/api.py).
// Talks to console.js only through its events (kefu:console-start, kefu:ticket-open, kefu:blocked)
// and window.kefuConsole (openTicket, current). Everything typed by people is shown as text.
"use strict";

(() => {
  const { $, el, clear, toast, api } = kefu;
  const ROLES = { shopper: "顾客 Shopper", bot: "机器人 Bot", agent: "客服 Agent", system: "系统 System" };
  const q = { me: null, stream: null, alerts: [], unseen: 0, watching: null, watchTimer: null };

  const supervisor = () => q.me && q.me.role === "manager";
  const enc = encodeURIComponent;

  function beep() {
    try {
      const ctx = beep.ctx || (beep.ctx = new (window.AudioContext || window.webkitAudioContext)());
      const osc = ctx.createOscillator(), gain = ctx.createGain();
      osc.type = "square";
      osc.frequency.value = 660;
      gain.gain.setValueAtTime(0.12, ctx.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.001, ctx.currentTime + 0.5);
      osc.connect(gain).connect(ctx.destination);
      osc.start();
      osc.stop(ctx.currentTime + 0.5);
      beep.count = (beep.count || 0) + 1;
      document.body.dataset.qaBeeps = String(beep.count);
    } catch (e) { /* no audio: the badge still shows it */ }
  }

  // --- supervisor's alert panel --------------------------------------------------------------

  function buildSupervisorUi() {
    if ($("qa-alerts-button")) return;
    const badge = el("span", { id: "qa-badge", testid: "qa-badge", class: "badge", hidden: true }, "0");
    const button = el("button", { id: "qa-alerts-button", testid: "qa-alerts-button", type: "button" },
      "质检告警 Alerts ", badge);
    button.addEventListener("click", () => showPanel($("qa-panel").hidden));
    $("logout").before(button);
    const panel = el("aside", { id: "qa-panel", testid: "qa-panel", hidden: true },
      el("div", { class: "panel-head" }, el("h2", {}, "质检告警 Quality alerts"),
        el("button", { type: "button", testid: "qa-close", onclick: () => showPanel(false) }, "关闭 Close")),
      el("ol", { id: "qa-alert-list", testid: "qa-alert-list", class: "ticket-list" }),
      el("section", { id: "qa-watch", testid: "qa-watch", hidden: true },
        el("h3", { id: "qa-watch-title", testid: "qa-watch-title" }),
        el("ol", { id: "qa-watch-transcript", testid: "qa-watch-transcript", class: "transcript" })));
    document.body.append(panel);
  }

  function showPanel(on) {
    $("qa-panel").hidden = !on;
    if (on) { q.unseen = 0; renderBadge(); }
  }

  function renderBadge() {
    const badge = $("qa-badge");
    if (!badge) return;
    badge.textContent = String(q.unseen);
    badge.hidden = q.unseen === 0;
  }

  function alertItem(a) {
    const where = a.ticket_id ? "打开会话 Open chat" : "旁听 Watch";
    const item = el("li", { class: "ticket qa-alert action-" + a.action, testid: "qa-alert",
                            dataset: { rule: a.rule_id, action: a.action, conversation: a.conversation_id, ticketId: a.ticket_id || "" } },
      el("div", { class: "line" },
        el("span", { class: "tag" }, a.action === "block" ? "已拦截 Blocked" : "告警 Alert"),
        el("span", { class: "who", testid: "qa-alert-rule" }, a.rule_name),
        el("span", { class: "timer" }, new Date(a.at).toLocaleTimeString("zh-CN"))),
      el("div", { class: "summary", testid: "qa-alert-text" },
        (a.role ? (ROLES[a.role] || a.role) + "：" : "") + (a.text || a.matched)),
      el("div", { class: "owner" }, a.conversation_id + (a.agent ? " · " + a.agent : "") +
        (a.anger !== null && a.anger !== undefined ? ` · 愤怒 anger ${a.anger.toFixed(2)}` : ""),
        " · ", el("a", { href: "#", testid: "qa-alert-open" }, where)));
    item.addEventListener("click", (e) => { e.preventDefault(); openAlert(a).catch((err) => toast(err.message, "error")); });
    return item;
  }

  function addAlert(a, live) {
    if (q.alerts.some((x) => x.id === a.id)) return;
    q.alerts.unshift(a);
    $("qa-alert-list").prepend(alertItem(a));
    if (!live) return;
    if ($("qa-panel").hidden) q.unseen += 1;
    renderBadge();
    beep();
    toast(`质检告警 ${a.rule_name}: ${a.text || a.matched}`, "alert", 6);
  }

  async function openAlert(a) {
    if (a.ticket_id) {
      stopWatching();
      showPanel(false);
      await window.kefuConsole.openTicket(a.ticket_id);
      return;
    }
    await watch(a.conversation_id);
  }

  async function watch(conversation) {
    stopWatching();
    q.watching = { id: conversation, last: null };
    $("qa-watch").hidden = false;
    $("qa-watch-title").textContent = "旁听 Watching " + conversation;
    clear($("qa-watch-transcript"));
    await pollWatch();
    q.watchTimer = setInterval(() => pollWatch().catch(() => {}), 1000);
  }

  async function pollWatch() {
    const w = q.watching;
    if (!w) return;
    const after = w.last ? `?after=${enc(w.last)}` : "";
    const turns = await api("GET", `/api/v1/quality/conversations/${enc(w.id)}/transcript${after}`);
    for (const t of turns) {
      w.last = t.id;
      $("qa-watch-transcript").append(el("li", { class: "msg role-" + t.role, testid: "qa-watch-turn" },
        el("div", { class: "meta" }, ROLES[t.role] || t.role), el("div", { class: "text" }, t.text)));
    }
  }

  function stopWatching() {
    clearInterval(q.watchTimer);
    q.watching = null;
    if ($("qa-watch")) $("qa-watch").hidden = true;
  }

  // --- whispers and take over, on the open chat ----------------------------------------------

  function buildTicketUi() {
    if ($("qa-ticket")) return;
    const row = el("div", { id: "qa-ticket", testid: "qa-ticket", class: "action-row" });
    const notes = el("ol", { id: "whisper-list", testid: "whisper-list", class: "whispers" });
    const warning = el("p", { id: "blocked-warning", testid: "blocked-warning", class: "blocked", hidden: true, role: "alert" });
    $("reply-form").before(notes, warning);
    $("actions").prepend(row);
  }

  function renderTicketUi(ticket) {
    buildTicketUi();
    const row = clear($("qa-ticket"));
    clear($("whisper-list"));
    $("blocked-warning").hidden = true;
    if (!ticket) return;
    if (supervisor()) {
      const input = el("input", { id: "whisper-input", testid: "whisper-input", placeholder: "悄悄话（顾客看不到）Whisper to the agent (the shopper never sees it)" });
      const send = el("button", { type: "button", testid: "whisper-send" }, "悄悄话 Whisper");
      send.addEventListener("click", () => whisper(ticket.id, input).catch((e) => toast(e.message, "error")));
      input.addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.isComposing) { e.preventDefault(); send.click(); } });
      const open = ticket.status === "waiting" || ticket.status === "claimed";
      const mine = ticket.status === "claimed" && ticket.agent === q.me.username;
      const take = el("button", { type: "button", testid: "takeover-button", class: "primary", disabled: !open || mine }, "接管 Take over");
      take.addEventListener("click", () => takeOver(ticket.id).catch((e) => toast(e.message, "error")));
      row.append(input, send, take);
    }
    row.hidden = !supervisor();
    api("GET", `/api/v1/quality/tickets/${enc(ticket.id)}/whispers`)
      .then((list) => list.forEach(showWhisper)).catch(() => {});
  }

  function showWhisper(w) {
    const current = window.kefuConsole.current();
    if (!current || current.id !== w.ticket_id) return;
    $("whisper-list").append(el("li", { class: "whisper", testid: "whisper" },
      el("span", { class: "meta" }, `主管 ${w.by_name} 悄悄话 Whisper · ${new Date(w.at).toLocaleTimeString("zh-CN")}：`),
      el("span", { testid: "whisper-text" }, w.text)));
  }

  async function whisper(ticketId, input) {
    const text = input.value.trim();
    if (!text) return;
    await api("POST", `/api/v1/quality/tickets/${enc(ticketId)}/whisper`, { text });
    input.value = "";
    toast("悄悄话已发送 Whisper sent");
  }

  async function takeOver(ticketId) {
    await api("POST", `/api/v1/quality/tickets/${enc(ticketId)}/takeover`);
    toast("已接管 You took the chat over");
    window.kefuConsole.refresh();
    await window.kefuConsole.openTicket(ticketId);
  }

  // --- live events ---------------------------------------------------------------------------

  async function connect() {
    if (q.stream) q.stream.abort();
    const ctrl = new AbortController();
    q.stream = ctrl;
    try {
      const res = await fetch("/api/v1/quality/events", { headers: kefu.authHeaders(), signal: ctrl.signal });
      if (!res.ok || !res.body) throw new Error("quality events " + res.status);
      await kefu.readFrames(res, onFrame);
    } catch (e) {
      if (ctrl.signal.aborted) return;
    }
    if (q.stream === ctrl && kefu.token()) setTimeout(connect, 3000);
  }

  function onFrame(frame) {
    let type = "", data = "";
    for (const line of frame.split("\n")) {
      if (line.startsWith("event:")) type = line.slice(6).trim();
      else if (line.startsWith("data:")) data += line.slice(5).trim();
    }
    if (type === "ready") { document.body.dataset.qaLive = "on"; return; }
    if (!data) return;
    const event = JSON.parse(data);
    if (type === "qa.alert" && event.alert && supervisor()) addAlert(event.alert, true);
    if (type === "qa.whisper" && event.whisper) {
      showWhisper(event.whisper);
      if (event.whisper.to_agent === q.me.username) {
        beep();
        toast(`主管悄悄话 Whisper from ${event.whisper.by_name}: ${event.whisper.text}`, "alert", 8);
      }
    }
  }

  async function start(me) {
    q.me = me;
    if (!$("qa-reports-link")) {  // everyone: supervisors the store's figures, agents their own
      $("logout").before(el("a", { id: "qa-reports-link", testid: "qa-reports-link", href: "/quality/", class: "topbar-link" },
        "质检报表 Reports"));
    }
    q.alerts = [];
    q.unseen = 0;
    if (supervisor()) {
      buildSupervisorUi();
      clear($("qa-alert-list"));
      const since = new Date(Date.now() - 3600 * 1000).toISOString();
      const recent = await api("GET", `/api/v1/quality/alerts?since=${enc(since)}`);
      recent.reverse().forEach((a) => addAlert(a, false));
      renderBadge();
    }
    connect();
  }

  function stop() {
    if (q.stream) q.stream.abort();
    q.stream = null;
    stopWatching();
    document.body.dataset.qaLive = "off";
  }

  document.addEventListener("kefu:console-start", (e) => start(e.detail.me).catch((err) => toast(err.message, "error")));
  document.addEventListener("kefu:console-stop", stop);
  document.addEventListener("kefu:ticket-open", (e) => renderTicketUi(e.detail.ticket));
  document.addEventListener("kefu:blocked", (e) => {
    buildTicketUi();
    const d = e.detail || {};
    $("blocked-warning").textContent = `消息未发送（顾客看不到）Message not sent — ${d.rule_name || ""}: “${d.matched || ""}”`;
    $("blocked-warning").hidden = false;
  });
})();
