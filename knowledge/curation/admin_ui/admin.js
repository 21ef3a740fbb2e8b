// 知识库管理 · Knowledge admin. Plain JS, no build step, on the kefu UI kit (kit.js: el, request,
// login, toast). Every piece of user or server text goes into the page through textContent (never
// innerHTML), so a question like "<img onerror>" stays text.
"use strict";

(function () {
  const { $, el, clear, request, errorText } = kefu;
  const state = {
    agent: null,
    manager: false,
    draft: null, // the draft under review
    live: null,
  };

  // --- formatting ------------------------------------------------------------------------------

  function fmtTime(iso) {
    if (!iso) return "…";
    const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(?::\d{2}(?:\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$/.exec(iso);
    if (!m) return iso;
    const zone = m[3] === "Z" || m[3] === "+00:00" ? " UTC" : m[3] ? " " + m[3] : "";
    return m[1] + " " + m[2] + zone;
  }

  function pct(x) {
    return x === null || x === undefined ? "n/a" : (x * 100).toFixed(1) + "%";
  }

  // Progress ("info") stays until the next message; results and errors go after a while.
  function flash(text, kind) {
    kefu.toast(text, kind || "info", kind === "info" || !kind ? 0 : 8);
  }

  const KIND_LABELS = { answer: "回答 answer", clarify: "澄清 clarify", handoff: "转人工 handoff" };
  const STATUS_LABELS = { upcoming: "未开始 upcoming", active: "进行中 active", expired: "已结束 expired" };

  // --- session -------------------------------------------------------------------------------

  async function start() {
    const me = await request("GET", "/api/v1/agent/me");
    if (!me.ok) throw new Error(errorText(me));
    state.agent = me.data.agent;
    state.manager = state.agent.role === "manager";
    $("me").textContent = state.agent.display_name + " (" + state.agent.username + ", " +
      (state.manager ? "管理员 manager" : "客服 agent") + ")";
    $("readonly-note").hidden = state.manager;
    for (const node of document.querySelectorAll(".manager-only")) node.hidden = !state.manager;
    await refreshVersions();
  }

  // --- tabs -------------------------------------------------------------------------------------

  function showTab(name) {
    for (const button of document.querySelectorAll("#tabs button")) {
      button.classList.toggle("active", button.dataset.tab === name);
    }
    for (const panel of document.querySelectorAll(".panel")) panel.hidden = panel.dataset.panel !== name;
    if (name === "calendar") loadCalendar();
    if (name === "versions") refreshVersions();
    if (name === "topics") loadTopics();
    if (name === "welcome") loadWelcome();
  }

  // --- upload and review ------------------------------------------------------------------------

  async function upload(event) {
    event.preventDefault();
    const file = $("upload-file").files[0];
    if (!file) return;
    const form = new FormData();
    form.append("file", file);
    form.append("mode", document.querySelector("input[name=mode]:checked").value);
    // the previous upload's problems and review go at once: they are not about this file
    $("problems").hidden = true;
    clear($("problem-rows"));
    $("review").hidden = true;
    state.draft = null;
    flash("校验并建立索引中… Validating and indexing…", "info");
    $("upload-submit").disabled = true;
    try {
      const result = await request("POST", "/api/v1/kb/drafts", form);
      if (result.status === 422 && result.data && result.data.problems) {
        $("review").hidden = true;
        showProblems(result.data.problems);
        flash("文件有问题，未保存 The file has problems; nothing was kept", "error");
        return;
      }
      if (!result.ok) return flash(errorText(result), "error");
      flash("");
      showReview(result.data);
    } finally {
      $("upload-submit").disabled = false;
    }
  }

  function showProblems(problems) {
    $("problem-count").textContent = "(" + problems.length + ")";
    const rows = clear($("problem-rows"));
    for (const p of problems) {  // in Chinese (the page's language); the English original on hover
      rows.append(el("tr", { testid: "problem", title: p.text },
        el("td", {}, p.location_zh || p.location), el("td", {}, p.field_zh || p.field || ""),
        el("td", { testid: "problem-message" }, p.message_zh || p.message)));
    }
    $("problems").hidden = false;
  }

  function showReview(review) {
    state.draft = review.draft;
    $("review").hidden = false;
    $("draft-id").textContent = review.draft.id;
    $("draft-summary").textContent = review.draft.filename + " · " + review.draft.entries + " 条目 entries · " +
      review.draft.tests + " 测试问题 tests · " + review.draft.author;
    const t = review.thresholds;
    $("thresholds").textContent = "回答策略 Answer policy: answer at confidence " +
      t.answer.toFixed(2) + ", clarify at " + t.clarify.toFixed(2) + ". " + t.advice;
    showDiff(review.diff);
    showClosePairs(review.close_pairs);
    showGate(review.gate);
    renderCalendar($("draft-calendar"), review.calendar);
    loadImpact(review.draft.id);
    $("publish-result").textContent = "";
    $("override-reason").value = "";
    $("override-label").hidden = review.gate.passed;
    addTryTarget("draft:" + review.draft.id, "草稿 Draft " + review.draft.id, true);
    showTab("upload");
  }

  function showDiff(diff) {
    $("diff-summary").textContent = "对比 Against " + (diff.base_version || "（尚无发布 nothing published）") + ": " +
      diff.added.length + " 新增 added, " + diff.changed.length + " 修改 changed, " +
      diff.removed.length + " 删除 removed, " + diff.unchanged + " 未变 unchanged";
    const rows = clear($("diff-rows"));
    const labels = { added: "+ 新增 added", changed: "~ 修改 changed", removed: "- 删除 removed" };
    for (const change of [...diff.added, ...diff.changed, ...diff.removed]) {
      const details = el("ul", { class: "plain" });
      if (change.kind === "added" && change.after) {
        const e = change.after;
        details.append(el("li", { class: "answer", testid: "diff-answer" }, e.answer));
        if (e.campaign || e.valid_from || e.valid_until) {
          details.append(el("li", { testid: "diff-window" }, "生效 Window: " + (e.campaign ? e.campaign + " · " : "") +
            fmtTime(e.valid_from) + " → " + fmtTime(e.valid_until)));
        }
      }
      for (const f of change.fields) {
        if (f.field === "variants") {
          for (const v of change.variants_added) details.append(el("li", {}, "+ 问法 variant: " + v));
          for (const v of change.variants_removed) details.append(el("li", {}, "- 问法 variant: " + v));
        } else {
          details.append(el("li", {}, f.field + ": " + (f.before || "—") + " → " + (f.after || "—")));
        }
      }
      rows.append(el("tr", { testid: "diff-row", "data-kind": change.kind, "data-entry": change.entry_id, class: change.kind },
        el("td", {}, labels[change.kind]), el("td", {}, el("code", {}, change.entry_id)),
        el("td", {}, change.question), el("td", {}, details)));
    }
  }

  function showClosePairs(pairs) {
    const changed = pairs.filter((p) => p.changed);
    const existing = pairs.filter((p) => !p.changed);
    $("close-count").textContent = "(" + changed.length + ")";
    $("close-existing-count").textContent = String(existing.length);
    $("close-existing-box").hidden = !existing.length;
    const list = clear($("close-pairs"));
    if (!changed.length) list.append(el("li", { class: "muted" }, "没有 None"));
    for (const p of changed) list.append(closePair(p, "close-pair"));
    const others = clear($("close-existing"));
    for (const p of existing) others.append(closePair(p, "close-pair-existing"));
  }

  function closePair(p, testid) {
    return el("li", { testid, class: "pair " + p.severity, "data-entry": p.entry_id, "data-other": p.other_id },
      el("strong", {}, p.severity === "confused" ? "易混淆 confused" : "相近 close"), " ",
      el("code", {}, p.entry_id), " «" + p.text + "» ↔ ", el("code", {}, p.other_id), " «" + p.other_text + "» ",
      el("span", { class: "muted" }, "score " + p.score.toFixed(3) + " ≥ " + p.threshold.toFixed(3) +
        " (own " + p.own_score.toFixed(3) + ")"));
  }

  function outcomeText(o) {
    if (!o) return "—";
    return (o.correct ? "✓ " : "✗ ") + (o.entry_id || KIND_LABELS[o.kind] || o.kind);
  }

  function showGate(gate) {
    $("gate-summary").textContent = gate.questions.length
      ? "新版本 New " + pct(gate.draft_accuracy) + " · 线上 Live " + pct(gate.live_accuracy) + " · " +
        (gate.passed ? "通过 passed" : "未通过：比线上版本差 refused: worse than live")
      : "没有测试问题 No test questions";
    $("gate-summary").dataset.passed = String(gate.passed);
    const rows = clear($("gate-rows"));
    for (const q of gate.questions) {
      rows.append(el("tr", { testid: "gate-row" },
        el("td", {}, fmtTime(q.at)), el("td", {}, q.text), el("td", {}, q.expected || "（不应回答 no answer）"),
        el("td", { class: q.live && q.live.correct ? "ok" : "bad" }, outcomeText(q.live)),
        el("td", { class: q.draft.correct ? "ok" : "bad" }, outcomeText(q.draft))));
    }
  }

  function outcomeCell(o) {
    if (!o) return el("td", { class: "muted" }, "（尚无线上版本 nothing live）");
    if (o.kind === "answer") {
      return el("td", {}, el("code", {}, o.entry_id), " ", o.question || "",
        el("div", { class: "muted small" }, o.answer || ""));
    }
    if (o.kind === "clarify") return el("td", {}, "澄清 clarify: ", o.options.join(" / "));
    return el("td", {}, KIND_LABELS[o.kind] || o.kind);
  }

  async function loadImpact(draftId) {
    const rows = clear($("impact-rows"));
    $("impact-count").textContent = "";
    $("impact-summary").textContent = "对比中… Asking both versions…";
    const result = await request("GET", "/api/v1/kb/drafts/" + encodeURIComponent(draftId) + "/impact");
    if (!state.draft || state.draft.id !== draftId) return; // another upload meanwhile
    if (!result.ok) {
      $("impact-summary").textContent = errorText(result);
      return;
    }
    const r = result.data;
    $("impact-count").textContent = "(" + r.rows.length + ")";
    $("impact-summary").textContent = "问了 Asked " + r.tests + " 个线上测试问题 live tests、" + r.shopper_questions +
      " 个近期顾客问题 recent shopper questions，时间 at " + r.times.map(fmtTime).join(" · ") + "。" +
      (r.rows.length ? "" : " 没有别的回答会变 No other answer changes.");
    for (const row of r.rows) {
      const source = row.source === "test"
        ? "测试 test" + (row.expected ? " → " + row.expected : "")
        : "顾客 shopper" + (row.asked_at ? " " + fmtTime(row.asked_at) : "");
      const flags = [];
      if (row.breaks_test) flags.push("测试变错 breaks a test");
      if (row.by_draft) flags.push("新条目接管 taken by a new entry");
      rows.append(el("tr", { testid: "impact-row", class: row.breaks_test ? "bad" : row.by_draft ? "warn" : "",
                            "data-source": row.source, "data-before": row.before ? row.before.entry_id || row.before.kind : "",
                            "data-after": row.after.entry_id || row.after.kind },
        el("td", {}, row.text, flags.length ? el("div", { class: "flags" }, flags.join(" · ")) : null),
        el("td", {}, source), el("td", {}, fmtTime(row.at)),
        outcomeCell(row.before), outcomeCell(row.after)));
    }
  }

  async function publish(event) {
    event.preventDefault();
    if (!state.draft) return;
    const reason = $("override-reason").value.trim();
    const note = await kefu.confirmDialog({
      title: "发布到线上？ Publish?",
      message: "草稿 " + state.draft.id + "（" + $("diff-summary").textContent + "）发布后立即对所有顾客生效。" +
        "Every shopper gets the new answers at once.",
      note: $("publish-note").value, confirmLabel: "确认发布 Publish",
    });
    if (note === null) return;
    $("publish-note").value = note;
    const body = { note, override_reason: reason || null };
    $("publish-submit").disabled = true;
    try {
      const result = await request("POST", "/api/v1/kb/drafts/" + encodeURIComponent(state.draft.id) + "/publish", body);
      if (result.status === 409 && result.data && result.data.gate) {
        showGate(result.data.gate);
        $("override-label").hidden = false;
        $("publish-result").textContent = "未发布 Not published: " + errorText(result);
        return;
      }
      if (!result.ok) {
        $("publish-result").textContent = errorText(result);
        return;
      }
      const v = result.data.version;
      $("publish-result").textContent = "已发布 Published " + v.id + (result.data.overridden ? "（已覆盖测试 gate overridden）" : "");
      $("publish-result").dataset.version = v.id;
      flash("已发布，所有进程将在 2 秒内切换 Published; every process switches within 2 s", "ok");
      await refreshVersions();
    } finally {
      $("publish-submit").disabled = false;
    }
  }

  // Staff-only files: fetched with the session token (a plain link would not send it), then saved.
  async function download(path, filename) {
    const res = await fetch(path, { headers: kefu.authHeaders() });
    if (!res.ok) return flash("下载失败 Download failed", "error");
    const url = URL.createObjectURL(await res.blob());
    const link = el("a", { href: url, download: filename });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  async function downloadDraft(event) {
    event.preventDefault();
    if (!state.draft) return;
    await download("/api/v1/kb/drafts/" + encodeURIComponent(state.draft.id) + "/file",
      "draft-" + state.draft.id + ".yaml");
  }

  async function downloadTemplate(event) {
    event.preventDefault();
    const fmt = event.currentTarget.dataset.format;
    await download("/api/v1/kb/templates/" + fmt, "kefu-kb-template." + fmt);
  }

  // --- try a question ---------------------------------------------------------------------------

  function addTryTarget(value, label, select) {
    const target = $("try-target");
    let option = Array.from(target.options).find((o) => o.value === value);
    if (!option) {
      option = el("option", { value }, label);
      target.append(option);
    }
    if (select) target.value = value;
  }

  async function tryQuestion(event) {
    event.preventDefault();
    const body = { text: $("try-text").value };
    const at = $("try-at").value;
    if (at) body.at = at.length === 16 ? at + ":00" : at;
    const target = $("try-target").value;
    if (target.startsWith("draft:")) body.draft_id = target.slice(6);
    else if (target.startsWith("version:")) body.version = target.slice(8);
    const result = await request("POST", "/api/v1/kb/try", body);
    if (!result.ok) return flash(errorText(result), "error");
    flash("");
    const d = result.data.decision;
    $("try-result").hidden = false;
    $("try-kind").textContent = KIND_LABELS[d.kind] || d.kind;
    $("try-kind").dataset.kind = d.kind;
    $("try-entry").textContent = d.entry ? d.entry.entry_id : d.options.map((o) => o.entry_id).join(" / ");
    $("try-entry").dataset.entry = d.entry ? d.entry.entry_id : "";
    $("try-answer").textContent = d.entry ? d.entry.answer : "";
    $("try-reason").textContent = "as of " + fmtTime(d.at) + " · " + (result.data.version || "—") + " · " + d.reason;
    const rows = clear($("try-candidates"));
    d.candidates.forEach((c, i) => {
      const signals = Object.entries(c.signals).map(([k, v]) => k + "=" + Number(v).toFixed(3)).join(" ");
      rows.append(el("tr", { testid: "candidate", "data-entry": c.entry_id },
        el("td", {}, String(i + 1)), el("td", {}, el("code", {}, c.entry_id), c.campaign ? " [" + c.campaign + "]" : ""),
        el("td", { testid: "candidate-score" }, c.score.toFixed(3)), el("td", {}, c.matched),
        el("td", { class: "muted" }, signals)));
    });
  }

  // --- calendar ---------------------------------------------------------------------------------

  // The campaign calendar as a timeline: weeks across, each entry a bar, today a line; what is
  // coming (and running) on top, what has ended folded away below.
  const DAY = 24 * 3600 * 1000;

  function mondayOf(time) {
    const d = new Date(time);
    d.setHours(0, 0, 0, 0);
    d.setDate(d.getDate() - ((d.getDay() + 6) % 7));
    return d.getTime();
  }

  function renderCalendar(container, windows) {
    clear(container);
    if (!windows.length) {
      container.append(el("p", { class: "muted" }, "没有限时条目 No time-limited entries"));
      return;
    }
    const now = Date.now();
    const rank = { upcoming: 0, active: 1, expired: 2 };
    const current = windows.filter((w) => w.status !== "expired").sort((a, b) =>
      rank[a.status] - rank[b.status] || (Date.parse(a.starts) || 0) - (Date.parse(b.starts) || 0));
    const past = windows.filter((w) => w.status === "expired").sort((a, b) => Date.parse(b.ends) - Date.parse(a.ends));
    if (current.length) container.append(timeline(current, now));
    else container.append(el("p", { class: "muted" }, "没有进行中或未开始的活动 Nothing running or coming"));
    if (past.length) {
      container.append(el("details", { class: "past", testid: "calendar-past" },
        el("summary", {}, "已结束 Ended (" + past.length + ")"), timeline(past, now)));
    }
  }

  function timeline(windows, now) {
    const times = windows.flatMap((w) => w.entries.flatMap((e) => [e.valid_from, e.valid_until]))
      .filter(Boolean).map(Date.parse);
    const first = mondayOf(Math.min(now, ...times));
    const last = Math.max(now + 7 * DAY, ...times);
    const weeks = Math.min(52, Math.max(2, Math.ceil((last - first) / (7 * DAY))));
    const end = first + weeks * 7 * DAY;
    const pos = (t) => Math.max(0, Math.min(100, ((t - first) / (end - first)) * 100));
    const box = el("div", { class: "timeline", testid: "timeline", style: "--weeks:" + weeks });
    const head = el("div", { class: "tl-row tl-head" }, el("div", { class: "tl-label" }, "周 Week of"));
    const scale = el("div", { class: "tl-track" });
    for (let i = 0; i < weeks; i++) {
      const d = new Date(first + i * 7 * DAY);
      scale.append(el("span", { class: "tl-week", testid: "timeline-week", style: "left:" + (i * 100 / weeks) + "%" },
        String(d.getMonth() + 1).padStart(2, "0") + "-" + String(d.getDate()).padStart(2, "0")));
    }
    if (now >= first && now <= end) {
      scale.append(el("span", { class: "tl-today", testid: "timeline-today", style: "left:" + pos(now) + "%" }, "今天 Today"));
    }
    head.append(scale);
    box.append(head);
    for (const w of windows) {
      const group = el("div", { class: "campaign", testid: "campaign", "data-campaign": w.campaign, "data-status": w.status });
      group.append(el("h3", {}, (w.campaign || "（无活动名 no campaign）") + " · " + fmtTime(w.starts) + " → " +
        fmtTime(w.ends) + " · " + (STATUS_LABELS[w.status] || w.status)));
      for (const item of w.entries) {
        const from = item.valid_from ? Date.parse(item.valid_from) : first;
        const to = item.valid_until ? Date.parse(item.valid_until) : end;
        const left = pos(from), width = Math.max(0.8, pos(to) - left);
        const span = fmtTime(item.valid_from) + " → " + fmtTime(item.valid_until);
        group.append(el("div", { class: "tl-row", testid: "calendar-entry", "data-entry": item.entry_id, "data-status": item.status },
          el("div", { class: "tl-label", title: item.question }, el("code", {}, item.entry_id), " ", item.question),
          el("div", { class: "tl-track" },
            el("span", { class: "tl-today-line", style: "left:" + pos(now) + "%", hidden: now < first || now > end }),
            el("span", { class: "tl-bar " + item.status, testid: "calendar-bar", title: span,
                         style: "left:" + left + "%;width:" + width + "%" }, span))));
      }
      box.append(group);
    }
    return box;
  }

  async function loadCalendar() {
    const result = await request("GET", "/api/v1/kb/calendar");
    if (result.ok) renderCalendar($("live-calendar"), result.data);
  }

  // --- versions and audit -----------------------------------------------------------------------

  async function refreshVersions() {
    const result = await request("GET", "/api/v1/kb/versions");
    if (!result.ok) return flash(errorText(result), "error");
    state.live = result.data.live;
    $("live-version").textContent = state.live || "—";
    const rows = clear($("version-rows"));
    for (const v of result.data.versions) {
      const live = v.id === state.live;
      const actions = el("td", {},
        el("button", { type: "button", testid: "version-diff-button", onclick: () => showVersionDiff(v.id) }, "改动 Changes"));
      if (state.manager && !live) {
        actions.append(" ", el("button", { type: "button", testid: "rollback-button", onclick: () => rollback(v.id) },
          "回滚到此版本 Roll back to this"));
      }
      rows.append(el("tr", { testid: "version-row", "data-version": v.id, "data-live": String(live), class: live ? "live" : "" },
        el("td", {}, live ? "● 线上 live" : ""), el("td", {}, el("code", {}, v.id)), el("td", {}, fmtTime(v.created_at)),
        el("td", {}, v.author), el("td", {}, String(v.entries)), el("td", {}, v.note), actions));
      addTryTarget("version:" + v.id, "版本 Version " + v.id, false);
    }
    const audit = await request("GET", "/api/v1/kb/audit?limit=50");
    if (audit.ok) {
      const auditRows = clear($("audit-rows"));
      for (const r of audit.data) {
        auditRows.append(el("tr", { testid: "audit-row", "data-action": r.action },
          el("td", {}, fmtTime(r.at)), el("td", {}, r.action), el("td", {}, r.version || ""),
          el("td", {}, r.author), el("td", {}, r.note)));
      }
    }
  }

  async function showVersionDiff(id) {
    const result = await request("GET", "/api/v1/kb/versions/" + encodeURIComponent(id) + "/diff");
    if (!result.ok) return flash(errorText(result), "error");
    const d = result.data;
    $("version-diff").hidden = false;
    $("version-diff-title").textContent = id + " 对比 vs " + (d.base_version || "—");
    const list = clear($("version-diff-lines"));
    for (const c of d.added) list.append(el("li", { class: "added" }, "+ " + c.entry_id + ": " + c.question));
    for (const c of d.changed) list.append(el("li", { class: "changed" }, "~ " + c.entry_id + ": " + c.fields.map((f) => f.field).join(", ")));
    for (const c of d.removed) list.append(el("li", { class: "removed" }, "- " + c.entry_id + ": " + c.question));
    if (!list.firstChild) list.append(el("li", { class: "muted" }, "没有改动 No changes"));
  }

  async function rollback(id) {
    const note = await kefu.confirmDialog({
      title: "回滚到 " + id + "？ Roll back?",
      message: "线上回答会立即变回版本 " + id + " 的内容（当前 " + state.live + "）。Shoppers get that version's answers at once.",
      confirmLabel: "确认回滚 Roll back",
    });
    if (note === null) return;
    const result = await request("POST", "/api/v1/kb/rollback", { version: id, note });
    if (!result.ok) return flash(errorText(result), "error");
    flash("已回滚到 Rolled back to " + id, "ok");
    await refreshVersions();
  }

  // --- topics -----------------------------------------------------------------------------------

  async function loadTopics() {
    const list = clear($("topic-list"));
    list.append(el("li", { class: "muted" }, "归类中… Grouping…"));
    const result = await request("GET", "/api/v1/kb/topics");
    clear(list);
    if (!result.ok) return flash(errorText(result), "error");
    if (!result.data.length) list.append(el("li", { class: "muted", testid: "no-topics" }, "没有待处理的问题 Nothing to learn right now"));
    for (const view of result.data) list.append(renderTopic(view));
  }

  function renderTopic(view) {
    const t = view.topic;
    const node = $("topic-template").content.firstElementChild.cloneNode(true);
    node.dataset.topicId = t.id;
    const part = (role) => node.querySelector("[data-role=" + role + "]");
    part("question").textContent = t.question;
    part("counts").textContent = t.conversations + " 个会话 conversations · " + t.count + " 次 questions";
    const live = view.live;
    part("live").textContent = "线上版本现在 Live now: " + (live ? (KIND_LABELS[live.kind] || live.kind) +
      (live.candidates.length ? " · 最接近 nearest " + live.candidates[0].entry_id + " (" + live.candidates[0].score.toFixed(3) + ")" : "") : "—");
    for (const e of t.examples) part("examples").append(el("li", {}, e));
    for (const r of t.agent_replies) part("replies").append(el("li", {}, r));
    part("answer").value = t.agent_replies[0] || "";
    part("new-id").value = "learned-" + t.id;
    if (live && live.candidates.length) {
      part("entry-id").value = live.candidates[0].entry_id;
      part("category").value = live.candidates[0].category;
    }
    for (const form of node.querySelectorAll(".manager-only")) form.hidden = !state.manager;
    part("new-form").addEventListener("submit", (event) => {
      event.preventDefault();
      draftFromTopic(t.id, { new_id: part("new-id").value || null, answer: part("answer").value || null,
        category: part("category").value });
    });
    part("variants-form").addEventListener("submit", (event) => {
      event.preventDefault();
      draftFromTopic(t.id, { entry_id: part("entry-id").value });
    });
    return node;
  }

  async function draftFromTopic(id, body) {
    flash("起草中… Drafting…", "info");
    const result = await request("POST", "/api/v1/kb/topics/" + encodeURIComponent(id) + "/draft", body);
    if (result.status === 422 && result.data && result.data.problems) {
      return flash(result.data.problems.map((p) => p.message).join("; "), "error");
    }
    if (!result.ok) return flash(errorText(result), "error");
    flash("草稿已生成，请审核后发布 Draft ready: review, then publish", "ok");
    showReview(result.data);
  }

  // --- welcome -----------------------------------------------------------------------------------

  async function loadWelcome() {
    const result = await request("GET", "/api/v1/kb/welcome");
    if (!result.ok) return flash(errorText(result), "error");
    for (const lang of ["zh", "en"]) {
      $("welcome-" + lang + "-greeting").value = result.data[lang].greeting;
      $("welcome-" + lang + "-questions").value = result.data[lang].questions.join("\n");
    }
  }

  async function saveWelcome(event) {
    event.preventDefault();
    const body = {};
    for (const lang of ["zh", "en"]) {
      body[lang] = {
        greeting: $("welcome-" + lang + "-greeting").value,
        questions: $("welcome-" + lang + "-questions").value.split("\n").map((q) => q.trim()).filter(Boolean),
      };
    }
    const result = await request("PUT", "/api/v1/kb/welcome", body);
    $("welcome-result").textContent = result.ok ? "已保存，顾客下次打开聊天窗口即可看到 Saved" : errorText(result);
  }

  // --- wiring -----------------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    for (const button of document.querySelectorAll("#tabs button")) {
      button.addEventListener("click", () => showTab(button.dataset.tab));
    }
    $("upload-form").addEventListener("submit", upload);
    $("publish-form").addEventListener("submit", publish);
    $("draft-download").addEventListener("click", downloadDraft);
    document.querySelectorAll("[data-format]").forEach((link) =>
      link.addEventListener("click", downloadTemplate));
    $("try-form").addEventListener("submit", tryQuestion);
    $("topics-refresh").addEventListener("click", loadTopics);
    $("welcome-form").addEventListener("submit", saveWelcome);
    kefu.mount({ start });
  });
})();
