// colm's page (served by `colm serve` at `/`): ask a hosted model or a strategy and watch the
// collaboration fill in live, compare client / server / collaboration side by side, give
// feedback, and read this tenant's records with their transcripts. Plain DOM, no dependencies;
// every model text is set with textContent, never parsed as HTML.
"use strict";

const KEY = "colm.key";
const $ = (id) => document.getElementById(id);

// Which column a step kind goes to (docs/api.md, "Live steps").
const COLUMNS = [
  ["client", "Client draft", ["draft", "sample", "proposal"]],
  ["server", "Server references", ["selection", "reference"]],
  ["guidance", "Guidance", ["guidance", "aggregation", "debate"]],
  ["refinement", "Refinement", ["refinement"]],
];

// Times of the last question asked in the Ask view (ms since page load), read by the browser
// tests: when "Ask" was pressed, when any text first showed, when a draft's text first showed.
window.colmTimings = {};

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c) e.append(c);
  return e;
}

function notice(message) {
  const n = $("notice");
  n.textContent = message || "";
  n.hidden = !message;
}

function headers(json = true) {
  const h = {};
  if (json) h["Content-Type"] = "application/json";
  const key = sessionStorage.getItem(KEY);
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

// An error response's message (OpenAI's shape), and the key prompt on 401.
async function failure(response) {
  let message = `HTTP ${response.status}`;
  try {
    const body = await response.json();
    if (body.error && body.error.message) message = body.error.message;
  } catch (_) { /* not JSON */ }
  if (response.status === 401) {
    askKey(sessionStorage.getItem(KEY)
      ? `The server refused this key: ${message}`
      : "This server asks for an API key. It is kept in this tab's session storage only.");
    return `The server refused the request: ${message}`;
  }
  return message;
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers(!!options.body) });
  if (!response.ok) throw new Error(await failure(response));
  return response.json();
}

function askKey(why) {
  $("key-why").textContent = why;
  $("key-input").value = "";
  const d = $("key-dialog");
  if (!d.open) d.showModal();
  $("key-input").focus();
}

// ---- Streaming one answer ----------------------------------------------------------------

// Posts a streamed chat request and calls `on` for each chunk; returns the record id.
async function stream(model, query, on, signal) {
  const response = await fetch("/v1/chat/completions", {
    method: "POST",
    headers: headers(),
    signal,
    body: JSON.stringify({ model, stream: true, messages: [{ role: "user", content: query }] }),
  });
  if (!response.ok) throw new Error(await failure(response));
  const record = response.headers.get("x-colm-record-id");
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return record;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message || "the stream failed");
        on(chunk);
      }
    }
  }
  return record;
}

// A view of one collaboration: four columns of step cards and the answer. Fed with stream
// chunks (`chunk`) or a stored transcript (`transcript`).
class RoundView {
  // `stacked`: the steps in one column (a panel of the side-by-side view), in step order.
  constructor(root, { stacked = false } = {}) {
    this.root = root;
    root.replaceChildren();
    this.cards = new Map();
    this.columns = {};
    this.grid = el("div", { class: stacked ? "columns stacked" : "columns" });
    this.grid.hidden = true;
    for (const [id, title] of COLUMNS) {
      const col = el("div", { "data-column": id }, el("h3", { text: title }));
      this.columns[id] = col;
      this.grid.append(col);
    }
    this.answerText = el("p", { class: "text", "aria-live": "polite" });
    this.answerMeta = el("div", { class: "meta" });
    this.answer = el("section", { class: "answer", "aria-label": "Answer" },
      el("h3", { text: "Answer" }), this.answerText, this.answerMeta);
    root.append(this.grid, this.answer);
    this.streaming = null;
    this.onText = null;
  }

  column(kind) {
    const c = COLUMNS.find(([, , kinds]) => kinds.includes(kind));
    return this.columns[c ? c[0] : "guidance"];
  }

  card(p) {
    const key = [p.step, p.round, p.collaborator || "", p.model].join("|");
    let card = this.cards.get(key);
    if (!card) {
      const who = p.collaborator && p.collaborator !== p.model ? `${p.collaborator} · ` : "";
      const title = el("strong", { text: `${p.step}${p.round > 1 ? " " + p.round : ""}` });
      const meta = el("span", { text: `${who}${p.model}` });
      const stats = el("span", { class: "stats" });
      const text = el("p", { class: "text" });
      const box = el("article", { class: "step running", "data-step": p.step },
        el("div", { class: "meta" }, title, meta, stats), text);
      card = { box, text, stats, meta: box.firstChild, hasText: false };
      this.cards.set(key, card);
      this.column(p.step).append(box);
      this.grid.hidden = false;
    }
    return card;
  }

  addText(card, text, kind) {
    if (!text) return;
    card.text.textContent += text;
    card.hasText = true;
    if (this.onText) this.onText(kind);
  }

  finish(card, p) {
    card.box.classList.remove("running");
    const bits = [];
    if (p.completion_tokens) bits.push(`${p.completion_tokens} tokens`);
    if (p.prompt_tokens) bits.push(`${p.prompt_tokens} prompt`);
    if (p.wall_ms) bits.push(`${(p.wall_ms / 1000).toFixed(1)} s`);
    card.stats.textContent = bits.join(" · ");
    if (p.shared) card.meta.append(el("span", { class: "badge shared", text: "shared", title: "taken from the server's store: no model call for this request" }));
    if (p.note) card.meta.append(el("span", { class: "badge", text: p.note }));
    if (p.error && p.error.startsWith("cancelled:")) {
      // A fallback draft stopped when the guidance came (draft=auto): not a failure.
      card.meta.append(el("span", { class: "badge", text: "cancelled" }));
      card.text.textContent += (card.hasText ? "\n\n" : "") + p.error;
    } else if (p.error) {
      card.box.classList.add("failed");
      card.meta.append(el("span", { class: "badge error", text: "failed" }));
      card.text.textContent = p.error;
    }
  }

  // After the last step: a round that was refined without a draft says why its client
  // column is empty.
  settled() {
    const kinds = [...this.cards.keys()].map((k) => k.split("|")[0]);
    if (kinds.includes("refinement") && !kinds.includes("draft")) {
      this.columns.client.append(el("p", { class: "note",
        text: "No draft: the guidance came before one was needed, and the refinement does not read it (draft=auto)." }));
    }
  }

  // A stream chunk: a progress report, answer text, or the final chunk.
  chunk(c) {
    const ext = c.colm;
    if (ext && ext.progress) {
      const p = ext.progress;
      const card = this.card(p);
      const phase = p.phase || "finished";
      if (phase === "started" && p.answer) this.streaming = card;
      if (phase === "text") this.addText(card, p.text, p.step);
      if (phase === "finished") this.finish(card, p);
      return;
    }
    const choice = c.choices && c.choices[0];
    if (choice && choice.delta && choice.delta.content) {
      this.answerText.textContent += choice.delta.content;
      if (this.streaming) this.addText(this.streaming, choice.delta.content, "answer");
      else if (this.onText) this.onText("answer");
    }
    if (choice && choice.finish_reason && ext) {
      const t = ext.timings || {};
      this.answerMeta.textContent = `finished: ${choice.finish_reason}` +
        (t.generation_ms ? ` · ${((t.prompt_ms + t.generation_ms) / 1000).toFixed(1)} s in models` : "");
    }
    if (c.usage) {
      this.answerMeta.textContent += ` · ${c.usage.prompt_tokens} prompt + ${c.usage.completion_tokens} completion tokens`;
    }
  }

  // A stored record: its transcript's steps, finished, and its answer.
  record(r) {
    for (const s of (r.transcript && r.transcript.steps) || []) {
      const card = this.card(s);
      this.addText(card, s.text || "", s.step);
      this.finish(card, s);
    }
    this.settled();
    this.answerText.textContent = r.answer || (r.error ? "" : "(texts were not kept)");
    const bits = [`${r.model || ""}`, r.strategy ? `strategy ${r.strategy}` : "",
      `${r.prompt_tokens} prompt + ${r.completion_tokens} completion tokens`,
      `${(r.latency_ms / 1000).toFixed(1)} s`, `status ${r.status}`];
    if (r.routed) bits.push(`routed ${r.routed}`);
    if (r.residency) bits.push(`residency ${r.residency}`);
    if (r.error) bits.push(`error: ${r.error}`);
    if (r.feedback && r.feedback.outcome) bits.push(`feedback: ${r.feedback.outcome}`);
    this.answerMeta.textContent = bits.filter(Boolean).join(" · ");
  }
}

// ---- Feedback ----------------------------------------------------------------------------

function feedbackButtons(view, record) {
  if (!record) return;
  const said = el("span", { "aria-live": "polite" });
  const send = async (outcome) => {
    try {
      await api("/v1/colm/feedback", { method: "POST", body: JSON.stringify({ record_id: record, outcome }) });
      said.textContent = `Thanks — recorded as ${outcome}.`;
    } catch (e) {
      said.textContent = `Feedback not recorded: ${e.message}`;
    }
  };
  const up = el("button", { type: "button", class: "thumb", "data-outcome": "right", "aria-label": "Right answer", text: "✓ Right" });
  const down = el("button", { type: "button", class: "thumb", "data-outcome": "wrong", "aria-label": "Wrong answer", text: "✗ Wrong" });
  up.addEventListener("click", () => send("right"));
  down.addEventListener("click", () => send("wrong"));
  view.answer.append(el("div", { class: "row feedback" }, up, down, said));
}

// ---- Views -------------------------------------------------------------------------------

let models = [];

async function loadModels() {
  try {
    const list = await api("/v1/models");
    // Embedding models (`colm.dimensions`) do not chat.
    models = list.data.filter((m) => !(m.colm && m.colm.dimensions));
  } catch (e) {
    notice(e.message);
    return;
  }
  notice("");
  const strategies = models.filter((m) => m.colm && m.colm.strategy);
  const plain = models.filter((m) => !(m.colm && m.colm.strategy));
  const fill = (select, list, pick) => {
    select.replaceChildren(...list.map((m) => el("option", { value: m.id,
      text: m.colm && m.colm.strategy ? `${m.id} (${m.colm.strategy})` : m.id })));
    if (pick) select.value = pick.id;
  };
  fill($("model"), [...strategies, ...plain], strategies[0] || plain[0]);
  fill($("pick-client"), models, plain[plain.length - 1]);
  fill($("pick-server"), models, plain[0]);
  fill($("pick-colm"), models, strategies[0] || plain[0]);
}

let running = null;

async function ask(event) {
  event.preventDefault();
  const query = $("query").value.trim();
  if (!query) return;
  const model = $("model").value;
  const view = new RoundView($("round"));
  const timings = (window.colmTimings = { asked: performance.now() });
  view.onText = (kind) => {
    const now = performance.now();
    if (timings.firstText === undefined) timings.firstText = now;
    if (kind === "draft" && timings.firstDraftText === undefined) timings.firstDraftText = now;
  };
  running = new AbortController();
  $("ask").disabled = true;
  $("stop").disabled = false;
  $("status").textContent = "Running…";
  notice("");
  try {
    const record = await stream(model, query, (c) => view.chunk(c), running.signal);
    timings.done = performance.now();
    view.settled();
    $("status").textContent = `Done in ${((timings.done - timings.asked) / 1000).toFixed(1)} s.`;
    feedbackButtons(view, record);
  } catch (e) {
    $("status").textContent = "";
    if (e.name !== "AbortError") notice(e.message);
    else $("status").textContent = "Stopped.";
  } finally {
    $("ask").disabled = false;
    $("stop").disabled = true;
    running = null;
  }
}

async function compare(event) {
  event.preventDefault();
  const query = $("compare-query").value.trim();
  if (!query) return;
  const root = $("compare-panels");
  root.replaceChildren();
  const picks = [["Client alone", $("pick-client").value], ["Server alone", $("pick-server").value],
    ["Collaboration", $("pick-colm").value]];
  $("compare-status").textContent = "Running…";
  notice("");
  const runs = picks.map(([title, model]) => {
    const panel = el("div", { class: "panel" }, el("h3", { text: `${title}: ${model}` }));
    const body = el("div");
    panel.append(body);
    root.append(panel);
    const view = new RoundView(body, { stacked: true });
    const started = performance.now();
    return stream(model, query, (c) => view.chunk(c))
      .then((record) => {
        view.answerMeta.textContent += ` · ${((performance.now() - started) / 1000).toFixed(1)} s`;
        view.settled();
        feedbackButtons(view, record);
      })
      .catch((e) => { view.answerText.textContent = `Failed: ${e.message}`; });
  });
  await Promise.all(runs);
  $("compare-status").textContent = "Done.";
}

async function loadRecords() {
  const list = $("records-list");
  $("record-detail").replaceChildren();
  try {
    const records = await api("/v1/colm/records?limit=50");
    if (!records.data.length) {
      list.replaceChildren(el("p", { text: "No records yet: ask something first." }));
      return;
    }
    const table = el("table", { class: "records" });
    table.append(el("tr", {}, ...["When", "Model", "Tokens", "Time", "Status", "Question"]
      .map((h) => el("th", { scope: "col", text: h }))));
    for (const r of records.data) {
      const open = el("button", { type: "button", class: "open-record", "data-id": r.id,
        text: new Date(r.created_ms).toLocaleTimeString() });
      open.addEventListener("click", () => showRecord(r.id));
      table.append(el("tr", {},
        el("td", {}, open),
        el("td", { text: r.model || "" }),
        el("td", { text: `${r.prompt_tokens + r.completion_tokens}` }),
        el("td", { text: `${(r.latency_ms / 1000).toFixed(1)} s` }),
        el("td", { text: `${r.status}` }),
        el("td", { class: "q", text: r.query || "(not kept)" })));
    }
    list.replaceChildren(table);
  } catch (e) {
    list.replaceChildren(el("p", { text: e.message }));
  }
}

async function showRecord(id) {
  const detail = $("record-detail");
  try {
    const r = await api(`/v1/colm/records/${encodeURIComponent(id)}`);
    detail.replaceChildren(el("h3", { text: r.query || id }));
    const body = el("div", { class: "transcript" });
    detail.append(body);
    new RoundView(body).record(r);
    detail.scrollIntoView();
  } catch (e) {
    detail.replaceChildren(el("p", { text: e.message }));
  }
}

function show(view) {
  for (const v of ["ask", "compare", "records"]) {
    $(`view-${v}`).hidden = v !== view;
    $(`tab-${v}`).setAttribute("aria-pressed", String(v === view));
  }
  if (view === "records") loadRecords();
}

document.addEventListener("DOMContentLoaded", () => {
  $("ask-form").addEventListener("submit", ask);
  $("compare-form").addEventListener("submit", compare);
  $("stop").addEventListener("click", () => running && running.abort());
  for (const id of ["query", "compare-query"]) {
    $(id).addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) e.target.form.requestSubmit();
    });
  }
  for (const v of ["ask", "compare", "records"]) $(`tab-${v}`).addEventListener("click", () => show(v));
  $("records-refresh").addEventListener("click", loadRecords);
  $("key-button").addEventListener("click", () => askKey("The key is kept in this tab's session storage only."));
  $("key-dialog").addEventListener("close", () => {
    const how = $("key-dialog").returnValue;
    if (how === "save" && $("key-input").value.trim()) sessionStorage.setItem(KEY, $("key-input").value.trim());
    if (how === "clear") sessionStorage.removeItem(KEY);
    if (how === "save" || how === "clear") loadModels();
  });
  loadModels();
});
