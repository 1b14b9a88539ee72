// geodns admin dashboard: polls GET /api/state every 2 s and patches the page in place.
// Plain JavaScript, no framework, no build step, nothing fetched from anywhere but this server.
//
// Hooks for tests (stable across refreshes):
//   section.service[data-service=NAME]               one per service
//   svg.map[data-service=NAME]  (id "map-" + NAME)    its world map
//   ... path[data-country=CC]                         a country; data-route=REGION when routed,
//                                                     class "refused" when the answer is refused
//   ... g.marker[data-region=R]                       a region's dot and label on the map
//   ... tbody.region[data-region=R]                   a region's rows in the table, holding
//         .state .badge[data-state]   .since  .latency  .checked[data-checked]  .error
//         .util[data-value]  .version
//         .answers   button[data-action=drain|up|down|auto]
//         demo mode: button[data-demo-mode=failing|healthy|slow],
//                    button[data-demo-utilization=0.3|0.85|0.97],
//                    button[data-demo-latency=0|80|250], input.demo-version,
//                    button[data-demo-action=version]
//   #reload-error, #conn-error, #updated[data-status=ok|stale|loading], #changes tbody tr
//   #audit tbody tr[data-who=NAME][data-result=ok|refused|failed]  .who .what .result
//     (GET /api/audit, polled every 5 s and after each change)
//   #store-error (the shared store is unreachable), #fleet, holding
//     #fleet-store[data-connected=true|false]  .revision
//     #fleet-nodes tr[data-node=N] (class "self" for this node)  .seen  .agrees[data-agrees]
//     table.votes[data-service=S] tr[data-region=R]  td.vote[data-node=N][data-vote=up|down]
//                                                    td.result[data-result=up|down|none]
"use strict";

(() => {
  const POLL_MS = 2000;
  const AUDIT_POLL_MS = 5000; // admin actions are rare: a slower poll, and one after each change
  const AUDIT_ROWS = 20;
  const FETCH_TIMEOUT_MS = 4000;
  const TOKEN_KEY = "geodns-admin-token";
  const SVGNS = "http://www.w3.org/2000/svg";
  // The region table's columns: [header, class of the header cell].
  const REGION_COLUMNS = [
    ["region", ""],
    ["state · since", ""],
    ["check", "num"],
    ["utilization", ""],
    ["ver", ""],
    ["answers /min", "num"],
    ["error", ""],
    ["force", ""],
  ];
  // Okabe-Ito, a colour-blind-safe palette: used only when the server sends no colour.
  const FALLBACK_COLORS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442"];

  const $ = (id) => document.getElementById(id);
  let world = null; // world.json
  let state = null; // the last /api/state
  let skew = 0; // server clock - browser clock, seconds
  let lastOk = 0; // browser ms of the last successful fetch
  let lastError = null;
  const services = new Map(); // name -> {section, svg, paths: Map(cc -> path), ...}

  // ---------------------------------------------------------------- helpers

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  function svgEl(tag, attrs) {
    const node = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    return node;
  }

  function setText(node, text) {
    text = text === null || text === undefined ? "" : String(text);
    if (node.textContent !== text) node.textContent = text;
  }

  function setAttr(node, name, value) {
    if (value === null || value === undefined) {
      if (node.hasAttribute(name)) node.removeAttribute(name);
    } else if (node.getAttribute(name) !== String(value)) {
      node.setAttribute(name, value);
    }
  }

  const serverNow = () => Date.now() / 1000 + skew;

  function ago(t) {
    if (t === null || t === undefined) return "–";
    const s = Math.max(0, Math.round(serverNow() - t));
    if (s < 60) return `${s}s ago`;
    if (s < 3600) return `${Math.floor(s / 60)}m ago`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m ago`;
    return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h ago`;
  }

  function duration(s) {
    s = Math.max(0, Math.round(s));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
    return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
  }

  function clock(t) {
    if (t === null || t === undefined) return "–";
    return new Date(t * 1000).toLocaleTimeString([], { hour12: false });
  }

  const iso = (t) => (t === null || t === undefined ? "" : new Date(t * 1000).toISOString());

  function regionColors(svc) {
    const colors = new Map();
    svc.regions.forEach((r, i) => colors.set(r.name, r.color || FALLBACK_COLORS[i % FALLBACK_COLORS.length]));
    return colors;
  }

  function countryName(cc) {
    const c = world && world.countries[cc];
    return c ? c.name : cc;
  }

  // ------------------------------------------------------------- messages

  let messageTimer = null;
  function message(text, kind) {
    const box = $("message");
    setText($("message-text"), text);
    box.dataset.kind = kind;
    box.hidden = false;
    clearTimeout(messageTimer);
    if (kind === "ok") messageTimer = setTimeout(() => (box.hidden = true), 4000);
  }

  // ---------------------------------------------------------------- token

  function readToken() {
    const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (m) {
      sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
      history.replaceState(null, "", location.pathname + location.search);
    }
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  function showToken() {
    const has = !!sessionStorage.getItem(TOKEN_KEY);
    setText($("token-status"), has ? "set" : "");
    $("token-status").className = has ? "ok" : "muted";
  }

  function setupToken() {
    const input = $("token");
    input.value = readToken();
    showToken();
    const save = () => {
      const v = input.value.trim();
      if (v) sessionStorage.setItem(TOKEN_KEY, v);
      else sessionStorage.removeItem(TOKEN_KEY);
      showToken();
    };
    input.addEventListener("change", save);
    input.addEventListener("input", save);
    $("token-form").addEventListener("submit", (e) => {
      e.preventDefault();
      save();
    });
  }

  // ----------------------------------------------------------------- POST

  async function post(url, body, what, buttons) {
    const token = sessionStorage.getItem(TOKEN_KEY) || "";
    if (!token) {
      message("No admin token: paste it into the token field (or open the page with #token=…).", "error");
      $("token").focus();
      return;
    }
    buttons.forEach((b) => (b.disabled = true));
    try {
      const res = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
        body: JSON.stringify(body),
      });
      let reply = {};
      try {
        reply = await res.json();
      } catch (_) {
        // not JSON: the status says enough
      }
      if (res.status === 401 || res.status === 403) {
        message(
          `${what}: ${res.status} ${res.status === 401 ? "unauthorized" : "forbidden"} — the admin token was refused` +
            (reply.error ? ` (${reply.error})` : "") + ". Check the token field.",
          "error",
        );
      } else if (!res.ok) {
        message(`${what}: HTTP ${res.status}${reply.error ? ` — ${reply.error}` : ""}`, "error");
      } else {
        message(`${what}: done.`, "ok");
        refresh();
      }
    } catch (err) {
      message(`${what}: the server did not answer (${err.message}).`, "error");
    } finally {
      buttons.forEach((b) => (b.disabled = false));
      refreshAudit(); // refused changes are recorded too
    }
  }

  // ------------------------------------------------------------------ map

  function project(lon, lat) {
    // Natural Earth I, the projection tools/build_world.py drew world.json with.
    lat = Math.max(world.south, Math.min(world.north, lat));
    const lam = (lon * Math.PI) / 180;
    const phi = (lat * Math.PI) / 180;
    const phi2 = phi * phi;
    const phi4 = phi2 * phi2;
    const x = lam * (0.8707 - 0.131979 * phi2 + phi4 * (-0.013791 + phi4 * (0.003971 * phi2 - 0.001529 * phi4)));
    const y = phi * (1.007226 + phi2 * (0.015085 + phi4 * (-0.044475 + 0.028874 * phi2 - 0.005916 * phi4)));
    return [x * world.scale + world.translate[0], world.translate[1] - y * world.scale];
  }

  function buildMap(name) {
    const svg = svgEl("svg", {
      class: "map",
      id: `map-${name}`,
      "data-service": name,
      viewBox: `0 0 ${world.width} ${world.height}`,
      role: "img",
      "aria-label": `map of where ${name} sends each country`,
    });
    const countries = svgEl("g", { class: "countries" });
    const paths = new Map();
    for (const o of world.other) countries.append(svgEl("path", { d: o.d, class: "other", "data-name": o.name }));
    for (const [cc, c] of Object.entries(world.countries)) {
      const p = svgEl("path", { d: c.d, "data-country": cc });
      countries.append(p);
      paths.set(cc, p);
    }
    svg.append(svgEl("defs", {}), countries, svgEl("g", { class: "markers" }));
    countries.addEventListener("mousemove", (e) => hover(name, e));
    countries.addEventListener("mouseleave", () => ($("tooltip").hidden = true));
    return { svg, paths };
  }

  function hover(name, e) {
    const tip = $("tooltip");
    const p = e.target.closest("path");
    if (!p || !state) {
      tip.hidden = true;
      return;
    }
    const cc = p.dataset.country;
    tip.replaceChildren();
    if (!cc) {
      tip.append(`${p.dataset.name || "?"}: not a country in the routing data`);
    } else {
      const svc = state.services.find((s) => s.name === name);
      const countries = (svc && svc.countries) || {};
      tip.append(el("b", { text: countryName(cc) }), ` (${cc}) → `);
      const split = svc && splitOf(svc, cc);
      if (split) {
        const colors = regionColors(svc);
        split.forEach(([r, s], i) => {
          if (i) tip.append(" · ");
          if (r) tip.append(el("span", { class: "sw", style: `background:${colors.get(r) || "#999"}` }));
          tip.append(`${r || "refused"} ${Math.round(s * 100)}%`);
        });
        tip.append(" of its client networks");
      } else if (!(cc in countries)) {
        tip.append("not routed");
      } else if (countries[cc] === null) {
        tip.append("refused (no answer)");
      } else {
        const color = regionColors(svc).get(countries[cc]) || "#999";
        tip.append(el("span", { class: "sw", style: `background:${color}` }), countries[cc]);
      }
    }
    tip.hidden = false;
    const x = Math.min(e.clientX + 14, window.innerWidth - tip.offsetWidth - 4);
    tip.style.left = `${x}px`;
    tip.style.top = `${e.clientY + 16}px`;
  }

  // A country whose client networks split among regions (a region shedding a share, a
  // canary): its shares, largest first, when the server has worked them out; else null.
  function splitOf(svc, cc) {
    const shares = (svc.country_shares || {})[cc];
    if (!shares || Object.keys(shares).length < 2) return null;
    return Object.entries(shares).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  }

  function shareText(split) {
    return split.map(([r, s]) => `${r || "refused"} ${Math.round(s * 100)}%`).join(" · ");
  }

  // Stripes of the two largest shares' colours, as wide as their shares.
  function stripes(entry, first, second) {
    const id = `split-${entry.svg.dataset.service}-${first[0]}-${first[1]}-${second[0]}-${second[1]}`.replace(/[^\w-]/g, "_");
    const defs = entry.svg.querySelector("defs");
    if (!defs.querySelector(`#${CSS.escape(id)}`)) {
      const size = 6;
      const cut = Math.max(1, Math.min(size - 1, Math.round((size * first[1]) / (first[1] + second[1]))));
      const pattern = svgEl("pattern", { id, width: size, height: size, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" });
      pattern.append(
        svgEl("rect", { x: 0, y: 0, width: cut, height: size, fill: first[0] }),
        svgEl("rect", { x: cut, y: 0, width: size - cut, height: size, fill: second[0] }),
      );
      defs.append(pattern);
    }
    return `url(#${id})`;
  }

  function updateFills(entry, svc) {
    const colors = regionColors(svc);
    const countries = svc.countries || {};
    for (const [cc, p] of entry.paths) {
      let route = null;
      let cls = null;
      let fill = null;
      const split = splitOf(svc, cc);
      if (split) {
        const colour = ([r, s]) => [r ? colors.get(r) || "#888888" : "#bbbbbb", s];
        route = split[0][0] || null;
        cls = "split";
        fill = stripes(entry, colour(split[0]), colour(split[1]));
      } else if (cc in countries) {
        const r = countries[cc];
        if (r === null) cls = "refused";
        else {
          route = r;
          fill = colors.get(r) || "#888888";
        }
      }
      setAttr(p, "data-route", route);
      setAttr(p, "data-shares", split ? shareText(split) : null);
      setAttr(p, "class", cls);
      // inline style beats the stylesheet's default land colour
      const want = fill ? `fill: ${fill};` : null;
      setAttr(p, "style", want);
      setAttr(p, "fill", fill);
    }
  }

  function updateMarkers(entry, svc) {
    const key = JSON.stringify(svc.regions.map((r) => [r.name, r.location, r.color, r.state]));
    if (entry.markerKey === key) return;
    entry.markerKey = key;
    const g = entry.svg.querySelector("g.markers");
    g.replaceChildren();
    const colors = regionColors(svc);
    const placed = []; // label boxes already placed, and the dots
    const dots = [];
    for (const r of svc.regions) {
      if (!r.location) continue;
      const [x, y] = project(r.location.lon, r.location.lat);
      dots.push({ r, x, y });
      placed.push({ x: x - 13, y: y - 13, w: 26, h: 26 });
    }
    for (const { r, x, y } of dots) {
      const m = svgEl("g", { class: "marker", "data-region": r.name, "data-state": r.state });
      m.append(svgEl("circle", { class: "ring", cx: x, cy: y, r: 17 }));
      m.append(svgEl("circle", { cx: x, cy: y, r: 10, fill: colors.get(r.name) }));
      // label box in map units (the font is 25 units; bold glyphs ~0.6 em wide)
      const w = r.name.length * 15 + 6;
      const h = 26;
      // candidate label positions: right, left, above, below, then further out
      const cands = [
        [x + 18, y - h / 2],
        [x - 18 - w, y - h / 2],
        [x - w / 2, y - 20 - h],
        [x - w / 2, y + 20],
        [x + 16, y + 8],
        [x + 16, y - h - 8],
        [x - 16 - w, y + 8],
        [x - 16 - w, y - h - 8],
      ];
      const free = (c) =>
        c[0] >= 2 &&
        c[0] + w <= world.width - 2 &&
        c[1] >= 2 &&
        c[1] + h <= world.height - 2 &&
        !placed.some((b) => c[0] < b.x + b.w && c[0] + w > b.x && c[1] < b.y + b.h && c[1] + h > b.y);
      const c = cands.find(free) || cands[0];
      placed.push({ x: c[0], y: c[1], w, h });
      const t = svgEl("text", { x: c[0] + 3, y: c[1] + h - 6 });
      t.textContent = r.name;
      m.append(t);
      g.append(m);
    }
  }

  // ---------------------------------------------------------------- table

  function buildRegionBody(name, r, demo) {
    const tb = el("tbody", { class: "region", "data-region": r.name });
    const actions = el("div", { class: "btn-group", role: "group", "aria-label": `force ${r.name}` });
    for (const [act, label, title] of [
      ["drain", "Drain", "stop sending new clients here"],
      ["up", "Up", "force up, whatever the health checks say"],
      ["down", "Down", "force down"],
      ["auto", "Auto", "follow the health checks again"],
    ]) {
      const b = el("button", { type: "button", class: "act", "data-action": act, title, text: label });
      b.addEventListener("click", () => {
        // The server says whom this drain would strand (routing.residency): ask first.
        const strands = act === "drain" ? tb.regionState?.drain_strands || [] : [];
        const question = drainQuestion(r.name, strands);
        // Without a token post() says what is missing first: a "yes" could not drain anyway.
        const token = sessionStorage.getItem(TOKEN_KEY);
        if (question && token && !window.confirm(question)) {
          message(`${r.name}: drain cancelled.`, "ok");
          return;
        }
        post(
          `/api/services/${encodeURIComponent(name)}/regions/${encodeURIComponent(r.name)}/state`,
          { state: act },
          `${r.name}: ${label.toLowerCase()}`,
          [...actions.querySelectorAll("button")],
        );
      });
      actions.append(b);
    }
    const main = el(
      "tr",
      { class: "main" },
      el("td", { class: "name" }, el("span", { class: "swatch" }), el("span", { class: "rname", text: r.name }), el("span", { class: "addr mono" })),
      el("td", { class: "state" }, el("span", { class: "badge" }), el("span", { class: "since" })),
      el("td", { class: "num check" }, el("span", { class: "latency" }), el("span", { class: "sub checked" })),
      el(
        "td",
        { class: "utilization" },
        el("div", { class: "util" }, el("div", { class: "bar" }, el("div", { class: "fill" })), el("span", { class: "pct" })),
      ),
      el("td", { class: "version mono" }),
      el("td", { class: "num answers" }),
      el("td", { class: "error" }),
      el("td", { class: "actions" }, actions),
    );
    // Each cell carries its column's name: on a phone the rows stack, one cell a line, and
    // the header row (which would be the only place saying what a cell is) is hidden.
    [...main.children].forEach((td, i) => setAttr(td, "data-label", REGION_COLUMNS[i][0]));
    tb.append(main);
    if (demo) tb.append(buildDemoRow(r.name));
    return tb;
  }

  function buildDemoRow(region) {
    const box = el("div", { class: "demo-controls" }, el("span", { class: "lbl", text: "demo" }));
    const url = `/api/demo/regions/${encodeURIComponent(region)}`;
    const all = () => [...box.querySelectorAll("button")];
    const modes = el("div", { class: "btn-group" });
    for (const [mode, label] of [["failing", "Fail"], ["healthy", "Heal"], ["slow", "Slow"]]) {
      const b = el("button", { type: "button", class: "act", "data-demo-mode": mode, text: label });
      b.addEventListener("click", () => post(url, { mode }, `${region}: demo ${mode}`, all()));
      modes.append(b);
    }
    const utils = el("div", { class: "btn-group" });
    for (const u of [0.3, 0.85, 0.97]) {
      const b = el("button", { type: "button", class: "act", "data-demo-utilization": u, text: `${Math.round(u * 100)}%` });
      b.addEventListener("click", () => post(url, { utilization: u }, `${region}: demo utilization ${u}`, all()));
      utils.append(b);
    }
    // Added to every answer of the region's API (not its health checks): what clients
    // measure and report (real-user measurements) sees it, the checks do not.
    const lats = el("div", { class: "btn-group" });
    for (const ms of [0, 80, 250]) {
      const b = el("button", { type: "button", class: "act", "data-demo-latency": ms, text: `+${ms} ms` });
      b.addEventListener("click", () => post(url, { latency: ms / 1000 }, `${region}: demo latency +${ms} ms`, all()));
      lats.append(b);
    }
    const version = el("input", { class: "demo-version mono", type: "text", placeholder: "ver", "aria-label": `${region} version` });
    const setv = el("button", { type: "button", class: "act", "data-demo-action": "version", text: "Set", style: "border-radius:4px" });
    setv.addEventListener("click", () => {
      const v = version.value.trim();
      if (v) post(url, { version: v }, `${region}: demo version ${v}`, all());
    });
    box.append(modes, "utilization", utils, "latency", lats, "version", version, setv);
    return el("tr", { class: "demo" }, el("td", { colspan: 8 }, box));
  }

  // "Draining eu-west-1 leaves continent EU clients with no region: they will be refused
  // (REFUSED). Drain anyway?", or null when the drain strands no residency rule's clients.
  function drainQuestion(region, strands) {
    if (!strands.length) return null;
    const who = strands.map((s) => `${s.clients} clients with no region: they will ${s.outcome}`);
    return `Draining ${region} leaves ${who.join("; and ")}. Drain anyway?`;
  }

  function patchRegion(tb, r, color) {
    tb.regionState = r; // what the buttons act on: the latest state, not the first
    tb.querySelector(".swatch").style.background = color;
    setText(tb.querySelector(".addr"), (r.addresses || []).join("  "));
    const badge = tb.querySelector(".state .badge");
    // A drain the rollout guard holds is a forced one too, but says who holds it.
    setText(badge, r.rollout === "draining" ? `${r.state} (rollout)` : r.forced ? `${r.state} (forced)` : r.state);
    setAttr(badge, "data-state", r.state);
    badge.classList.toggle("forced", !!r.forced);
    // an operator's force is kept across restarts: say who set it and when
    setAttr(badge, "title", r.forced_by ? `forced ${r.forced} by ${r.forced_by}, ${iso(r.forced_at)}` : null);
    // the health checks' own verdict, when it is not what clients get
    let sub = "";
    if (r.checked === null || r.checked === undefined) sub = "not checked";
    else if (r.checked !== r.state) sub = `checks: ${r.checked}`;
    const checked = tb.querySelector(".checked");
    setText(checked, sub);
    setAttr(checked, "data-checked", r.checked ?? "none");
    const since = tb.querySelector(".since");
    setText(since, ago(r.since));
    setAttr(since, "title", r.since ? `${r.state} since ${iso(r.since)}` : null);
    const lat = tb.querySelector(".latency");
    setText(lat, r.latency_ms === null || r.latency_ms === undefined ? "–" : `${r.latency_ms.toFixed(1)} ms`);
    setAttr(lat, "title", r.last_check ? `last check ${ago(r.last_check)} (${iso(r.last_check)})` : "not checked yet");
    const err = tb.querySelector(".error");
    setText(err, r.error || "");
    setAttr(err, "title", r.error || null);
    const util = tb.querySelector(".util");
    if (r.utilization === null || r.utilization === undefined) {
      setAttr(util, "data-value", null);
      setAttr(util, "data-level", null);
      tb.querySelector(".util .fill").style.width = "0";
      setText(tb.querySelector(".util .pct"), "–");
    } else {
      const u = r.utilization;
      setAttr(util, "data-value", u);
      setAttr(util, "data-level", u >= 0.9 ? "critical" : u >= 0.75 ? "high" : "normal");
      tb.querySelector(".util .fill").style.width = `${Math.min(100, Math.max(0, u * 100)).toFixed(0)}%`;
      setText(tb.querySelector(".util .pct"), `${Math.round(u * 100)}%`);
    }
    setText(tb.querySelector(".version"), r.version ?? "–");
    const n = r.answers_last_minute;
    setText(tb.querySelector(".answers"), n === null || n === undefined ? "–" : n.toLocaleString("en-US"));
    const forced = r.forced || "auto";
    for (const b of tb.querySelectorAll("button[data-action]")) {
      setAttr(b, "aria-pressed", b.dataset.action === forced ? "true" : "false");
    }
  }

  function buildService(svc) {
    const map = buildMap(svc.name);
    const table = el(
      "table",
      { class: "grid regions" },
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          ...REGION_COLUMNS.map(([t, c]) => el("th", { class: c || null, text: t })),
        ),
      ),
    );
    const section = el(
      "section",
      { class: "service card", "data-service": svc.name, id: `service-${svc.name}` },
      el("h2", {}, el("span", { class: "sname", text: svc.name }), el("span", { class: "meta" })),
      el("div", { class: "service-body" }, el("div", { class: "map-wrap" }, map.svg, el("div", { class: "legend" })), el("div", { class: "table-wrap" }, table)),
    );
    return { section, svg: map.svg, paths: map.paths, table, bodies: new Map(), regionKey: null, markerKey: null };
  }

  // " · version 42 · rollout to 43: running (us-east-1 draining)", or "" without versions
  function versionsText(v) {
    if (!v || !v.approved || v.approved.length === 0) return "";
    let out = ` · version ${v.approved.join(" + ")}`;
    const r = v.rollout;
    if (r && (r.status === "running" || r.status === "validated")) {
      const steps = Object.entries(r.regions || {}).map(([name, step]) => `${name} ${step.phase}`);
      out += ` · rollout to ${r.to}: ${r.status}${steps.length ? ` (${steps.join(", ")})` : ""}`;
    }
    return out;
  }

  function patchService(entry, svc, demo) {
    const meta = entry.section.querySelector("h2 .meta");
    const up = svc.regions.filter((r) => r.state === "up").length;
    setText(meta, `TTL ${svc.ttl}s · ${svc.answers} answer${svc.answers === 1 ? "" : "s"} · ${up}/${svc.regions.length} regions up${versionsText(svc.versions)}`);

    // table bodies: rebuilt only when the set or order of regions (or demo mode) changes
    const key = JSON.stringify([demo, svc.regions.map((r) => r.name)]);
    if (entry.regionKey !== key) {
      entry.regionKey = key;
      entry.table.querySelectorAll("tbody").forEach((b) => b.remove());
      entry.bodies.clear();
      for (const r of svc.regions) {
        const tb = buildRegionBody(svc.name, r, demo);
        entry.table.append(tb);
        entry.bodies.set(r.name, tb);
      }
    }
    const colors = regionColors(svc);
    for (const r of svc.regions) patchRegion(entry.bodies.get(r.name), r, colors.get(r.name));

    updateFills(entry, svc);
    updateMarkers(entry, svc);
    updateLegend(entry, svc, colors);
  }

  function updateLegend(entry, svc, colors) {
    const counts = new Map();
    const partly = new Map(); // region -> countries that send it only a share
    let refused = 0;
    for (const [cc, r] of Object.entries(svc.countries || {})) {
      const split = splitOf(svc, cc);
      if (split) {
        for (const [region] of split) if (region) partly.set(region, (partly.get(region) || 0) + 1);
      } else if (r === null) refused += 1;
      else counts.set(r, (counts.get(r) || 0) + 1);
    }
    const key = JSON.stringify([[...colors], [...counts], [...partly], refused]);
    if (entry.legendKey === key) return;
    entry.legendKey = key;
    const legend = entry.section.querySelector(".legend");
    legend.replaceChildren();
    for (const [name, color] of colors) {
      const n = counts.get(name) || 0;
      const part = partly.get(name) || 0;
      legend.append(
        el(
          "span",
          { class: "legend-item", "data-legend": name },
          el("span", { class: "swatch", style: `background:${color}` }),
          el("b", { text: name }),
          `${n} countr${n === 1 ? "y" : "ies"}` + (part ? `, ${part} in part` : ""),
        ),
      );
    }
    legend.append(
      el("span", { class: "legend-item", "data-legend": "refused" }, el("span", { class: "swatch refused" }), `refused (${refused})`),
      el("span", { class: "legend-item", "data-legend": "unrouted" }, el("span", { class: "swatch unrouted" }), "no data"),
    );
  }

  // --------------------------------------------------------------- header

  function patchHeader(server) {
    setText($("server-version"), server.version);
    setText($("config-version"), `v${server.config_version}`);
    setText($("config-loaded"), `${clock(server.config_loaded)} (${ago(server.config_loaded)})`);
    setAttr($("config-loaded"), "title", iso(server.config_loaded));
    setText($("server-uptime"), duration(server.now - server.started));
    const g = server.geoip || {};
    // The file's name only: /api/state shows no filesystem paths.
    setText($("geoip-path"), g.file || "none");
    setText($("geoip-build-date"), g.build_date || "?");
    // Merged: the largest network with the same answer; otherwise the GeoIP network's.
    const scopes = g.ecs_scopes || { state: "off" };
    const scopeText = {
      merged: "merged",
      building: "building…",
      waiting: "waiting",
      failed: "GeoIP networks (build failed)",
      off: "GeoIP networks",
    }[scopes.state] || scopes.state;
    setText($("ecs-scopes"), scopeText);
    setAttr($("ecs-scopes"), "data-state", scopes.state);
    setAttr($("ecs-scopes"), "title", scopes.error || "");
    const attr = $("geoip-attribution");
    if (attr.dataset.text !== (g.attribution || "")) {
      attr.dataset.text = g.attribution || "";
      attr.replaceChildren();
      if (g.attribution) {
        // link any URL in the licence text (a plain link: nothing is fetched)
        const parts = g.attribution.split(/(https?:\/\/[^\s)]+)/);
        parts.forEach((part, i) => attr.append(i % 2 ? el("a", { href: part, rel: "noreferrer", text: part }) : part));
      }
    }
    $("demo-badge").hidden = !server.demo;

    const banner = $("reload-error");
    const re = server.reload_error;
    if (re) {
      setText(
        $("reload-error-title"),
        `Config reload failed at ${clock(re.time)} (${ago(re.time)}): still serving config v${server.config_version} loaded ${clock(server.config_loaded)}.`,
      );
      const list = $("reload-errors");
      const key = JSON.stringify(re.errors || []);
      if (list.dataset.key !== key) {
        list.dataset.key = key;
        list.replaceChildren(...(re.errors || []).map((e) => el("li", { text: e })));
      }
      banner.hidden = false;
    } else {
      banner.hidden = true;
    }
  }

  // Latency measured by clients (POST /api/rum): per area, per region, the median time to
  // first byte with its samples; greyed while too few for routing to use it.
  function patchMeasured(measured) {
    const areas = (measured && measured.areas) || [];
    const key = JSON.stringify([measured || null, !!world]); // country names come with the map
    const section = $("measured");
    section.hidden = areas.length === 0;
    if (section.dataset.key === key) return;
    section.dataset.key = key;
    if (!areas.length) return;
    setText(
      $("measured-meta"),
      `median time to first byte reported by clients; used from ${measured.min_samples} samples, ` +
        `moves answers when better by ${measured.stabilize_ms} ms and ${measured.stabilize_percent}%`,
    );
    const regions = [...new Set(areas.flatMap((a) => Object.keys(a.regions)))].sort();
    const table = $("measured-table");
    table.querySelector("thead").replaceChildren(
      el("tr", {}, el("th", { text: "client area" }), ...regions.map((r) => el("th", { text: r }))),
    );
    table.querySelector("tbody").replaceChildren(
      ...areas.map((a) =>
        el(
          "tr",
          { "data-area": a.area, "data-level": a.level },
          el("td", { class: "mono", text: a.level === "country" ? `${countryName(a.area)} (${a.area})` : a.area }),
          ...regions.map((r) => {
            const e = a.regions[r];
            if (!e) return el("td", { class: "muted", text: "–" });
            return el(
              "td",
              { class: e.enough ? "ms" : "ms muted", "data-region": r, title: `${e.samples} samples, ${e.failed} failed, newest ${e.age_s} s ago` },
              `${Number(e.ms.toFixed(1))} ms `,
              el("span", { class: "muted", text: `(${e.samples})` }),
            );
          }),
        ),
      ),
    );
  }

  function patchChanges(changes) {
    const list = [...(changes || [])].sort((a, b) => b.time - a.time).slice(0, 50);
    const key = JSON.stringify(list);
    const tbody = $("changes").querySelector("tbody");
    $("changes-empty").hidden = list.length > 0;
    $("changes").hidden = list.length === 0;
    if (tbody.dataset.key === key) {
      // only the relative times move
      tbody.querySelectorAll("td.time").forEach((td, i) => setText(td.querySelector(".rel"), ago(list[i].time)));
      return;
    }
    tbody.dataset.key = key;
    const colorOf = (svcName, region) => {
      const svc = state.services.find((s) => s.name === svcName);
      return (svc && regionColors(svc).get(region)) || "#999";
    };
    tbody.replaceChildren(
      ...list.map((c) =>
        el(
          "tr",
          { "data-service": c.service, "data-change-region": c.region },
          el("td", { class: "time", title: iso(c.time) }, `${clock(c.time)} `, el("span", { class: "rel muted", text: ago(c.time) })),
          el("td", { class: "mono", text: c.service }),
          el("td", {}, el("span", { class: "swatch", style: `background:${colorOf(c.service, c.region)};margin-right:6px;vertical-align:-1px` }), c.region),
          el(
            "td",
            { class: "change" },
            el("span", { class: "badge", "data-state": c.from, text: c.from || "–" }),
            el("span", { class: "arrow", text: "→" }),
            el("span", { class: "badge", "data-state": c.to, text: c.to }),
          ),
          el("td", { class: "reason", text: c.reason || "" }),
        ),
      ),
    );
  }

  // ---------------------------------------------------------------- audit

  function patchAudit(data) {
    const list = data.records || [];
    setText($("audit-meta"), `kept in ${data.kept_in === "store" ? "the fleet store" : "memory"}, newest ${data.keep}` + (data.error ? ` · ${data.error}` : ""));
    $("audit-empty").hidden = list.length > 0;
    $("audit").hidden = list.length === 0;
    const tbody = $("audit").querySelector("tbody");
    const key = JSON.stringify(list);
    if (tbody.dataset.key === key) {
      tbody.querySelectorAll("td.time").forEach((td, i) => setText(td.querySelector(".rel"), ago(list[i].at)));
      return;
    }
    tbody.dataset.key = key;
    tbody.replaceChildren(
      ...list.map((r) =>
        el(
          "tr",
          { "data-who": r.who, "data-result": r.result },
          el("td", { class: "time", title: iso(r.at) }, `${clock(r.at)} `, el("span", { class: "rel muted", text: ago(r.at) })),
          el("td", { class: "who mono", text: r.who }),
          el("td", { class: "what", title: `${r.node} from ${r.remote || "?"}` }, [r.action, r.target, r.detail].filter(Boolean).join(" ")),
          el(
            "td",
            { class: "result" },
            el("span", { class: "badge", "data-result": r.result, text: `${r.result} ${r.status}` }),
            r.error ? el("span", { class: "reason", text: ` ${r.error}` }) : "",
          ),
        ),
      ),
    );
  }

  let auditTimer = null;
  async function refreshAudit() {
    clearTimeout(auditTimer);
    const ctl = new AbortController();
    const abort = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
    try {
      const res = await fetch(`/api/audit?limit=${AUDIT_ROWS}`, { cache: "no-store", signal: ctl.signal });
      if (res.ok) patchAudit(await res.json());
    } catch (_) {
      // the state poll reports an unreachable server; the next poll tries again
    } finally {
      clearTimeout(abort);
      auditTimer = setTimeout(refreshAudit, AUDIT_POLL_MS);
    }
  }

  // ---------------------------------------------------------------- fleet

  // The banner says what a cut-off node does: it goes on answering, and refuses changes.
  function patchStoreBanner(fleet) {
    const banner = $("store-error");
    const store = fleet && fleet.store;
    if (!store || store.connected) {
      banner.hidden = true;
      return;
    }
    setText(
      $("store-error-title"),
      `Shared store unreachable since ${clock(store.since)}: ${store.error || "no answer"}. ` +
        "Answering from the last shared state and this node's own checks; changes are refused.",
    );
    setAttr(banner, "title", `${store.kind}: ${store.description}`);
    banner.hidden = false;
  }

  function patchFleetStore(store) {
    const box = $("fleet-store");
    setAttr(box, "data-connected", store.connected ? "true" : "false");
    const key = JSON.stringify(store);
    if (box.dataset.key === key) return;
    box.dataset.key = key;
    const status = store.connected
      ? el("span", { class: "store-status", "data-connected": "true", text: "✓ connected" })
      : el("span", { class: "store-status", "data-connected": "false", text: "✗ unreachable" });
    // "embedded store …/state/.geodns-state.json": the kind is shown once, in bold.
    let where = store.description || "";
    for (const lead of [`${store.kind} store `, `${store.kind} `]) {
      if (where.startsWith(lead)) {
        where = where.slice(lead.length);
        break;
      }
    }
    const parts = [
      "store ",
      el("b", { class: "kind", text: store.kind }),
      " ",
      el("span", { class: "mono description", text: where, title: store.description }),
      " · ",
      status,
      el("span", { class: "since", title: iso(store.since) }, ` since ${clock(store.since)}`),
      " · revision ",
      el("b", { class: "revision mono", text: String(store.revision) }),
    ];
    if (store.round_trip_seconds !== null && store.round_trip_seconds !== undefined) {
      parts.push(` · commit to watch ${(store.round_trip_seconds * 1000).toFixed(0)} ms`);
    }
    if (store.lost) parts.push(` · lost ${store.lost} time${store.lost === 1 ? "" : "s"}`);
    if (!store.connected && store.error) parts.push(el("span", { class: "store-error mono", text: ` · ${store.error}` }));
    box.replaceChildren(...parts);
    const problems = $("fleet-problems");
    problems.replaceChildren(...(store.problems || []).map((p) => el("li", { text: p })));
    problems.hidden = !(store.problems || []).length;
  }

  function nodeRow(n) {
    const name = el("td", { class: "name" }, el("span", { class: "nname", text: n.name }));
    if (n.self) name.append(el("span", { class: "self-tag", text: "this node" }));
    return el(
      "tr",
      { "data-node": n.name, class: n.self ? "self" : null },
      name,
      el("td", { class: "mono dns", text: (n.dns || []).join("  ") || "–" }),
      el("td", { class: "mono http", text: n.http || "–" }),
      el("td", { class: "mono version", text: n.version || "–" }),
      el("td", { class: "started", title: iso(n.started) }),
      el("td", { class: "seen", title: iso(n.last_seen) }),
      el(
        "td",
        { class: "agrees", "data-agrees": String(n.agrees), title: `routing state digest ${n.digest || "–"}` },
        // null: this node is cut off from the store, so the others' digests are old news.
        n.agrees === null ? "? unknown" : n.agrees ? "✓ agrees" : "✗ differs",
      ),
    );
  }

  function voteCell(node, vote) {
    const td = el("td", { class: "vote", "data-node": node, "data-vote": vote ? vote.health : null });
    if (!vote) {
      td.append(el("span", { class: "muted", text: "–", title: "no vote" }));
      return td;
    }
    const facts = [`${node}: ${vote.health}`];
    if (vote.utilization !== null && vote.utilization !== undefined) facts.push(`utilization ${Math.round(vote.utilization * 100)}%`);
    if (vote.version) facts.push(`version ${vote.version}`);
    if (vote.error) facts.push(vote.error);
    td.append(el("span", { class: "badge", "data-state": vote.health, text: vote.health, title: facts.join(" · ") }));
    return td;
  }

  function votesTable(service, regions, names) {
    const voters = [...names];
    for (const v of Object.values(regions)) for (const n of Object.keys(v.votes || {})) if (!voters.includes(n)) voters.push(n);
    const self = state.fleet.node;
    const head = el(
      "tr",
      {},
      el("th", { text: "region" }),
      ...voters.map((n) => el("th", { class: "node", "data-node": n, text: n === self ? `${n} (this)` : n })),
      el("th", { text: "quorum" }),
    );
    const body = el("tbody");
    for (const [region, v] of Object.entries(regions)) {
      const result = v.result || "none";
      body.append(
        el(
          "tr",
          { "data-region": region },
          el("td", { class: "rname", text: region }),
          ...voters.map((n) => voteCell(n, (v.votes || {})[n])),
          el(
            "td",
            { class: "result", "data-result": result, title: v.reason || "" },
            el("span", { class: "badge", "data-state": v.result, text: v.result || "unchecked" }),
            el("span", { class: "policy", text: ` ${v.policy} · ${v.up} up / ${v.down} down` }),
          ),
        ),
      );
    }
    return el(
      "div",
      { class: "votes-wrap" },
      el("h3", { class: "mono", text: service }),
      el("div", { class: "table-wrap" }, el("table", { class: "grid votes", "data-service": service }, el("thead", {}, head), body)),
    );
  }

  function patchFleetTimes(fleet) {
    const rows = $("fleet-nodes").querySelectorAll("tbody tr");
    fleet.nodes.forEach((n, i) => {
      const tr = rows[i];
      if (!tr) return;
      setText(tr.querySelector(".seen"), n.self ? "now" : ago(n.last_seen));
      setText(tr.querySelector(".started"), ago(n.started));
    });
  }

  function patchFleet(fleet) {
    const section = $("fleet");
    if (!fleet) {
      section.hidden = true;
      return;
    }
    section.hidden = false;
    const differ = fleet.disagree.length;
    setText(
      $("fleet-meta"),
      `${fleet.nodes.length} node${fleet.nodes.length === 1 ? "" : "s"} · ` +
        (differ ? `${differ} differ${differ === 1 ? "s" : ""} from this node` : "all agree"),
    );
    patchFleetStore(fleet.store);
    // Rebuilt when anything but the times moves; the times follow in patchFleetTimes.
    const tbody = $("fleet-nodes").querySelector("tbody");
    const nodesKey = JSON.stringify(fleet.nodes.map((n) => ({ ...n, last_seen: null })));
    if (tbody.dataset.key !== nodesKey) {
      tbody.dataset.key = nodesKey;
      tbody.replaceChildren(...fleet.nodes.map(nodeRow));
    }
    patchFleetTimes(fleet);
    const votes = $("fleet-votes");
    const votesKey = JSON.stringify([fleet.node, fleet.nodes.map((n) => n.name), fleet.votes]);
    if (votes.dataset.key !== votesKey) {
      votes.dataset.key = votesKey;
      const names = fleet.nodes.map((n) => n.name);
      const tables = Object.entries(fleet.votes || {}).map(([service, regions]) => votesTable(service, regions, names));
      votes.replaceChildren(...tables);
      if (!tables.length) votes.append(el("p", { class: "muted empty", text: "No health votes yet: no region is checked." }));
    }
  }

  function render() {
    if (!state) return;
    patchHeader(state.server);
    patchStoreBanner(state.fleet);
    patchFleet(state.fleet);
    patchChanges(state.changes);
    patchMeasured(state.measured);
    if (!world) return; // the maps and tables follow once world.json is in
    const container = $("services");
    const seen = new Set();
    state.services.forEach((svc, i) => {
      seen.add(svc.name);
      let entry = services.get(svc.name);
      if (!entry) {
        entry = buildService(svc);
        services.set(svc.name, entry);
      }
      if (container.children[i] !== entry.section) container.insertBefore(entry.section, container.children[i] || null);
      patchService(entry, svc, !!state.server.demo);
    });
    for (const [name, entry] of services) {
      if (!seen.has(name)) {
        entry.section.remove();
        services.delete(name);
      }
    }
  }

  // -------------------------------------------------------------- polling

  function tick() {
    const u = $("updated");
    if (!lastOk) {
      setAttr(u, "data-status", lastError ? "stale" : "loading");
      setText($("updated-text"), lastError ? `server unreachable: ${lastError}` : "loading…");
    } else {
      const age = Math.round((Date.now() - lastOk) / 1000);
      setAttr(u, "data-status", lastError ? "stale" : "ok");
      setText($("updated-text"), lastError ? `unreachable · updated ${age}s ago` : `updated ${age}s ago`);
    }
    const banner = $("conn-error");
    if (lastError) {
      setText(
        banner,
        lastOk
          ? `Cannot reach the geodns admin server (${lastError}). The figures below are from ${Math.round((Date.now() - lastOk) / 1000)}s ago.`
          : `Cannot reach the geodns admin server (${lastError}).`,
      );
      banner.hidden = false;
    } else {
      banner.hidden = true;
    }
    if (state) {
      if (state.fleet) patchFleetTimes(state.fleet);
      // keep relative times moving between polls
      for (const [, entry] of services) {
        const svc = state.services.find((s) => s.name === entry.section.dataset.service);
        if (!svc) continue;
        for (const r of svc.regions) {
          const tb = entry.bodies.get(r.name);
          if (tb) setText(tb.querySelector(".since"), ago(r.since));
        }
      }
    }
  }

  let timer = null;
  let inflight = false;
  async function refresh() {
    clearTimeout(timer);
    if (inflight) return;
    inflight = true;
    const ctl = new AbortController();
    const abort = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
    try {
      const res = await fetch("/api/state", { cache: "no-store", signal: ctl.signal });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const data = await res.json();
      state = data;
      skew = data.server.now - Date.now() / 1000;
      lastOk = Date.now();
      lastError = null;
      render();
    } catch (err) {
      lastError = err.name === "AbortError" ? "timed out" : err.message || String(err);
    } finally {
      clearTimeout(abort);
      inflight = false;
      tick();
      timer = setTimeout(refresh, POLL_MS);
    }
  }

  async function loadWorld() {
    for (;;) {
      try {
        const res = await fetch("/static/world.json");
        if (res.ok) return await res.json();
      } catch (_) {
        // retried below
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  function start() {
    setupToken();
    $("message-close").addEventListener("click", () => ($("message").hidden = true));
    setInterval(tick, 1000);
    loadWorld().then((w) => {
      world = w;
      render();
    });
    refresh();
    refreshAudit();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
