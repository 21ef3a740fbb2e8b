// kefu UI kit: what every kefu page (agent console, knowledge admin, supervisor pages) needs,
// written once. Plain JS, no build step; load it before the page's own script.
// Everything a shopper or the server sends goes onto the page as text (textContent, text nodes),
// never as HTML.
"use strict";

window.kefu = (() => {
  const TOKEN_KEY = "kefu.token"; // one login for every kefu page
  const EXPIRED = "会话已过期，请重新登录 Session expired, log in again";
  let page = { start: async () => {}, stop: () => {} };

  const $ = (id) => document.getElementById(id);

  // --- DOM (text only) ------------------------------------------------------------------------

  // el("li", { class, testid, dataset: {...}, onclick, "data-x": 1, ...attributes }, ...children)
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "testid") node.setAttribute("data-testid", value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  // A message at the top of the page: kind "" | "info" | "ok" | "alert" | "error";
  // it goes after `seconds` (0: stays until the next one); toast("") hides it.
  function toast(text, kind, seconds = 4) {
    let box = $("toast");
    if (!box) {
      box = el("div", { id: "toast", testid: "toast", role: "status", hidden: true });
      document.body.append(box);
    }
    clearTimeout(toast.timer);
    box.textContent = text || "";
    box.className = kind || "";
    box.hidden = !text;
    if (text && seconds) toast.timer = setTimeout(() => { box.hidden = true; }, seconds * 1000);
  }

  // Ask before something that matters (publish, roll back): a modal with the question, what will
  // happen, and a note that is required and kept (the audit log). Resolves to the note, or null
  // when cancelled. confirmDialog({ title, message, noteLabel, confirmLabel, note })
  function confirmDialog(options) {
    const note = el("textarea", { id: "confirm-note", testid: "confirm-note", rows: 3, maxlength: 1000 });
    note.value = options.note || "";
    const ok = el("button", { type: "submit", class: "primary", testid: "confirm-ok" },
      options.confirmLabel || "确认 Confirm");
    const cancel = el("button", { type: "button", testid: "confirm-cancel" }, "取消 Cancel");
    const form = el("form", { method: "dialog" },
      el("h2", {}, options.title),
      el("p", { testid: "confirm-message" }, options.message || ""),
      el("label", {}, options.noteLabel || "备注（记入审计日志） Note (kept in the audit log)", note),
      el("p", { class: "actions" }, cancel, ok));
    const dialog = el("dialog", { id: "confirm-dialog", testid: "confirm-dialog" }, form);
    const sync = () => { ok.disabled = !note.value.trim(); };
    note.addEventListener("input", sync);
    sync();
    document.body.append(dialog);
    return new Promise((resolve) => {
      let answer = null;
      form.addEventListener("submit", () => { answer = note.value.trim(); });
      cancel.addEventListener("click", () => dialog.close());
      dialog.addEventListener("close", () => { dialog.remove(); resolve(answer || null); });
      dialog.showModal();
      note.focus();
    });
  }

  // --- HTTP -----------------------------------------------------------------------------------

  const token = () => sessionStorage.getItem(TOKEN_KEY);
  const authHeaders = () => ({ Authorization: "Bearer " + token() });

  // Every error of the API has one body: {"detail", "code", ...fields} (kefu/http.py).
  function errorText(result) {
    const detail = result.data && result.data.detail;
    return typeof detail === "string" ? detail : "请求失败 Request failed (" + result.status + ")";
  }

  // The answer as {ok, status, data}; a lapsed session shows the login and throws.
  async function request(method, path, body) {
    const init = { method, headers: authHeaders() };
    if (body instanceof FormData) init.body = body;
    else if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    if (res.status === 401) {
      showLogin(EXPIRED);
      throw new Error("not authenticated");
    }
    const type = res.headers.get("content-type") || "";
    const data = type.includes("application/json") ? await res.json().catch(() => null) : null;
    return { ok: res.ok, status: res.status, data };
  }

  // The answer's data; an error answer throws an Error with status, code and data.
  async function api(method, path, body) {
    const result = await request(method, path, body);
    if (!result.ok) {
      const error = new Error(errorText(result));
      error.status = result.status;
      error.code = result.data && result.data.code;
      error.data = result.data;
      throw error;
    }
    return result.data;
  }

  // --- session ------------------------------------------------------------------------------

  function showLogin(message) {
    page.stop();
    sessionStorage.removeItem(TOKEN_KEY);
    $("app-view").hidden = true;
    $("login-view").hidden = false;
    $("login-error").textContent = message || "";
  }

  async function enter() {
    try {
      await page.start();
    } catch (e) {
      if (token()) showLogin(e.message);
      return;
    }
    $("login-view").hidden = true;
    $("app-view").hidden = false;
  }

  async function login(event) {
    event.preventDefault();
    $("login-error").textContent = "";
    const res = await fetch("/api/v1/agent/login", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: $("login-username").value, password: $("login-password").value }),
    });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) {
      $("login-error").textContent = res.status === 401
        ? "用户名或密码错误 Wrong username or password" : errorText({ status: res.status, data });
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, data.token);
    $("login-password").value = "";
    await enter();
  }

  async function logout() {
    try { await request("POST", "/api/v1/agent/logout"); } catch (e) { /* already gone */ }
    showLogin("");
  }

  // The page's part: start() loads what it shows once logged in (throwing keeps the login),
  // stop() ends its timers and streams when the session ends.
  function mount(hooks) {
    page = { ...page, ...hooks };
    const wire = () => {
      $("login-form").addEventListener("submit", login);
      $("logout").addEventListener("click", logout);
      if (token()) enter();
    };
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", wire);
    else wire();
  }

  // Reads a server-sent event stream's body until it ends, handing each frame (the text between
  // blank lines) to onFrame.
  async function readFrames(res, onFrame) {
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        onFrame(buffer.slice(0, cut));
        buffer = buffer.slice(cut + 2);
      }
    }
  }

  return { $, el, clear, toast, confirmDialog, token, authHeaders, errorText, request, api, showLogin,
           readFrames, mount, EXPIRED };
})();
