-- POST /verify/servicea with the token in TOKEN (one made before the row).
wrk.method = "POST"
wrk.body = '{"token":"' .. os.getenv("TOKEN") .. '","aud":"serviceb","sub":"servicea"}'
wrk.headers["Content-Type"] = "application/json"
