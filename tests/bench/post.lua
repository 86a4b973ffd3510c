-- post.lua - wrk (4.1) script for tests/bench/run.sh: POSTs pre-generated
-- signed pushes, each one once, and records which ones were acknowledged.
--
--   wrk -t T -c C -d D -s tests/bench/post.lua URL BODIES OUT [MAX]
--
-- Thread k (0-based, numbered in setup()) sends the lines of BODIES.k (one
-- form body per line, written by gen; at most the first MAX of them), in
-- order; gen spread the bodies over one file per thread, so no msgId is
-- sent twice.  A thread that runs out of bodies starts over and counts it
-- in `wrapped` (run.sh warns; it sizes the runs so that it does not
-- happen).
--
-- wrk's Lua API does not say which connection (hence which request) a
-- response belongs to, so a 200 cannot be paired with the body sent.  The
-- receiver names every request in an X-Request-Id header, which is also
-- deliveries.request_id: thread k writes the X-Request-Id of every 200 to
-- OUT.k, and run.sh maps those to msgIds through deliveries and checks that
-- each is a row of trade_events.  The file is flushed when wrk exits; the
-- count of 200s per thread (the global `acked`) lets run.sh check that it
-- got every line.
--
-- done() prints one line "WRK key=value ..." for run.sh.

local threads = {}

function setup(thread)
   thread:set("id", #threads)
   threads[#threads + 1] = thread
end

function init(args)
   local bodies, out = args[1], args[2]
   local max = tonumber(args[3]) or math.huge
   local host = wrk.headers["Host"]
   local head = "POST " .. wrk.path .. " HTTP/1.1\r\nHost: " .. host ..
      "\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: "
   reqs = {}
   for line in io.lines(bodies .. "." .. id) do
      if #reqs >= max then
         break
      end
      reqs[#reqs + 1] = head .. #line .. "\r\n\r\n" .. line
   end
   n, next_req, wrapped = #reqs, 0, 0
   acked, refused, no_rid = 0, 0, 0
   log = assert(io.open(out .. "." .. id, "w"))
   log:setvbuf("full", 65536)
end

function request()
   if reqs == nil then
      -- wrk calls request() once in its main Lua state, to check it.
      return wrk.format("POST", nil, nil, "x")
   end
   next_req = next_req + 1
   if next_req > n then
      next_req, wrapped = 1, wrapped + 1
   end
   return reqs[next_req]
end

function response(status, headers, body)
   if status == 200 then
      acked = acked + 1
      local rid = headers["X-Request-Id"]
      if rid then
         log:write(rid, "\n")
      else
         no_rid = no_rid + 1
      end
   else
      refused = refused + 1
   end
end

function done(summary, latency, requests)
   local a, r, w, nr = 0, 0, 0, 0
   for _, t in ipairs(threads) do
      a = a + t:get("acked")
      r = r + t:get("refused")
      w = w + t:get("wrapped")
      nr = nr + t:get("no_rid")
   end
   local e = summary.errors
   io.write(string.format(
      "WRK requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d max_us=%d " ..
      "ok=%d non200=%d no_rid=%d wrapped=%d err_connect=%d err_read=%d " ..
      "err_write=%d err_timeout=%d\n",
      summary.requests, summary.duration,
      summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(99), latency.max,
      a, r, nr, w, e.connect, e.read, e.write, e.timeout))
end
