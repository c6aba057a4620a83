"""The report page's inline stylesheet and script (vanilla; nothing is fetched at view time).

The script reads two ``application/json`` blocks (``report-data``: names and behaviors;
``traj-data``: the trajectories), filters in memory, renders one page of list rows at a time
and a trajectory's body only when it is opened. Every piece of data reaches the page through
``textContent`` / ``setAttribute``, never as markup.
"""

CSS = r"""
:root { --fg:#1d2330; --muted:#5b6475; --line:#d9dde5; --bg:#fff; --soft:#f5f7fa;
  --ok:#1a7f37; --bad:#c62828; --hl:#fff4cc; --accent:#2f5fb3; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
  background: var(--bg); margin: 0; }
header, main { max-width: 1400px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 18px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 10px; border-bottom: 1px solid var(--line);
  padding-bottom: 4px; }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; }
.muted { color: var(--muted); }
.warn { background: #fff3e0; border-left: 4px solid #ef6c00; padding: 6px 10px; margin: 6px 0; }
table.results { border-collapse: collapse; font-variant-numeric: tabular-nums; }
table.results th, table.results td { border-bottom: 1px solid var(--line); padding: 4px 9px;
  text-align: right; white-space: nowrap; vertical-align: top; }
table.results th { background: var(--soft); font-weight: 600; }
table.results td:first-child, table.results th:first-child { text-align: left; }
.ci, .sd { display: block; font-size: 11px; color: var(--muted); }
.table-wrap { overflow-x: auto; }
.plots { display: flex; flex-wrap: wrap; gap: 16px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 8px;
  background: #fff; }
figure img { max-width: 100%; height: auto; display: block; }
figcaption { font-size: 12px; color: var(--muted); margin-top: 4px; }
.filters { display: flex; flex-wrap: wrap; gap: 8px 14px; align-items: end; background: var(--soft);
  padding: 10px; border-radius: 6px; }
.filters label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); }
.filters select, .filters input { font: inherit; padding: 2px 4px; }
.pager { margin: 10px 0; display: flex; gap: 10px; align-items: center; }
ol.trajs { list-style: none; padding: 0; margin: 0; }
li.traj { border: 1px solid var(--line); border-radius: 6px; margin: 6px 0; background: #fff; }
button.traj-head { all: unset; box-sizing: border-box; cursor: pointer; display: flex; gap: 10px;
  align-items: center; width: 100%; padding: 6px 10px; }
button.traj-head:focus-visible { outline: 2px solid var(--accent); }
.traj-head .q { flex: 1; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.mark { font-weight: 700; width: 1.2em; text-align: center; }
.mark.ok { color: var(--ok); } .mark.bad { color: var(--bad); }
.chip { display: inline-block; font-size: 11px; padding: 0 6px; border-radius: 9px;
  margin-right: 3px; background: #e8eefc; color: #23408e; white-space: nowrap; }
.chip.absent { background: #eee; color: #777; text-decoration: line-through; }
.chip.unknown { background: #f3e8fd; color: #6a3d9a; }
.chip.model { background: #e6f4ea; color: #1e5e30; }
.traj-body { padding: 8px 12px 12px; border-top: 1px solid var(--line); }
.cols { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
.card { min-width: 0; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 10px; margin: 0 0 8px; }
dl.meta dt { color: var(--muted); } dl.meta dd { margin: 0; overflow-wrap: anywhere; }
ul.labels { list-style: none; padding: 0; margin: 0 0 8px; }
ul.labels li { margin: 2px 0; }
.rationale { color: var(--muted); }
.turn { border-left: 4px solid var(--line); padding: 4px 10px; margin: 6px 0; background: #fff; }
.turn.hl { border-left-color: #e6a700; background: var(--hl); }
.turn-head { font-size: 12px; color: var(--muted); }
.think { font-style: italic; color: #3d4656; white-space: pre-wrap; overflow-wrap: anywhere; }
.act { font-weight: 600; white-space: pre-wrap; overflow-wrap: anywhere; }
.act-answer { color: var(--ok); } .act-invalid { color: var(--bad); }
pre.obs { background: var(--soft); padding: 6px; margin: 4px 0 0; max-height: 16em;
  overflow: auto; white-space: pre-wrap; overflow-wrap: anywhere; font-size: 12px; }
footer { max-width: 1400px; margin: 30px auto; padding: 0 20px; font-size: 12px;
  color: var(--muted); }
"""

JS = r"""
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("report-data").textContent);
  var T = JSON.parse(document.getElementById("traj-data").textContent);
  var B = DATA.behaviors, SHORT = DATA.short, PAGE = DATA.page_size || 50;

  function el(tag, attrs) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) {
      if (attrs[k] === null || attrs[k] === undefined) continue;
      if (k === "class") e.className = attrs[k];
      else if (k === "text") e.textContent = attrs[k];
      else e.setAttribute(k, attrs[k]);
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined) continue;
      e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return e;
  }

  // per-trajectory flags: behavior state 1 present, 0 absent, -1 unknown / unlabelled
  var byTask = {};
  T.forEach(function (t, i) {
    t._b = {};
    B.forEach(function (b) {
      var l = t.labels && t.labels[b];
      t._b[b] = l ? (l.present === true ? 1 : l.present === false ? 0 : -1) : -1;
    });
    t._q = ((t.task_id || "") + " " + (t.question || "")).toLowerCase();
    (byTask[t.task_id] = byTask[t.task_id] || []).push(i);
  });

  function uniq(f) {
    var seen = {}, out = [];
    T.forEach(function (t) {
      [].concat(f(t)).forEach(function (x) {
        var k = String(x);
        if (!seen.hasOwnProperty(k)) { seen[k] = 1; out.push(k); }
      });
    });
    return out.sort(function (a, b) { return a.localeCompare(b, undefined, {numeric: true}); });
  }
  function fillSelect(id, values) {
    var s = document.getElementById(id);
    values.forEach(function (v) { s.appendChild(el("option", {value: v, text: v})); });
    return s;
  }
  fillSelect("f-model", uniq(function (t) { return t.model; }).sort(function (a, b) {
    return DATA.models.indexOf(a) - DATA.models.indexOf(b); }));
  function orDash(x) { return x == null ? "-" : String(x); }
  fillSelect("f-source", uniq(function (t) { return orDash(t.data_source); }));
  fillSelect("f-hops", uniq(function (t) { return orDash(t.hops); }));
  fillSelect("f-trap", ["none"].concat(uniq(function (t) { return t.traps || []; })));

  var behaviorBox = document.getElementById("f-behaviors");
  B.forEach(function (b) {
    var s = el("select", {id: "f-b-" + b, "data-behavior": b},
      el("option", {value: "", text: "any"}),
      el("option", {value: "present", text: "present"}),
      el("option", {value: "absent", text: "absent"}),
      el("option", {value: "unknown", text: "unknown"}));
    behaviorBox.appendChild(el("label", null, SHORT[b] || b, s));
  });

  var state = {page: 0, matches: []};
  function val(id) { return document.getElementById(id).value; }
  function applyFilters() {
    var m = val("f-model"), c = val("f-correct"), src = val("f-source"), h = val("f-hops"),
        tr = val("f-trap"), q = val("f-text").trim().toLowerCase();
    var want = B.map(function (b) { return [b, val("f-b-" + b)]; })
      .filter(function (x) { return x[1]; });
    var code = {present: 1, absent: 0, unknown: -1};
    var out = [];
    for (var i = 0; i < T.length; i++) {
      var t = T[i];
      if (m && t.model !== m) continue;
      if (c === "correct" && !t.correct) continue;
      if (c === "incorrect" && t.correct) continue;
      if (src && orDash(t.data_source) !== src) continue;
      if (h && orDash(t.hops) !== h) continue;
      if (tr === "none" && t.traps && t.traps.length) continue;
      if (tr && tr !== "none" && (!t.traps || t.traps.indexOf(tr) < 0)) continue;
      if (q && t._q.indexOf(q) < 0) continue;
      var ok = true;
      for (var j = 0; j < want.length && ok; j++) ok = t._b[want[j][0]] === code[want[j][1]];
      if (ok) out.push(i);
    }
    state.matches = out;
    state.page = 0;
    document.getElementById("match-count").textContent = String(out.length);
    renderPage();
  }

  function chips(t) {
    var box = el("span", {class: "chips"});
    B.forEach(function (b) {
      if (t._b[b] === 1) {
        box.appendChild(el("span", {class: "chip", title: b, text: SHORT[b] || b}));
      }
    });
    return box;
  }

  function renderPage() {
    var list = document.getElementById("traj-list");
    list.textContent = "";
    var pages = Math.max(1, Math.ceil(state.matches.length / PAGE));
    state.page = Math.min(state.page, pages - 1);
    var start = state.page * PAGE, frag = document.createDocumentFragment();
    state.matches.slice(start, start + PAGE).forEach(function (i) {
      var t = T[i];
      var head = el("button", {class: "traj-head", type: "button", "aria-expanded": "false"},
        el("span", {class: "mark " + (t.correct ? "ok" : "bad"),
          title: t.correct ? "correct" : "incorrect", text: t.correct ? "\u2713" : "\u2717"}),
        el("span", {class: "chip model", text: t.model}),
        el("span", {class: "muted", text: t.task_id + (t.attempt ? "#" + t.attempt : "")}),
        el("span", {class: "q", text: t.question}),
        chips(t),
        el("span", {class: "muted", text: (t.turns || []).length + " turns"}));
      var li = el("li", {class: "traj", "data-idx": String(i)}, head);
      head.addEventListener("click", function () { toggle(li, i, head); });
      frag.appendChild(li);
    });
    list.appendChild(frag);
    document.getElementById("page-info").textContent =
      "page " + (state.page + 1) + " of " + pages;
    document.getElementById("prev").disabled = state.page === 0;
    document.getElementById("next").disabled = state.page >= pages - 1;
  }

  function toggle(li, i, head) {
    var body = li.querySelector(".traj-body");
    if (body) body.hidden = !body.hidden;
    else li.appendChild(body = renderBody(i));
    head.setAttribute("aria-expanded", String(!body.hidden));
  }

  function turnsOf(t) {
    var at = {};
    B.forEach(function (b) {
      var l = t.labels && t.labels[b];
      if (!l || l.present !== true) return;
      (l.turns || []).forEach(function (k) { (at[k] = at[k] || []).push(b); });
    });
    return at;
  }

  function renderCard(t) {
    var card = el("div", {class: "card", "data-model": t.model});
    var gold = (t.answers || []).join(" | ");
    var meta = el("dl", {class: "meta"});
    [["model", t.model], ["question", t.question], ["gold", gold],
     ["final answer", (t.final_answer == null ? "(none)" : t.final_answer) +
       "  [" + t.termination + "]"],
     ["EM / F1", orDash(t.em) + " / " + (t.f1 == null ? "-" : Number(t.f1).toFixed(3))],
     ["data source", orDash(t.data_source)],
     ["hops", orDash(t.hops)],
     ["traps", (t.traps && t.traps.length) ? t.traps.join(", ") : "none"],
     ["annotator", t.annotator || "(unlabelled)"]].forEach(function (kv) {
      meta.appendChild(el("dt", {text: kv[0]}));
      var cls = "m-" + kv[0].replace(/[^a-z]+/g, "-");
      meta.appendChild(el("dd", {class: cls, text: String(kv[1])}));
    });
    card.appendChild(meta);
    var labels = el("ul", {class: "labels"});
    B.forEach(function (b) {
      var l = t.labels && t.labels[b];
      if (!l) return;
      var cls = l.present === true ? "chip" : l.present === false ? "chip absent" : "chip unknown";
      var where = (l.present === true && l.turns && l.turns.length) ?
        " (turns " + l.turns.join(", ") + ")" : "";
      labels.appendChild(el("li", {"data-behavior": b},
        el("span", {class: cls, text: SHORT[b] || b}), el("span", {text: where + " "}),
        el("span", {class: "rationale", text: l.rationale || ""})));
    });
    card.appendChild(labels);
    var at = turnsOf(t), turns = el("div", {class: "turns"});
    (t.turns || []).forEach(function (u, k) {
      var hb = at[k] || [];
      var div = el("div", {class: "turn" + (hb.length ? " hl" : ""), "data-turn": String(k),
        "data-behaviors": hb.join(" ")});
      var head = el("div", {class: "turn-head", text: "turn " + k + " \u00b7 " + u.kind});
      hb.forEach(function (b) {
        head.appendChild(document.createTextNode(" "));
        head.appendChild(el("span", {class: "chip", title: t.labels[b].rationale || "",
          text: SHORT[b] || b}));
      });
      div.appendChild(head);
      if (u.think) div.appendChild(el("div", {class: "think", text: u.think}));
      var what = u.kind === "invalid" ? (u.error || "") : (u.content || "");
      div.appendChild(el("div", {class: "act act-" + u.kind, text: u.kind + ": " + what}));
      if (u.output) div.appendChild(el("pre", {class: "obs raw", text: u.output}));
      if (u.observation) div.appendChild(el("pre", {class: "obs", text: u.observation}));
      turns.appendChild(div);
    });
    card.appendChild(turns);
    return card;
  }

  function renderBody(i) {
    var t = T[i];
    var body = el("div", {class: "traj-body"});
    var others = (byTask[t.task_id] || []).filter(function (j) { return T[j].model !== t.model; });
    var cols = el("div", {class: "single"}, renderCard(t));
    if (others.length) {
      var sel = el("select", {class: "compare"}, el("option", {value: "", text: "(none)"}));
      others.forEach(function (j) {
        var o = T[j];
        sel.appendChild(el("option", {value: String(j),
          text: o.model + (o.attempt ? " #" + o.attempt : "") +
            (o.correct ? " \u2713" : " \u2717")}));
      });
      sel.addEventListener("change", function () {
        cols.textContent = "";
        cols.className = sel.value ? "cols" : "single";
        cols.appendChild(renderCard(t));
        if (sel.value) cols.appendChild(renderCard(T[Number(sel.value)]));
      });
      body.appendChild(el("label", {class: "muted"}, "side by side with: ", sel));
    }
    body.appendChild(cols);
    return body;
  }

  document.querySelectorAll(".filters select, .filters input").forEach(function (e) {
    e.addEventListener(e.tagName === "INPUT" ? "input" : "change", applyFilters);
  });
  function turnPage(d) { return function () { state.page += d; renderPage(); }; }
  document.getElementById("prev").addEventListener("click", turnPage(-1));
  document.getElementById("next").addEventListener("click", turnPage(1));
  document.getElementById("total-count").textContent = String(T.length);
  applyFilters();
  document.body.setAttribute("data-ready-ms", String(Math.round(performance.now())));
  document.body.setAttribute("data-ready", "1");
})();
"""
