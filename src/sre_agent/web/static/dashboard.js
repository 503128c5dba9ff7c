/* SRE Agent dashboard: live updates over Server-Sent Events and the operator controls.
 *
 * The server renders every section; when an event arrives this script re-fetches the page and
 * swaps the sections marked data-live, so there is one renderer (the Jinja templates) and no
 * alert text is ever put into the page as HTML here. Controls call the JSON API with the
 * session's CSRF token. No other origin is contacted.
 */
(function () {
  "use strict";

  var body = document.body;
  var page = body.getAttribute("data-page");
  if (page !== "dashboard" && page !== "incident") {
    return;
  }
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") || "" : "";
  var incidentId = body.getAttribute("data-incident");
  var lastSeq = parseInt(body.getAttribute("data-last-seq") || "0", 10) || 0;

  // --- notices ---------------------------------------------------------------------------------
  var notice = document.getElementById("notice");
  var noticeTimer = null;
  function notify(text, tone) {
    if (!notice) return;
    notice.textContent = text;
    notice.setAttribute("data-tone", tone || "info");
    notice.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(function () { notice.hidden = true; }, tone === "bad" ? 9000 : 4000);
  }

  // --- the JSON API ----------------------------------------------------------------------------
  function call(method, path, payload) {
    var headers = { "Accept": "application/json", "X-CSRF-Token": csrf };
    var init = { method: method, credentials: "same-origin", headers: headers };
    if (payload !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(payload);
    }
    return fetch(path, init).then(function (res) {
      if (res.status === 401) {
        window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname));
        throw new Error("session expired: log in again");
      }
      return res.json().catch(function () { return null; }).then(function (data) {
        if (!res.ok) {
          var detail = data && data.detail;
          if (typeof detail !== "string") detail = "request failed (HTTP " + res.status + ")";
          throw new Error(detail);
        }
        return data;
      });
    });
  }

  // --- re-rendering ------------------------------------------------------------------------------
  var refreshTimer = null;
  var refreshing = false;
  var refreshAgain = false;

  function scheduleRefresh(delay) {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, delay === undefined ? 150 : delay);
  }

  function focusKey(el) {
    if (!el || el === document.body) return null;
    if (el.id) return "#" + CSS.escape(el.id);
    var action = el.getAttribute("data-action");
    if (action) {
      var sel = '[data-action="' + CSS.escape(action) + '"]';
      var id = el.getAttribute("data-id");
      var target = el.getAttribute("data-target");
      if (id) sel += '[data-id="' + CSS.escape(id) + '"]';
      if (target) sel += '[data-target="' + CSS.escape(target) + '"]';
      return sel;
    }
    return null;
  }

  function rowKeys(root) {
    var keys = {};
    root.querySelectorAll("[data-incident-id], [data-action-id], [data-seq]").forEach(function (el) {
      keys[rowKey(el)] = true;
    });
    return keys;
  }
  function rowKey(el) {
    return (el.getAttribute("data-incident-id") || "") + "|" +
      (el.getAttribute("data-action-id") || "") + "|" + (el.getAttribute("data-seq") || "") +
      "|" + Array.prototype.map.call(el.querySelectorAll(".badge"), function (b) {
        return b.textContent;
      }).join("|");
  }

  function swap(doc) {
    var active = document.activeElement;
    var key = focusKey(active);
    var before = rowKeys(document);
    document.querySelectorAll("[data-live][id]").forEach(function (el) {
      var fresh = doc.getElementById(el.id);
      if (!fresh) return;
      // Never yank a drop-down or a half-typed text from under the operator's hand.
      if (active && /^(SELECT|INPUT|TEXTAREA)$/.test(active.tagName) && el.contains(active)) return;
      if (fresh.innerHTML === el.innerHTML) return;
      el.replaceWith(document.adoptNode(fresh));
    });
    document.title = doc.title;
    document.querySelectorAll("[data-incident-id], [data-action-id], [data-seq]").forEach(function (el) {
      if (!before[rowKey(el)]) el.classList.add("flash");
    });
    if (key && document.activeElement !== active) {
      var again = document.querySelector(key);
      if (again && !again.disabled) again.focus();
    }
    updateAges();
    updateCountdowns();
  }

  function refresh() {
    if (refreshing) { refreshAgain = true; return; }
    refreshing = true;
    fetch(window.location.pathname + window.location.search, {
      credentials: "same-origin", cache: "no-store", headers: { "Accept": "text/html" }
    }).then(function (res) {
      if (res.redirected && new URL(res.url).pathname === "/login") {
        window.location.assign(res.url);
        return null;
      }
      return res.ok ? res.text() : null;
    }).then(function (html) {
      if (html) swap(new DOMParser().parseFromString(html, "text/html"));
    }).catch(function () { /* offline: the event stream will bring us back */ })
      .then(function () {
        refreshing = false;
        if (refreshAgain) { refreshAgain = false; scheduleRefresh(0); }
      });
  }

  // --- relative ages -------------------------------------------------------------------------------
  function fmtAge(s) {
    s = Math.max(0, Math.floor(s));
    if (s < 60) return s + "s";
    var m = Math.floor(s / 60);
    if (m < 60) return m + "m " + (s % 60) + "s";
    var h = Math.floor(m / 60);
    if (h < 24) return h + "h " + (m % 60) + "m";
    return Math.floor(h / 24) + "d " + (h % 24) + "h";
  }
  function updateAges() {
    var now = Date.now();
    document.querySelectorAll(".age[data-since]").forEach(function (el) {
      var t = Date.parse(el.getAttribute("data-since"));
      if (!isNaN(t)) el.textContent = fmtAge((now - t) / 1000);
    });
  }
  updateAges();
  setInterval(updateAges, 5000);

  // --- controls ----------------------------------------------------------------------------------
  function describe(action) {
    return String(action.kind).replace(/_/g, " ") + (action.target ? " on " + action.target : "");
  }

  function incidentPath(suffix) {
    return "/incidents/" + encodeURIComponent(incidentId) + "/" + suffix;
  }
  function orDefault(comment, fallback) {
    return comment && comment.trim() ? comment.trim() : fallback;
  }

  // Every handler gets the button and the operator's comment (from the confirmation dialog).
  var handlers = {
    approve: function (btn, comment) {
      return call("POST", "/actions/" + encodeURIComponent(btn.getAttribute("data-id")) +
        "/approve", { comment: orDefault(comment, "approved from the dashboard") })
        .then(function (a) { notify("Approved " + describe(a) + "."); });
    },
    reject: function (btn, comment) {
      return call("POST", "/actions/" + encodeURIComponent(btn.getAttribute("data-id")) +
        "/reject", { comment: orDefault(comment, "rejected from the dashboard") })
        .then(function (a) { notify("Rejected " + describe(a) + "."); });
    },
    pause: function (btn, comment) {
      return call("POST", "/control/pause", { reason: orDefault(comment, "paused from the dashboard") })
        .then(function () { notify("Paused: no action will run until you resume."); });
    },
    resume: function () {
      return call("POST", "/control/resume", { reason: "resumed from the dashboard" })
        .then(function () { notify("Resumed."); });
    },
    "reset-breaker": function (btn) {
      var target = btn.getAttribute("data-target");
      return call("POST", "/control/breaker/" + encodeURIComponent(target) + "/reset",
        { reason: "reset from the dashboard" })
        .then(function () { notify("Circuit breaker for " + target + " reset."); });
    },
    ack: function () {
      return call("POST", incidentPath("ack"), { comment: "" })
        .then(function () { notify("Acknowledged: the incident is yours."); });
    },
    resolve: function (btn, comment) {
      return call("POST", incidentPath("resolve"),
        { reason: orDefault(comment, "resolved from the incident page") })
        .then(function () { notify("Incident resolved."); });
    }
  };

  // --- confirmation: a native <dialog> with a comment box ----------------------------------------
  var dialog = document.getElementById("confirm-dialog");
  var confirming = null;
  function askThen(btn, run) {
    if (!dialog || typeof dialog.showModal !== "function") {
      if (window.confirm(btn.getAttribute("data-confirm"))) run("");
      return;
    }
    document.getElementById("confirm-text").textContent = btn.getAttribute("data-confirm");
    document.getElementById("confirm-comment-label").textContent =
      btn.getAttribute("data-comment-label") || "Comment (recorded in the audit log)";
    var ok = document.getElementById("confirm-ok");
    ok.textContent = btn.getAttribute("data-confirm-label") || "Confirm";
    ok.className = btn.getAttribute("data-confirm-tone") === "danger" ? "btn btn-danger" : "btn btn-primary";
    document.getElementById("confirm-comment").value = "";
    confirming = { btn: btn, run: run };
    dialog.returnValue = "";
    dialog.showModal();
  }
  if (dialog) {
    dialog.addEventListener("close", function () {
      var pending = confirming;
      confirming = null;
      if (pending && dialog.returnValue === "confirm") {
        pending.run(document.getElementById("confirm-comment").value);
      } else if (pending && document.body.contains(pending.btn)) {
        pending.btn.focus();
      }
    });
  }

  function runButton(btn, comment) {
    btn.disabled = true;
    btn.setAttribute("aria-busy", "true");
    handlers[btn.getAttribute("data-action")](btn, comment).then(function () {
      scheduleRefresh(0);
    }, function (err) {
      notify(err.message, "bad");
      btn.disabled = false;
      btn.removeAttribute("aria-busy");
      scheduleRefresh(0);
    });
  }

  document.addEventListener("click", function (ev) {
    var btn = ev.target instanceof Element ? ev.target.closest("button[data-action]") : null;
    if (!btn || !handlers[btn.getAttribute("data-action")]) return;
    ev.preventDefault();
    if (btn.hasAttribute("data-confirm")) {
      askThen(btn, function (comment) { runButton(btn, comment); });
    } else {
      runButton(btn, "");
    }
  });

  // --- forms: mode; on the incident page assign, note and silence --------------------------------
  var forms = {
    mode: function (form) {
      return call("POST", "/control/mode",
        { mode: form.elements.namedItem("mode").value, reason: "set from the dashboard" })
        .then(function (c) { notify("Mode set to " + c.mode + "."); });
    },
    assign: function (form) {
      var name = form.elements.namedItem("assignee").value.trim();
      return call("POST", incidentPath("assign"), { assignee: name })
        .then(function () { notify("Assigned to " + name + "."); form.reset(); });
    },
    note: function (form) {
      return call("POST", incidentPath("note"), { text: form.elements.namedItem("text").value })
        .then(function () { notify("Note added to the timeline."); form.reset(); });
    },
    silence: function (form) {
      var select = form.elements.namedItem("duration_s");
      var label = select.options[select.selectedIndex].text;
      return call("POST", incidentPath("silence"), { duration_s: parseInt(select.value, 10) })
        .then(function () { notify("Alert silenced in Alertmanager for " + label + "."); });
    }
  };

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!(form instanceof HTMLFormElement)) return;
    var run = forms[form.getAttribute("data-form")];
    if (!run) return;
    ev.preventDefault();
    var submit = form.querySelector('button[type="submit"]');
    if (submit) submit.disabled = true;
    run(form).then(function () { scheduleRefresh(0); },
      function (err) { notify(err.message, "bad"); })
      .then(function () { if (submit) submit.disabled = false; });
  });

  // --- approval deadlines ------------------------------------------------------------------------
  function updateCountdowns() {
    var now = Date.now();
    document.querySelectorAll(".countdown[data-until]").forEach(function (el) {
      var t = Date.parse(el.getAttribute("data-until"));
      if (isNaN(t)) return;
      var left = (t - now) / 1000;
      el.textContent = left > 0 ? "expires in " + fmtAge(left) : "approval window passed";
      el.classList.toggle("expired", left <= 0);
    });
  }
  updateCountdowns();
  setInterval(updateCountdowns, 1000);

  // --- live updates ----------------------------------------------------------------------------------
  var live = document.getElementById("live");
  function setLive(state, text) {
    if (!live) return;
    live.setAttribute("data-state", state);
    var label = live.querySelector(".live-text");
    if (label) label.textContent = text;
  }

  var source = null;
  var opened = false;
  function connect() {
    source = new EventSource("/events?since=" + lastSeq);
    source.onopen = function () {
      setLive("live", "Live");
      if (opened) scheduleRefresh(0); // back after a restart: show the state as it is now
      opened = true;
    };
    source.onmessage = function (msg) {
      var seq = parseInt(msg.lastEventId, 10);
      if (!isNaN(seq) && seq > lastSeq) lastSeq = seq;
      var event;
      try { event = JSON.parse(msg.data); } catch (e) { return; }
      if (page === "incident" && event.incident_id !== incidentId) return;
      scheduleRefresh(200);
    };
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (e.g. an error status): try again ourselves, from lastSeq.
        setLive("offline", "Offline, retrying…");
        source.close();
        refresh(); // goes to the login page if the session ended
        setTimeout(connect, 5000);
      } else {
        setLive("reconnecting", "Reconnecting…");
      }
    };
  }
  connect();
})();
