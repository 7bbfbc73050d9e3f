# Sourced by the proxy benchmarks: the upstream they share, the two dlpgate configurations
# they compare, and the plain nginx proxy they are measured against.
#
#   payload_upstream DIR PORT
# serves DIR/www (the payloads of gen_pii_dense.py) with nginx on CPU 1; stop it with
# `nginx -s stop -c DIR/up.conf`.
payload_upstream() {
  local W=$1 UP=$2
  cat > "$W/up.conf" <<NGINX
worker_processes 1;
pid $W/up.pidfile;
error_log $W/up-error.log;
events { worker_connections 4096; }
http { access_log off; default_type application/json; keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP backlog=4096; root $W/www; location / { try_files \$uri =404; } } }
NGINX
  taskset -c 1 nginx -c "$W/up.conf"
}


#   dlpgate_configs DIR THREADS PORT ADMIN PORT_OFF ADMIN_OFF UPSTREAM_PORT
# DIR/dlpgate.yaml masks every default category on one route; DIR/off.yaml is the same gateway with
# inspection off on that route (Pingora's own cost).
# RECEIVE_BUFFER (bytes), when set, is the route's upstream receive_buffer.
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
  - {id: bench, path_prefix: /, policy: mask, upstream: {addrs: ["127.0.0.1:$UP"]${RECEIVE_BUFFER:+, receive_buffer: $RECEIVE_BUFFER}}}
logging: {level: warn}
YAML
  sed "s/$GW/$GW0/; s/$ADM/$ADM0/; s|gw.pidfile|gw0.pidfile|; s|up.sock|up0.sock|; s/policy: mask, upstream/policy: mask, inspect: {request: false, response: false}, upstream/" \
    "$W/dlpgate.yaml" > "$W/off.yaml"
}

#   nginx_proxy_conf DIR PORT UPSTREAM_PORT [DIRECTIVES]
# writes DIR/ngx.conf: plain nginx proxying to the upstream with kept connections (the limit a
# proxy is measured against), one worker; DIRECTIVES go first (`daemon off; master_process off;`
# runs it in the foreground as one process)
nginx_proxy_conf() {
  local W=$1 PORT=$2 UP=$3 TOP=${4:-}
  cat > "$W/ngx.conf" <<NGINX
$TOP
worker_processes 1;
pid $W/ngx.pidfile;
error_log $W/ngx-error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream origin { server 127.0.0.1:$UP; keepalive 64; }
  server { listen 127.0.0.1:$PORT;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
NGINX
}
