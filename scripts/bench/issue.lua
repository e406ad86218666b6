-- POST /issueToken/servicea for serviceb: one signature per request.
wrk.method = "POST"
wrk.body = '{"aud":"serviceb"}'
wrk.headers["Content-Type"] = "application/json"
