-- wrk script: POST a fixed JSON body (file in BENCH_BODY), optional bearer keys, and print
-- a machine-readable summary line (latencies in microseconds) for benchmarks/run.py.
-- BENCH_KEYS: a file with one key per line, used round-robin (virtual keys); BENCH_KEY: one key.
local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

wrk.method = "POST"
wrk.body = read_file(os.getenv("BENCH_BODY"))
wrk.headers["Content-Type"] = "application/json"

-- BENCH_HEADERS: extra headers, "Name: value|Name: value"
local extra = os.getenv("BENCH_HEADERS")
if extra and extra ~= "" then
  for item in string.gmatch(extra, "[^|]+") do
    local name, value = string.match(item, "^%s*([^:]+):%s*(.-)%s*$")
    if name then wrk.headers[name] = value end
  end
end

local keys = {}
local keys_file = os.getenv("BENCH_KEYS")
if keys_file and keys_file ~= "" then
  for line in io.lines(keys_file) do
    if line ~= "" then keys[#keys + 1] = line end
  end
end
local single = os.getenv("BENCH_KEY")
if #keys == 0 and single and single ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. single
end

local counter = 0
if #keys > 1 then
  local requests = {}
  function init(args)
    for i, key in ipairs(keys) do
      requests[i] = wrk.format(nil, nil, {["Authorization"] = "Bearer " .. key})
    end
  end
  function request()
    counter = counter + 1
    return requests[(counter % #requests) + 1]
  end
elseif #keys == 1 then
  wrk.headers["Authorization"] = "Bearer " .. keys[1]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"errors_connect":%d,"errors_read":%d,' ..
    '"errors_write":%d,"errors_status":%d,"errors_timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
