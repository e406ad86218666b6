-- POST /token with a new client assertion each request, from the file
-- ASSERTIONS (one per line): wrk's two threads take every other line, and
-- start over only if the file runs out (a replay: a 401, an error).
local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end
function init(args)
  lines, n = {}, 0
  local i = 0
  for line in io.lines(os.getenv("ASSERTIONS")) do
    if i % 2 == id then lines[#lines + 1] = line end
    i = i + 1
  end
end
function request()
  n = n % #lines + 1
  return wrk.format("POST", nil, { ["Content-Type"] = "application/x-www-form-urlencoded" },
    "grant_type=client_credentials&audience=serviceb" ..
    "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer" ..
    "&client_assertion=" .. lines[n])
end
