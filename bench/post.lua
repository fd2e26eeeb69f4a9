-- POST one AdmissionReview on every keep-alive connection and check each
-- response. Arguments after `--`: the body file and a string that every
-- response body must contain. BENCH_THINK_MS in the environment makes each
-- connection wait that many milliseconds after a response before it sends
-- the next request (used for the rate-limited soak). wrk truncates a wait to
-- whole milliseconds, so each wait is rounded up with a probability equal to
-- the fraction, which keeps the fraction on average.
--
-- done() prints one line `BENCH-JSON {...}` with the counts and the latency
-- percentiles in microseconds.

local threads = {}

local think_ms = tonumber(os.getenv("BENCH_THINK_MS") or "0")
if think_ms > 0 then
  local whole = math.floor(think_ms)
  local fraction = think_ms - whole
  function delay()
    if math.random() < fraction then
      return whole + 1
    end
    return whole
  end
end

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local file = assert(io.open(args[1], "rb"))
  wrk.method = "POST"
  wrk.body = file:read("*a")
  wrk.headers["Content-Type"] = "application/json"
  file:close()
  expected = args[2]
  checked = 0
  failed = 0
end

function response(status, headers, body)
  checked = checked + 1
  if status ~= 200 or not string.find(body, expected, 1, true) then
    failed = failed + 1
  end
end

local function percentile_points()
  local points = {}
  for p = 1, 99 do
    table.insert(points, p)
  end
  for _, p in ipairs({99.5, 99.9, 99.95, 99.99}) do
    table.insert(points, p)
  end
  return points
end

function done(summary, latency, requests)
  local checked_total, failed_total = 0, 0
  for _, thread in ipairs(threads) do
    checked_total = checked_total + thread:get("checked")
    failed_total = failed_total + thread:get("failed")
  end

  local parts = {}
  for _, p in ipairs(percentile_points()) do
    table.insert(parts, string.format('"%s":%d', tostring(p), latency:percentile(p)))
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH-JSON {"requests":%d,"duration_us":%d,"checked":%d,"failed":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"max":%d,"mean":%f,"percentiles":{%s}}}\n',
    summary.requests, summary.duration, checked_total, failed_total,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    latency.min, latency.max, latency.mean, table.concat(parts, ",")))
end
