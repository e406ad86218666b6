// The workshop console. Everything it shows comes from servicea: the
// scenario table (/console/scenarios), and the trace of each real request
// (/scenarioN?trace=1, the /console/* controls). No library, no CDN:
// this file is compiled into servicea.
"use strict";

(() => {
  const SVG = "http://www.w3.org/2000/svg";
  let scenarios = [];
  let last = null;
  let busy = false;

  // --- small DOM helpers ------------------------------------------------

  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function s(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function shorten(text, max) {
    text = String(text);
    return text.length > max ? text.slice(0, max - 1) + "…" : text;
  }

  function pathOf(url) {
    try {
      return new URL(url).pathname;
    } catch {
      return url;
    }
  }

  // --- reading a trace ----------------------------------------------------

  // A console endpoint's own error (servicea's JSON `message`).
  function messageOf(body) {
    return body && typeof body === "object" && typeof body.message === "string" ? body.message : JSON.stringify(body);
  }

  // A decoded token's header or claims: an object, whatever a callee sent.
  function fields(value) {
    return value && typeof value === "object" && !Array.isArray(value) ? value : {};
  }

  function kidOf(token) {
    return fields(token.header).kid || "none";
  }

  // The rows of the diagram, in order: a hop is its request, what the
  // callee recorded, then its answer.
  function flatten(events, rows, depth) {
    for (const e of events || []) {
      if (e.kind === "hop") {
        rows.push({ type: "req", e, depth });
        flatten(e.events, rows, depth + 1);
        rows.push({ type: "res", e, depth });
      } else {
        rows.push({ type: e.kind, e, depth });
      }
    }
    return rows;
  }

  function hopsOf(events, out) {
    for (const e of events || []) {
      if (e.kind === "hop") {
        out.push(e);
        hopsOf(e.events, out);
      }
    }
    return out;
  }

  // Every check, in order, each with how deep in the call chain it was made.
  function checksOf(events, out, depth = 0) {
    for (const e of events || []) {
      if (e.kind === "check") out.push({ ...e, depth });
      if (e.kind === "hop") checksOf(e.events, out, depth + 1);
    }
    return out;
  }

  // The request the browser made, as the first hop: its events are
  // servicea's. `status` is what servicea answered (for a scenario, what it
  // answers without the trace).
  function rootHop(method, url, step, status, ms) {
    return {
      kind: "hop",
      from: "browser",
      to: "servicea",
      method,
      url,
      status,
      ms,
      events: step.trace || [],
    };
  }

  // The deepest hop that failed: who gave the answer when nobody recorded
  // a refusal (nginx, an Envoy sidecar, a service that is down).
  function deepestFailure(events, depth = 0, found = null) {
    for (const e of events || []) {
      if (e.kind !== "hop") continue;
      if ((e.error || !e.status || e.status >= 400) && (!found || depth >= found.depth)) found = { hop: e, depth };
      found = deepestFailure(e.events, depth + 1, found);
    }
    return found;
  }

  // --- drawing ------------------------------------------------------------

  const ORDER = ["browser", "servicea", "jwt-factory", "gateway", "serviceb", "servicec"];

  function lanesOf(rows) {
    const seen = new Set();
    for (const r of rows) {
      for (const name of [r.e.from, r.e.to, r.e.by]) if (name) seen.add(name);
    }
    const known = ORDER.filter((n) => seen.has(n));
    return known.concat([...seen].filter((n) => !ORDER.includes(n)));
  }

  function diagram(root) {
    const rows = flatten([root], [], 0);
    const lanes = lanesOf(rows);
    // A fixed drawing width, scaled to the page: lanes spread across it.
    const width = 1200;
    const rowH = 46;
    const top = 60;
    const height = top + rows.length * rowH + 20;
    const laneW = lanes.length > 1 ? (width - 220) / (lanes.length - 1) : 0;
    const x = (name) => 110 + lanes.indexOf(name) * laneW;
    // Words beside a lane go right of it on the left half, left of it on
    // the right half, so they stay inside the picture.
    const beside = (name) =>
      lanes.indexOf(name) < lanes.length / 2
        ? { x: x(name) + 12, "text-anchor": "start" }
        : { x: x(name) - 12, "text-anchor": "end" };
    const g = s("svg", {
      viewBox: `0 0 ${width} ${height}`,
      role: "img",
      "aria-label": `sequence diagram: ${hopsOf([root], []).length} hops between ${lanes.join(", ")}`,
    });
    const defs = s("defs");
    for (const [id, color] of [["arrow", "#111"], ["arrow-bad", "#a4001d"]]) {
      const m = s("marker", { id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 8, markerHeight: 8, orient: "auto-start-reverse" });
      m.append(s("path", { d: "M0,0 L10,5 L0,10 z", fill: color }));
      defs.append(m);
    }
    g.append(defs);
    for (const name of lanes) {
      g.append(s("line", { class: "lane", x1: x(name), y1: 40, x2: x(name), y2: height - 10 }));
      g.append(s("rect", { class: "box", x: x(name) - 95, y: 8, width: 190, height: 34, rx: 6 }));
      g.append(s("text", { class: "lane-name", x: x(name), y: 31, "text-anchor": "middle" }, name));
    }
    rows.forEach((r, i) => {
      const y = top + i * rowH + 22;
      const e = r.e;
      if (r.type === "req" || r.type === "res") {
        const [a, b] = r.type === "req" ? [e.from, e.to] : [e.to, e.from];
        const bad = r.type === "res" && (e.error || !e.status || e.status >= 400);
        const line = s("line", {
          class: r.type + (bad ? " bad" : ""),
          x1: x(a),
          y1: y,
          x2: x(b) + (x(b) > x(a) ? -2 : 2),
          y2: y,
          "marker-end": `url(#${bad ? "arrow-bad" : "arrow"})`,
        });
        g.append(line);
        let label;
        if (r.type === "req") {
          const token = e.token ? `  + Bearer token (kid ${kidOf(e.token)})` : "";
          label = `${e.method} ${pathOf(e.url)}${token}`;
        } else if (e.error) {
          label = `no answer: ${e.error}`;
        } else {
          label = `${e.status}${e.ms ? ` · ${e.ms.toFixed(1)} ms` : ""}`;
        }
        const t = s("text", { x: Math.min(x(a), x(b)) + 8, y: y - 7, class: r.type === "res" ? (bad ? "bad" : "ok") : "" }, shorten(label, 56));
        t.append(s("title", {}, label));
        g.append(t);
      } else if (r.type === "check") {
        const refused = e.result === "refused";
        const label = refused
          ? `✘ refused${e.status ? ` (${e.status})` : ""}: ${e.reason || ""}`
          : `✔ ${e.result}: ${e.what}${e.kid ? ` (kid ${e.kid})` : ""}`;
        g.append(s("rect", { x: x(e.by) - 6, y: y - 14, width: 12, height: 20, fill: refused ? "#a4001d" : "#0a6b2c" }));
        const t = s("text", { ...beside(e.by), y: y + 1, class: refused ? "bad" : "ok" }, shorten(label, 60));
        t.append(s("title", {}, label));
        g.append(t);
      } else {
        const t = s("text", { ...beside(e.by), y: y + 1, class: "note" }, shorten(e.text, 60));
        t.append(s("title", {}, e.text));
        g.append(t);
      }
    });
    return h("div", { class: "diagram" }, g);
  }

  function hopsTable(root) {
    const rows = hopsOf([root], []).map((e, i) =>
      h(
        "tr",
        { "data-testid": "hop" },
        h("td", {}, i + 1),
        h("td", {}, `${e.from} → ${e.to}`),
        h("td", { class: "mono" }, `${e.method} ${pathOf(e.url)}`),
        h("td", { class: e.error || !e.status || e.status >= 400 ? "bad" : "ok" }, e.error ? `no answer: ${e.error}` : e.status),
        h("td", {}, e.ms ? `${e.ms.toFixed(1)} ms` : ""),
        h("td", {}, e.token ? `kid ${kidOf(e.token)}` : "")
      )
    );
    return h(
      "table",
      { class: "hops" },
      h("caption", { class: "hint" }, "Hops"),
      h("thead", {}, h("tr", {}, ["#", "from → to", "request", "status", "time", "token"].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows)
    );
  }

  function checksTable(root) {
    const checks = checksOf([root], []);
    if (checks.length === 0) return null;
    return h(
      "table",
      { class: "checks" },
      h("caption", { class: "hint" }, "Checks"),
      h("thead", {}, h("tr", {}, ["by", "what", "kid", "required", "result", "reason"].map((t) => h("th", {}, t)))),
      h(
        "tbody",
        {},
        checks.map((c) =>
          h(
            "tr",
            { "data-testid": "check" },
            h("td", {}, c.by),
            h("td", {}, c.what),
            h("td", { class: "mono" }, c.kid || ""),
            h("td", { class: "mono", "data-testid": "required" }, required(c.expected)),
            h("td", { class: c.result === "refused" ? "bad" : "ok" }, c.result + (c.status ? ` (${c.status})` : "")),
            h("td", {}, c.reason || "")
          )
        )
      )
    );
  }

  // The claims a check required, as `iss=… aud=… sub=…`.
  function required(expected) {
    return Object.entries(fields(expected))
      .map(([k, v]) => `${k}=${v}`)
      .join(" ");
  }

  function when(seconds) {
    return new Date(seconds * 1000).toLocaleTimeString();
  }

  function countdownText(exp) {
    const left = Math.round(exp - Date.now() / 1000);
    return left >= 0 ? `expires in ${left} s` : `EXPIRED ${-left} s ago`;
  }

  function tick() {
    for (const node of document.querySelectorAll(".countdown[data-exp]")) {
      const exp = Number(node.dataset.exp);
      node.textContent = countdownText(exp);
      node.classList.toggle("expired", exp < Date.now() / 1000);
    }
  }

  function tokenCard(hop) {
    const header = fields(hop.token.header);
    const claims = fields(hop.token.claims);
    const headerRows = ["alg", "kid", "typ"].map((k) =>
      h("tr", { "data-field": k }, h("th", {}, k), h("td", { class: "mono" }, header[k] === undefined ? "(none)" : header[k]))
    );
    const claimRows = Object.entries(claims).map(([k, v]) => {
      let value = typeof v === "object" ? JSON.stringify(v) : String(v);
      let extra = null;
      if (["exp", "iat", "nbf"].includes(k) && typeof v === "number") {
        value = `${v} (${when(v)})`;
        if (k === "exp") extra = h("span", { class: "countdown", "data-exp": v }, countdownText(v));
      }
      if (k === "aud") extra = h("span", { class: "hint" }, " ← the only service that may accept it");
      if (k === "cnf") extra = h("span", { class: "hint" }, " ← bound to the client certificate with this SHA-256 thumbprint (RFC 8705)");
      return h(
        "tr",
        { class: k === "aud" ? "aud" : k === "cnf" ? "cnf" : null, "data-claim": k },
        h("th", {}, k),
        h("td", { class: "mono" }, value, extra ? " " : null, extra)
      );
    });
    return h(
      "div",
      { class: "token", "data-testid": "token" },
      h("h4", {}, `${hop.from} → ${hop.to} · ${hop.method} ${pathOf(hop.url)}`),
      h("table", {}, h("caption", { class: "hint" }, "header"), h("tbody", {}, headerRows)),
      h("table", {}, h("caption", { class: "hint" }, "claims (decoded, not verified: the signature is not shown)"), h("tbody", {}, claimRows))
    );
  }

  function verdict(step, root) {
    const refusals = checksOf([root], []).filter((c) => c.result === "refused");
    const status = step.status;
    let node;
    if (status < 400) {
      const passed = checksOf([root], []).filter((c) => c.result !== "refused");
      const why = passed.length ? `${passed[passed.length - 1].by}: ${passed[passed.length - 1].what}` : "";
      node = h("p", { class: "verdict accepted", "data-testid": "verdict" }, `Accepted (${status})`, why && h("span", { class: "why" }, why));
    } else if (refusals.length > 0) {
      // The deepest refusal is the decision; the ones above relay it.
      const first = refusals.reduce((deepest, c) => (!deepest || c.depth > deepest.depth ? c : deepest), null);
      node = h(
        "p",
        { class: "verdict refused", "data-testid": "verdict" },
        `Refused by ${first.by} (${first.status || status})`,
        h("span", { class: "why", "data-testid": "reason" }, first.reason || step.reason || "")
      );
    } else {
      // No service recorded a refusal: nginx or an Envoy sidecar decided
      // (their JSON says so), or a dependency was down or too slow.
      const failed = deepestFailure(root.events);
      const answerBy = step.answer && typeof step.answer.by === "string" ? step.answer.by : null;
      const by = answerBy || (failed ? failed.hop.to : "servicea");
      // 5xx: a failure, not a decision (a dependency down, slow, or a
      // missing key file); the reason says which.
      const headline = status >= 500 ? `Failed (${status}) at ${by}` : `Refused by ${by} (${status})`;
      node = h(
        "p",
        { class: "verdict refused", "data-testid": "verdict" },
        headline,
        h("span", { class: "why", "data-testid": "reason" }, step.reason || (failed && failed.hop.error) || "")
      );
    }
    if (step.expect) {
      const got = status < 400 ? "accepted" : "refused";
      node.append(h("span", { class: "why" }, got === step.expect ? `As the lesson says: ${step.expect}.` : `The lesson expects ${step.expect}: look at the reason.`));
    }
    return node;
  }

  function renderStep(container, step, root, heading) {
    const box = h("div", { class: "step", "data-testid": "step" });
    if (heading) box.append(h("h3", {}, heading));
    box.append(verdict(step, root));
    box.append(diagram(root));
    box.append(hopsTable(root));
    const checks = checksTable(root);
    if (checks) box.append(checks);
    const tokens = hopsOf([root], []).filter((e) => e.token);
    if (tokens.length) box.append(h("h3", {}, "Tokens on the wire"), h("div", { class: "tokens" }, tokens.map(tokenCard)));
    box.append(h("details", {}, h("summary", {}, `The answer (request id ${step.request_id || "?"})`), h("pre", {}, JSON.stringify(step.answer, null, 2))));
    container.append(box);
  }

  function result(title, story) {
    const section = document.getElementById("result");
    section.replaceChildren(h("h2", { id: "result-title" }, title));
    section.dataset.done = "";
    if (story) section.append(h("p", { class: "story" }, story));
    return section;
  }

  function failed(section, what, err) {
    section.append(h("p", { class: "error", "data-testid": "error" }, `${what}: ${err.message}`));
  }

  // --- talking to servicea -----------------------------------------------

  async function json(url, options) {
    const started = performance.now();
    const response = await fetch(url, options);
    let body;
    try {
      body = await response.json();
    } catch {
      throw new Error(`${url} answered ${response.status} without JSON`);
    }
    if (!response.ok) throw new Error(`${url} answered ${response.status}: ${messageOf(body)}`);
    return { body, ms: performance.now() - started };
  }

  async function exclusive(work) {
    if (busy) return;
    busy = true;
    document.body.setAttribute("aria-busy", "true");
    for (const b of document.querySelectorAll("button")) b.disabled = true;
    try {
      await work();
    } finally {
      for (const b of document.querySelectorAll("button")) b.disabled = false;
      document.body.removeAttribute("aria-busy");
      busy = false;
    }
  }

  function run(n, expired) {
    const sc = scenarios.find((x) => x.n === n);
    if (!sc) return;
    return exclusive(async () => {
      last = n;
      for (const li of document.querySelectorAll("#scenarios li")) li.classList.toggle("current", li.dataset.scenario === String(n));
      const section = result(`Scenario ${n}, ${expired ? "expired token" : "valid"}: running…`, sc.story);
      const url = `${sc.path}?trace=1${expired ? "&expired=1" : ""}`;
      try {
        const { body, ms } = await json(url);
        section.querySelector("h2").textContent = `Scenario ${n}, ${expired ? "expired token" : "valid"}: ${body.status}`;
        section.dataset.done = `${n}-${expired ? "expired" : "valid"}`;
        renderStep(section, body, rootHop("GET", `${location.origin}${sc.path}`, body, body.status, ms));
      } catch (err) {
        failed(section, `scenario ${n}`, err);
      }
    });
  }

  const CONTROLS = {
    keys: { title: "servicea's key at jwt-factory: its phases, and what the JWK Set publishes", method: "GET", url: "/console/factory-keys" },
    rotate: { title: "Rotate servicea's key at jwt-factory", method: "POST", url: "/console/factory-keys/rotate", then: "keys" },
    replay: { title: "The replay lesson: a stolen bearer token works, a stolen bound token does not", method: "POST", url: "/console/replay" },
    forge: { title: "The gateway lesson: a forged identity header", method: "POST", url: "/console/forge" },
    audit: { title: "Who used servicea's key? OpenBao's audit log", method: "GET", url: "/console/key-audit" },
  };

  function auditTable(step) {
    const answer = step.answer || {};
    const rows = answer.signatures || [];
    return h(
      "table",
      { class: "keys", "data-testid": "audit" },
      h("caption", { class: "hint" }, `${answer.total ?? 0} signatures with servicea's keys in ${answer.log || "the audit log"} (the last ${rows.length})`),
      h("thead", {}, h("tr", {}, ["time", "key", "by", "policies"].map((t) => h("th", {}, t)))),
      h(
        "tbody",
        {},
        rows.map((r) =>
          h(
            "tr",
            {},
            h("td", { class: "mono" }, r.time || ""),
            h("td", { class: "mono" }, r.key || ""),
            h("td", {}, r.by || ""),
            h("td", {}, (r.policies || []).join(", "))
          )
        )
      )
    );
  }

  function keysTable(step) {
    const status = (step.answer && step.answer.status) || {};
    const published = new Set((step.answer && step.answer.published) || []);
    const keys = status.keys || [];
    return h(
      "table",
      { class: "keys", "data-testid": "keys" },
      h("caption", { class: "hint" }, `servicea's keys (a new key is published ${status.publishAheadSecs ?? "?"} s before it signs)`),
      h("thead", {}, h("tr", {}, ["kid", "phase", "in the JWK Set", "signs from", "retired at", "verifies until"].map((t) => h("th", {}, t)))),
      h(
        "tbody",
        {},
        keys.map((k) =>
          h(
            "tr",
            { "data-kid": k.kid },
            h("td", { class: "mono" }, k.kid),
            h("td", { class: "phase" }, k.phase),
            h("td", {}, published.has(k.kid) ? "yes" : "no"),
            h("td", {}, k.activatesAt || ""),
            h("td", {}, k.retiredAt || ""),
            h("td", {}, k.validUntil || "")
          )
        )
      )
    );
  }

  function control(name) {
    const c = CONTROLS[name];
    return exclusive(async () => {
      const section = result(c.title);
      const headers = c.method === "POST" ? { "x-console": "1" } : {};
      try {
        const { body, ms } = await json(c.url, { method: c.method, headers });
        await showSteps(section, c, body, ms);
        if (c.then) {
          const next = CONTROLS[c.then];
          const more = await json(next.url, { method: next.method });
          await showSteps(section, next, more.body, more.ms);
        }
        section.dataset.done = name;
      } catch (err) {
        failed(section, c.title, err);
      }
    });
  }

  async function showSteps(section, c, body, ms) {
    const steps = body.steps || [];
    for (const step of steps) {
      if (c.url === "/console/factory-keys" && step.status < 400) section.append(keysTable(step));
      if (c.url === "/console/key-audit" && step.status < 400) section.append(auditTable(step));
      const root = rootHop(c.method, `${location.origin}${c.url}`, step, 200, steps.length === 1 ? ms : null);
      renderStep(section, step, root, step.title);
    }
  }

  // --- the page -----------------------------------------------------------

  function list() {
    const ol = document.getElementById("scenarios");
    ol.replaceChildren(
      ...scenarios.map((sc) =>
        h(
          "li",
          { "data-scenario": sc.n },
          h("span", { class: "n" }, `${sc.n}.`),
          h("code", {}, sc.path),
          h("span", { class: "teaches" }, sc.teaches),
          h("button", { type: "button", "data-run": sc.n, "aria-label": `Run scenario ${sc.n} with a valid token` }, "Run"),
          " ",
          h("button", { type: "button", class: "expired", "data-run": sc.n, "data-expired": "1", "aria-label": `Run scenario ${sc.n} with an expired token` }, "Run expired")
        )
      )
    );
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    if (button.dataset.run) run(Number(button.dataset.run), button.dataset.expired === "1");
    else if (button.dataset.control) control(button.dataset.control);
  });

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (/^[0-9]$/.test(event.key)) {
      run(event.key === "0" ? 10 : Number(event.key), false);
    } else if ((event.key === "e" || event.key === "E") && last !== null) {
      run(last, true);
    }
  });

  async function start() {
    try {
      const { body } = await json("/console/scenarios");
      scenarios = body;
      list();
      document.body.dataset.ready = "1";
    } catch (err) {
      failed(document.getElementById("result"), "loading the scenario table", err);
    }
    setInterval(tick, 1000);
  }

  start();
})();
