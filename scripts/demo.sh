#!/usr/bin/env bash
# The whole walkthrough in one command, on a fresh clone:
#   builds, creates what is missing (certificates, keys), starts jwt-factory,
#   servicea, serviceb and servicec (with nginx and three Envoy sidecars),
#   waits until each answers, runs every scenario (1-10) valid and expired
#   and a key rotation, scenario 6 with the
#   factory stopped and with an audience servicea may not have, scenarios 7
#   and 8 (mTLS) with the refusals and the replays of a captured bearer and
#   bound token, scenario 9 through a real nginx with forged identity
#   headers both ways, scenario 10 through the Envoy sidecars and the
#   four Istio steps of scripts/mesh.sh, the console's trace (?trace=1),
#   scenario 11 (jwt-factory's keys in a real OpenBao: scripts/vault.sh),
#   prints each request
#   and response, checks each outcome, and stops every process it started
#   (also on Ctrl-C or failure).
# Exit status: 0 when every outcome is the expected one, 1 otherwise.
# Logs of the nine processes: target/demo-logs/*.log (sidecars: sidecar-*.log)
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
# shellcheck source=scripts/mesh-steps.sh
. scripts/mesh-steps.sh
# shellcheck source=scripts/vault-steps.sh
. scripts/vault-steps.sh
cargo xtask install openssl curl
up

say "jwt-factory: a key pair for servicea, saved to keys/"
shown "curl -sS -m 10 $JWT_FACTORY_URL/keys/servicea | cut -c1-90"
shown "curl -sS -m 10 -X POST $JWT_FACTORY_URL/utils/dump"; echo

say "scenario 1: token from jwt-factory, serviceb asks jwt-factory to verify it"
check /scenario1 200 '"valid":true' '"aud":"serviceb"'
check '/scenario1?expired=1' 403 '"TokenExpiredError"' '"jwt expired"'

say "scenario 2: one token per audience, serviceb and servicec called concurrently"
check /scenario2 200 '"serviceb":{"valid":true' '"servicec":{"valid":true'
check '/scenario2?expired=1' 403 '"serviceb":{"valid":true' '"servicec":{"message":"invalid token"' '"TokenExpiredError"'

say "scenario 3: servicea signs its own token; serviceb verifies it locally, over https"
if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$SERVICEA_URL/scenario3")" = 503 ]; then
  echo "(no usable scenario-3 key pair yet: servicea answers 503 and says how to make one)"
  check /scenario3 503 'jwt-private.pem' 'gen-keys'
  shown "curl -sS -m 10 -X POST $SERVICEA_URL/gen-keys"; echo
fi
check /scenario3 200 '"valid":true' '"iss":"https://service-issuer"'
check '/scenario3?expired=1' 403 '"TokenExpiredError"'

say "scenario 4: one self-signed token per audience, both over https"
check /scenario4 200 '"serviceb":{"valid":true' '"servicec":{"valid":true'
check '/scenario4?expired=1' 403 '"serviceb":{"message":"invalid token"' '"servicec":{"message":"invalid token"'

say "scenario 5: token from jwt-factory, serviceb verifies it locally with the factory's published keys (JWK Set)"
check /scenario5 200 '"valid":true' '"iss":"https://jwt-factory/"'
check '/scenario5?expired=1' 403 '"TokenExpiredError"'

say "key rotation in phases: the next key is published before it signs; no call may fail"
# Windows from env/*.env (short for the demo): the factory publishes a new key
# ROTATION_PUBLISH_AHEAD_SECS before it signs with it, so serviceb's cached JWK
# Set (refreshed in the background) holds it before the first token arrives.
# phases: the kids the JWK Set publishes, and each key's phase.
phases() {
  echo "$ curl $JWT_FACTORY_URL/.well-known/jwks.json   # kids published"
  curl -fsS --max-time 10 "$JWT_FACTORY_URL/.well-known/jwks.json" | grep -o '"kid":"[^"]*"' | tr '\n' ' ' || true
  echo
  echo "$ curl $JWT_FACTORY_URL/utils/keys/servicea/status"
  curl -fsS --max-time 10 "$JWT_FACTORY_URL/utils/keys/servicea/status" || true
  echo
}
ROTATION_T0=$(date +%s%N)
stamp() { printf '[%6d ms] %s\n' $(( ($(date +%s%N) - ROTATION_T0) / 1000000 )) "$*"; }
echo "(a token signed before the rotation, to try afterwards)"
shown "TOKEN=\$(curl -fsS -m 10 -X POST $JWT_FACTORY_URL/issueToken/servicea -H 'content-type: application/json' -d '{\"aud\":\"serviceb\"}')"
echo "TOKEN is ${TOKEN:0:60}...   header: $(kid_of "$TOKEN")"
echo "(meanwhile: 2 clients call /scenario5 and 1 calls /scenario3 without pause, from the supervisor)"
shown 'cargo xtask load start /scenario5 /scenario5 /scenario3'
stamp "phase 1: one current key"
phases
echo "$ curl -sS -m 10 -X POST $JWT_FACTORY_URL/keys/servicea/rotate"
ROTATED=$(curl -sS -m 10 -X POST "$JWT_FACTORY_URL/keys/servicea/rotate" || true)
sed 's/"publicKey":"[^"]*"/"publicKey":"(omitted here)"/' <<<"$ROTATED"
NEW_KID=$(grep -o '"kid":"[^"]*"' <<<"$ROTATED" | head -1 | cut -d'"' -f4 || true)
stamp "phase 2: $NEW_KID published as the next key; the current key still signs"
phases
deadline=$((SECONDS + 40))
until curl -fsS --max-time 5 "$JWT_FACTORY_URL/utils/keys/servicea/status" | grep -qF "\"kid\":\"$NEW_KID\",\"phase\":\"current\""; do
  [ "$SECONDS" -lt "$deadline" ] || break
  sleep 0.5
done
stamp "phase 3: $NEW_KID signs; the previous key is retiring (verifies until its tokens expire)"
phases
echo "(scenario 5 again: the new token names the new kid, already in serviceb's cached set)"
check /scenario5 200 '"valid":true'
echo "(the token signed before the rotation still verifies)"
request 200 '"valid":true' -- "-H \"Authorization: Bearer \$TOKEN\" $SERVICEB_URL/scenario5-server"
echo
stamp "servicea's own key (scenario 3): published as jwt-public.next.pem, current after SCENARIO3_PUBLISH_AHEAD_SECS"
shown "curl -sS -m 10 -X POST $SERVICEA_URL/gen-keys"; echo
shown 'ls scenario-3-keys/'
deadline=$((SECONDS + 20))
while [ -e scenario-3-keys/jwt-public.next.pem ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
stamp "servicea signs with its new key; the previous public key stays for its tokens"
shown 'ls scenario-3-keys/'
check /scenario3 200 '"valid":true'
sleep 1
stamp "load stopped: the calls to /scenario5 and /scenario3 during the rotations"
if shown 'cargo xtask load stop'; then counted 1 "no call failed"; else counted 0 ""; fi
echo
echo "serviceb's log: its JWK Set fetches (in the background, before the copy goes stale)"
grep -E "fetching the JWK Set|refreshing the JWK Set|fetched the JWK Set" "$LOGS/serviceb.log" | sed -E 's/^[^ ]+ +INFO +//' | cut -c1-160 | tail -6 || true

say "scenario 6: servicea authenticates to jwt-factory's POST /token with its own key (private_key_jwt), caches the token; serviceb verifies it locally"
check /scenario6 200 '"valid":true' '"client_id":"servicea"' '"aud":"serviceb"'
echo "(again: the cached token, no new signature, no call to the factory)"
check /scenario6 200 '"valid":true'
echo "(?expired=1: servicea signs an EXPIRED client assertion; the factory refuses it, servicea relays the refusal)"
check '/scenario6?expired=1' 403 '"error":"invalid_client"' 'client assertion expired'
echo
echo "servicea's log: what it sent to the factory (an assertion it signed; the private key stays here)"
grep -E "client assertion|cached token|issued a token for" "$LOGS/servicea.log" | sed -E 's/^[^ ]+ +INFO +//; s/^req\{[^}]*\}: //' | cut -c1-170 | head -6 || true
echo "jwt-factory's log:"
grep -E "authenticated|issued an access token|refused: invalid_client" "$LOGS/jwt-factory.log" | sed -E 's/^[^ ]+ +INFO +//; s/^req\{[^}]*\}: //' | cut -c1-170 | head -4 || true

say "scenario 6: servicea asks for an audience it may not have"
check '/scenario6/token?audience=jwt-factory' 403 '"error":"invalid_target"' 'allowed: serviceb, servicec'
check '/scenario6/token?audience=servicec' 200 '"aud":"servicec"' '"client_id":"servicea"'

say "scenario 7: mutual TLS, no token: serviceb knows the caller by its certificate's SPIFFE ID and allows it by policy"
echo "(servicea's workload certificate names exactly one identity:)"
shown "openssl x509 -in certs/servicea.pem -noout -ext subjectAltName | tail -1"
echo "(serviceb's policy, as Istio's AuthorizationPolicy says it: only servicea on /scenario7-server)"
shown 'cat env/serviceb-authz.json'
check /scenario7 200 '"authorized":true' '"principal":"cluster.local/ns/default/sa/servicea"'
echo "(the same call, presenting servicec's certificate: a valid identity the policy does not allow)"
request 403 '"principal":"cluster.local/ns/default/sa/servicec"' '"path":"/scenario7-server"' '"allowed_principals":["cluster.local/ns/default/sa/servicea"]' -- \
  "--cacert certs/ca.pem --cert certs/servicec.pem --key certs/servicec-key.pem $SERVICEB_HTTPS_URL/scenario7-server"
echo "(no certificate at all: permissive mode lets the handshake through, the path needs an identity)"
request 401 'none was presented' -- "--cacert certs/ca.pem $SERVICEB_HTTPS_URL/scenario7-server"

say "scenario 8: a token bound to servicea's certificate (RFC 8705), fetched and used over mTLS"
echo "(the thumbprint of servicea's certificate: SHA-256 of its DER, base64url)"
shown "THUMBPRINT=\$(openssl x509 -in certs/servicea.pem -outform DER | openssl dgst -sha256 -binary | basenc --base64url | tr -d '='); echo \$THUMBPRINT"
echo "(the token carries it as cnf.x5t#S256; serviceb compares it with the certificate of the connection)"
check /scenario8 200 '"valid":true' "\"cnf\":{\"x5t#S256\":\"$THUMBPRINT\"}"
echo "(?expired=1: an EXPIRED client assertion, refused by the factory as in scenario 6)"
check '/scenario8?expired=1' 403 '"error":"invalid_client"'

say "the lesson side by side: a stolen bearer token replays; a stolen bound token does not"
echo "(a token as it crosses the wire in scenario 6 (a bearer token), and one as in scenario 8 (bound); app fetch-token gets each as servicea does)"
shown 'BEARER=$("$BIN/app" fetch-token --audience serviceb 2>/dev/null); echo "${BEARER:0:40}..."'
shown 'BOUND=$("$BIN/app" fetch-token --audience serviceb --bound 2>/dev/null); echo "${BOUND:0:40}..."'
echo "(replaying the bearer token with curl: accepted; whoever holds it is servicea)"
request 200 '"valid":true' '"client_id":"servicea"' -- "-H \"Authorization: Bearer \$BEARER\" $SERVICEB_URL/scenario6-server"
echo "(replaying the bound token from servicec's certificate: refused)"
request 401 '"error":"invalid_token"' 'bound to another certificate' -- \
  "--cacert certs/ca.pem --cert certs/servicec.pem --key certs/servicec-key.pem -H \"Authorization: Bearer \$BOUND\" $SERVICEB_HTTPS_URL/scenario8-server"
echo "(replaying it with no certificate, over one-way TLS: refused)"
request 401 '"error":"invalid_token"' 'presented none' -- "--cacert certs/ca.pem -H \"Authorization: Bearer \$BOUND\" $SERVICEB_HTTPS_URL/scenario8-server"
echo "(and at the plain-http path of scenario 6, where no certificate can be checked: refused)"
request 401 '"error":"invalid_token"' -- "-H \"Authorization: Bearer \$BOUND\" $SERVICEB_URL/scenario6-server"

say "scenario 9: the gateway (nginx) verifies the token once, at the edge, and forwards the identity; serviceb believes it from the gateway's certificate alone"
echo "(servicea sends the STS's access token: client_id and jti were set by the factory, so the gateway forwards them)"
check /scenario9 200 '"valid":true' '"sub":"servicea"' '"client_id":"servicea"' '"via":"gateway"'
echo "(?expired=1: the gateway refuses the token; serviceb never sees the request)"
check '/scenario9?expired=1' 403 '"TokenExpiredError"'
echo "(by hand: an /issueToken token for serviceb, through the gateway, with a forged X-Jwt-Sub: the gateway drops it and forwards the verified sub and aud only)"
shown "TOKEN9=\$(curl -sS -m 10 -X POST $JWT_FACTORY_URL/issueToken/servicea -H 'content-type: application/json' -d '{\"aud\":\"serviceb\"}'); echo \"\${TOKEN9:0:40}...\""
request 200 '"sub":"servicea"' '"via":"gateway"' -- "-H \"Authorization: Bearer \$TOKEN9\" -H 'X-Jwt-Sub: admin' $GATEWAY_URL/serviceb/scenario9-server"
echo "(the same forged header straight to serviceb, without the gateway's certificate: refused, and logged as an attempt)"
request 401 'accepted only from the gateway' -- "--cacert certs/ca.pem -H 'X-Jwt-Sub: admin' -H 'X-Jwt-Aud: serviceb' $SERVICEB_HTTPS_URL/scenario9-server"
grep -h "ATTEMPT" "$LOGS/serviceb.log" | sed -E 's/^[^ ]+ +WARN +//; s/^req\{[^}]*\}: //' | tail -1 || true
echo "(serviceb's token on servicec's route: refused at the gateway, as JSON)"
request 403 'jwt audience invalid. expected: servicec' -- "-H \"Authorization: Bearer \$TOKEN9\" $GATEWAY_URL/servicec/scenario9-server"

say "a web page of another site cannot change state: a browser marks its requests (Sec-Fetch-Site, Origin); curl sends neither"
echo "(an <img src=$JWT_FACTORY_URL/keys/servicea> on any page: refused, servicea's key stays)"
request 403 'another site' -- "-H 'Sec-Fetch-Site: cross-site' -H 'Sec-Fetch-Dest: image' $JWT_FACTORY_URL/keys/servicea"
echo "(an auto-submitted form to servicea's /gen-keys: refused)"
request 403 'another origin' -- "-X POST -H 'Origin: https://evil.example' -H 'content-type: application/x-www-form-urlencoded' -d x=1 $SERVICEA_URL/gen-keys"

mesh_steps

say "the workshop console: open $SERVICEA_URL/ in a browser; each Run there is the scenario with ?trace=1"
echo "(with ?trace=1 the answer is 200 and carries the scenario's status, its answer and every hop and check, each service's part returned with its answer, under the request id they share)"
check '/scenario1?trace=1' 200 '"status":200' '"from":"servicea","to":"jwt-factory"' '"from":"serviceb","to":"jwt-factory"' '"by":"jwt-factory"' '"result":"valid"'
check '/scenario1?trace=1&expired=1' 200 '"status":403' '"result":"refused"' '"reason":"jwt expired"'
echo "(without it, the plain answer, exactly as above)"
check /scenario1 200 '"valid":true' '"aud":"serviceb"'

vault_steps

say "scenario 6 with jwt-factory STOPPED: the cached token keeps working; scenarios 1, 2 and 5 need the factory for every token"
shown 'cargo xtask stop jwt-factory'
check /scenario6 200 '"valid":true'
check /scenario1 502 'jwt-factory unavailable'
check /scenario2 502 'jwt-factory unavailable'
check /scenario5 502 'jwt-factory unavailable'
echo "(jwt-factory again, on the keys dumped to keys/ at the start)"
shown 'cargo xtask start jwt-factory'
check /scenario1 200 '"valid":true'

result demo
