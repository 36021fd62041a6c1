// The opening hall (开标大厅): live status over Socket.IO namespace /opening.
(function () {
  "use strict";
  var hall = document.getElementById("hall");
  if (!hall || hall.dataset.live !== "1" || typeof io === "undefined") { return; }
  var sectionId = hall.dataset.sectionId;
  var socket = io("/opening", { auth: { section_id: sectionId }, transports: ["websocket", "polling"] });
  var $ = function (id) { return document.getElementById(id); };
  function text(s) { return document.createTextNode(s == null ? "" : String(s)); }
  function showError(reply) {
    var el = $("hall-error");
    if (el) { el.textContent = reply && !reply.ok ? reply.message + " (" + reply.code + ")" : ""; }
  }
  function row(b) {
    var tr = document.createElement("tr");
    tr.dataset.bidId = b.bid_id;
    var sheet = b.price_sheet || {};
    [b.position, b.bidder_name, b.price || "—", sheet.duration_days || "—",
     b.status + (b.failure ? " (" + b.failure.code + ")" : "")].forEach(function (v) {
      var td = document.createElement("td"); td.appendChild(text(v)); tr.appendChild(td);
    });
    return tr;
  }
  function renderBids(bids) {
    var body = document.querySelector("#bids-table tbody");
    if (!body || !bids) { return; }
    body.textContent = "";
    bids.forEach(function (b) { body.appendChild(row(b)); });
  }
  function renderProgress(p) {
    if (!p || !p.total) { return; }
    var done = p.total - p.pending;
    $("progress-bar").style.width = Math.floor(done * 100 / p.total) + "%";
    $("progress-text").textContent = done + " / " + p.total;
  }
  function objection(o) {
    var li = document.createElement("li");
    li.dataset.objectionId = o.id;
    var b = document.createElement("strong"); b.appendChild(text(o.bidder_name)); li.appendChild(b);
    li.appendChild(text("：" + o.text));
    if (o.answer) {
      li.appendChild(document.createElement("br"));
      var a = document.createElement("span"); a.className = "text-success";
      a.appendChild(text("答复：" + o.answer)); li.appendChild(a);
    }
    return li;
  }
  function label(state) {
    var labels = JSON.parse(hall.getAttribute("data-state-labels") || "{}");
    return labels[state] || state;
  }
  socket.on("hall_state", function (s) {
    if (s.state) { $("opening-state").textContent = label(s.state); }
    if ($("shares-released")) { $("shares-released").textContent = s.shares_released; }
    renderProgress(s.progress);
    renderBids(s.bids);
  });
  socket.on("opening_state_changed", function (e) { $("opening-state").textContent = label(e.state); });
  socket.on("share_released", function (e) { $("shares-released").textContent = e.released; });
  socket.on("bid_decrypted", function (b) {
    var body = document.querySelector("#bids-table tbody");
    var old = body.querySelector('tr[data-bid-id="' + b.bid_id + '"]');
    if (old) { body.replaceChild(row(b), old); } else { body.appendChild(row(b)); }
    var rows = body.querySelectorAll("tr"), done = 0;
    rows.forEach(function (r) { if (!/pending/.test(r.lastChild.textContent)) { done++; } });
    renderProgress({ total: rows.length, pending: rows.length - done });
  });
  socket.on("opening_completed", function (e) {
    $("opening-state").textContent = label("completed");
    renderBids(e.bids);
  });
  socket.on("bidder_signed_in", function (s) {
    var li = document.createElement("li");
    li.appendChild(text((s.organisation_name || s.display_name) + " · " + s.capacity));
    $("sign-ins").appendChild(li);
  });
  socket.on("objection_raised", function (o) { $("objections").appendChild(objection(o)); });
  socket.on("objection_answered", function (o) {
    var old = document.querySelector('#objections li[data-objection-id="' + o.id + '"]');
    if (old) { old.parentNode.replaceChild(objection(o), old); }
  });
  socket.on("connect_error", function (err) { showError({ ok: false, code: "connect", message: err.message }); });
  var btn = $("sign-in-btn");
  if (btn) { btn.addEventListener("click", function () { socket.emit("sign_in", {}, showError); }); }
  var form = $("objection-form");
  if (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      socket.emit("raise_objection", { text: form.elements.text.value }, function (reply) {
        showError(reply); if (reply && reply.ok) { form.reset(); }
      });
    });
  }
})();
