-- Refresh-token rotation: every request spends a refresh token and the response's new
-- refresh token goes back into this thread's pool. Env: BASIC, TOKENS (file, one refresh
-- token per line). Each thread takes its own slice of the file.
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

function init(args)
  local nthreads = tonumber(os.getenv("THREADS") or "2")
  pool = {}
  local i = 0
  for line in io.lines(os.getenv("TOKENS")) do
    if i % nthreads == (tid - 1) then table.insert(pool, line) end
    i = i + 1
  end
  basic = "Basic " .. os.getenv("BASIC")
end

function request()
  local token = table.remove(pool) or "exhausted"
  return wrk.format("POST", "/token", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = basic,
  }, "grant_type=refresh_token&refresh_token=" .. token)
end

function response(status, headers, body)
  if status == 200 then
    local t = body:match('"refresh_token":"([^"]+)"')
    if t then table.insert(pool, t) end
  end
end
