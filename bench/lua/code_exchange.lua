-- Authorization-code exchange with codes prepared beforehand. Env: BASIC, CODES (file,
-- "code verifier" per line), REDIRECT. Each thread takes its own slice; when a thread's
-- codes run out its requests fail and are counted as errors.
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

function init(args)
  local nthreads = tonumber(os.getenv("THREADS") or "2")
  codes = {}
  local i = 0
  for line in io.lines(os.getenv("CODES")) do
    if i % nthreads == (tid - 1) then table.insert(codes, line) end
    i = i + 1
  end
  basic = "Basic " .. os.getenv("BASIC")
  redirect = os.getenv("REDIRECT")
end

function request()
  local line = table.remove(codes) or "exhausted none"
  local code, verifier = line:match("(%S+) (%S+)")
  return wrk.format("POST", "/token", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = basic,
  }, "grant_type=authorization_code&code=" .. code .. "&code_verifier=" .. verifier .. "&redirect_uri=" .. redirect)
end
