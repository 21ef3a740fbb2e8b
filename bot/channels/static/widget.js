/*
 * kefu web chat widget. Embed on any page:
 *
 *   <script src="https://kefu.example.com/static/widget.js"
 *           data-kefu-url="https://kefu.example.com"></script>
 *
 * Optional attributes: data-kefu-lang="zh|en" (default: navigator.language, switchable),
 * data-kefu-open="true" (start opened), data-kefu-title="…".
 *
 * When opened on an empty chat it greets in the shopper's language with the quick questions a
 * knowledge manager set (GET /api/v1/widget/welcome). A status banner says where a handoff
 * stands (queue position, the serving agent, message left), from the status the server attaches
 * to its system messages; it disappears when the chat is back with the bot.
 *
 * One WebSocket to /ws/chat?sender=<id>. The sender id lives in localStorage, with the
 * conversation's token (sent by the server once, in a "token" frame, and shown in every hello:
 * the sender id alone opens nothing), a cache of the last messages and an outbox of
 * unacknowledged ones. A socket closed with 4401/4403 (no or not this conversation's token)
 * starts a new conversation. A message refused for now (rate limit, "retry") stays in the
 * outbox and is sent again after the server's retry_after. On (re)connect the widget sends the
 * last message id it has; the server replays everything after it, then pushes live. Messages
 * are rendered by server id (duplicates ignored) and shopper messages carry a client id the
 * server de-duplicates, so reconnects neither lose nor repeat anything. All text goes through
 * textContent; nothing from the server or the shopper is ever parsed as HTML.
 *
 * Photos: the 📷 button (always there) sends a JPEG, PNG or WebP picture up to the server's cap
 * (GET /api/v1/photos/limits) with POST /api/v1/photos?sender=<id> and the conversation's token;
 * a wrong type or size is refused on the page with the reason, before anything is sent. While an
 * after-sale flow asks for a photo the picture is the answer; otherwise the server keeps it and
 * the bot says what happens. A shopper turn that is a photo (photo:web:<id>, or "[图片] file_id=<id>"
 * in a handoff) is shown as its thumbnail, fetched with the token (GET /api/v1/photos/<id>).
 */
(function () {
  "use strict";

  var script = document.currentScript;
  if (!script || window.KefuChat) { return; }

  var STRINGS = {
    zh: {
      title: "在线客服", placeholder: "请输入您的问题…", send: "发送", switchTo: "EN",
      switchLabel: "Switch to English", open: "联系客服", close: "关闭",
      connecting: "正在连接…", offline: "连接已断开，正在重连…", online: "",
      typing: "正在输入…", bot: "智能助手", agent: "人工客服", system: "系统消息", you: "我",
      sending: "发送中", failed: "发送失败",
      unavailable: "系统繁忙，您的消息已记录，请稍后再试。",
      welcome: "您好！请问有什么可以帮您？",
      waitingNext: "排队中，您是下一位", waiting: "排队中，前面还有 {n} 位",
      serving: "客服 {agent} 为您服务", servingAnon: "人工客服为您服务",
      messageLeft: "已留言，客服上线后回复",
      attach: "发送图片", photo: "[图片]", photoGone: "[图片已过期]",
      photoType: "只能发送 JPG、PNG 或 WebP 格式的图片。",
      photoTooBig: "图片不能超过 {mb} MB，请换一张小一点的。",
      photoFailed: "图片发送失败，请稍后再试。", photoOffline: "正在连接，请稍后再发送图片。",
      photoQuota: "今天发送的图片已达上限，请明天再发，或用文字描述您的问题。",
      photoBusy: "图片发送太频繁，请稍等片刻再发。"
    },
    en: {
      title: "Customer service", placeholder: "Type your question…", send: "Send",
      switchTo: "中文", switchLabel: "切换到中文", open: "Chat with us", close: "Close",
      connecting: "Connecting…", offline: "Connection lost, reconnecting…", online: "",
      typing: "typing…", bot: "Assistant", agent: "Agent", system: "Notice", you: "You",
      sending: "sending", failed: "not sent",
      unavailable: "We're busy right now. Your message is saved; please try again soon.",
      welcome: "Hello! How can I help you?",
      waitingNext: "In the queue: you are next", waiting: "In the queue: {n} ahead of you",
      serving: "Agent {agent} is serving you", servingAnon: "An agent is serving you",
      messageLeft: "Message left: an agent will reply when back",
      attach: "Send a photo", photo: "[photo]", photoGone: "[photo expired]",
      photoType: "Only JPG, PNG or WebP pictures can be sent.",
      photoTooBig: "Pictures can be at most {mb} MB; please pick a smaller one.",
      photoFailed: "The picture could not be sent; please try again.",
      photoOffline: "Connecting: please send the picture in a moment.",
      photoQuota: "You've sent today's maximum of pictures; please send more tomorrow, or describe the problem in words.",
      photoBusy: "Pictures are coming too fast; please wait a moment and send it again."
    }
  };

  var CSS = [
    ":host{all:initial}",
    "*{box-sizing:border-box;font-family:system-ui,-apple-system,'PingFang SC','Microsoft YaHei','WenQuanYi Micro Hei',sans-serif}",
    ".launcher{position:fixed;right:20px;bottom:20px;z-index:2147483000;border:0;border-radius:28px;",
    "padding:14px 20px;background:#e4393c;color:#fff;font-size:15px;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25)}",
    ".launcher .badge{display:none;margin-left:8px;background:#fff;color:#e4393c;border-radius:10px;padding:0 7px;font-size:12px}",
    ".launcher.unread .badge{display:inline-block}",
    ".panel{position:fixed;right:20px;bottom:20px;z-index:2147483001;width:360px;max-width:calc(100vw - 24px);",
    "height:540px;max-height:calc(100vh - 40px);display:none;flex-direction:column;background:#fff;",
    "border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.3);overflow:hidden}",
    ".panel.open{display:flex}",
    "header{display:flex;align-items:center;gap:8px;padding:12px 14px;background:#e4393c;color:#fff}",
    "header .title{flex:1;font-size:16px;font-weight:600}",
    "header button{border:1px solid rgba(255,255,255,.6);background:transparent;color:#fff;border-radius:6px;padding:3px 8px;cursor:pointer;font-size:13px}",
    ".status{font-size:12px;padding:4px 12px;background:#fff4e5;color:#8a5300;display:none}",
    ".status.show{display:block}",
    ".banner{font-size:12px;padding:4px 12px;background:#e8f4ff;color:#0b5cad;display:none}",
    ".banner.show{display:block}",
    ".log{flex:1;overflow-y:auto;padding:12px;background:#f6f6f6;display:flex;flex-direction:column;gap:10px}",
    ".msg{max-width:82%;display:flex;flex-direction:column;gap:3px}",
    ".msg .who{font-size:11px;color:#888}",
    ".msg .text{white-space:pre-wrap;word-break:break-word;padding:8px 11px;border-radius:10px;font-size:14px;line-height:1.5;background:#fff;color:#222}",
    ".msg.shopper{align-self:flex-end;align-items:flex-end}",
    ".msg.shopper .text{background:#e4393c;color:#fff}",
    ".msg.agent .text{background:#e8f4ff}",
    ".msg.system{align-self:center;max-width:92%}",
    ".msg.system .text{background:transparent;color:#666;font-size:12px;text-align:center}",
    ".msg.pending .text{opacity:.6}",
    ".msg.failed .text{background:#999}",
    ".msg .state{font-size:11px;color:#999}",
    ".buttons{display:flex;flex-wrap:wrap;gap:6px;margin-top:4px}",
    ".buttons button{border:1px solid #e4393c;background:#fff;color:#e4393c;border-radius:14px;padding:5px 11px;font-size:13px;cursor:pointer}",
    ".buttons button:hover{background:#fff0f0}",
    ".msg.stale .buttons{display:none}",
    ".typing{font-size:12px;color:#888;padding:2px 14px 6px;background:#f6f6f6;visibility:hidden}",
    ".typing.on{visibility:visible}",
    "form{display:flex;gap:8px;padding:10px;border-top:1px solid #eee;background:#fff}",
    "textarea{flex:1;resize:none;height:40px;border:1px solid #ddd;border-radius:8px;padding:9px;font-size:14px}",
    "form button{border:0;border-radius:8px;background:#e4393c;color:#fff;padding:0 16px;font-size:14px;cursor:pointer}",
    "form button.attach{background:#fff;color:#e4393c;border:1px solid #e4393c;padding:0 10px;font-size:18px}",
    ".msg .text img.thumb{display:block;max-width:160px;max-height:160px;border-radius:6px;background:#fff}"
  ].join("\n");

  var HISTORY_CACHE = 100;
  var PHOTO_TYPES = ["image/jpeg", "image/png", "image/webp"];
  var PHOTO_REF = /^(?:\/send_photo\{.*"photo:web:([A-Za-z0-9_-]{16,64})".*\}|\[图片\] file_id=([A-Za-z0-9_-]{16,64}))/;
  var base = (script.getAttribute("data-kefu-url") || new URL(script.src, location.href).origin)
    .replace(/\/+$/, "");
  var wsBase = base.replace(/^http/, "ws");
  var store = storage();
  var sender = store.get("kefu:sender") || newId("w", 16);
  store.set("kefu:sender", sender);
  var cacheKey = "kefu:history:" + sender;
  var outboxKey = "kefu:outbox:" + sender;
  var tokenKey = "kefu:token:" + sender;
  var lang = pickLanguage();

  var rendered = new Map();   // turn id -> element
  var pending = new Map();    // client id -> element
  var payloadTitles = new Map();
  var history = readJson(cacheKey, []);
  var outbox = readJson(outboxKey, []);
  var chatStatus = null;      // {state, ahead?, agent?} of the newest system message with one
  var chatStatusId = null;
  var greeting = null;        // the local greeting bubble, while the chat is otherwise empty
  var ws = null;
  var attempts = 0;
  var reconnectTimer = null;
  var unread = 0;
  var photoMaxBytes = 5 * 1024 * 1024;  // until the server says its own cap
  var thumbs = new Map();     // photo id -> object URL of the picture

  // --- DOM -----------------------------------------------------------------------------------
  var host = document.createElement("div");
  host.id = "kefu-chat";
  var root = host.attachShadow({ mode: "open" });
  var style = document.createElement("style");
  style.textContent = CSS;
  root.appendChild(style);

  var launcher = el("button", "launcher");
  launcher.type = "button";
  var launcherLabel = el("span", "label");
  var badge = el("span", "badge");
  launcher.append(launcherLabel, badge);

  var panel = el("section", "panel");
  panel.setAttribute("role", "dialog");
  var header = el("header");
  var title = el("span", "title");
  var langButton = el("button", "lang");
  langButton.type = "button";
  var closeButton = el("button", "close");
  closeButton.type = "button";
  closeButton.textContent = "×";
  header.append(title, langButton, closeButton);
  var status = el("div", "status");
  var banner = el("div", "banner");
  var log = el("div", "log");
  log.setAttribute("role", "log");
  log.setAttribute("aria-live", "polite");
  var typing = el("div", "typing");
  var form = el("form");
  var input = el("textarea");
  input.rows = 1;
  var sendButton = el("button");
  sendButton.type = "submit";
  var attachButton = el("button", "attach");
  attachButton.type = "button";
  attachButton.textContent = "📷";
  var fileInput = el("input");
  fileInput.type = "file";
  fileInput.accept = PHOTO_TYPES.join(",");
  fileInput.hidden = true;
  form.append(attachButton, fileInput, input, sendButton);
  panel.append(header, status, banner, log, typing, form);
  root.append(launcher, panel);

  launcher.addEventListener("click", function () { setOpen(true); });
  closeButton.addEventListener("click", function () { setOpen(false); });
  langButton.addEventListener("click", function () {
    lang = lang === "zh" ? "en" : "zh";
    store.set("kefu:lang", lang);
    applyLanguage();
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) { return; }
    input.value = "";
    send(text, text);
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  attachButton.addEventListener("click", function () { fileInput.click(); });
  fileInput.addEventListener("change", function () {
    var file = fileInput.files && fileInput.files[0];
    fileInput.value = "";
    if (file) { sendPhoto(file); }
  });
  window.addEventListener("online", function () { reconnectNow(); });
  window.addEventListener("offline", function () { if (ws) { ws.close(); } });

  function mount() {
    document.body.appendChild(host);
    applyLanguage();
    history.forEach(function (m) { addMessage(m, true); });
    outbox.forEach(function (item) { renderPending(item); });
    if (script.getAttribute("data-kefu-open") === "true") { setOpen(true); }
    connect();
    fetch(base + "/api/v1/photos/limits")
      .then(function (res) { return res.ok ? res.json() : null; })
      .then(function (limits) { if (limits && limits.max_bytes) { photoMaxBytes = limits.max_bytes; } })
      .catch(function () { /* keep the default cap; the server checks anyway */ });
  }

  // --- connection ----------------------------------------------------------------------------
  function connect() {
    clearTimeout(reconnectTimer);
    setStatus("connecting");
    var socket = new WebSocket(wsBase + "/ws/chat?sender=" + encodeURIComponent(sender));
    ws = socket;
    socket.onopen = function () {
      socket.send(JSON.stringify({ type: "hello", after: lastSeenId(), lang: lang,
                                   token: store.get(tokenKey) }));
    };
    socket.onmessage = function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      onFrame(frame);
    };
    socket.onclose = function (event) {
      if (ws !== socket) { return; }
      ws = null;
      setTyping(false);
      setStatus("offline");
      if (event.code === 4401 || event.code === 4403) { startOver(); }
      var delay = Math.min(10000, 500 * Math.pow(2, attempts++)) * (0.5 + Math.random() / 2);
      reconnectTimer = setTimeout(connect, delay);
    };
  }

  function reconnectNow() {
    attempts = 0;
    if (ws && ws.readyState === WebSocket.OPEN) { return; }
    if (ws) {  // an attempt made while offline: drop it and try now
      var stale = ws;
      ws = null;
      stale.onclose = null;
      stale.close();
    }
    connect();
  }

  // This conversation cannot be opened (its token is gone): a new one, keeping unsent messages.
  function startOver() {
    sender = newId("w", 16);
    store.set("kefu:sender", sender);
    cacheKey = "kefu:history:" + sender;
    outboxKey = "kefu:outbox:" + sender;
    tokenKey = "kefu:token:" + sender;
    history = [];
    rendered.forEach(function (node) { node.remove(); });  // not this conversation's any more
    rendered.clear();
    chatStatus = null;
    chatStatusId = null;
    renderBanner();
    writeJson(outboxKey, outbox);
    attempts = 0;
  }

  function onFrame(frame) {
    if (frame.type === "token") {
      store.set(tokenKey, frame.token);
    } else if (frame.type === "history") {
      attempts = 0;
      if (greeting && (frame.messages || []).length && !pending.size) {
        greeting.remove();  // a returning shopper sees their chat, not a greeting above it
        greeting = null;
      }
      (frame.messages || []).forEach(function (m) { addMessage(m); });
      setStatus("online");
      flushOutbox();
    } else if (frame.type === "message") {
      addMessage(frame.message);
    } else if (frame.type === "ack") {
      settle(frame.cid, frame.id);
    } else if (frame.type === "typing") {
      setTyping(!!frame.on);
    } else if (frame.type === "error") {
      if (frame.code === "invalid") { fail(frame.cid); }
      else if (frame.code === "rate_limited" || frame.code === "retry") { later(frame); }
      else if (frame.code !== "unauthorized" && frame.code !== "forbidden") {
        notice(t("unavailable"));
      }
    }
  }

  function send(payload, label) {
    var item = { cid: newId("c", 8), text: payload, label: label };
    outbox.push(item);
    writeJson(outboxKey, outbox);
    renderPending(item);
    transmit(item);
  }

  function transmit(item) {
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify({ type: "message", cid: item.cid, text: item.text }));
    }
  }

  function flushOutbox() { outbox.forEach(transmit); }

  // Not kept this time: it stays in the outbox and goes again after the server's pause.
  function later(frame) {
    var item = outbox.find(function (o) { return o.cid === frame.cid; });
    if (!item) { return; }
    var seconds = Math.min(60, Math.max(1, Number(frame.retry_after) || 3));
    setTimeout(function () { transmit(item); }, seconds * 1000);
  }

  function dropFromOutbox(cid) {
    outbox = outbox.filter(function (item) { return item.cid !== cid; });
    writeJson(outboxKey, outbox);
  }

  // --- photos --------------------------------------------------------------------------------
  // Checked here first (type, size) so a refused file is said at once; the server checks the
  // bytes again. The pending bubble shows the local picture until the server's turn arrives.
  function sendPhoto(file) {
    if (PHOTO_TYPES.indexOf(file.type) < 0) { notice(t("photoType"), "photo-error"); return; }
    if (file.size > photoMaxBytes) { notice(photoTooBig(), "photo-error"); return; }
    var token = store.get(tokenKey);
    if (!token || !ws || ws.readyState !== WebSocket.OPEN) {
      notice(t("photoOffline"), "photo-error");
      return;
    }
    var local = URL.createObjectURL(file);
    var node = buildMessage({ role: "shopper", text: "" });
    node.classList.add("pending", "photo-upload");
    node.querySelector(".text").appendChild(thumbImage(local));
    node.querySelector(".state").textContent = t("sending");
    log.appendChild(node);
    log.scrollTop = log.scrollHeight;
    fetch(base + "/api/v1/photos?sender=" + encodeURIComponent(sender), {
      method: "POST", body: file,
      headers: { "Authorization": "Bearer " + token, "Content-Type": file.type }
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (body) {
        if (!res.ok) { throw { status: res.status, body: body }; }
        thumbs.set(body.photo_id, local);
        node.remove();  // the server's turn (live, or on replay) shows it from now on
        refreshButtons();  // the bubble kept the bot's answer, arrived meanwhile, from looking latest
      });
    }).catch(function (error) {
      node.classList.remove("pending");
      node.classList.add("failed");
      node.querySelector(".state").textContent = t("failed");
      notice(photoRefusal(error), "photo-error");
    });
  }

  // What the shopper is told when the server refuses a photo: its type, its size, the day's
  // photo quota (429 photo_quota_exceeded, until tomorrow), the message rate (429), else a retry.
  function photoRefusal(error) {
    var status = error && error.status;
    var code = error && error.body && error.body.code;
    if (status === 415) { return t("photoType"); }
    if (status === 413) { return photoTooBig(); }
    if (status === 429) { return code === "photo_quota_exceeded" ? t("photoQuota") : t("photoBusy"); }
    return t("photoFailed");
  }

  function photoTooBig() {
    return t("photoTooBig").replace("{mb}", String(Math.round(photoMaxBytes / 104857.6) / 10));
  }

  function photoIdOf(text) {
    var found = PHOTO_REF.exec(text || "");
    return found ? found[1] || found[2] : null;
  }

  function thumbImage(src) {
    var img = el("img", "thumb");
    img.alt = t("photo");
    if (src) { img.src = src; }
    return img;
  }

  // The shopper's own photo, fetched with the conversation's token (an <img> cannot send it).
  function showPhoto(container, id) {
    var img = thumbImage(thumbs.get(id));
    container.appendChild(img);
    if (thumbs.has(id)) { return; }
    fetch(base + "/api/v1/photos/" + encodeURIComponent(id) + "?sender=" + encodeURIComponent(sender),
          { headers: { "Authorization": "Bearer " + (store.get(tokenKey) || "") } })
      .then(function (res) { if (!res.ok) { throw res.status; } return res.blob(); })
      .then(function (blob) {
        var url = URL.createObjectURL(blob);
        thumbs.set(id, url);
        img.src = url;
      })
      .catch(function () { img.replaceWith(document.createTextNode(t("photoGone"))); });
  }

  // --- rendering -----------------------------------------------------------------------------
  function addMessage(m, fromCache) {
    if (!m || !m.id || rendered.has(m.id)) { return; }
    (m.buttons || []).forEach(function (b) { payloadTitles.set(b.payload, b.title); });
    if (m.status) { applyStatus(m.status, m.id); }
    var node;
    if (m.cid && pending.has(m.cid)) {
      node = pending.get(m.cid);
      pending.delete(m.cid);
      dropFromOutbox(m.cid);
      node.classList.remove("pending");
      node.querySelector(".state").textContent = "";
    } else {
      node = buildMessage(m);
      insertById(node, m.id);
    }
    node.dataset.id = m.id;
    rendered.set(m.id, node);
    refreshButtons();
    if (!fromCache) {
      remember(m);
      if (m.role !== "shopper" && !panel.classList.contains("open")) {
        unread += 1;
        launcher.classList.add("unread");
        badge.textContent = String(unread);
      }
    }
    log.scrollTop = log.scrollHeight;
  }

  function buildMessage(m) {
    var node = el("div", "msg " + m.role);
    node.dataset.role = m.role;
    if (m.agent) { node.dataset.agent = m.agent; }
    var who = el("div", "who");
    var text = el("div", "text");
    var photoId = m.role === "shopper" ? photoIdOf(m.text) : null;
    if (photoId) {
      node.classList.add("photo");
      node.dataset.photoId = photoId;
      showPhoto(text, photoId);
    } else {
      text.textContent = m.role === "shopper" ? shown(m.text) : m.text;
    }
    var state = el("div", "state");
    node.append(who, text, state);
    if (m.buttons && m.buttons.length) {
      var row = el("div", "buttons");
      m.buttons.forEach(function (b) {
        var button = el("button");
        button.type = "button";
        button.textContent = b.title;
        button.addEventListener("click", function () { send(b.payload, b.title); });
        row.appendChild(button);
      });
      node.appendChild(row);
    }
    labelMessage(node);
    return node;
  }

  function renderPending(item) {
    var node = buildMessage({ role: "shopper", text: item.label || item.text });
    node.classList.add("pending");
    node.dataset.cid = item.cid;
    node.dataset.payload = item.text;
    node.querySelector(".state").textContent = t("sending");
    pending.set(item.cid, node);
    log.appendChild(node);
    refreshButtons();
    log.scrollTop = log.scrollHeight;
  }

  function settle(cid, id) {
    dropFromOutbox(cid);
    var node = pending.get(cid);
    if (!node) { return; }
    pending.delete(cid);
    if (id && rendered.has(id)) { node.remove(); return; }
    node.classList.remove("pending");
    node.querySelector(".state").textContent = "";
    if (id) {
      node.dataset.id = id;
      rendered.set(id, node);
      remember({ id: id, role: "shopper", text: node.dataset.payload, buttons: [] });
    }
  }

  function fail(cid) {
    dropFromOutbox(cid);
    var node = pending.get(cid);
    if (!node) { return; }
    pending.delete(cid);
    node.classList.remove("pending");
    node.classList.add("failed");
    node.querySelector(".state").textContent = t("failed");
  }

  function notice(text, kind) {
    var node = el("div", "msg system notice" + (kind ? " " + kind : ""));
    var body = el("div", "text");
    body.textContent = text;
    node.appendChild(body);
    log.appendChild(node);
    log.scrollTop = log.scrollHeight;
  }

  // Keep server messages in stream-id order; pending bubbles stay at the bottom.
  function insertById(node, id) {
    var children = log.children;
    for (var i = 0; i < children.length; i++) {
      var other = children[i];
      if (other.classList.contains("pending") ||
          (other.dataset.id && compareIds(other.dataset.id, id) > 0)) {
        log.insertBefore(node, other);
        return;
      }
    }
    log.appendChild(node);
  }

  // Quick replies belong to the latest message only.
  function refreshButtons() {
    var messages = log.querySelectorAll(".msg");
    messages.forEach(function (node, index) {
      node.classList.toggle("stale", index !== messages.length - 1);
    });
  }

  function labelMessage(node) {
    var role = node.dataset.role;
    var who = node.querySelector(".who");
    if (role === "agent") { who.textContent = node.dataset.agent || t("agent"); }
    else if (role === "shopper") { who.textContent = t("you"); }
    else if (role === "system") { who.textContent = ""; }
    else { who.textContent = t("bot"); }
  }

  function shown(text) {
    if (payloadTitles.has(text)) { return payloadTitles.get(text); }
    var rate = /^\/rate\s*(?:\{"score":\s*)?(\d)/.exec(text);
    if (rate) { return rate[1] + " ★"; }
    return text;
  }

  // --- status banner and greeting ----------------------------------------------------------
  function applyStatus(value, id) {
    if (chatStatusId && compareIds(id, chatStatusId) < 0) { return; }
    chatStatus = value;
    chatStatusId = id;
    renderBanner();
  }

  function renderBanner() {
    var s = chatStatus;
    var text = "";
    if (s && s.state === "waiting") {
      text = s.ahead ? t("waiting").replace("{n}", String(s.ahead)) : t("waitingNext");
    } else if (s && s.state === "serving") {
      text = s.agent ? t("serving").replace("{agent}", s.agent) : t("servingAnon");
    } else if (s && s.state === "message_left") {
      text = t("messageLeft");
    }
    banner.textContent = text;
    banner.dataset.state = s && text ? s.state : "none";
    banner.classList.toggle("show", !!text);
  }

  // Greet an empty chat with the quick questions managers set (the defaults if unreachable).
  function greet() {
    if (greeting || log.querySelector(".msg")) { return; }
    greeting = el("div", "msg bot greeting");
    greeting.dataset.role = "bot";
    log.prepend(greeting);
    fillGreeting({ greeting: t("welcome"), questions: [] });
    loadWelcome();
  }

  function loadWelcome() {
    var wanted = lang;
    fetch(base + "/api/v1/widget/welcome?lang=" + encodeURIComponent(wanted))
      .then(function (res) { return res.ok ? res.json() : null; })
      .then(function (welcome) { if (welcome && wanted === lang) { fillGreeting(welcome); } })
      .catch(function () { /* keep the built-in greeting */ });
  }

  function fillGreeting(welcome) {
    if (!greeting) { return; }
    while (greeting.firstChild) { greeting.removeChild(greeting.firstChild); }
    var who = el("div", "who");
    var text = el("div", "text");
    text.textContent = welcome.greeting;
    greeting.append(who, text);
    if (welcome.questions && welcome.questions.length) {
      var row = el("div", "buttons quick");
      welcome.questions.forEach(function (q) {
        var button = el("button");
        button.type = "button";
        button.textContent = q;
        button.addEventListener("click", function () { send(q, q); });
        row.appendChild(button);
      });
      greeting.appendChild(row);
    }
    labelMessage(greeting);
    refreshButtons();
  }

  function setTyping(on) { typing.classList.toggle("on", on); }

  function setStatus(state) {
    status.dataset.state = state;
    status.textContent = t(state);
    status.classList.toggle("show", state !== "online");
  }

  function setOpen(open) {
    panel.classList.toggle("open", open);
    launcher.style.display = open ? "none" : "";
    if (open) {
      unread = 0;
      launcher.classList.remove("unread");
      greet();
      input.focus();
    }
  }

  function applyLanguage() {
    host.setAttribute("lang", lang === "zh" ? "zh-CN" : "en");
    title.textContent = script.getAttribute("data-kefu-title") || t("title");
    launcherLabel.textContent = "💬 " + t("open");
    langButton.textContent = t("switchTo");
    langButton.setAttribute("aria-label", t("switchLabel"));
    closeButton.setAttribute("aria-label", t("close"));
    input.placeholder = t("placeholder");
    sendButton.textContent = t("send");
    attachButton.title = t("attach");
    attachButton.setAttribute("aria-label", t("attach"));
    typing.textContent = t("typing");
    renderBanner();
    if (greeting) { loadWelcome(); }
    setStatus(status.dataset.state || "connecting");
    log.querySelectorAll(".msg").forEach(labelMessage);
    log.querySelectorAll(".msg.pending .state").forEach(function (s) { s.textContent = t("sending"); });
  }

  // --- state ---------------------------------------------------------------------------------
  function remember(m) {
    var copy = { id: m.id, role: m.role, text: m.text, buttons: m.buttons || [], at: m.at };
    if (m.agent) { copy.agent = m.agent; }
    if (m.status) { copy.status = m.status; }
    history.push(copy);
    history.sort(function (a, b) { return compareIds(a.id, b.id); });
    if (history.length > HISTORY_CACHE) { history = history.slice(-HISTORY_CACHE); }
    writeJson(cacheKey, history);
  }

  function lastSeenId() {
    var last = null;
    rendered.forEach(function (_node, id) { if (!last || compareIds(id, last) > 0) { last = id; } });
    return last;
  }

  function compareIds(a, b) {
    var x = a.split("-"), y = b.split("-");
    for (var i = 0; i < 2; i++) {
      var p = BigInt(x[i] || "0"), q = BigInt(y[i] || "0");
      if (p !== q) { return p < q ? -1 : 1; }
    }
    return 0;
  }

  function pickLanguage() {
    var forced = script.getAttribute("data-kefu-lang") || store.get("kefu:lang");
    if (forced === "zh" || forced === "en") { return forced; }
    return /^zh/i.test(navigator.language || "") ? "zh" : "en";
  }

  function t(key) { return STRINGS[lang][key]; }

  function el(tag, className) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    return node;
  }

  function newId(prefix, bytes) {
    var data = new Uint8Array(bytes);
    crypto.getRandomValues(data);
    return prefix + Array.prototype.map.call(data, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  function storage() {
    try {
      var probe = "kefu:probe";
      localStorage.setItem(probe, "1");
      localStorage.removeItem(probe);
      return {
        get: function (k) { return localStorage.getItem(k); },
        set: function (k, v) { localStorage.setItem(k, v); }
      };
    } catch (e) {
      var memory = {};
      return {
        get: function (k) { return memory[k] || null; },
        set: function (k, v) { memory[k] = v; }
      };
    }
  }

  function readJson(key, fallback) {
    try { return JSON.parse(store.get(key)) || fallback; } catch (e) { return fallback; }
  }

  function writeJson(key, value) {
    try { store.set(key, JSON.stringify(value)); } catch (e) { /* storage full: keep going */ }
  }

  window.KefuChat = {
    open: function () { setOpen(true); },
    close: function () { setOpen(false); },
    send: function (text) { send(text, text); },
    setLanguage: function (value) { if (STRINGS[value]) { lang = value; applyLanguage(); } },
    sender: function () { return sender; }
  };

  if (document.body) { mount(); } else { document.addEventListener("DOMContentLoaded", mount); }
})();
