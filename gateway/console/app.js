/* EUCCS control-room console.
 *
 * Plain JavaScript, no build step, no external resources. Initial state comes from the GET
 * endpoints of /api/v1, live updates from the Server-Sent Events stream /api/v1/events
 * (reconnected with back-off; every (re)connection resynchronises from the GET endpoints).
 *
 * Safety rule: every string from the API goes into the page through textContent or
 * setAttribute (never event-handler attributes), never through HTML parsing.
 */
"use strict";

(() => {
  const API = "/api/v1";
  const PRESENCE = ["ONLINE", "STALE", "OFFLINE", "UNKNOWN"];
  const PRIORITIES = ["routine", "high", "imminent_peril", "emergency"];
  const FINAL_STATES = new Set(["delivered", "read", "failed", "expired", "refused"]);
  const LOG_LIMIT = 200;
  const SVG_NS = "http://www.w3.org/2000/svg";

  const state = {
    units: new Map(), // unit id -> unit
    groups: new Map(), // group name -> group
    messages: new Map(), // message_id -> message
    alerts: new Map(), // alert_id -> alert
    links: null,
    outline: null,
    selectedUnit: null,
    connected: false,
  };

  // ------------------------------------------------------------------ helpers

  const $ = (id) => document.getElementById(id);

  /** Create an element; attrs are set with setAttribute (never event handlers). */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function setAttrs(el, attrs) {
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (/^on/i.test(key)) throw new Error("event handler attributes are not allowed");
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }

  function append(el, children) {
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  function text(value, fallback = "—") {
    if (value === null || value === undefined || value === "") return fallback;
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  /** Parse an API time (ISO 8601 string, epoch seconds or milliseconds) into a Date. */
  function toDate(value) {
    if (value === null || value === undefined || value === "") return null;
    if (typeof value === "number") return new Date(value > 1e12 ? value : value * 1000);
    const d = new Date(value);
    return Number.isNaN(d.getTime()) ? null : d;
  }

  function clock(value) {
    const d = toDate(value);
    if (!d) return "—";
    return d.toLocaleTimeString("en-GB", { hour12: false });
  }

  function ago(value) {
    const d = toDate(value);
    if (!d) return "never";
    const seconds = Math.max(0, Math.round((Date.now() - d.getTime()) / 1000));
    if (seconds < 60) return `${seconds} s ago`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
    return d.toLocaleDateString("en-GB");
  }

  function presenceOf(unit) {
    const value = String(unit.availability || "UNKNOWN").toUpperCase();
    return PRESENCE.includes(value) ? value : "UNKNOWN";
  }

  function unitName(id) {
    const unit = state.units.get(id);
    return unit && unit.label ? `${unit.label}` : id;
  }

  /** Describe an address object ({unit}, {group}, {nation}...) or string for display. */
  function describeAddress(address) {
    if (address === null || address === undefined) return "—";
    if (typeof address === "string") return state.units.has(address) ? unitName(address) : address;
    if (typeof address === "object") {
      if (address.unit) return unitName(address.unit);
      if (address.group) return `group ${address.group}`;
      if (address.label) return String(address.label);
      const parts = Object.values(address).filter((v) => typeof v === "string");
      if (parts.length) return parts.join(" ");
    }
    return text(address);
  }

  function debounce(fn, ms) {
    let timer = null;
    return () => {
      clearTimeout(timer);
      timer = setTimeout(fn, ms);
    };
  }

  class ApiError extends Error {
    constructor(status, body) {
      super(ApiError.describe(status, body));
      this.status = status;
      this.body = body;
    }

    static describe(status, body) {
      if (status === 401 || status === 403) {
        return `Refused (${status}): this console's certificate is not allowed to do that.`;
      }
      if (body && typeof body === "object" && body.error) {
        const detail = body.detail === undefined || body.detail === null ? "" : body.detail;
        const detailText = typeof detail === "string" ? detail : JSON.stringify(detail);
        return detailText ? `${body.error}: ${detailText}` : String(body.error);
      }
      return `HTTP ${status}`;
    }
  }

  async function api(path, options = {}) {
    const init = {
      method: options.method || "GET",
      headers: { Accept: "application/json" },
      credentials: "same-origin",
      cache: "no-store",
    };
    if (options.body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.body);
    }
    const response = await fetch(`${API}${path}`, init);
    let body = null;
    const type = response.headers.get("Content-Type") || "";
    if (type.includes("json")) {
      try {
        body = await response.json();
      } catch (_err) {
        body = null;
      }
    }
    if (!response.ok) throw new ApiError(response.status, body);
    return body;
  }

  /** Accept a list or an object wrapping one ({units: [...]}, {items: [...]}). */
  function listOf(body, key) {
    if (Array.isArray(body)) return body;
    if (body && typeof body === "object") {
      for (const k of [key, "items", "data", "results"]) {
        if (Array.isArray(body[k])) return body[k];
      }
    }
    return [];
  }

  // ------------------------------------------------------------------ units

  function mergeUnit(update) {
    const id = update.unit;
    if (!id) return;
    const old = state.units.get(id) || {};
    state.units.set(id, { ...old, ...update });
  }

  function renderUnits() {
    const tbody = $("unit-rows");
    const filter = $("unit-filter").value.trim().toLowerCase();
    const units = [...state.units.values()].sort(
      (a, b) =>
        String(a.nation).localeCompare(String(b.nation)) ||
        String(a.label || a.unit).localeCompare(String(b.label || b.unit)),
    );
    const counts = Object.fromEntries(PRESENCE.map((p) => [p, 0]));
    const rows = [];
    for (const unit of units) {
      const presence = presenceOf(unit);
      counts[presence] += 1;
      const haystack = [unit.unit, unit.label, unit.nation, presence, ...(unit.groups || [])]
        .join(" ")
        .toLowerCase();
      if (filter && !haystack.includes(filter)) continue;
      const groups = Array.isArray(unit.groups) ? unit.groups : [];
      const row = h(
        "tr",
        {
          "data-unit": unit.unit,
          "data-availability": presence,
          class: unit.unit === state.selectedUnit ? "selected" : null,
        },
        h(
          "td",
          {},
          h("span", { class: `presence presence-${presence}` }, presence),
          h(
            "time",
            { class: "heard", datetime: toDate(unit.last_heard)?.toISOString() },
            ago(unit.last_heard),
          ),
        ),
        h(
          "td",
          {},
          h(
            "button",
            {
              type: "button",
              class: "unit-button",
              "data-unit": unit.unit,
              title: "Address this unit in the compose form",
            },
            h("span", { class: "nation" }, text(unit.nation, "??")),
            text(unit.label, unit.unit),
          ),
          h("span", { class: "unit-id" }, unit.unit),
        ),
        h(
          "td",
          { class: "groups" },
          groups.length ? groups.map((g) => h("span", {}, text(g))) : "—",
        ),
      );
      rows.push(row);
    }
    const focused = tbody.contains(document.activeElement)
      ? document.activeElement.dataset.unit
      : null;
    tbody.replaceChildren(...rows);
    if (focused) {
      tbody.querySelector(`button.unit-button[data-unit="${CSS.escape(focused)}"]`)?.focus();
    }
    $("units-empty").hidden = state.units.size > 0;
    $("units-summary").textContent = state.units.size
      ? PRESENCE.filter((p) => counts[p]).map((p) => `${counts[p]} ${p.toLowerCase()}`).join(" · ")
      : "";
    renderDestinations();
    renderMap();
  }

  function selectUnit(id) {
    state.selectedUnit = id;
    const select = $("compose-destination");
    const unit = state.units.get(id);
    if (unit && unit.local === true) {
      feedback(
        `${text(unit.label, id)} is a unit of ${text(unit.nation, "this country")}: ` +
          "reach it through the national system.",
        "info",
      );
    } else {
      select.value = `unit:${id}`;
    }
    for (const row of $("unit-rows").querySelectorAll("tr")) {
      row.classList.toggle("selected", row.dataset.unit === id);
    }
    renderMap();
    if (unit && unit.local === true) return;
    const kind = composeKind();
    (kind === "text" ? $("compose-text") : kind === "status" ? $("compose-status") : select).focus();
  }

  // ------------------------------------------------------------------ map

  /** Degrees of latitude/longitude -> SVG coordinates (equirectangular, cos(lat) scaled). */
  function projection(bounds, width, height, pad) {
    const kx = Math.cos(((bounds.south + bounds.north) / 2) * (Math.PI / 180));
    const spanX = (bounds.east - bounds.west) * kx;
    const spanY = bounds.north - bounds.south;
    const scale = Math.min((width - 2 * pad) / spanX, (height - 2 * pad) / spanY);
    const offX = (width - spanX * scale) / 2;
    const offY = (height - spanY * scale) / 2;
    return {
      x: (lon) => offX + (lon - bounds.west) * kx * scale,
      y: (lat) => offY + (bounds.north - lat) * scale,
      // The visible extent (the map may show more than the bounds on one axis).
      west: bounds.west - offX / (kx * scale),
      east: bounds.west + (width - offX) / (kx * scale),
      north: bounds.north + offY / scale,
      south: bounds.north - (height - offY) / scale,
    };
  }

  function mapBounds(located) {
    const base = (state.outline && state.outline.bounds) || {
      south: 48.54,
      north: 48.6,
      west: 7.71,
      east: 7.86,
    };
    const b = { ...base };
    for (const unit of located) {
      const { lat, lon } = unit.location;
      b.south = Math.min(b.south, lat - 0.005);
      b.north = Math.max(b.north, lat + 0.005);
      b.west = Math.min(b.west, lon - 0.008);
      b.east = Math.max(b.east, lon + 0.008);
    }
    return b;
  }

  function gridStep(span) {
    for (const step of [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5]) {
      if (span / step <= 8) return step;
    }
    return 10;
  }

  function hasLocation(unit) {
    const loc = unit.location;
    return (
      loc && typeof loc === "object" && Number.isFinite(loc.lat) && Number.isFinite(loc.lon)
    );
  }

  function renderMap() {
    const svg = $("map");
    const box = svg.getBoundingClientRect();
    const width = Math.max(320, Math.round(box.width) || 640);
    const height = Math.max(200, Math.round(box.height) || 360);
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const located = [...state.units.values()].filter(hasLocation);
    const p = projection(mapBounds(located), width, height, 24);
    const layers = [];

    // Lat/lon grid.
    const stepLat = gridStep(p.north - p.south);
    const stepLon = gridStep(p.east - p.west);
    const grid = s("g", { "aria-hidden": "true" });
    for (let lat = Math.ceil(p.south / stepLat) * stepLat; lat <= p.north; lat += stepLat) {
      const y = p.y(lat);
      grid.append(s("line", { class: "grid-line", x1: 0, x2: width, y1: y, y2: y }));
      grid.append(s("text", { class: "grid-label", x: 4, y: y - 3 }, `${lat.toFixed(3)}° N`));
    }
    for (let lon = Math.ceil(p.west / stepLon) * stepLon; lon <= p.east; lon += stepLon) {
      const x = p.x(lon);
      grid.append(s("line", { class: "grid-line", x1: x, x2: x, y1: 0, y2: height }));
      grid.append(
        s("text", { class: "grid-label", x: x + 3, y: height - 4 }, `${lon.toFixed(3)}° E`),
      );
    }
    layers.push(grid);

    // Bundled outline (schematic): rivers, border, roads, place names.
    if (state.outline) {
      const outline = s("g", { "aria-hidden": "true" });
      const path = (coords) =>
        coords
          .map(([lat, lon], i) => `${i ? "L" : "M"}${p.x(lon).toFixed(1)},${p.y(lat).toFixed(1)}`)
          .join(" ");
      for (const feature of state.outline.lines || []) {
        outline.append(s("path", { class: feature.kind, d: path(feature.coords) }));
      }
      for (const place of state.outline.places || []) {
        outline.append(
          s(
            "text",
            {
              class: place.kind === "area" ? "area-label" : "place",
              x: p.x(place.lon),
              y: p.y(place.lat),
              "text-anchor": "middle",
            },
            place.name,
          ),
        );
      }
      layers.push(outline);
    }

    // Units.
    const alerting = new Set(
      [...state.alerts.values()].map((a) => (a.origin && a.origin.unit) || a.origin),
    );
    const markers = s("g", {});
    for (const unit of located) {
      const presence = presenceOf(unit);
      const x = p.x(unit.location.lon);
      const y = p.y(unit.location.lat);
      const emergency = alerting.has(unit.unit);
      const marker = s(
        "g",
        {
          class: `unit-marker${unit.unit === state.selectedUnit ? " selected" : ""}`,
          "data-unit": unit.unit,
        },
        s(
          "title",
          {},
          `${text(unit.label, unit.unit)} (${unit.nation}) — ${presence}` +
            `${emergency ? " — EMERGENCY" : ""}` +
            ` — ${unit.location.lat.toFixed(4)}, ${unit.location.lon.toFixed(4)}` +
            ` at ${clock(unit.location.at)}`,
        ),
        s("circle", {
          cx: x,
          cy: y,
          r: emergency ? 9 : 6,
          class: emergency ? "m-emergency" : `m-${presence}`,
        }),
        s("text", { x: x + 9, y: y + 4 }, text(unit.label, unit.unit)),
      );
      markers.append(marker);
    }
    layers.push(markers);
    svg.replaceChildren(...layers);
    $("map-summary").textContent =
      `${located.length} of ${state.units.size} units located` +
      (state.outline ? " · schematic outline, not to survey accuracy" : "");
  }

  async function loadOutline() {
    try {
      const response = await fetch("map-outline.json", { cache: "force-cache" });
      if (response.ok) state.outline = await response.json();
    } catch (_err) {
      state.outline = null; // the grid alone still works
    }
    renderMap();
  }

  // ------------------------------------------------------------------ alerts

  function isOutstanding(alert) {
    return !alert.acknowledged_by && !alert.acknowledged_at && alert.acknowledged !== true;
  }

  function mergeAlert(update) {
    const id = update.alert_id;
    if (!id) return;
    const merged = { ...(state.alerts.get(id) || {}), ...update };
    if (isOutstanding(merged)) {
      const isNew = !state.alerts.has(id);
      state.alerts.set(id, merged);
      if (isNew) announce(merged);
    } else {
      state.alerts.delete(id);
    }
  }

  function announce(alert) {
    $("alerts-live").textContent =
      `Emergency from ${describeAddress(alert.origin)} at ${clock(alert.raised_at)}.`;
  }

  function sortedAlerts() {
    return [...state.alerts.values()].sort(
      (a, b) => (toDate(a.raised_at)?.getTime() || 0) - (toDate(b.raised_at)?.getTime() || 0),
    );
  }

  function renderAlerts() {
    const section = $("alerts");
    const list = $("alert-list");
    const alerts = sortedAlerts();
    const focusedId = document.activeElement?.dataset?.alertId;
    const items = alerts.map((alert) => {
      const origin = describeAddress(alert.origin);
      const originUnit = state.units.get((alert.origin && alert.origin.unit) || alert.origin);
      const button = h(
        "button",
        { type: "button", class: "ack", "data-alert-id": alert.alert_id },
        "Acknowledge",
      );
      return h(
        "li",
        { class: "alert", "data-alert-id": alert.alert_id },
        h("span", { class: "alert-label" }, "EMERGENCY"),
        h(
          "span",
          { class: "alert-text" },
          h("strong", {}, origin),
          originUnit && originUnit.nation ? ` (${originUnit.nation})` : "",
          alert.target || alert.destination
            ? ` → ${describeAddress(alert.target || alert.destination)}`
            : "",
          alert.summary ? ` — ${text(alert.summary)}` : "",
        ),
        h("span", { class: "alert-time" }, `raised ${clock(alert.raised_at)}`),
        button,
      );
    });
    list.replaceChildren(...items);
    section.hidden = alerts.length === 0;
    if (focusedId) list.querySelector(`button[data-alert-id="${CSS.escape(focusedId)}"]`)?.focus();
    renderMap();
  }

  async function acknowledge(alertId, button) {
    if (button) button.disabled = true;
    try {
      const body = await api(`/alerts/${encodeURIComponent(alertId)}/ack`, {
        method: "POST",
        body: {},
      });
      const acked = body && typeof body === "object" && body.alert_id ? body : null;
      state.alerts.delete(alertId);
      if (acked && isOutstanding(acked)) state.alerts.set(alertId, acked);
      $("alerts-live").textContent = "Emergency acknowledged.";
      feedback("Emergency acknowledged.", "ok");
      renderAlerts();
      if (!state.alerts.size) $("compose-destination").focus();
    } catch (err) {
      if (button) button.disabled = false;
      feedback(`Acknowledge failed: ${err.message}`, "error");
    }
  }

  // ------------------------------------------------------------------ messages

  function stateName(entry) {
    return String((entry && (entry.state || entry.name)) || "").toLowerCase();
  }

  function mergeMessage(update) {
    const id = update.message_id;
    if (!id) return false;
    const old = state.messages.get(id);
    const merged = { ...(old || {}), ...update };
    const oldStates = old && Array.isArray(old.states) ? old.states : [];
    if (
      !Array.isArray(update.states) ||
      (update.states.length < oldStates.length && !(old && old.optimistic))
    ) {
      // A single state change, or a full answer older than what the stream already told.
      merged.states = [...oldStates];
    }
    // A single state change: {message_id, state, at, reason}.
    if (update.state && !Array.isArray(update.states)) {
      const entry = { state: update.state, at: update.at, reason: update.reason };
      const last = merged.states[merged.states.length - 1];
      if (!last || stateName(last) !== stateName(entry)) {
        merged.states.push(entry);
      }
    }
    if (Array.isArray(update.states)) merged.optimistic = Boolean(update.optimistic);
    merged.fresh = !old;
    state.messages.set(id, merged);
    // Keep the log bounded.
    if (state.messages.size > LOG_LIMIT) {
      const oldest = [...state.messages.values()]
        .sort((a, b) => messageTime(a) - messageTime(b))
        .slice(0, state.messages.size - LOG_LIMIT);
      for (const m of oldest) state.messages.delete(m.message_id);
    }
    return !old || !old.time;
  }

  function messageTime(message) {
    return (
      toDate(message.time)?.getTime() ||
      toDate(message.states && message.states[0] && message.states[0].at)?.getTime() ||
      0
    );
  }

  function renderStates(message) {
    const states = Array.isArray(message.states) ? message.states : [];
    const wrap = h("div", { class: "states" });
    states.forEach((entry, i) => {
      const name = stateName(entry) || "?";
      if (i) wrap.append(h("span", { class: "state-sep", "aria-hidden": "true" }, "›"));
      wrap.append(
        h(
          "span",
          {
            class: `state s-${name}${i === states.length - 1 ? " current" : ""}`,
            title: entry.at ? `${name} at ${clock(entry.at)}` : name,
          },
          name,
        ),
      );
    });
    const last = states[states.length - 1];
    const cell = h("td", { class: "delivery" }, wrap);
    if (last && last.reason) cell.append(h("span", { class: "reason" }, text(last.reason)));
    return cell;
  }

  function renderLog() {
    const messages = [...state.messages.values()].sort((a, b) => messageTime(b) - messageTime(a));
    const rows = messages.map((message) => {
      const states = Array.isArray(message.states) ? message.states : [];
      const current = stateName(states[states.length - 1]) || "pending";
      const priority = String(message.priority || "routine").toLowerCase();
      const row = h(
        "tr",
        {
          "data-message-id": message.message_id,
          "data-state": current,
          class: message.fresh ? "fresh" : null,
        },
        h("td", { class: "time" }, clock(message.time || (states[0] && states[0].at))),
        h("td", {}, describeAddress(message.origin)),
        h("td", {}, describeAddress(message.destination)),
        h("td", { class: `prio prio-${priority}` }, priority.replace("_", " ")),
        h("td", { class: "summary-cell" }, text(message.summary, "")),
        renderStates(message),
      );
      message.fresh = false;
      return row;
    });
    $("log-rows").replaceChildren(...rows);
    $("log-empty").hidden = messages.length > 0;
    const open = messages.filter((m) => {
      const states = m.states || [];
      return !FINAL_STATES.has(stateName(states[states.length - 1]));
    }).length;
    $("log-summary").textContent = messages.length
      ? `${messages.length} shown · ${open} in progress`
      : "";
  }

  async function fetchMessage(id) {
    try {
      mergeMessage(await api(`/messages/${encodeURIComponent(id)}`));
      renderLog();
    } catch (_err) {
      /* the next resync will bring it */
    }
  }

  // ------------------------------------------------------------------ links

  const HEALTH = {
    up: "ok",
    ok: "ok",
    connected: "ok",
    healthy: "ok",
    online: "ok",
    degraded: "warn",
    stale: "warn",
    connecting: "warn",
    transient_disconnect: "warn",
    unknown_error: "bad",
    bad_credentials: "bad",
    stopped: "bad",
    down: "bad",
    failed: "bad",
    offline: "bad",
    disconnected: "bad",
  };

  function health(value) {
    return HEALTH[String(value || "").toLowerCase()] || "unknown";
  }

  function words(value) {
    return text(value, "unknown").replaceAll("_", " ");
  }

  /** Flatten the /links answer into [{kind, name, ...fields}]. */
  function linkEntries(body) {
    const entries = [];
    const add = (kind, list) => {
      for (const item of Array.isArray(list) ? list : []) {
        if (!item || typeof item !== "object") continue;
        const name = item.nation || item.partner || item.name || item.adapter || "?";
        entries.push({ ...item, kind, name });
      }
    };
    if (body && typeof body === "object" && !Array.isArray(body)) {
      add("partner", body.partners);
      add("adapter", body.adapters);
    } else {
      add("link", body);
    }
    return entries;
  }

  function linkState(entry) {
    return entry.link ?? entry.state ?? entry.status;
  }

  function queueDepths(entry) {
    const queue = entry.queue || entry.queues || null;
    const raw = queue && typeof queue === "object" ? queue.depths || queue : null;
    const depths = {};
    for (const priority of PRIORITIES) depths[priority] = Number((raw && raw[priority]) || 0);
    return depths;
  }

  function fact(label, value) {
    return [h("dt", {}, label), h("dd", {}, value)];
  }

  function canaryText(canary) {
    if (!canary || typeof canary !== "object") return text(canary, "none");
    const rtt = Number.isFinite(canary.rtt_ms) ? ` · RTT ${Math.round(canary.rtt_ms)} ms` : "";
    const counts =
      Number.isFinite(canary.sent) && Number.isFinite(canary.returned)
        ? ` · ${canary.returned}/${canary.sent} back`
        : "";
    return `${words(canary.state)}${rtt}${counts}`;
  }

  function renderLinks() {
    const container = $("links");
    const body = state.links;
    const entries = linkEntries(body);
    const cards = entries.map((entry) => {
      const current = linkState(entry);
      const canary = entry.canary && typeof entry.canary === "object" ? entry.canary : null;
      const depths = queueDepths(entry);
      const title =
        entry.kind === "partner" ? `${entry.name} link` : text(entry.name);
      const card = h(
        "article",
        {
          class: "link-card",
          "data-link": entry.name,
          "data-kind": entry.kind,
          "data-state": text(current, "unknown"),
        },
        h(
          "h3",
          {},
          h("span", {}, title, " ", h("span", { class: "link-kind" }, entry.kind)),
          h(
            "span",
            { class: `link-state health-${health(current)}` },
            words(current).toUpperCase(),
          ),
        ),
        h(
          "dl",
          { class: "link-facts" },
          fact("Canary", h("span", { class: `canary-${health(canary && canary.state)}` },
            canaryText(entry.canary))),
          fact(
            "Backlog",
            `${text(entry.backlog, "0")}` +
              (Number.isFinite(entry.in_flight) ? ` (${entry.in_flight} in flight)` : ""),
          ),
        ),
      );
      const queues = h("div", { class: "queues", role: "group", "aria-label": "Queue depths" });
      for (const priority of PRIORITIES) {
        const depth = depths[priority];
        queues.append(
          h(
            "div",
            { class: `queue${depth > 0 ? " busy" : ""}`, "data-priority": priority },
            h("span", { class: "q-name" }, priority.replace("_", " ")),
            h("span", { class: "q-depth" }, String(depth)),
          ),
        );
      }
      card.append(queues);
      return card;
    });
    if (body && body.journal && typeof body.journal === "object") {
      cards.push(
        h(
          "p",
          { class: "journal", "data-journal-backlog": text(body.journal.backlog, "") },
          `Journal ${body.journal.open === false ? "CLOSED" : "open"} · backlog `,
          h("strong", {}, text(body.journal.backlog, "unknown")),
          " entries",
        ),
      );
    }
    if (!cards.length) cards.push(h("p", { class: "empty" }, "No link information yet."));
    container.replaceChildren(...cards);
    if (body && body.gateway) {
      $("gateway-name").textContent = `· ${body.gateway}${body.nation ? ` (${body.nation})` : ""}`;
    }
    const bad = entries.filter((e) => health(linkState(e)) !== "ok").length;
    $("links-summary").textContent = entries.length
      ? bad
        ? `${bad} of ${entries.length} not up`
        : `all ${entries.length} up`
      : "";
  }

  // ------------------------------------------------------------------ compose

  function composeKind() {
    return document.querySelector('input[name="kind"]:checked')?.value || "text";
  }

  function updateComposeKind() {
    const kind = composeKind();
    $("compose").dataset.kind = kind;
    $("text-field").hidden = kind !== "text";
    $("status-field").hidden = kind !== "status";
    $("emergency-field").hidden = kind !== "emergency";
    const priority = $("compose-priority");
    if (kind === "emergency") priority.value = "emergency";
    priority.disabled = kind === "emergency";
    $("compose-send").firstChild.textContent =
      kind === "emergency" ? "Raise emergency " : "Send ";
  }

  let destinationsKey = "";

  function renderDestinations() {
    const select = $("compose-destination");
    const current = select.value;
    const key = JSON.stringify([
      [...state.units.values()].map((u) => [u.unit, u.label, u.nation, presenceOf(u)]),
      [...state.groups.values()].map((g) => [g.group, g.nations]),
    ]);
    if (key === destinationsKey) return;
    destinationsKey = key;
    const units = [...state.units.values()].sort((a, b) =>
      String(a.label || a.unit).localeCompare(String(b.label || b.unit)),
    );
    // The gateway carries cross-border traffic only: our own units are reached through the
    // national system, so they are listed but cannot be chosen.
    $("dest-units").replaceChildren(
      ...units.map((u) =>
        h(
          "option",
          { value: `unit:${u.unit}`, disabled: u.local === true },
          `${text(u.label, u.unit)} (${text(u.nation, "?")}) — ${presenceOf(u)}` +
            (u.local === true ? " — national system" : ""),
        ),
      ),
    );
    $("dest-groups").replaceChildren(
      ...[...state.groups.values()].map((g) =>
        h(
          "option",
          { value: `group:${g.group}` },
          `${g.group}${Array.isArray(g.nations) ? ` (${g.nations.join(", ")})` : ""}`,
        ),
      ),
    );
    select.value = current;
  }

  function feedback(message, kind) {
    const el = $("compose-feedback");
    el.dataset.messageId = "";
    el.removeAttribute("title");
    el.textContent = message;
    el.dataset.kind = kind;
  }

  async function send(event) {
    event.preventDefault();
    const destination = $("compose-destination").value;
    const [kindOfAddress, ...rest] = destination.split(":");
    const address = rest.join(":");
    if (!address) {
      feedback("Choose a destination first.", "error");
      $("compose-destination").focus();
      return;
    }
    const kind = composeKind();
    const body = {
      to: kindOfAddress === "group" ? { group: address } : { unit: address },
      priority: $("compose-priority").value,
    };
    if (kind === "text") {
      const value = $("compose-text").value.trim();
      if (!value) {
        feedback("Type a message first.", "error");
        $("compose-text").focus();
        return;
      }
      body.text = value;
    } else if (kind === "status") {
      body.status = $("compose-status").value;
    } else {
      body.emergency = {};
      body.priority = "emergency";
    }
    const button = $("compose-send");
    button.disabled = true;
    feedback("Sending…", "info");
    try {
      const answer = await api("/messages", { method: "POST", body });
      const id = answer && answer.message_id;
      feedback(`Accepted for ${describeAddress(body.to)}.`, "ok");
      $("compose-feedback").dataset.messageId = id || "";
      if (id) $("compose-feedback").title = `message id ${id}`;
      if (kind === "text") $("compose-text").value = "";
      if (id && !state.messages.has(id)) {
        mergeMessage({
          message_id: id,
          time: new Date().toISOString(),
          origin: "this console",
          destination: body.to,
          priority: body.priority,
          summary: body.text || (body.status ? `status ${body.status}` : "EMERGENCY"),
          states: [{ state: "accepted", at: new Date().toISOString() }],
          optimistic: true,
        });
        renderLog();
        fetchMessage(id);
      }
    } catch (err) {
      feedback(`Not sent — ${err.message}`, "error");
    } finally {
      button.disabled = false;
    }
  }

  // ------------------------------------------------------------------ loading and events

  async function loadUnits() {
    const units = listOf(await api("/units"), "units");
    state.units = new Map(units.filter((u) => u && u.unit).map((u) => [u.unit, u]));
    renderUnits();
  }

  async function loadGroups() {
    const groups = listOf(await api("/groups"), "groups");
    state.groups = new Map(groups.filter((g) => g && g.group).map((g) => [g.group, g]));
    renderDestinations();
  }

  async function loadMessages() {
    const messages = listOf(await api(`/messages?limit=${LOG_LIMIT}`), "messages");
    for (const message of messages) {
      if (message && message.message_id) {
        const known = state.messages.has(message.message_id);
        mergeMessage(message);
        if (known) state.messages.get(message.message_id).fresh = false;
      }
    }
    renderLog();
  }

  async function loadAlerts() {
    const alerts = listOf(await api("/alerts"), "alerts");
    const fresh = new Map();
    for (const alert of alerts) {
      if (alert && alert.alert_id && isOutstanding(alert)) fresh.set(alert.alert_id, alert);
    }
    for (const [id, alert] of fresh) if (!state.alerts.has(id)) announce(alert);
    state.alerts = fresh;
    renderAlerts();
  }

  async function loadLinks() {
    state.links = await api("/links");
    renderLinks();
  }

  const loaders = {
    units: loadUnits,
    groups: loadGroups,
    messages: loadMessages,
    alerts: loadAlerts,
    links: loadLinks,
  };

  async function load(names) {
    const results = await Promise.allSettled(names.map((name) => loaders[name]()));
    const failed = results.filter((r) => r.status === "rejected");
    for (const failure of failed) console.warn("console: load failed", failure.reason);
    return failed.length === 0;
  }

  const refresh = {
    units: debounce(() => load(["units"]), 400),
    alerts: debounce(() => load(["alerts"]), 300),
    links: debounce(() => load(["links"]), 400),
    messages: debounce(() => load(["messages"]), 600),
  };

  function onEvent(event) {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch (_err) {
      return;
    }
    if (!data || typeof data !== "object") return;
    const type = String(data.type || event.type || "").toLowerCase();
    const payload = data.data && typeof data.data === "object" ? { ...data.data } : data;
    switch (type) {
      case "hello":
        if (payload.gateway) {
          $("gateway-name").textContent =
            `· ${payload.gateway}${payload.nation ? ` (${payload.nation})` : ""}`;
        }
        if (payload.identity) $("identity").textContent = text(payload.identity);
        break;
      case "presence":
      case "unit":
        if (payload.unit && state.units.has(payload.unit)) {
          const { at: _at, previous: _previous, ...update } = stripType(payload);
          mergeUnit(update);
          renderUnits();
        }
        refresh.units(); // positions and last-heard times come with the full list
        break;
      case "message":
      case "delivery":
      case "receipt":
        if (payload.message_id) {
          const unknown = mergeMessage(stripType(payload));
          renderLog();
          if (unknown) fetchMessage(payload.message_id);
        } else refresh.messages();
        break;
      case "alert":
      case "emergency":
        if (payload.alert_id) {
          mergeAlert(stripType(payload));
          renderAlerts();
        }
        refresh.alerts();
        break;
      case "alert_ack":
      case "alert_acknowledged":
      case "alert_cancelled":
      case "alert_expired":
        // Acknowledged (by this or another console) or cancelled by the radio: clear it.
        if (payload.alert_id && state.alerts.delete(payload.alert_id)) {
          $("alerts-live").textContent =
            type === "alert_cancelled"
              ? "Emergency cancelled by the radio."
              : `Emergency acknowledged${payload.by ? ` by ${payload.by}` : ""}.`;
          renderAlerts();
        }
        refresh.alerts();
        break;
      case "link":
      case "links":
      case "canary":
      case "queue":
        refresh.links();
        break;
      default:
        break;
    }
  }

  function stripType(payload) {
    const { type: _type, ...rest } = payload;
    return rest;
  }

  // Live updates: EventSource with our own back-off (it gives up for good on HTTP errors).
  let source = null;
  let retry = 0;
  let retryTimer = null;

  function setConnection(kind, label) {
    const el = $("connection");
    el.dataset.state = kind;
    $("connection-text").textContent = label;
  }

  function connect() {
    clearTimeout(retryTimer);
    if (source) source.close();
    setConnection(retry ? "reconnecting" : "connecting", retry ? "Reconnecting…" : "Connecting…");
    source = new EventSource(`${API}/events`);
    source.addEventListener("open", async () => {
      retry = 0;
      state.connected = true;
      setConnection("live", "Live");
      // Resynchronise: whatever happened while we were away.
      await load(Object.keys(loaders));
    });
    for (const name of [
      "hello",
      "message",
      "presence",
      "alert",
      "alert_ack",
      "alert_cancelled",
      "link",
    ]) {
      source.addEventListener(name, onEvent);
    }
    source.addEventListener("error", () => {
      state.connected = false;
      if (source.readyState === EventSource.CONNECTING) {
        // The browser retries by itself (network error); "open" resynchronises.
        setConnection("reconnecting", "Connection lost — reconnecting…");
        return;
      }
      // CLOSED: an HTTP error or a wrong content type; EventSource gives up for good.
      source.close();
      retry += 1;
      const delay = Math.min(15, 2 ** Math.min(retry - 1, 4));
      setConnection("reconnecting", `Connection lost — retrying in ${delay} s`);
      retryTimer = setTimeout(connect, delay * 1000);
    });
  }

  // ------------------------------------------------------------------ keyboard

  function typing(target) {
    return (
      target instanceof HTMLElement &&
      (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName))
    );
  }

  function toggleHelp(show) {
    const help = $("help");
    const visible = show === undefined ? help.hidden : show;
    help.hidden = !visible;
    $("help-button").setAttribute("aria-expanded", String(visible));
  }

  function onKey(event) {
    if (event.ctrlKey && event.key === "Enter" && $("compose").contains(event.target)) {
      event.preventDefault();
      $("compose").requestSubmit();
      return;
    }
    if (event.key === "Escape") {
      if (!$("help").hidden) toggleHelp(false);
      else if (typing(event.target)) event.target.blur();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    switch (event.key) {
      case "/":
        event.preventDefault();
        $("compose-destination").focus();
        break;
      case "a":
      case "A": {
        const button = $("alert-list").querySelector("button.ack:not(:disabled)");
        if (button) {
          event.preventDefault();
          button.focus();
        }
        break;
      }
      case "u":
        event.preventDefault();
        $("unit-filter").focus();
        break;
      case "l":
        event.preventDefault();
        $("log-scroll").focus();
        break;
      case "?":
        event.preventDefault();
        toggleHelp();
        break;
      default:
        break;
    }
  }

  // ------------------------------------------------------------------ start

  function start() {
    document.addEventListener("keydown", onKey);
    $("help-button").addEventListener("click", () => toggleHelp());
    $("unit-filter").addEventListener("input", renderUnits);
    $("unit-rows").addEventListener("click", (event) => {
      const button = event.target.closest("button.unit-button");
      if (button) selectUnit(button.dataset.unit);
    });
    $("alert-list").addEventListener("click", (event) => {
      const button = event.target.closest("button.ack");
      if (button) acknowledge(button.dataset.alertId, button);
    });
    for (const radio of document.querySelectorAll('input[name="kind"]')) {
      radio.addEventListener("change", updateComposeKind);
    }
    $("compose-destination").addEventListener("change", () => {
      const [kind, ...rest] = $("compose-destination").value.split(":");
      state.selectedUnit = kind === "unit" ? rest.join(":") : null;
      for (const row of $("unit-rows").querySelectorAll("tr")) {
        row.classList.toggle("selected", row.dataset.unit === state.selectedUnit);
      }
      renderMap();
    });
    $("compose").addEventListener("submit", send);
    window.addEventListener("resize", debounce(renderMap, 150));
    // Relative times ("12 s ago") and a safety resync in case an event was missed.
    setInterval(() => {
      if (!typing(document.activeElement)) renderUnits();
    }, 10000);
    setInterval(() => {
      if (state.connected) load(["units", "links", "alerts"]);
    }, 30000);
    updateComposeKind();
    renderUnits();
    renderLog();
    renderLinks();
    loadOutline();
    load(Object.keys(loaders)).then((ok) => {
      if (!ok && !state.connected) setConnection("down", "API unreachable — retrying");
    });
    connect();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
