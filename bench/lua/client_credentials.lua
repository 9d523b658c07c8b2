-- POST /token grant_type=client_credentials with HTTP Basic client authentication.
-- Env: BASIC (base64 of "client_id:secret").
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. os.getenv("BASIC")
wrk.body = "grant_type=client_credentials"
