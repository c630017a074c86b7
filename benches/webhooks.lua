-- wrk script of scripts/bench-webhooks: sends the pre-signed webhooks of BENCH_REQUESTS,
-- each thread its own slice, and counts every answer that is not 200 with the expected TwiML.
--
-- Environment: BENCH_REQUESTS, a file of `path?query<TAB>signature<TAB>body`
-- lines (made by `webhook_load sign`); BENCH_THREADS, wrk's -t; BENCH_ONCE=1
-- to send each line at most once (fresh webhooks: the thread stops when its
-- slice runs out and the run is marked exhausted), else each slice is cycled;
-- BENCH_EXPECT, text every answer's body must hold (default "<Gather").
-- done() prints one line `BENCH_RESULT {json}`.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local reqs = {}
local expect = os.getenv("BENCH_EXPECT") or "<Gather"
local once = os.getenv("BENCH_ONCE") == "1"
-- Globals read back by done() through thread:get.
issued = 0
bad = 0
sample = ""
exhausted = 0

function init(args)
  local path = os.getenv("BENCH_REQUESTS")
  local n = tonumber(os.getenv("BENCH_THREADS") or "1")
  local f = assert(io.open(path, "r"), "cannot open BENCH_REQUESTS " .. tostring(path))
  local i = 0
  for line in f:lines() do
    if i % n == id then
      local p, sig, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)$")
      assert(p, "not path<TAB>signature<TAB>body: " .. line)
      reqs[#reqs + 1] = wrk.format("POST", p, {
        ["Content-Type"] = "application/x-www-form-urlencoded",
        ["X-Twilio-Signature"] = sig,
        ["User-Agent"] = "TwilioProxy/1.1",
        ["Host"] = wrk.headers["Host"],
      }, body)
    end
    i = i + 1
  end
  f:close()
  assert(#reqs > 0, "thread " .. id .. " has no requests in " .. path)
end

function request()
  if issued >= #reqs then
    if once then
      exhausted = 1
      wrk.thread:stop()
      return reqs[#reqs]
    end
  end
  local r = reqs[(issued % #reqs) + 1]
  issued = issued + 1
  return r
end

function response(status, headers, body)
  if status ~= 200 or body == nil or not body:find(expect, 1, true) then
    bad = bad + 1
    if sample == "" then
      sample = tostring(status) .. " " .. (body or ""):sub(1, 300)
    end
  end
end

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return string.format("\\u%04x", c:byte())
  end) .. '"'
end

function done(summary, latency, requests)
  local issued_by_thread, total_bad, total_exhausted, first_sample = {}, 0, 0, ""
  for _, t in ipairs(threads) do
    issued_by_thread[#issued_by_thread + 1] = tostring(t:get("issued"))
    total_bad = total_bad + t:get("bad")
    total_exhausted = total_exhausted + t:get("exhausted")
    local s = t:get("sample")
    if first_sample == "" and s ~= "" then
      first_sample = s
    end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"bad":%d,"exhausted":%d,"issued":[%s],"sample":%s}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout,
    total_bad, total_exhausted, table.concat(issued_by_thread, ","), json_string(first_sample)))
end
