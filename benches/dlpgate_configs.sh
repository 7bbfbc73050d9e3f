# Sourced by the proxy benchmarks: write the two dlpgate configurations they compare.
#   dlpgate_configs DIR THREADS PORT ADMIN PORT_OFF ADMIN_OFF UPSTREAM_PORT
# DIR/dlpgate.yaml masks every default category on one route; DIR/off.yaml is the same gateway with
# inspection off on that route (Pingora's own cost).
dlpgate_configs() {
  local W=$1 THREADS=$2 GW=$3 ADM=$4 GW0=$5 ADM0=$6 UP=$7
  cat > "$W/dlpgate.yaml" <<YAML
server: {threads: $THREADS, pid_file: $W/gw.pidfile, upgrade_sock: $W/up.sock, grace_period_seconds: 1, graceful_shutdown_timeout_seconds: 1}
listeners: [{name: bench, addr: "127.0.0.1:$GW", h2: false}]
admin: {addr: "127.0.0.1:$ADM"}
policies:
  - id: mask
    overrides:
      - {categories: [secret.marking], action: mask}
      - {categories: [secret.credential], action: redact}
routes:
  - {id: bench, path_prefix: /, policy: mask, upstream: {addrs: ["127.0.0.1:$UP"]}}
logging: {level: warn}
YAML
  sed "s/$GW/$GW0/; s/$ADM/$ADM0/; s|gw.pidfile|gw0.pidfile|; s|up.sock|up0.sock|; s/policy: mask, upstream/policy: mask, inspect: {request: false, response: false}, upstream/" \
    "$W/dlpgate.yaml" > "$W/off.yaml"
}
