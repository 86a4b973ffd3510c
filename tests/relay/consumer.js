#!/usr/bin/env node
// consumer.js - a webhook consumer for the relay's tests: it verifies every
// request with the Standard Webhooks reference library (`standardwebhooks`,
// pinned in package.json), records it, and answers as a test scripts it.
//
//   node tests/relay/consumer.js --port P [--host 127.0.0.1] --secret S [--secret S2 ...]
//                                [--max-body BYTES] [--keep-alive-ms MS]
//
// --secret may be repeated or hold a comma-separated list (base64 has no
// comma): a request is verified when the library accepts it with any of
// them.  --port 0 takes a free port.  Once listening it prints
// "listening on PORT" on stdout; SIGTERM or SIGINT closes every connection
// (hanging ones too) and exits 0.
//
// Every request but the two below is recorded, in arrival order, as
//   {seq, method, path, connection, remote_port, headers,
//    webhook_id, webhook_timestamp, webhook_signature,
//    verified, secret_index, error, body, raw,
//    arrived_ms, answer, status, answered_ms}
// seq counts from 1; connection numbers the TCP connections (the same
// number on a reused keep-alive connection); headers are lower-cased;
// webhook_* are the headers as they came (null when absent); verified is
// true when the library accepted it with secret number secret_index (0:
// the first given), else error holds the library's reason; body is the
// body parsed as JSON (null when it is not JSON) and raw the body as text;
// arrived_ms is when its headers arrived and answered_ms when the answer
// was sent (null: not yet, or never for hang/close), both Unix epoch
// milliseconds with a fraction; answer is the scripted answer it got and
// status the HTTP status sent (null when none was).
//
//   GET  /_requests[?since=N]  -> {"requests": [records with seq > N]}
//   POST /_control {...}       -> {"ok": true, "responses": [...], "default": {...}}
//
// An answer is {status (200-599, default 200), retry_after (the Retry-After header,
// as given: seconds or an HTTP date), delay_ms (answer that much later),
// hang (true: never answer; the connection stays open until the client
// closes it), close (true: close the connection without answering),
// headers (more answer headers), body (a string, or JSON of anything
// else; default {"ok":true})}.  POST /_control takes:
//   responses: [answer + {count (default 1)}, ...]  the next requests' answers,
//              in order: an entry serves COUNT requests, then the next one;
//              replaces what was left of the script (append: true adds to it)
//   status, retry_after, delay_ms, hang, close, headers, body: when any is
//              given, they make the default answer (what every request gets
//              once the script is used up; at start 200 at once)
//   clear: true  forget the recorded requests (seq goes on counting)
//   reset: true  all of it: no script, the default 200, no records
// An answer is chosen when a request's body has arrived.
"use strict";

const http = require("http");
const { URL } = require("url");
const { performance } = require("perf_hooks");
const { Webhook } = require("standardwebhooks");

const ANSWER_FIELDS = ["status", "retry_after", "delay_ms", "hang", "close", "headers", "body"];

function fail(why) {
  process.stderr.write(`consumer.js: ${why}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const o = { host: "127.0.0.1", port: null, secrets: [], maxBody: 16 << 20, keepAliveMs: 5000 };
  for (let i = 0; i < argv.length; i += 2) {
    const v = argv[i + 1];
    if (v === undefined) fail(`${argv[i]} needs a value`);
    if (argv[i] === "--port") o.port = Number(v);
    else if (argv[i] === "--host") o.host = v;
    else if (argv[i] === "--secret") o.secrets.push(...v.split(",").filter((s) => s !== ""));
    else if (argv[i] === "--max-body") o.maxBody = Number(v);
    else if (argv[i] === "--keep-alive-ms") o.keepAliveMs = Number(v);
    else fail(`unknown argument ${JSON.stringify(argv[i])}`);
  }
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) fail("--port N (0-65535) is required");
  if (o.secrets.length === 0) fail("at least one --secret is required");
  if (!(o.maxBody > 0) || !(o.keepAliveMs >= 0)) fail("--max-body and --keep-alive-ms take numbers");
  return o;
}

function nowMs() {
  return performance.timeOrigin + performance.now();
}

// --- the script ------------------------------------------------------------

// A checked copy of answer A (throws on a bad field); count kept when WITH_COUNT.
function checkAnswer(a, withCount) {
  if (a === null || typeof a !== "object" || Array.isArray(a)) throw new Error("an answer is an object");
  const out = {};
  for (const k of Object.keys(a)) {
    if (!ANSWER_FIELDS.includes(k) && !(withCount && k === "count")) throw new Error(`unknown answer field ${k}`);
  }
  const status = a.status === undefined ? 200 : a.status;
  if (!Number.isInteger(status) || status < 200 || status > 599) throw new Error("status: an integer 200-599");
  out.status = status;
  if (a.retry_after !== undefined && a.retry_after !== null) {
    if (typeof a.retry_after !== "number" && typeof a.retry_after !== "string") throw new Error("retry_after: seconds or a date");
    out.retry_after = String(a.retry_after);
  }
  if (a.delay_ms !== undefined) {
    if (typeof a.delay_ms !== "number" || !(a.delay_ms >= 0)) throw new Error("delay_ms: a number >= 0");
    out.delay_ms = a.delay_ms;
  }
  for (const k of ["hang", "close"]) {
    if (a[k] !== undefined && typeof a[k] !== "boolean") throw new Error(`${k}: true or false`);
    if (a[k]) out[k] = true;
  }
  if (a.headers !== undefined) {
    if (a.headers === null || typeof a.headers !== "object") throw new Error("headers: an object");
    out.headers = Object.assign({}, a.headers);
  }
  if (a.body !== undefined) out.body = a.body;
  if (withCount) {
    const count = a.count === undefined ? 1 : a.count;
    if (!Number.isInteger(count) || count < 1) throw new Error("count: an integer >= 1");
    out.count = count;
  }
  return out;
}

function newState() {
  return { script: [], dflt: { status: 200 }, requests: [] };
}

// Apply a POST /_control body C to STATE; throws, changing nothing, on a bad one.
function control(state, c) {
  if (c === null || typeof c !== "object" || Array.isArray(c)) throw new Error("a JSON object is expected");
  const known = ANSWER_FIELDS.concat(["responses", "append", "clear", "reset"]);
  for (const k of Object.keys(c)) if (!known.includes(k)) throw new Error(`unknown field ${k}`);
  if (c.responses !== undefined && !Array.isArray(c.responses)) throw new Error("responses: a list");
  const script = (c.responses || []).map((a) => checkAnswer(a, true));
  const given = ANSWER_FIELDS.filter((k) => c[k] !== undefined);
  const dflt = given.length > 0 ? checkAnswer(Object.fromEntries(given.map((k) => [k, c[k]])), false) : null;
  if (c.reset) Object.assign(state, newState(), { seq: state.seq });
  if (c.clear) state.requests = [];
  if (c.responses !== undefined) state.script = c.append ? state.script.concat(script) : script;
  if (dflt !== null) state.dflt = dflt;
}

// The answer for the next request: the script's first entry, or the default.
function nextAnswer(state) {
  const head = state.script[0];
  if (head === undefined) return state.dflt;
  head.count -= 1;
  if (head.count === 0) state.script.shift();
  const { count, ...answer } = head; // eslint-disable-line no-unused-vars
  return answer;
}

// --- requests --------------------------------------------------------------

function verify(hooks, req, raw) {
  const headers = {
    "webhook-id": req.headers["webhook-id"] || "",
    "webhook-timestamp": req.headers["webhook-timestamp"] || "",
    "webhook-signature": req.headers["webhook-signature"] || "",
  };
  let error = null;
  for (let i = 0; i < hooks.length; i++) {
    try {
      hooks[i].verify(raw, headers, { jsonParse: false });
      return { verified: true, secret_index: i, error: null };
    } catch (e) {
      error = error || e.message;
    }
  }
  return { verified: false, secret_index: null, error };
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch (e) {
    return null;
  }
}

function record(state, hooks, req, raw, arrived, tooBig) {
  const text = raw.toString("utf8");
  const check = tooBig ? { verified: false, secret_index: null, error: tooBig } : verify(hooks, req, raw);
  const rec = {
    seq: ++state.seq,
    method: req.method,
    path: req.url,
    connection: req.socket.consumerId,
    remote_port: req.socket.remotePort,
    headers: req.headers,
    webhook_id: req.headers["webhook-id"] ?? null,
    webhook_timestamp: req.headers["webhook-timestamp"] ?? null,
    webhook_signature: req.headers["webhook-signature"] ?? null,
    ...check,
    body: tooBig ? null : parseJson(text),
    raw: tooBig ? null : text,
    arrived_ms: arrived,
    answer: null,
    status: null,
    answered_ms: null,
  };
  state.requests.push(rec);
  return rec;
}

function answerBody(a) {
  if (a.body === undefined) return '{"ok":true}';
  return typeof a.body === "string" ? a.body : JSON.stringify(a.body);
}

function send(rec, res, a) {
  if (res.destroyed || res.writableEnded) return;
  const body = answerBody(a);
  const headers = Object.assign({ "Content-Type": "application/json" }, a.headers || {});
  if (a.retry_after !== undefined) headers["Retry-After"] = a.retry_after;
  headers["Content-Length"] = Buffer.byteLength(body);
  res.writeHead(a.status, headers);
  res.end(body);
  rec.status = a.status;
  rec.answered_ms = nowMs();
}

function respond(ctx, rec, req, res, a) {
  rec.answer = a;
  if (a.close) {
    req.socket.destroy();
    return;
  }
  if (a.hang) return; // held: the socket is destroyed when the client goes or we stop
  if (a.delay_ms > 0) {
    const t = setTimeout(() => {
      ctx.timers.delete(t);
      send(rec, res, a);
    }, a.delay_ms);
    ctx.timers.add(t);
    return;
  }
  send(rec, res, a);
}

function json(res, status, value) {
  const body = JSON.stringify(value);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
  res.end(body);
}

function serveControl(ctx, req, res, raw) {
  const url = new URL(req.url, "http://consumer");
  if (url.pathname === "/_requests" && req.method === "GET") {
    const since = Number(url.searchParams.get("since") || 0);
    json(res, 200, { requests: ctx.state.requests.filter((r) => r.seq > since) });
  } else if (url.pathname === "/_control" && req.method === "POST") {
    try {
      control(ctx.state, JSON.parse(raw.toString("utf8")));
    } catch (e) {
      json(res, 400, { ok: false, error: e.message });
      return;
    }
    json(res, 200, { ok: true, responses: ctx.state.script, default: ctx.state.dflt });
  } else {
    json(res, 404, { ok: false, error: "GET /_requests or POST /_control" });
  }
}

function isControl(req) {
  const path = req.url.split("?")[0];
  return path === "/_requests" || path === "/_control";
}

function onRequest(ctx, req, res) {
  const arrived = nowMs();
  const chunks = [];
  let size = 0;
  req.on("data", (c) => {
    size += c.length;
    if (size <= ctx.opts.maxBody) chunks.push(c);
  });
  req.on("end", () => {
    const raw = Buffer.concat(chunks);
    if (isControl(req)) {
      serveControl(ctx, req, res, raw);
      return;
    }
    const tooBig = size > ctx.opts.maxBody ? `body over ${ctx.opts.maxBody} bytes` : null;
    const rec = record(ctx.state, ctx.hooks, req, raw, arrived, tooBig);
    respond(ctx, rec, req, res, tooBig ? { status: 413 } : nextAnswer(ctx.state));
  });
}

// --- the server ------------------------------------------------------------

function main() {
  const opts = parseArgs(process.argv.slice(2));
  let hooks;
  try {
    hooks = opts.secrets.map((s) => new Webhook(s));
  } catch (e) {
    fail(`the library refuses a secret: ${e.message}`);
  }
  const ctx = { opts, hooks, state: Object.assign(newState(), { seq: 0 }), timers: new Set(), sockets: new Set() };
  let connections = 0;
  const server = http.createServer((req, res) => onRequest(ctx, req, res));
  server.keepAliveTimeout = opts.keepAliveMs;
  server.on("connection", (sock) => {
    sock.consumerId = ++connections;
    ctx.sockets.add(sock);
    sock.on("close", () => ctx.sockets.delete(sock));
  });
  const stop = () => {
    for (const t of ctx.timers) clearTimeout(t);
    server.close();
    for (const s of ctx.sockets) s.destroy();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  server.on("error", (e) => fail(`cannot listen on ${opts.host}:${opts.port}: ${e.message}`));
  server.listen(opts.port, opts.host, () => {
    process.stdout.write(`listening on ${server.address().port}\n`);
  });
}

main();
