
(function () {
"use strict";
var status = document.getElementById("dst-status");
window.addEventListener("error", function (ev) {
  status.setAttribute("data-error", String(ev.message));
});
var D = JSON.parse(document.getElementById("dst-data").textContent);
var TYPES = ["ok", "fail", "info"];
var FILL = ["#3c9a5f", "#d9534f", "#e6a817"];
var LEAD = "#e0007a", PREFIX = "#1f6fd1", UNPLACED = "#7b3fb5";
var FAULT_COLOR = {"latency": "#98a0ab", "error": "#d9534f", "lost-ack": "#9b59b6", "timeout": "#e67e22",
                   "partial-write": "#2a7fc1", "batch-error": "#6fa8dc", "crash": "#111111"};
var SPARE = ["#16a085", "#8e44ad", "#2c3e50", "#c0392b", "#27ae60", "#d35400"];
var PREFIX_TAIL = 12;      // prefix ops listed in the violation panel
var NOTCHES_MAX = 150;     // per-lane fault notches drawn only below this many visible faults
var AXIS_H = 22, FAULT_H = 18;

function el(tag, cls, text) {
  var e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

var ops = D.ops.map(function (a, k) {
  return {k: k, p: a[0], type: a[1], f: D.fs[a[2]], t0: a[3], t1: a[4], i0: a[5], i1: a[6],
          id: a[7], inp: a[8], out: a[9], disp: a[10]};
});
var nem = D.nem.map(function (a) { return {t: a[0], i: a[1], f: D.fs[a[2]], text: a[3], p: a[4]}; });
var byId = new Map();
ops.forEach(function (o) { if (!byId.has(o.id)) byId.set(o.id, o); });
var prefixPos = new Map();
D.prefix.forEach(function (id, n) { if (!prefixPos.has(id)) prefixPos.set(id, n); });
var unplaced = new Set(D.unplaced);
// A part the model refuted without a search has a linearizable prefix, not the longest.
var PREFIX_NAME = D.refuted ? "a linearizable prefix (refuted by the model, no search)"
                            : "the longest linearizable prefix";
var lead = D.lead === null || D.lead === undefined ? null : (byId.get(D.lead) || null);
var searchOp = D.searchOp === null || D.searchOp === undefined ? null : (byId.get(D.searchOp) || null);
var faultKinds = [];
nem.forEach(function (n) { if (faultKinds.indexOf(n.f) < 0) faultKinds.push(n.f); });
var spareN = 0;
faultKinds.forEach(function (f) { if (!FAULT_COLOR[f]) FAULT_COLOR[f] = SPARE[spareN++ % SPARE.length]; });

var S = {axis: D.hasTime ? "time" : "order", lanes: "client", v0: 0, v1: 1, sel: null,
         hidden: new Set(), rows: [], laneH: 20, drag: null};
// The address can set the view: report.html#lanes=process&axis=order&op=123
var HASH = new URLSearchParams(location.hash.replace(/^#/, ""));
if (HASH.get("lanes") === "process") S.lanes = "process";
if (HASH.get("axis") === "order") S.axis = "order";

function a0(o) { return S.axis === "time" ? o.t0 : o.i0; }
function a1(o) {
  if (S.axis === "time") return o.t1 < 0 ? D.tEnd : o.t1;
  return o.i1 < 0 ? D.iEnd : o.i1;
}
function na(n) { return S.axis === "time" ? n.t : n.i; }
function extent() {
  return S.axis === "time" ? [D.tStart, Math.max(D.tEnd, D.tStart + 1)] : [0, Math.max(D.iEnd, 1)];
}
var procLane = [];
D.procOrder.forEach(function (p, n) { procLane[p] = n; });
function laneOfProc(p) { return S.lanes === "client" ? D.procRow[p] : procLane[p]; }
function rowOf(o) { return laneOfProc(o.p); }
function idText(id) { return D.idLabel + id; }

// -- DOM ------------------------------------------------------------------
var root = document.getElementById("timeline");
var controls = el("div", "tl-controls");
var legend = el("div", "tl-legend");
var overview = el("canvas", "tl-overview");
var body = el("div", "tl-body");
var labels = el("div", "tl-labels");
var plot = el("div", "tl-plot");
var canvas = el("canvas", "tl-canvas");
var marker = el("div", "violation");
var details = el("div", "tl-details", "Hover over an operation to see its input and output; click to pin it here. " +
  "Wheel or the buttons zoom, drag pans, the strip above navigates.");
var tooltip = document.getElementById("tooltip");
plot.appendChild(canvas);
body.appendChild(labels);
body.appendChild(plot);
root.appendChild(controls);
root.appendChild(legend);
root.appendChild(overview);
root.appendChild(body);
root.appendChild(details);

function button(text, fn, title) {
  var b = el("button", "", text);
  b.type = "button";
  if (title) b.title = title;
  b.addEventListener("click", fn);
  controls.appendChild(b);
  return b;
}
function select(opts, value, fn, title) {
  var s = el("select");
  opts.forEach(function (o) { var op = el("option", "", o[1]); op.value = o[0]; s.appendChild(op); });
  s.value = value;
  if (title) s.title = title;
  s.addEventListener("change", function () { fn(s.value); });
  controls.appendChild(s);
  return s;
}
button("Fit all", function () { fit(); draw(); });
var toLead = button("Go to violation", function () { focusLead(); draw(); });
if (!lead) toLead.disabled = true;
button("\u2212", function () { zoom(2, 0.5); draw(); }, "zoom out");
button("+", function () { zoom(0.5, 0.5); draw(); }, "zoom in");
var axisSel = select([["time", D.unit === "line" ? "x: line in the file" : "x: virtual time"],
                      ["order", "x: event order"]], S.axis, function (v) {
  var keep = S.sel || lead;
  S.axis = v;
  if (keep) focusOp(keep); else fit();
  draw();
}, "virtual time shows real overlap; event order spreads dense moments out");
if (!D.hasTime) axisSel.disabled = true;
select([["client", "lanes: clients"], ["process", "lanes: one per process"]], S.lanes, function (v) {
  S.lanes = v; layout(); draw();
}, "a client continues as a new process after an info op");

function swatch(color, text, extra) {
  var s = el("span");
  var sw = el("span", "sw");
  sw.style.background = color;
  if (extra) sw.style.cssText += extra;
  s.appendChild(sw);
  s.appendChild(document.createTextNode(text));
  legend.appendChild(s);
}
swatch(FILL[0], "ok");
swatch(FILL[1], "fail (did not happen)");
swatch(FILL[2], "info (outcome unknown; open if never completed)",
       "background:repeating-linear-gradient(135deg,#e6a817 0 3px,#fff3d6 3px 6px)");
if (lead) {
  swatch("#fff", "violation", "border:2px solid " + LEAD);
  swatch(PREFIX, "in " + PREFIX_NAME, "height:3px");
  if (D.unplaced.length) swatch("#fff", "could not be placed", "border:2px dashed " + UNPLACED);
}
faultKinds.forEach(function (f) {
  var lab = el("label");
  var cb = el("input");
  cb.type = "checkbox";
  cb.checked = true;
  cb.addEventListener("change", function () { if (cb.checked) S.hidden.delete(f); else S.hidden.add(f); draw(); });
  var sw = el("span", "sw");
  sw.style.background = FAULT_COLOR[f];
  lab.appendChild(cb);
  lab.appendChild(sw);
  var count = nem.filter(function (n) { return n.f === f; }).length;
  lab.appendChild(document.createTextNode(f + " (" + count + ")"));
  lab.title = "fault events of class " + f + "; untick to hide their lines";
  legend.appendChild(lab);
});

// -- lanes ----------------------------------------------------------------
var rowOps = [];
function layout() {
  if (S.lanes === "client") {
    S.rows = D.rows.map(function (r) { return {key: r[0], label: r[1], title: r[2], kind: r[3]}; });
  } else {
    S.rows = D.procOrder.map(function (n) {
      var p = D.procs[n], r = D.rows[D.procRow[n]];
      return {key: "p:" + p, label: "p " + p, title: "process " + p, kind: r ? r[3] : "client"};
    });
  }
  S.laneH = S.rows.length > 60 ? 11 : S.rows.length > 30 ? 15 : 20;
  rowOps = S.rows.map(function () { return []; });
  ops.forEach(function (o) { rowOps[rowOf(o)].push(o); });
  sortRows();
  while (labels.firstChild) labels.removeChild(labels.firstChild);
  var axis = el("div", "lane-axis");
  axis.style.height = AXIS_H + "px";
  labels.appendChild(axis);
  var fl = el("div", "lane", "faults");
  fl.setAttribute("data-lane", "faults");
  fl.setAttribute("data-kind", "faults");
  fl.style.height = FAULT_H + "px";
  fl.style.lineHeight = FAULT_H + "px";
  labels.appendChild(fl);
  S.rows.forEach(function (r) {
    var d = el("div", "lane", r.label);
    d.setAttribute("data-lane", r.key);
    d.setAttribute("data-kind", r.kind);
    d.title = r.title;
    d.style.height = S.laneH + "px";
    d.style.lineHeight = S.laneH + "px";
    d.style.fontSize = S.laneH < 14 ? "10px" : "12px";
    labels.appendChild(d);
  });
}
function sortRows() {
  rowOps.forEach(function (list) { list.sort(function (x, y) { return a0(x) - a0(y) || x.k - y.k; }); });
}

// -- view -----------------------------------------------------------------
function fit() {
  var e = extent(), pad = (e[1] - e[0]) * 0.01;
  S.v0 = e[0] - pad; S.v1 = e[1] + pad;
}
function zoom(factor, at) {
  var e = extent(), span = S.v1 - S.v0, full = (e[1] - e[0]) * 1.1;
  var ns = Math.min(Math.max(span * factor, 4), full);
  var c = S.v0 + span * at;
  S.v0 = c - ns * at; S.v1 = S.v0 + ns;
}
function focusOp(o) {
  // The op and its neighbours in invoke order, so the context is visible.
  // Starts only: one slow neighbour must not stretch the window.
  var lo = Infinity, hi = -Infinity;
  for (var k = Math.max(0, o.k - 16); k <= Math.min(ops.length - 1, o.k + 16); k++) {
    lo = Math.min(lo, a0(ops[k]));
    hi = Math.max(hi, a0(ops[k]));
  }
  hi = Math.max(hi, o.i1 < 0 ? a0(o) : a1(o));
  var span = Math.max(hi - lo, 10), pad = span * 0.08;
  S.v0 = lo - pad; S.v1 = hi + pad;
}
function focusLead() { if (lead) { focusOp(lead); S.sel = lead; showDetails(lead); } }
function X(a, W) { return (a - S.v0) / (S.v1 - S.v0) * W; }

function niceStep(raw) {
  var p = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1e-9))));
  var m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}
function tickText(v, step) {
  if (S.axis === "order" || D.unit === "line") return String(Math.round(v));
  if (step >= 1e6) return (v / 1e6).toFixed(step >= 1e7 ? 0 : 1) + " s";
  if (step >= 1000) return (v / 1000).toFixed(step >= 1e4 ? 0 : 1) + " ms";
  return Math.round(v) + " \u00b5s";
}

var hatch = null;
function hatchPattern(ctx) {
  if (hatch) return hatch;
  var c = document.createElement("canvas");
  c.width = 6; c.height = 6;
  var g = c.getContext("2d");
  g.fillStyle = "#fff3d6"; g.fillRect(0, 0, 6, 6);
  g.strokeStyle = FILL[2]; g.lineWidth = 2.2;
  g.beginPath(); g.moveTo(-1, 7); g.lineTo(7, -1); g.moveTo(-1, 1); g.lineTo(1, -1); g.moveTo(5, 7); g.lineTo(7, 5); g.stroke();
  hatch = ctx.createPattern(c, "repeat");
  return hatch;
}

function laneTop(r) { return AXIS_H + FAULT_H + r * S.laneH; }

function draw() {
  var dpr = window.devicePixelRatio || 1;
  var W = Math.max(plot.clientWidth, 200);
  var H = laneTop(S.rows.length) + 2;
  canvas.width = Math.round(W * dpr); canvas.height = Math.round(H * dpr);
  canvas.style.width = W + "px"; canvas.style.height = H + "px";
  var ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, W, H);
  // lanes
  for (var r = 0; r < S.rows.length; r++) {
    ctx.fillStyle = S.rows[r].kind === "client" ? (r % 2 ? "#f6f7f9" : "#ffffff") : "#eef1f6";
    ctx.fillRect(0, laneTop(r), W, S.laneH);
  }
  ctx.fillStyle = "#fafafa"; ctx.fillRect(0, AXIS_H, W, FAULT_H);
  // axis and grid
  var span = S.v1 - S.v0, step = niceStep(span / Math.max(W / 110, 1));
  ctx.font = "11px system-ui, sans-serif"; ctx.textBaseline = "middle";
  ctx.strokeStyle = "#e3e6eb"; ctx.lineWidth = 1;
  for (var t = Math.ceil(S.v0 / step) * step; t <= S.v1; t += step) {
    var gx = Math.round(X(t, W)) + 0.5;
    ctx.beginPath(); ctx.moveTo(gx, AXIS_H - 5); ctx.lineTo(gx, H); ctx.stroke();
    ctx.fillStyle = "#5b6475"; ctx.fillText(tickText(t, step), gx + 3, AXIS_H / 2);
  }
  ctx.fillStyle = "#d8dce3"; ctx.fillRect(0, AXIS_H - 1, W, 1);
  // faults: a tick in the faults band, a line across every lane, and
  // (when few enough to read) a notch on the lane of the process it hit
  var shown = 0;
  nem.forEach(function (n) {
    var x = X(na(n), W);
    if (!S.hidden.has(n.f) && x >= -2 && x <= W + 2) shown++;
  });
  nem.forEach(function (n) {
    if (S.hidden.has(n.f)) return;
    var x = X(na(n), W);
    if (x < -2 || x > W + 2) return;
    var crash = n.f === "crash";
    ctx.fillStyle = FAULT_COLOR[n.f];
    ctx.fillRect(x - (crash ? 2 : 1.5), AXIS_H + 2, crash ? 4 : 3, FAULT_H - 4);
    ctx.globalAlpha = crash ? 0.9 : 0.28;
    ctx.fillRect(x - (crash ? 1 : 0.5), AXIS_H + FAULT_H, crash ? 2 : 1, H - AXIS_H - FAULT_H);
    ctx.globalAlpha = 1;
    if (n.p >= 0 && shown <= NOTCHES_MAX) {
      var y = laneTop(laneOfProc(n.p));
      ctx.beginPath(); ctx.moveTo(x - 4, y); ctx.lineTo(x + 4, y); ctx.lineTo(x, y + 5); ctx.closePath(); ctx.fill();
    }
  });
  // ops
  var drawn = 0, h = Math.max(S.laneH - 7, 4);
  ops.forEach(function (o) {
    var x0 = X(a0(o), W), x1 = X(a1(o), W);
    if (x1 < -1 || x0 > W + 1) return;
    drawn++;
    var r = rowOf(o), y = laneTop(r) + 3, w = Math.max(x1 - x0, 2);
    ctx.fillStyle = o.type === 2 ? hatchPattern(ctx) : FILL[o.type];
    ctx.fillRect(x0, y, w, h);
    if (o.type === 2) {
      ctx.strokeStyle = FILL[2]; ctx.lineWidth = 1;
      ctx.setLineDash(o.i1 < 0 ? [3, 2] : []);
      ctx.strokeRect(x0 + 0.5, y + 0.5, w - 1, h - 1);
      ctx.setLineDash([]);
    }
    if (prefixPos.has(o.id)) { ctx.fillStyle = PREFIX; ctx.fillRect(x0, y + h + 1, w, 2); }
    if (unplaced.has(o.id) && o !== lead) {
      ctx.strokeStyle = UNPLACED; ctx.lineWidth = 2; ctx.setLineDash([4, 2]);
      ctx.strokeRect(x0 - 1, y - 1, w + 2, h + 2); ctx.setLineDash([]);
    }
    if (w > 46 && h >= 9) {
      ctx.save(); ctx.beginPath(); ctx.rect(x0, y, w, h); ctx.clip();
      ctx.fillStyle = o.type === 2 ? "#5a4000" : "#fff";
      ctx.font = (h >= 12 ? 11 : 9) + "px system-ui, sans-serif";
      ctx.fillText(o.f, x0 + 3, y + h / 2 + 0.5);
      ctx.restore();
    }
  });
  if (S.sel) {
    var sx0 = X(a0(S.sel), W), sx1 = X(a1(S.sel), W), sy = laneTop(rowOf(S.sel)) + 3;
    ctx.strokeStyle = "#111"; ctx.lineWidth = 1.5;
    ctx.strokeRect(sx0 - 2, sy - 2, Math.max(sx1 - sx0, 2) + 4, h + 4);
  }
  if (lead) {
    var lx0 = X(a0(lead), W), lx1 = X(a1(lead), W), ly = laneTop(rowOf(lead)) + 3;
    ctx.strokeStyle = LEAD; ctx.lineWidth = 3;
    ctx.strokeRect(lx0 - 2, ly - 2, Math.max(lx1 - lx0, 2) + 4, h + 4);
    var vis = lx1 >= 0 && lx0 <= W;
    marker.style.left = (Math.max(lx0, -8) - 5) + "px";
    marker.style.top = (ly - 5) + "px";
    marker.style.width = (Math.max(Math.min(lx1, W + 8) - Math.max(lx0, -8), 2) + 10) + "px";
    marker.style.height = (h + 10) + "px";
    marker.style.visibility = vis ? "visible" : "hidden";
    marker.setAttribute("data-visible", vis ? "1" : "0");
    var br = marker.getBoundingClientRect();
    status.setAttribute("data-lead-box", [br.left + window.scrollX, br.top + window.scrollY, br.width, br.height]
      .map(Math.round).join(","));
  }
  drawOverview();
  status.setAttribute("data-drawn", String(drawn));
}

function drawOverview() {
  var dpr = window.devicePixelRatio || 1;
  var W = Math.max(overview.clientWidth, 200), H = 34;
  overview.width = Math.round(W * dpr); overview.height = Math.round(H * dpr);
  var ctx = overview.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
  var e = extent(), span = e[1] - e[0];
  var OX = function (a) { return (a - e[0]) / span * W; };
  var rh = (H - 6) / Math.max(S.rows.length, 1);
  ops.forEach(function (o) {
    ctx.fillStyle = FILL[o.type];
    ctx.fillRect(OX(a0(o)), 3 + rowOf(o) * rh, Math.max(OX(o.i1 < 0 ? a0(o) : a1(o)) - OX(a0(o)), 1), Math.max(rh - 0.5, 1));
  });
  nem.forEach(function (n) {
    if (n.f !== "crash" || S.hidden.has(n.f)) return;
    ctx.fillStyle = "#111"; ctx.fillRect(OX(na(n)) - 1, 0, 2, H);
  });
  if (lead) { ctx.fillStyle = LEAD; ctx.fillRect(OX(a0(lead)) - 1.5, 0, 3, H); }
  var w0 = OX(S.v0), w1 = OX(S.v1);
  ctx.fillStyle = "rgba(31,111,209,0.12)"; ctx.fillRect(w0, 0, Math.max(w1 - w0, 2), H);
  ctx.strokeStyle = "rgba(31,111,209,0.8)"; ctx.lineWidth = 1;
  ctx.strokeRect(w0 + 0.5, 0.5, Math.max(w1 - w0, 2) - 1, H - 1);
}

// -- text of an op --------------------------------------------------------
function describe(o) {
  var unit = " \u00b5s";
  var lines = [];
  lines.push(idText(o.id) + "  process " + D.procs[o.p] + "  " + o.f + "  " + TYPES[o.type] +
             (o.i1 < 0 ? " (never completed)" : ""));
  if (D.unit === "line") {
    lines.push("lines " + o.t0 + (o.i1 < 0 ? " (no completion)" : "\u2192" + o.t1));
  } else if (D.hasTime) {
    lines.push("invoke t=" + o.t0 + unit + (o.i1 < 0 ? "; no completion recorded" :
               ", " + (o.type === 2 ? "info" : "done") + " t=" + o.t1 + unit + " (" + (o.t1 - o.t0) + unit + ")"));
  }
  lines.push("events " + o.i0 + (o.i1 < 0 ? "" : "\u2192" + o.i1) + (o.disp >= 0 ? "   dispatch " + o.disp : ""));
  if (o.inp) lines.push("input:  " + o.inp);
  if (o.out) lines.push("output: " + o.out);
  if (o.type === 2) lines.push("outcome unknown: it may take effect at any time after its invoke, or never");
  if (lead && o === lead) lines.push("VIOLATION: " + (D.leadMsg || ""));
  else if (searchOp && o === searchOp && D.searchMsg) lines.push("full search could not place it: " + D.searchMsg);
  if (lead) {
    if (prefixPos.has(o.id)) lines.push("linearized " + (prefixPos.get(o.id) + 1) + " of " + D.prefix.length +
                                        " in " + PREFIX_NAME);
    else if (unplaced.has(o.id)) lines.push("could not be placed after " + PREFIX_NAME);
    else if (o.type !== 1) lines.push("not in " + PREFIX_NAME);
  }
  return lines.join("\n");
}
function describeNemesis(n) {
  var where = D.unit === "line" ? "line " + n.t + "  " : D.hasTime ? "t=" + n.t + " \u00b5s  " : "";
  return "fault  " + n.text + "\n" + where + "event " + n.i;
}
function showDetails(o) { details.textContent = describe(o); }

// -- hit testing ------------------------------------------------------------
function opAt(px, py, W) {
  var r = Math.floor((py - AXIS_H - FAULT_H) / S.laneH);
  if (r < 0 || r >= S.rows.length) return null;
  var list = rowOps[r], a = S.v0 + px / W * (S.v1 - S.v0), tol = 3 / W * (S.v1 - S.v0);
  var lo = 0, hi = list.length;
  while (lo < hi) { var mid = (lo + hi) >> 1; if (a0(list[mid]) <= a + tol) lo = mid + 1; else hi = mid; }
  var best = null, bestD = Infinity;
  for (var k = lo - 1; k >= 0 && k >= lo - 40; k--) {
    var o = list[k], x0 = a0(o), x1 = Math.max(a1(o), x0);
    var d = a < x0 ? x0 - a : a > x1 ? a - x1 : 0;
    if (d <= tol && d < bestD) { best = o; bestD = d; }
    if (d === 0) break;
  }
  return best;
}
function nemAt(px, py, W) {
  if (py < AXIS_H || py > AXIS_H + FAULT_H) return null;
  var best = null, bestD = 4;
  nem.forEach(function (n) {
    if (S.hidden.has(n.f)) return;
    var d = Math.abs(X(na(n), W) - px);
    if (d < bestD) { best = n; bestD = d; }
  });
  return best;
}
function pos(ev) { var b = canvas.getBoundingClientRect(); return [ev.clientX - b.left, ev.clientY - b.top, b.width]; }
function showTip(text, ev) {
  tooltip.textContent = text;
  tooltip.hidden = false;
  var x = ev.clientX + 14, y = ev.clientY + 14;
  var w = tooltip.offsetWidth, hh = tooltip.offsetHeight;
  if (x + w > window.innerWidth - 4) x = Math.max(4, ev.clientX - w - 14);
  if (y + hh > window.innerHeight - 4) y = Math.max(4, ev.clientY - hh - 14);
  tooltip.style.left = x + "px"; tooltip.style.top = y + "px";
}

canvas.addEventListener("mousemove", function (ev) {
  var p = pos(ev);
  if (S.drag) {
    var dx = p[0] - S.drag.x;
    if (Math.abs(dx) > 2) S.drag.moved = true;
    var span = S.drag.v1 - S.drag.v0, shift = -dx / p[2] * span;
    S.v0 = S.drag.v0 + shift; S.v1 = S.drag.v1 + shift;
    tooltip.hidden = true;
    draw();
    return;
  }
  var o = opAt(p[0], p[1], p[2]);
  if (o) { showTip(describe(o), ev); return; }
  var n = nemAt(p[0], p[1], p[2]);
  if (n) { showTip(describeNemesis(n), ev); return; }
  tooltip.hidden = true;
});
canvas.addEventListener("mouseleave", function () { tooltip.hidden = true; });
canvas.addEventListener("mousedown", function (ev) {
  var p = pos(ev);
  S.drag = {x: p[0], v0: S.v0, v1: S.v1, moved: false};
});
window.addEventListener("mouseup", function (ev) {
  if (!S.drag) return;
  var moved = S.drag.moved;
  S.drag = null;
  if (moved || ev.target !== canvas) return;
  var p = pos(ev), o = opAt(p[0], p[1], p[2]);
  if (o) { S.sel = o; showDetails(o); draw(); return; }
  var n = nemAt(p[0], p[1], p[2]);
  if (n) details.textContent = describeNemesis(n);
});
canvas.addEventListener("wheel", function (ev) {
  ev.preventDefault();
  var p = pos(ev);
  zoom(Math.exp(ev.deltaY * 0.0015), Math.min(Math.max(p[0] / p[2], 0), 1));
  draw();
}, {passive: false});
function overviewNav(ev) {
  var b = overview.getBoundingClientRect(), e = extent();
  var c = e[0] + (ev.clientX - b.left) / b.width * (e[1] - e[0]), span = S.v1 - S.v0;
  S.v0 = c - span / 2; S.v1 = c + span / 2;
  draw();
}
var ovDown = false;
overview.addEventListener("mousedown", function (ev) { ovDown = true; overviewNav(ev); });
overview.addEventListener("mousemove", function (ev) { if (ovDown) overviewNav(ev); });
window.addEventListener("mouseup", function () { ovDown = false; });
window.addEventListener("resize", function () { draw(); });

// -- the prefix list in the violation panel ------------------------------------
function opButton(o, cls, note) {
  var b = el("button", cls, note + idText(o.id) + "  p" + D.procs[o.p] + "  " + o.f + " " + o.inp.split("\n")[0] +
             (o.out ? "  \u2192 " + o.out.split("\n")[0] : "  (" + TYPES[o.type] + ")"));
  b.type = "button";
  b.title = describe(o);
  b.addEventListener("click", function () { focusOp(o); S.sel = o; showDetails(o); draw();
    root.scrollIntoView({behavior: "smooth", block: "start"}); });
  return b;
}
var plist = document.getElementById("prefix-list");
if (plist && lead) {
  var n = D.prefix.length, tail = D.prefix.slice(Math.max(0, n - PREFIX_TAIL));
  var name = PREFIX_NAME.charAt(0).toUpperCase() + PREFIX_NAME.slice(1);
  plist.appendChild(el("div", "note", n ? name + " (" + n + " ops) ends with" +
    (n > PREFIX_TAIL ? " (last " + PREFIX_TAIL + ")" : "") + ":" : name + " is empty."));
  tail.forEach(function (id, k) {
    var o = byId.get(id);
    if (o) plist.appendChild(opButton(o, "prefix", (n - tail.length + k + 1) + ". "));
  });
  var up = D.unplaced.map(function (id) { return byId.get(id); }).filter(Boolean);
  if (up.length) plist.appendChild(el("div", "note", "None of these fits next:"));
  up.forEach(function (o) { plist.appendChild(opButton(o, o === lead ? "lead unplaced" : "unplaced", "")); });
  if (up.indexOf(lead) < 0) {
    plist.appendChild(el("div", "note", "The violating op:"));
    plist.appendChild(opButton(lead, "lead", ""));
  }
}

// -- go -------------------------------------------------------------------------
layout();
if (lead) {
  marker.className = "violation";
  marker.setAttribute("data-op", String(lead.id));
  marker.appendChild(el("span", "", "violation " + idText(lead.id)));
  plot.appendChild(marker);
}
var asked = HASH.has("op") ? ops.find(function (o) { return String(o.id) === HASH.get("op"); }) : null;
if (asked) { focusOp(asked); S.sel = asked; showDetails(asked); }
else if (lead) focusLead();
else fit();
draw();
status.setAttribute("data-lanes", String(S.rows.length));
status.setAttribute("data-ops", String(ops.length));
status.setAttribute("data-faults", String(nem.length));
if (lead) status.setAttribute("data-violation", String(lead.id));
status.setAttribute("data-rendered", "1");
})();
