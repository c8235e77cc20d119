/* Demo-bank stand-in for Plaid's link-initialize.js: window.Plaid.create({...}).open()/exit()/destroy().
 * Builds its overlay with DOM APIs and textContent only; talks to the demo bank that served this file. */
(function () {
  "use strict";
  var script = document.currentScript;
  var base = script && script.src ? script.src.replace(/\/link\/link-initialize\.js(\?.*)?$/, "") : "";

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function post(path, body) {
    return fetch(base + path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    }).then(function (r) {
      return r.json().then(function (data) { return { ok: r.ok, data: data }; });
    });
  }

  function randomId() {
    var bytes = new Uint8Array(16);
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function create(config) {
    var token = config.token;
    var onSuccess = config.onSuccess || function () {};
    var onExit = config.onExit || function () {};
    var onEvent = config.onEvent || function () {};
    var sessionId = randomId();
    var overlay = null;
    var chosen = null;
    var lastError = null;
    var finished = false;

    function emit(name, extra) {
      var meta = { link_session_id: sessionId, request_id: null, timestamp: new Date().toISOString(),
                   view_name: null, institution_id: chosen ? chosen.institution_id : null,
                   institution_name: chosen ? chosen.name : null, error_code: null, error_message: null };
      Object.keys(extra || {}).forEach(function (k) { meta[k] = extra[k]; });
      try { onEvent(name, meta); } catch (e) { /* the host page's handler must not break Link */ }
    }

    function close() {
      if (overlay && overlay.parentNode) overlay.parentNode.removeChild(overlay);
      overlay = null;
      document.removeEventListener("keydown", onKey, true);
    }

    // A modal dialog for the keyboard too: Escape closes it (as Link's own close does), and Tab cycles through
    // its controls instead of wandering to the page behind it.
    function onKey(ev) {
      if (!overlay) return;
      if (ev.key === "Escape") { ev.preventDefault(); exitNow(lastError); return; }
      if (ev.key !== "Tab") return;
      var controls = Array.prototype.filter.call(overlay.querySelectorAll("button, input"), function (n) {
        return !n.disabled;
      });
      if (!controls.length) return;
      var first = controls[0], last = controls[controls.length - 1], at = document.activeElement;
      if (!overlay.contains(at)) { ev.preventDefault(); first.focus(); }
      else if (ev.shiftKey && at === first) { ev.preventDefault(); last.focus(); }
      else if (!ev.shiftKey && at === last) { ev.preventDefault(); first.focus(); }
    }

    function exitNow(error) {
      if (finished) return;
      finished = true;
      close();
      emit("EXIT");
      onExit(error || null, {
        link_session_id: sessionId, request_id: null, status: chosen ? "requires_credentials" : "institution_not_found",
        institution: chosen ? { name: chosen.name, institution_id: chosen.institution_id } : null,
      });
    }

    function panel() {
      var box = el("div", { role: "dialog", "aria-modal": "true", "aria-label": "Connect a demo bank",
        "data-testid": "demo-link-dialog",
        style: "background:#fff;color:#111;max-width:420px;width:92%;margin:8vh auto;padding:24px;" +
               "border-radius:12px;font:15px system-ui,sans-serif;box-shadow:0 10px 40px rgba(0,0,0,.3)" });
      var closeBtn = el("button", { type: "button", "aria-label": "Close", "data-testid": "demo-link-close",
        style: "float:right;border:0;background:none;font-size:20px;cursor:pointer" }, "\u00d7");
      closeBtn.addEventListener("click", function () { exitNow(lastError); });
      box.appendChild(closeBtn);
      return box;
    }

    function showInstitutions(list, updateId, selection) {
      var box = panel();
      box.appendChild(el("h2", { style: "margin:0 0 12px" }, "Select your bank"));
      box.appendChild(el("p", { style: "color:#555" }, "Demo bank: no real data leaves this machine."));
      list.forEach(function (inst) {
        if (updateId && inst.institution_id !== updateId) return;
        var b = el("button", { type: "button", "data-testid": "demo-link-institution",
          "data-institution-id": inst.institution_id,
          style: "display:block;width:100%;margin:6px 0;padding:12px;border:1px solid #ccc;border-radius:8px;" +
                 "background:#f7f7f7;text-align:left;cursor:pointer" }, inst.name);
        b.addEventListener("click", function () { chosen = inst; emit("SELECT_INSTITUTION"); showLogin(!!updateId, !!selection); });
        box.appendChild(b);
      });
      mount(box);
    }

    function failed(res, where) {
      lastError = { error_type: res.data.error_type, error_code: res.data.error_code,
                    error_message: res.data.error_message, display_message: res.data.display_message };
      where.textContent = res.data.display_message || res.data.error_message || "Sign-in failed.";
      emit("ERROR", { error_code: res.data.error_code, error_message: res.data.error_message });
    }

    function succeed(data) {
      finished = true;
      close();
      emit("HANDOFF");
      onSuccess(data.public_token, {
        institution: data.institution, accounts: data.accounts,
        link_session_id: data.link_session_id, transfer_status: null, public_token: data.public_token,
      });
    }

    function login(creds, keys, error, button) {
      var body = { link_token: token, institution_id: chosen.institution_id,
                   username: creds.username, password: creds.password };
      if (keys) body.account_keys = keys;
      button.disabled = true;
      return post("/link/demo/login", body).then(function (res) {
        button.disabled = false;
        if (!res.ok) { failed(res, error); return; }
        succeed(res.data);
      }).catch(function () { button.disabled = false; error.textContent = "Could not reach the demo bank."; });
    }

    // Plaid's Account Select step: every account ticked, the user may untick some; at least one stays.
    function showAccounts(list, creds, update) {
      var box = panel();
      box.appendChild(el("h2", { style: "margin:0 0 4px" }, update ? "New accounts" : "Share accounts"));
      box.appendChild(el("p", { style: "color:#555;margin:0 0 12px" }, update
        ? chosen.name + " has accounts finsync cannot read yet. Tick the ones to share."
        : "Choose the " + chosen.name + " accounts finsync may read."));
      var form = el("form", { "data-testid": "demo-link-accounts" });
      var boxes = list.map(function (a) {
        var label = el("label", { style: "display:flex;gap:10px;align-items:center;margin:8px 0;padding:10px;" +
                                         "border:1px solid #ddd;border-radius:8px;cursor:pointer" });
        var tick = el("input", { type: "checkbox", "data-account-key": a.key, "aria-label": a.name });
        tick.checked = true;
        label.appendChild(tick);
        label.appendChild(el("span", {}, a.name + " \u2022\u2022" + a.mask + " (" + (a.subtype || a.type) + ")"));
        form.appendChild(label);
        return tick;
      });
      var error = el("p", { role: "alert", "data-testid": "demo-link-error", style: "color:#b00020;min-height:1.2em" });
      var go = el("button", { type: "submit", "data-testid": "demo-link-continue",
        style: "width:100%;padding:12px;border:0;border-radius:8px;background:#111;color:#fff;cursor:pointer" },
        "Continue");
      boxes.forEach(function (tick) {
        tick.addEventListener("change", function () {
          go.disabled = !update && !boxes.some(function (b) { return b.checked; });  // a repair may add none
        });
      });
      form.appendChild(error);
      form.appendChild(go);
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var keys = boxes.filter(function (b) { return b.checked; })
                        .map(function (b) { return b.getAttribute("data-account-key"); });
        if (!keys.length && !update) return;
        emit("TRANSITION_VIEW", { view_name: "CONNECTED" });
        login(creds, keys, error, go);
      });
      box.appendChild(form);
      mount(box);
      emit("TRANSITION_VIEW", { view_name: "SELECT_ACCOUNT" });
    }

    function showLogin(update, selection) {
      var box = panel();
      box.appendChild(el("h2", { style: "margin:0 0 12px" }, chosen.name));
      var form = el("form", { "data-testid": "demo-link-form" });
      var user = el("input", { name: "username", autocomplete: "off", placeholder: "Username (user_good)",
        "aria-label": "Username", style: "display:block;width:100%;margin:6px 0;padding:10px;box-sizing:border-box" });
      var pass = el("input", { name: "password", type: "password", placeholder: "Password (pass_good)",
        "aria-label": "Password", style: "display:block;width:100%;margin:6px 0;padding:10px;box-sizing:border-box" });
      var error = el("p", { role: "alert", "data-testid": "demo-link-error", style: "color:#b00020;min-height:1.2em" });
      var submit = el("button", { type: "submit", "data-testid": "demo-link-submit",
        style: "width:100%;padding:12px;border:0;border-radius:8px;background:#111;color:#fff;cursor:pointer" },
        "Sign in");
      [user, pass, error, submit].forEach(function (n) { form.appendChild(n); });
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        emit("SUBMIT_CREDENTIALS");
        var creds = { username: user.value, password: pass.value };
        if (update && !selection) { login(creds, null, error, submit); return; }  // a plain repair: no picker
        submit.disabled = true;
        post("/link/demo/accounts", { link_token: token, institution_id: chosen.institution_id,
                                      username: creds.username, password: creds.password })
          .then(function (res) {
            submit.disabled = false;
            if (!res.ok) { failed(res, error); return; }
            if (!res.data.accounts.length) { login(creds, null, error, submit); return; }
            showAccounts(res.data.accounts, creds, update);
          })
          .catch(function () { submit.disabled = false; error.textContent = "Could not reach the demo bank."; });
      });
      box.appendChild(form);
      mount(box);
      user.focus();
    }

    function mount(box) {
      close();
      overlay = el("div", { "data-testid": "demo-link-overlay",
        style: "position:fixed;inset:0;z-index:2147483647;background:rgba(0,0,0,.55);overflow:auto" });
      overlay.appendChild(box);
      document.body.appendChild(overlay);
      document.addEventListener("keydown", onKey, true);
      var start = box.querySelector("[data-testid=demo-link-institution], input, button[type=submit]");
      (start || box.querySelector("button")).focus();  // focus moves into the dialog (a screen reader follows)
    }

    return {
      open: function () {
        finished = false;
        emit("OPEN");
        post("/link/demo/session", { link_token: token }).then(function (res) {
          if (!res.ok) { exitNow({ error_type: res.data.error_type, error_code: res.data.error_code,
                                   error_message: res.data.error_message, display_message: null }); return; }
          showInstitutions(res.data.institutions, res.data.update_institution_id, res.data.account_selection);
        }).catch(function () { exitNow({ error_type: "API_ERROR", error_code: "INTERNAL_SERVER_ERROR",
                                         error_message: "could not reach the demo bank", display_message: null }); });
      },
      exit: function (opts) { if (opts && opts.force) { finished = true; close(); } else { exitNow(lastError); } },
      destroy: function () { finished = true; close(); },
      submit: function () {},
    };
  }

  window.Plaid = { create: create, version: "demo-1" };
})();
