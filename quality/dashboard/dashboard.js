// kefu supervisor dashboard: the day's figures from /api/v1/quality/report (incremental Redis
// counters, quality/reports.py), charts with Apache ECharts (echarts.min.js, installed from npm by
// `scripts/setup.sh echarts`, never a CDN), drill-down to the conversations behind a figure, CSV
// exports, QA records with a supervisor's manual score. Chinese or English. Text is always text.
"use strict";

(() => {
  const { $, el, clear, toast, api } = kefu;
  const T = {
    zh: {
      rulesTitle: "质检规则", ruleName: "名称", ruleReads: "检查", ruleWhat: "规则内容", ruleAction: "动作", ruleOn: "启用",
      addRule: "添加", saveRules: "保存为新版本", audit: "修改记录", saved: "已保存",
      title: "质检与报表", day: "日期", scope: "范围", exportRecords: "导出会话 CSV", exportAggregates: "导出汇总 CSV",
      console: "工作台", logout: "退出", hourly: "每小时会话与转人工", reasons: "转人工原因",
      durations: "等待、首响、解决时长（秒）", length: "各技能组会话长度（条）", csat: "满意度分布",
      alerts: "质检告警（按规则）", topAnswered: "回答最多的知识条目", topUnanswered: "未能回答的话题（最接近的条目）", close: "关闭", conversation: "会话", ticket: "工单", agent: "客服",
      waitCol: "等待(秒)", frtCol: "首响(秒)", rating: "评分", rules: "命中规则", group: "技能组", review: "人工评分",
      records: "质检记录（当日结束的会话）", store: "全店", conversations: "会话数", handed: "转人工",
      containment: "机器人独立解决率", wrong: "答错率", closed: "人工结束", wait: "排队等待 p50/p95",
      frt: "首次响应 p50/p95", resolution: "解决时长 p50/p95", response: "评价率", convSeries: "会话",
      handoffSeries: "转人工", save: "保存", drillOf: "明细：", none: "无", other: "English",
      scopeNote: "按技能组/客服查看时，只统计当日结束（或取消）的、转到该组/该客服的会话；机器人独立处理的会话不属于任何技能组，只计入全店，因此独立解决率不适用。热门知识条目与各组会话长度仍为全店数据。",
      reasonNames: { explicit_request: "要求人工", low_confidence: "机器人无法回答", repeated_failure: "多次未解决",
                     complaint: "投诉", offline_message: "留言", reopened: "重新打开" },
    },
    en: {
      rulesTitle: "Quality rules", ruleName: "Name", ruleReads: "Reads", ruleWhat: "What", ruleAction: "Action", ruleOn: "On",
      addRule: "Add", saveRules: "Save as a new version", audit: "Changes", saved: "Saved",
      title: "Quality & reports", day: "Day", scope: "Scope", exportRecords: "Export chats CSV",
      exportAggregates: "Export figures CSV", console: "Console", logout: "Log out",
      hourly: "Conversations and handoffs per hour", reasons: "Handoffs by reason",
      durations: "Wait, first response, resolution (s)", length: "Conversation length per group (messages)",
      csat: "CSAT distribution", alerts: "Quality alerts by rule", topAnswered: "Entries answered most",
      topUnanswered: "Topics the bot could not answer (nearest entry)", close: "Close", conversation: "Conversation",
      ticket: "Ticket", agent: "Agent", waitCol: "Wait (s)", frtCol: "First reply (s)", rating: "Rating",
      rules: "Rules hit", group: "Group", review: "Manual score", records: "QA records (chats closed this day)",
      store: "Whole store", conversations: "Conversations", handed: "Handed off", containment: "Bot-only share",
      wrong: "Wrong-answer share", closed: "Closed by agents", wait: "Queue wait p50/p95",
      frt: "First response p50/p95", resolution: "Resolution p50/p95", response: "Rating response rate",
      convSeries: "Conversations", handoffSeries: "Handoffs", save: "Save", drillOf: "Behind: ", none: "none",
      other: "中文",
      scopeNote: "For a group or an agent, figures count the conversations handed to it whose ticket closed (or was cancelled) that day; chats the bot handled alone belong to no group and count store-wide only, so the bot-only share does not apply. Top knowledge entries and length per group stay store-wide.",
      reasonNames: { explicit_request: "Asked for a human", low_confidence: "Bot unsure", repeated_failure: "Repeated failure",
                     complaint: "Complaint", offline_message: "Message", reopened: "Reopened" },
    },
  };
  const st = { me: null, config: null, lang: localStorage.getItem("kefu.lang") || "zh", report: null, charts: {} };
  const t = (key) => T[st.lang][key] || key;
  const enc = encodeURIComponent;
  const supervisor = () => st.me && st.me.role === "manager";

  function today() {
    return new Intl.DateTimeFormat("en-CA", { timeZone: st.config.timezone }).format(new Date());
  }

  function applyLang() {
    document.documentElement.lang = st.lang === "zh" ? "zh-CN" : "en";
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    $("lang").textContent = t("other");
    renderScopes();
    if (st.report) render();
  }

  const pct = (x) => (x === null || x === undefined ? "—" : (x * 100).toFixed(1) + "%");
  const sec = (x) => (x === null || x === undefined ? "—" : String(Math.round(x)));

  // --- data ------------------------------------------------------------------------------------

  function query() {
    return `day=${enc($("day").value)}&scope=${enc($("scope").value || "store")}`;
  }

  async function load() {
    st.report = await api("GET", `/api/v1/quality/report?${query()}`);
    st.records = await api("GET", `/api/v1/quality/records?${query()}`);
    render();
  }

  async function drill(figure, label) {
    if (!supervisor()) return;
    const items = await api("GET", `/api/v1/quality/report/drill?day=${enc($("day").value)}&figure=${enc(figure)}`);
    $("drill").hidden = false;
    $("drill").dataset.figure = figure;
    $("drill-title").textContent = t("drillOf") + label + ` (${items.length})`;
    const body = clear($("drill-list"));
    for (const item of items) {
      const r = item.record;
      body.append(el("tr", { testid: "drill-item", dataset: { conversation: item.conversation_id } },
        el("td", {}, item.conversation_id), el("td", {}, item.ticket_id || "—"),
        el("td", {}, r && r.agent ? r.agent : "—"), el("td", {}, r ? sec(r.wait_seconds) : "—"),
        el("td", {}, r && r.rating ? String(r.rating) : "—"), el("td", {}, r ? r.rules_hit.join(", ") : "—")));
    }
    $("drill").scrollIntoView({ block: "nearest" });
  }

  // --- rendering -------------------------------------------------------------------------------

  function figure(key, value, testid, drillFigure) {
    const card = el("div", { class: "figure" + (drillFigure ? " drillable" : ""), testid, dataset: { figure: drillFigure || "" } },
      el("div", { class: "value", testid: testid + "-value" }, value), el("div", { class: "label" }, t(key)));
    if (drillFigure) card.addEventListener("click", () => drill(drillFigure, t(key)).catch((e) => toast(e.message, "error")));
    return card;
  }

  function render() {
    const r = st.report, scope = r.scope;
    // a group's or agent's drill-downs are the figure followed by ":{scope}" (quality/reports.py)
    const sc = (f) => (scope === "store" ? f : `${f}:${scope}`);
    const box = clear($("figures"));
    box.append(
      figure("conversations", String(r.conversations), "figure-conversations", scope === "store" ? "convs" : sc("handed")),
      figure("handed", String(r.handed_off), "figure-handed", sc("handed")),
      figure("containment", pct(r.containment), "figure-containment", null),
      figure("wrong", pct(r.wrong_share), "figure-wrong", sc("wrong")),
      figure("closed", String(r.closed), "figure-closed", sc("closed")),
      figure("wait", `${sec(r.wait.p50)} / ${sec(r.wait.p95)}`, "figure-wait", `wait:${scope}`),
      figure("frt", `${sec(r.first_response.p50)} / ${sec(r.first_response.p95)}`, "figure-frt", `frt:${scope}`),
      figure("resolution", `${sec(r.resolution.p50)} / ${sec(r.resolution.p95)}`, "figure-resolution", `resolution:${scope}`),
      figure("response", pct(r.csat_response_rate), "figure-response", null));
    if (r.store_wide.length) box.append(el("p", { class: "scope-note", testid: "scope-note" }, t("scopeNote")));
    const hours = [...Array(24).keys()].map((h) => String(h).padStart(2, "0"));
    chart("chart-hourly", {
      legend: {}, tooltip: { trigger: "axis" }, xAxis: { type: "category", data: hours }, yAxis: { type: "value", minInterval: 1 },
      series: [{ name: t("convSeries"), type: "bar", data: r.hourly_conversations },
               { name: t("handoffSeries"), type: "bar", data: r.hourly_handoffs }],
    });
    const reasons = Object.keys(r.handoffs_by_reason);
    chart("chart-reasons", bars(reasons.map((k) => T[st.lang].reasonNames[k] || k), reasons.map((k) => r.handoffs_by_reason[k])),
      (i) => drill(sc(`handoff:${reasons[i]}`), T[st.lang].reasonNames[reasons[i]] || reasons[i]));
    chart("chart-durations", {
      legend: {}, tooltip: { trigger: "axis" }, xAxis: { type: "category", data: [t("wait"), t("frt"), t("resolution")].map((s) => s.split(" ")[0]) },
      yAxis: { type: "value" },
      series: ["p50", "p95"].map((p) => ({ name: p, type: "bar", data: [r.wait[p], r.first_response[p], r.resolution[p]] })),
    });
    const groups = Object.keys(r.length_by_group);
    chart("chart-length", {
      legend: {}, tooltip: { trigger: "axis" }, xAxis: { type: "category", data: groups }, yAxis: { type: "value", minInterval: 1 },
      series: ["p50", "p95"].map((p) => ({ name: p, type: "bar", data: groups.map((g) => r.length_by_group[g][p]) })),
    });
    const scores = ["1", "2", "3", "4", "5"];
    chart("chart-csat", bars(scores.map((s) => s + " ★"), scores.map((s) => r.csat[s])), (i) => drill(sc(`csat:${scores[i]}`), scores[i] + " ★"));
    const rules = Object.keys(r.alerts_by_rule);
    chart("chart-alerts", bars(rules, rules.map((k) => r.alerts_by_rule[k])), (i) => drill(sc(`alerts:${rules[i]}`), rules[i]));
    for (const [id, list] of [["top-answered", r.top_answered], ["top-unanswered", r.top_unanswered]]) {
      const box = clear($(id));
      for (const e of list) box.append(el("li", { testid: id + "-item", dataset: { entry: e.entry_id } },
        el("span", {}, e.question || e.entry_id), " ", el("span", { class: "count" }, "× " + e.count)));
      if (!list.length) box.append(el("li", { class: "muted" }, t("none")));
    }
    renderRecords();
  }

  function bars(names, values) {
    return { tooltip: {}, xAxis: { type: "category", data: names, axisLabel: { interval: 0, rotate: names.length > 4 ? 20 : 0 } },
             yAxis: { type: "value", minInterval: 1 }, series: [{ type: "bar", data: values }] };
  }

  function chart(id, option, onBar) {
    const node = $(id);
    let c = st.charts[id];
    if (!c) {
      c = st.charts[id] = echarts.init(node, null, { renderer: "canvas" });
      c.on("click", (p) => { if (node.onBar) node.onBar(p.dataIndex); });
      // the page is drawn before the kit shows it: size the chart when its box gets one
      new ResizeObserver(() => { if (!c.isDisposed()) c.resize(); }).observe(node);
    }
    node.onBar = onBar ? (i) => onBar(i).catch((e) => toast(e.message, "error")) : null;
    c.setOption(option, true);
    node.dataset.rendered = String(Number(node.dataset.rendered || 0) + 1);
  }

  function renderRecords() {
    const body = clear($("records"));
    for (const r of st.records) {
      const cells = [r.conversation_id, r.group, r.agent || "—", sec(r.wait_seconds), sec(r.first_response_seconds),
                     r.rating ? String(r.rating) : "—", r.rules_hit.join(", ") || "—"].map((v) => el("td", {}, v));
      const review = el("td", {});
      if (supervisor()) {
        const score = el("select", { testid: "review-score" }, ["", "1", "2", "3", "4", "5"].map((s) => el("option", { value: s }, s || "—")));
        score.value = r.review_score ? String(r.review_score) : "";
        const comment = el("input", { testid: "review-comment", value: r.review_comment || "" });
        const save = el("button", { type: "button", testid: "review-save" }, t("save"));
        save.addEventListener("click", () => api("POST", `/api/v1/quality/records/${enc(r.ticket_id)}/review`,
          { score: Number(score.value), comment: comment.value }).then(() => toast("✓", "ok")).catch((e) => toast(e.message, "error")));
        review.append(score, comment, save);
      } else {
        review.append(r.review_score ? `${r.review_score} · ${r.review_comment}` : "—");
      }
      body.append(el("tr", { testid: "record", dataset: { ticketId: r.ticket_id } }, cells, review));
    }
  }

  // --- rules (supervisors): every save is a new version on top of the one loaded -------------

  async function loadRules() {
    if (!supervisor()) return;
    st.rules = await api("GET", "/api/v1/quality/rules");
    $("rules-card").hidden = false;
    $("rules-version").textContent = String(st.rules.version);
    const body = clear($("rules"));
    for (const rule of st.rules.rules) body.append(ruleRow(rule));
    const audit = clear($("audit"));
    for (const a of await api("GET", "/api/v1/quality/audit")) {
      audit.append(el("li", { testid: "audit-entry" }, `v${a.version} · ${a.by} · ${new Date(a.at).toLocaleString()} · ${a.comment}`,
        a.added.length ? ` +${a.added.join(",")}` : "", a.removed.length ? ` −${a.removed.join(",")}` : "",
        a.changed.length ? ` ~${a.changed.join(",")}` : ""));
    }
  }

  function ruleRow(rule) {
    let what;
    if (rule.patterns.length) {
      what = el("textarea", { rows: 2, cols: 40, dataset: { field: "patterns" } });
      what.value = rule.patterns.join("\n");
    } else if (rule.min_anger !== null) {
      what = el("input", { type: "number", step: "0.05", min: 0, max: 1, value: rule.min_anger, dataset: { field: "min_anger" } });
    } else {
      what = el("span", {}, rule.limit + " > ", el("input", { type: "number", min: 1, value: rule.seconds, dataset: { field: "seconds" } }), " s");
    }
    const action = el("select", { dataset: { field: "action" }, disabled: !(rule.roles.length === 1 && rule.roles[0] === "agent") },
      el("option", { value: "alert" }, "alert"), el("option", { value: "block" }, "block"));
    action.value = rule.action;
    const on = el("input", { type: "checkbox", dataset: { field: "enabled" } });
    on.checked = rule.enabled;
    return el("tr", { testid: "rule", dataset: { rule: rule.id } }, el("td", {}, rule.id), el("td", {}, rule.name),
      el("td", {}, rule.roles.join(", ") || "⏱"), el("td", {}, what), el("td", {}, action), el("td", {}, on));
  }

  function editedRules() {
    return st.rules.rules.map((rule) => {
      const row = document.querySelector(`[data-testid=rule][data-rule="${CSS.escape(rule.id)}"]`);
      const field = (name) => row.querySelector(`[data-field=${name}]`);
      const out = { ...rule, action: field("action").value, enabled: field("enabled").checked };
      if (field("patterns")) out.patterns = field("patterns").value.split("\n").map((p) => p.trim()).filter(Boolean);
      if (field("min_anger")) out.min_anger = Number(field("min_anger").value);
      if (field("seconds")) out.seconds = Number(field("seconds").value);
      return out;
    });
  }

  async function saveRules(extra) {
    const rules = editedRules().concat(extra ? [extra] : []);
    await api("PUT", "/api/v1/quality/rules", { base_version: st.rules.version, rules, comment: $("rules-comment").value });
    $("rules-comment").value = "";
    toast(t("saved"), "ok");
    await loadRules();
  }

  function newRule() {
    const patterns = $("new-rule-patterns").value.split(",").map((p) => p.trim()).filter(Boolean);
    return { id: $("new-rule-id").value.trim(), name: $("new-rule-name").value.trim() || $("new-rule-id").value.trim(),
             roles: [$("new-rule-role").value], patterns, action: $("new-rule-action").value };
  }

  function renderScopes() {
    const select = $("scope");
    const current = select.value || "store";
    clear(select);
    if (!st.me) return;
    if (supervisor()) {
      select.append(el("option", { value: "store" }, t("store")));
      for (const g of st.config.groups) select.append(el("option", { value: `g:${g}` }, `${t("group")}: ${g}`));
      for (const a of st.agents || []) select.append(el("option", { value: `a:${a.username}` }, `${t("agent")}: ${a.display_name}`));
    } else {
      select.append(el("option", { value: `a:${st.me.username}` }, st.me.display_name));
    }
    select.value = [...select.options].some((o) => o.value === current) ? current : select.options[0].value;
  }

  async function download(path, name) {
    const res = await fetch(`${path}?${query()}`, { headers: kefu.authHeaders() });
    if (!res.ok) throw new Error("CSV " + res.status);
    const url = URL.createObjectURL(await res.blob());
    const link = el("a", { href: url, download: name });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  async function start() {
    const me = await api("GET", "/api/v1/agent/me");
    st.me = me.agent;
    st.config = me.config;
    st.agents = supervisor() ? await api("GET", "/api/v1/agents") : [];
    $("me").textContent = `${me.agent.display_name} (${me.agent.username})`;
    if (!$("day").value) $("day").value = today();
    applyLang();
    await load();
    await loadRules();
  }

  function stop() {
    for (const c of Object.values(st.charts)) c.dispose();
    st.charts = {};
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("day").addEventListener("change", () => load().catch((e) => toast(e.message, "error")));
    $("scope").addEventListener("change", () => load().catch((e) => toast(e.message, "error")));
    $("lang").addEventListener("click", () => {
      st.lang = st.lang === "zh" ? "en" : "zh";
      localStorage.setItem("kefu.lang", st.lang);
      applyLang();
    });
    $("drill-close").addEventListener("click", () => { $("drill").hidden = true; });
    $("rules-save").addEventListener("click", () => saveRules(null).catch((e) => toast(e.message, "error")));
    $("new-rule-add").addEventListener("click", () => saveRules(newRule()).then(() => {
      for (const id of ["new-rule-id", "new-rule-name", "new-rule-patterns"]) $(id).value = "";
    }).catch((e) => toast(e.message, "error")));
    $("export-records").addEventListener("click", () => download("/api/v1/quality/export/records.csv",
      `kefu-qa-records-${$("day").value}.csv`).catch((e) => toast(e.message, "error")));
    $("export-aggregates").addEventListener("click", () => download("/api/v1/quality/export/aggregates.csv",
      `kefu-qa-aggregates-${$("day").value}.csv`).catch((e) => toast(e.message, "error")));
    kefu.mount({ start, stop });
  });
})();
