-- wrk script: POST one job per request to /v1/jobs (bench/http_wrk.py runs it).
--   wrk -t2 -c64 -d10s -s bench/wrk_post.lua http://127.0.0.1:PORT
wrk.method = "POST"
wrk.path = "/v1/jobs"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"kind": "noop", "payload": {}}'

-- Count answers other than 201 Created, so a run of errors is not read as speed.
local others = 0
function response(status, headers, body)
  if status ~= 201 then
    others = others + 1
  end
end

function done(summary, latency, requests)
  io.write(string.format("non_201=%d\n", summary.errors.status))
end
