# The seed's Istio steps on the running sidecars (sourced by mesh.sh and
# demo.sh, after `up`). Each step applies deploy/istio plus one file
# of deploy/istio/steps/ with `app mesh-config --wait`, the way
# `kubectl apply` would: the sidecars reload the replaced files, nothing
# restarts, and the command returns once every sidecar runs the new
# version. Then each outcome is checked.
#
# Calls "from servicec's pod" go through servicec's sidecar, the way its
# own calls would: curl with that sidecar as its HTTP proxy (-x).

# apply_step FILE: the step's resources, and what each sidecar now enforces.
apply_step() {
  echo "$ cat $1"
  grep -v '^#' "$1" | sed '/^$/d' || echo "(no resources: comments only)"
  echo "$ $BIN/app mesh-config --wait $1"
  local out
  if ! out=$("$BIN/app" mesh-config --wait "$1" 2>&1 >/dev/null); then
    printf '%s\n' "$out" >&2
    die "app mesh-config $1 failed"
  fi
  # The narration, without timestamps: what serviceb's sidecar enforces now.
  sed -nE 's/^[^ ]+ +INFO +//p' <<<"$out" | sed -n "/^serviceb's sidecar/,/^servicec's sidecar/p" | sed '$d'
  tail -1 <<<"$out" | sed -E 's/^[^ ]+ +INFO +//'
}


# refused_at_handshake URL: curl must reach the port and get the
# connection closed or reset with no HTTP answer (exit 52 or 56), not find
# it closed (7) or time out (28): a port with nothing behind it must not pass.
refused_at_handshake() {
  printf '\n$ curl -sS -m 5 %s\n' "$1"
  local rc=0
  curl -sS -m 5 "$1" >/dev/null || rc=$?
  case $rc in
    52|56) echo "curl exit $rc: closed without an answer"; counted 1 "as expected" ;;
    *) echo "  expected the connection closed without an answer (curl exit 52 or 56), got curl exit $rc"; counted 0 "" ;;
  esac
}

# A sidecar's ports are its admin port, +1 inbound (mTLS), +2 outbound
# (its workload's HTTP proxy).
mesh_steps() {
  local to_b="http://serviceb:$SERVICEB_PORT/scenario10-server"
  FROM_C="-x http://127.0.0.1:$((SIDECAR_SERVICEC_PORT + 2)) $to_b"
  FROM_A="-x http://127.0.0.1:$((SIDECAR_SERVICEA_PORT + 2)) $to_b"
  # The sidecars fetch the factory's keys at start and every JWKS_CACHE_SECS,
  # never for an unknown kid: wait until serviceb's knows servicea's current key.
  cargo xtask wait-sidecar-jwks
  say "scenario 10: the mesh. servicea calls http://serviceb:$SERVICEB_PORT through its sidecar (Envoy); the sidecars do mTLS with the workload certificates; serviceb's checks the token (RequestAuthentication) and the policy (AuthorizationPolicy); serviceb itself checks nothing and reads what its sidecar verified"
  check /scenario10 200 '"principal":"cluster.local/ns/default/sa/servicea"' '"requestPrincipal":"https://jwt-factory//servicea"'
  check '/scenario10?expired=1' 401 '"message":"Jwt is expired"' "\"by\":\"serviceb's sidecar\""
  echo "(plain http straight to serviceb's sidecar's mTLS port: STRICT, so the connection is closed without an answer)"
  refused_at_handshake "http://127.0.0.1:$((SIDECAR_SERVICEB_PORT + 1))/scenario10-server"

  say "mesh step 1 of 4: no AuthorizationPolicy; every caller with a mesh identity gets through"
  apply_step deploy/istio/steps/1-no-policy.yaml
  check /scenario10 200 '"principal":"cluster.local/ns/default/sa/servicea"'
  echo "(from servicec's pod, through servicec's sidecar)"
  request 200 '"principal":"cluster.local/ns/default/sa/servicec"' -- "$FROM_C"

  say "mesh step 2 of 4: allow-nothing; an ALLOW policy with no rules refuses everyone"
  apply_step deploy/istio/steps/2-allow-nothing.yaml
  check /scenario10 403 '"message":"RBAC: access denied"'
  request 403 '"message":"RBAC: access denied"' -- "$FROM_C"

  say "mesh step 3 of 4: serviceb allows servicea's principal, cluster.local/ns/default/sa/servicea"
  apply_step deploy/istio/steps/3-allow-servicea.yaml
  check /scenario10 200 '"principal":"cluster.local/ns/default/sa/servicea"'
  echo "(servicec's identity is still refused)"
  request 403 '"message":"RBAC: access denied"' -- "$FROM_C"

  say "mesh step 4 of 4: a request principal too: servicea's identity AND a jwt-factory token for servicea"
  apply_step deploy/istio/steps/4-require-jwt.yaml
  echo "(from servicea's pod, no token: the policy does not match)"
  request 403 '"message":"RBAC: access denied"' -- "$FROM_A"
  echo "(a token from jwt-factory's POST /token, which authenticates servicea by its key, as servicea gets it)"
  shown 'TOKEN10=$("$BIN/app" fetch-token --audience serviceb 2>>"$LOGS/fetch-token.log") || die "app fetch-token failed (log: $LOGS/fetch-token.log)"; echo "${TOKEN10:0:40}..."'
  request 200 '"requestPrincipal":"https://jwt-factory//servicea"' -- "-H \"Authorization: Bearer \$TOKEN10\" $FROM_A"
  echo "(a token from another issuer: servicea's own, as in scenario 3; the sidecar refuses it before any policy)"
  shown 'OTHER=$("$BIN/app" fetch-token --self-signed 2>>"$LOGS/fetch-token.log") || die "app fetch-token --self-signed failed (log: $LOGS/fetch-token.log)"; echo "${OTHER:0:40}..."'
  request 401 '"message":"Jwt issuer is not configured"' -- "-H \"Authorization: Bearer \$OTHER\" $FROM_A"
  check /scenario10 200 '"requestPrincipal":"https://jwt-factory//servicea"'
  echo "(servicec with servicea's valid token: the token is right, the peer is not)"
  request 403 '"message":"RBAC: access denied"' -- "-H \"Authorization: Bearer \$TOKEN10\" $FROM_C"

  say "the mesh back to step 1 (deploy/istio alone)"
  apply_step deploy/istio/steps/1-no-policy.yaml
}
