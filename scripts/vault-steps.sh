# Scenario 11, "keys in a vault" (seed 002): sourced by demo.sh and
# vault.sh. jwt-factory moves its keys into a real OpenBao (a dev server,
# configured with its HTTP API by `cargo xtask openbao up`), signs
# scenario 1 and a scenario 6 token through it, shows who used servicea's
# key in OpenBao's audit log, moves servicea's own key there too and
# revokes it, survives a restart with the same keys,
# answers 503 naming OpenBao when OpenBao is down, and goes back to its
# files. Needs the stack up and lib.sh's helpers; kid_of is defined here.

# kid_of TOKEN: the kid in a JWT's header (base64url-decoded with tr + base64).
kid_of() {
  local h
  h=$(cut -d. -f1 <<<"$1" | tr '_-' '/+')
  while [ $(( ${#h} % 4 )) -ne 0 ]; do h+="="; done
  base64 -d <<<"$h" 2>/dev/null | grep -o '"kid":"[^"]*"'
}

vault_steps() {
  # OpenBao goes down with the stack, also on Ctrl-C or failure.
  trap 'cargo xtask openbao down >/dev/null 2>&1 || true; cargo xtask down' EXIT

  say "scenario 11: keys in a vault (OpenBao): jwt-factory signs with keys it never holds"
  shown 'cargo xtask openbao up'
  echo "(jwt-factory again, with KEY_BACKEND=openbao: it logs in with its own AppRole credentials, never the root token)"
  shown 'cargo xtask stop jwt-factory && cargo xtask start jwt-factory --openbao'
  echo "(a key for servicea: a Transit key in OpenBao; the kid names its version, the private key never leaves OpenBao)"
  request 200 '"kid":"servicea.v' -- "-X POST $JWT_FACTORY_URL/keys/servicea"
  check /scenario1 200 '"valid":true' '"aud":"serviceb"'
  shown 'cargo xtask openbao audit sign/jwt-factory-servicea   # who used servicea'"'"'s key? each signature, by the factory'"'"'s AppRole and policy'
  echo "(scenario 6 with a fresh token: app fetch-token authenticates as servicea does, and OpenBao signs the access token)"
  shown 'FRESH=$("$BIN/app" fetch-token --audience serviceb 2>/dev/null); echo "${FRESH:0:40}...   header: $(kid_of "$FRESH")"'
  request 200 '"valid":true' '"client_id":"servicea"' -- "-H \"Authorization: Bearer \$FRESH\" $SERVICEB_URL/scenario6-server"
  echo "(servicea's own key too (scenarios 3-4, its assertions): the Transit key servicea, under a policy that lets it sign and nothing else; its file key's public half is kept aside to come back to)"
  shown 'cp -p scenario-3-keys/jwt-public.pem scenario-3-keys/jwt-public.files.pem'
  shown 'cargo xtask stop servicea && cargo xtask start servicea --openbao'
  check /scenario3 200 '"valid":true' '"iss":"https://service-issuer"'
  check /scenario6 200 '"valid":true' '"client_id":"servicea"'   # both keys in OpenBao: servicea's assertion, the factory's token
  request 200 '"key":"servicea"' '"policies":["default","servicea"]' -- "$SERVICEA_URL/console/key-audit"   # the console's lesson: who used servicea's keys?
  shown 'cargo xtask openbao revoke servicea   # centrally: servicea cannot sign from now on, and says why'
  check /scenario3 503 'OpenBao' 'revoked'
  shown 'mv scenario-3-keys/jwt-public.files.pem scenario-3-keys/jwt-public.pem && cargo xtask stop servicea && cargo xtask start servicea'
  check /scenario3 200 '"valid":true'

  shown 'cargo xtask openbao certs --ttl 1h && openssl x509 -in target/openbao/certs/servicea.pem -noout -ext subjectAltName -dates   # workload certificates from the PKI engine, as cert-agent: the CA key stays in OpenBao'
  echo "(a restart loses nothing: the same kids before and after)"
  shown "KIDS=\$(curl -fsS -m 10 $JWT_FACTORY_URL/.well-known/jwks.json | grep -o '\"kid\":\"[^\"]*\"'); echo \"\$KIDS\""
  shown 'cargo xtask stop jwt-factory && cargo xtask start jwt-factory --openbao'
  request 200 "$KIDS" -- "$JWT_FACTORY_URL/.well-known/jwks.json"
  check /scenario1 200 '"valid":true'

  shown 'cargo xtask openbao down   # a signature is now refused with a 503 that names OpenBao; tokens already issued still verify'
  request 503 "OpenBao at $OPENBAO_URL is unreachable" -- "-X POST -H 'content-type: application/json' -d '{\"aud\":\"serviceb\"}' $JWT_FACTORY_URL/issueToken/servicea"
  request 200 '"valid":true' -- "-H \"Authorization: Bearer \$FRESH\" $SERVICEB_URL/scenario6-server"

  shown 'cargo xtask stop jwt-factory && cargo xtask start jwt-factory   # back to the workshop keys/ (KEY_BACKEND=files)'
  shown "for i in \$(seq 60); do curl -fs -m 5 -o /dev/null $SERVICEA_URL/scenario6 && break; sleep 0.5; done   # serviceb learns the files key at its next JWK Set fetch (rate-limited)"
  check /scenario6 200 '"valid":true'   # servicea (restarted above) caches a token the factory's files key signed
}
