// 主动消息模板 · Proactive templates: knowledge managers word the messages the store sends first
// (orders/proactive_api.py). Built on the UI kit (kefu/ui/kit.js).
"use strict";

(() => {
  const { $, el, clear, toast, api, mount } = window.kefu;
  const BASE = "/api/v1/proactive/templates";
  const NAMES = {
    ship_delayed: "发货延迟 Shipment delayed",
    stuck_in_transit: "物流停滞 Stuck in transit",
    final_payment_due: "尾款提醒 Final payment due",
    gift_shipped: "赠品已发 Gift shipped",
    refund_completed: "退款到账 Refund completed",
  };
  let state = null; // the list's answer
  let current = null; // the event shown

  const language = () => document.querySelector("input[name=language]:checked").value;
  const key = () => `${current}:${language()}`;

  function renderEvents() {
    const nav = clear($("events"));
    for (const event of state.events) {
      const custom = state.customised.some((k) => k.startsWith(event + ":"));
      nav.append(el("button", {
        type: "button", testid: `event-${event}`, class: event === current ? "active" : "",
        onclick: () => { current = event; show(); },
      }, NAMES[event] || event, custom ? el("span", { class: "custom", title: "已修改 Customised" }, "●") : null));
    }
  }

  function show() {
    renderEvents();
    $("event-title").textContent = `${NAMES[current] || current} · ${current}`;
    $("text").value = state.templates[key()];
    $("default-text").textContent = state.defaults[key()];
    $("state").textContent = state.customised.includes(key()) ? "（已修改 customised）" : "（默认 default）";
    $("problem").textContent = "";
    $("preview-box").hidden = true;
  }

  function insertVariable(name) {
    const area = $("text");
    const at = area.selectionStart ?? area.value.length;
    area.value = area.value.slice(0, at) + `{${name}}` + area.value.slice(area.selectionEnd ?? at);
    area.focus();
  }

  async function load() {
    state = await api("GET", BASE);
    current = current || state.events[0];
    const vars = clear($("variables"));
    for (const name of state.variables) {
      vars.append(el("code", { testid: `var-${name}`, onclick: () => insertVariable(name) }, `{${name}}`));
    }
    show();
  }

  async function attempt(action) {
    $("problem").textContent = "";
    try {
      await action();
    } catch (e) {
      if (e.status === 422 || e.status === 403) $("problem").textContent = e.message;
      else toast(e.message, "error");
    }
  }

  const preview = () => attempt(async () => {
    const shown = await api("POST", `${BASE}/preview`,
      { event: current, language: language(), text: $("text").value });
    $("preview-order").textContent = shown.order_id;
    $("preview-text").textContent = shown.text;
    $("preview-box").hidden = false;
  });

  const save = (event) => {
    event.preventDefault();
    return attempt(async () => {
      await api("PUT", `${BASE}/${current}/${language()}`, { text: $("text").value });
      await load();
      toast("已保存 Saved", "ok");
    });
  };

  const reset = () => attempt(async () => {
    await api("DELETE", `${BASE}/${current}/${language()}`);
    await load();
    toast("已恢复默认 Default restored", "ok");
  });

  async function start() {
    const me = (await api("GET", "/api/v1/agent/me")).agent;
    const manager = me.role === "manager";
    $("me").textContent = `${me.display_name} (${me.username}, ${manager ? "管理员 manager" : "客服 agent"})`;
    $("readonly-note").hidden = manager;
    for (const node of document.querySelectorAll(".manager-only")) node.hidden = !manager;
    await load();
  }

  // a deferred script: the page's markup is parsed already
  $("editor").addEventListener("submit", save);
  $("preview").addEventListener("click", preview);
  $("reset").addEventListener("click", reset);
  for (const radio of document.querySelectorAll("input[name=language]")) radio.addEventListener("change", show);
  mount({ start, stop: () => {} });
})();
