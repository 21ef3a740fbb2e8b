// kefu agent console: the after-sale work-order list (工单) beside the chat queue, on the UI kit.
// Open and in-progress work orders of my groups: claim, note, close; the shopper is told each
// status change by the server. Refreshed every few seconds while the console is shown.
"use strict";

(() => {
  const { $, el, clear, toast, api, authHeaders } = kefu;
  const STATUSES = { open: "待处理 Open", in_progress: "处理中 In progress", closed: "已完成 Closed" };
  const REFRESH_MS = 5000;

  const time = (iso) => {
    const d = new Date(iso), pad = (n) => String(n).padStart(2, "0");
    return `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
  };

  async function act(order, action, body) {
    try {
      await api("POST", `/api/v1/work-orders/${encodeURIComponent(order.id)}/${action}`, body);
      await refresh();
    } catch (error) {
      toast(error.message, "error");
    }
  }

  async function showPhoto(order, button) {
    const res = await fetch(`/api/v1/work-orders/${encodeURIComponent(order.id)}/photo`, { headers: authHeaders() });
    if (!res.ok) { toast("照片无法获取 The photo cannot be fetched (" + res.status + ")", "error"); return; }
    const img = el("img", { testid: "work-order-photo", alt: "照片 Photo", src: URL.createObjectURL(await res.blob()) });
    img.style.maxWidth = "100%";
    button.replaceWith(img);
  }

  function item(order) {
    const note = el("input", { testid: "work-order-note", placeholder: "备注 / 处理结果 Note" });
    const withNote = (action) => () => {
      const text = note.value.trim();
      if (!text) { toast("请先填写备注 Write a note first", "error"); return; }
      act(order, action, { text });
    };
    // A photo field holds the channel's reference to the shopper's photo (photo:telegram:<file_id>);
    // 查看 fetches the picture through the server, which asks the channel for it.
    const fields = Object.entries(order.fields).map(([k, v]) => el("div", { class: "said", testid: "work-order-field",
      dataset: { field: k } }, `${(order.field_labels || {})[k] || k}: ${v}`));
    if (order.fields.photo) fields.push(el("div", { class: "line" },
      el("button", { type: "button", testid: "work-order-photo-open", onclick: (e) => showPhoto(order, e.target) },
        "查看照片 Open photo")));
    return el("li", { class: "ticket" + (order.overdue ? " prio-urgent" : ""), testid: "work-order",
                      dataset: { workOrderId: order.id, status: order.status } },
      el("div", { class: "line" },
        el("span", { class: "who", testid: "work-order-id" }, order.id),
        el("span", { class: "tag", testid: "work-order-status" }, STATUSES[order.status] || order.status)),
      el("div", { class: "line" }, order.kind_name || order.kind, " · 订单 ", order.order_id),
      ...fields,
      el("div", { class: "line muted" }, (order.overdue ? "已超时 Overdue · " : "") + "SLA " + time(order.sla_due) +
        (order.owner ? " · " + order.owner : "")),
      el("div", { class: "line" },
        order.status === "open"
          ? el("button", { type: "button", testid: "work-order-claim", onclick: () => act(order, "claim") }, "接单 Claim")
          : null,
        note,
        el("button", { type: "button", testid: "work-order-add-note", onclick: withNote("notes") }, "备注 Note"),
        el("button", { type: "button", class: "primary", testid: "work-order-close", onclick: withNote("close") }, "完成 Close")));
  }

  async function refresh() {
    if ($("app-view").hidden) return;
    const data = await api("GET", "/api/v1/work-orders?status=open&status=in_progress");
    const list = $("work-orders");
    clear(list);
    for (const order of data.work_orders) list.append(item(order));
    if (!data.work_orders.length) list.append(el("li", { class: "muted", testid: "work-orders-empty" }, "暂无工单 No work orders"));
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("work-orders-refresh").addEventListener("click", () => refresh().catch((e) => toast(e.message, "error")));
    const typing = () => [...$("work-orders").querySelectorAll("input")].some((i) => i.value);
    setInterval(() => { if (!typing()) refresh().catch(() => {}); }, REFRESH_MS);
    const view = $("app-view");
    new MutationObserver(() => { if (!view.hidden) refresh().catch(() => {}); })
      .observe(view, { attributes: true, attributeFilter: ["hidden"] });
  });
})();
