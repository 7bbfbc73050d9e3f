//! Raw configuration → compiled [`Snapshot`]: every check, every problem collected with its line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::error::{ConfigError, ConfigErrors, Ctx, route_line};
use super::keys::key_or_random;
use super::model::*;
use super::path::normal_path;
use super::raw::*;
use crate::engine::{Action, HashKey, RuleSet, Transformer};
use crate::policy::{Cidr, Clearance, Department, Override, PerDirection, Policy};

/// Load and compile a configuration file. Every problem is reported at once.
pub fn load(path: &Path) -> Result<Snapshot, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: 0,
            key: String::new(),
            msg: format!("cannot read config: {e}"),
        }])
    })?;
    load_str(path, &text)
}

/// Compile configuration text (`path` names it in errors and anchors relative paths).
pub fn load_str(path: &Path, text: &str) -> Result<Snapshot, ConfigErrors> {
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let yaml_err = |e: crate::engine::yaml::YamlError| ConfigError {
        file: path.to_path_buf(),
        line: e.line,
        key: e.path,
        msg: e.msg,
    };
    // an empty file is an empty mapping (every section has its defaults)
    let node = if text.trim().is_empty() { crate::engine::yaml::parse("{}") } else { crate::engine::yaml::parse(text) };
    let node = node.map_err(|e| ConfigErrors(vec![yaml_err(e)]))?;
    let lines = crate::engine::yaml::Lines::of(&node);
    let mut c = Ctx { file: path, text, base, errs: Vec::new(), lines, scope: String::new() };
    // every unknown key and bad value, each at its line; with unknown keys only (skipped), the
    // checks below still run and report theirs
    let (raw, errs) = crate::engine::yaml::read::<RawConfig>(&node);
    c.errs.extend(errs.into_iter().map(yaml_err));
    let Some(raw) = raw else { return Err(ConfigErrors(c.errs)) };
    let snap = compile(&mut c, raw);
    if c.errs.is_empty() {
        if let Some(s) = snap {
            return Ok(s);
        }
    }
    if c.errs.is_empty() {
        c.errs.push(ConfigError {
            file: path.to_path_buf(),
            line: 0,
            key: String::new(),
            msg: "configuration did not compile".into(),
        });
    }
    Err(ConfigErrors(c.errs))
}

fn compile(c: &mut Ctx<'_>, raw: RawConfig) -> Option<Snapshot> {
    let server = compile_server(c, raw.server);
    let listeners = compile_listeners(c, raw.listeners);
    let admin = compile_admin(c, raw.admin);
    let rules = compile_rules(c, &raw.rules);
    let hmac = |k: HashKey, alg: HmacAlgorithm| if alg == HmacAlgorithm::HmacSm3 { k.sm3() } else { k };
    let hash_key = key_or_random(c, "hash_key_file", raw.rules.hash_key_file.as_deref())
        .map(|k| hmac(k, raw.rules.hash_algorithm));
    let fingerprint_key = key_or_random(c, "fingerprint_key_file", raw.audit.fingerprint_key_file.as_deref())
        .map(|k| hmac(k, raw.audit.fingerprint_algorithm));
    let identity = compile_identity(c, &raw.identity);
    let (departments, unknown) = compile_departments(c, raw.departments);
    let route_ids: Vec<String> = raw.routes.iter().map(|r| r.id.clone()).collect();
    let policies = compile_policies(c, raw.policies, &route_ids, &departments, rules.as_deref());
    let mut routes = compile_routes(c, raw.routes, &policies, &departments, rules.as_deref());
    let quotas = compile_quotas(c, raw.quotas, &departments, rules.as_deref());
    // A department under a quota has its responses scanned even on routes where every decision
    // for it is `allow` (which otherwise skip the scan): the quota counts what it receives in clear.
    for route in &mut routes {
        for (d, dept) in departments.iter().enumerate() {
            if route.inspect.response && quotas.iter().any(|q| q.applies_to(&dept.id)) {
                if let Some(m) = route.may_act.get_mut(d) {
                    m.response = true;
                }
            }
        }
    }
    let cluster = raw.cluster.and_then(|cl| compile_cluster(c, cl));
    let audit = compile_audit(c, raw.audit);
    if let Err(why) = log_level(&raw.logging.level) {
        c.err("logging.level", Some(&raw.logging.level), why);
    }
    let logging = LoggingSettings { format: raw.logging.format, level: raw.logging.level };

    let rules = rules?;
    let hash_key = hash_key?;
    let fingerprint_key = fingerprint_key?;
    if !c.errs.is_empty() {
        return None;
    }
    Some(Snapshot {
        source: c.file.to_path_buf(),
        server,
        listeners,
        admin,
        rules,
        transformer: Transformer::new(hash_key),
        fingerprint_key,
        identity,
        departments,
        unknown: crate::policy::DeptId(unknown),
        policies,
        routes,
        quotas,
        cluster,
        audit,
        logging,
        loaded_at: std::time::SystemTime::now(),
    })
}

/// `server`: threads and the files of a graceful upgrade.
fn compile_server(c: &mut Ctx<'_>, s: RawServer) -> ServerSettings {
    if s.threads == 0 || s.threads > 256 {
        c.err("server.threads", None, format!("must be 1..=256, found {}", s.threads));
    }

    ServerSettings {
        threads: s.threads,
        pid_file: s.pid_file.unwrap_or_else(|| "/tmp/dlpgate.pid".into()),
        upgrade_sock: s.upgrade_sock.unwrap_or_else(|| "/tmp/dlpgate_upgrade.sock".into()),
        grace_period_seconds: s.grace_period_seconds,
        graceful_shutdown_timeout_seconds: s.graceful_shutdown_timeout_seconds,
        work_stealing: s.work_stealing,
    }
}

/// `listeners`: addresses, TLS files, names (certificates are looked up by name).
fn compile_listeners(c: &mut Ctx<'_>, raw: Vec<RawListener>) -> Vec<Listener> {
    let mut listeners = Vec::new();
    if raw.is_empty() {
        c.err("listeners", None, "at least one listener is required");
    }
    for (i, l) in raw.into_iter().enumerate() {
        c.scope = format!("listeners[{i}]");
        let Ok(addr) = l.addr.parse::<SocketAddr>() else {
            c.err("addr", Some(&l.addr), format!("invalid listen address {:?} (expected ip:port)", l.addr));
            continue;
        };
        if addr.port() == 0 {
            c.err("addr", Some(&l.addr), "a listener needs a fixed port, not 0");
        }
        let tls = match l.tls {
            None => None,
            Some(t) => {
                let cert = c.readable("cert", &t.cert);
                let key = c.readable("key", &t.key);
                let client_ca = match (&t.client_ca, t.client_auth) {
                    (Some(ca), _) => c.readable("client_ca", ca),
                    (None, ClientAuth::None) => None,
                    (None, _) => {
                        c.err("client_auth", None, "client_auth optional/required needs client_ca");
                        None
                    }
                };
                let sm2 = match (&t.sm2_cert, &t.sm2_key, t.guomi) {
                    (Some(c2), Some(k2), _) => c.readable("sm2_cert", c2).zip(c.readable("sm2_key", k2)),
                    (None, None, GuomiMode::Off) => None,
                    (None, None, _) => {
                        c.err("guomi", None, "guomi: prefer or only needs sm2_cert and sm2_key");
                        None
                    }
                    _ => {
                        c.err(
                            if t.sm2_cert.is_some() { "sm2_cert" } else { "sm2_key" },
                            None,
                            "sm2_cert and sm2_key go together",
                        );
                        None
                    }
                };
                if t.guomi == GuomiMode::Off && sm2.is_some() {
                    c.err("sm2_cert", None, "an SM2 certificate is served only with guomi: prefer or only");
                }
                match (cert, key) {
                    (Some(cert), Some(key)) => {
                        Some(TlsSettings { cert, key, client_ca, client_auth: t.client_auth, sm2, guomi: t.guomi })
                    }
                    _ => None,
                }
            }
        };
        let name = l.name.unwrap_or_else(|| format!("listener{i}"));
        if listeners.iter().any(|x: &Listener| x.name == name) {
            // certificates are looked up by listener name
            c.err("name", Some(&name), format!("listener name {name:?} is used twice"));
        }
        for (key, v) in
            [("client_header_timeout_s", l.client_header_timeout_s), ("client_body_timeout_s", l.client_body_timeout_s)]
        {
            if v == 0 {
                c.err(key, None, format!("{key} must be at least 1 second"));
            }
        }
        let timeouts = Timeouts {
            header: Duration::from_secs(l.client_header_timeout_s),
            body: Duration::from_secs(l.client_body_timeout_s),
            keepalive: Duration::from_secs(l.keepalive_timeout_s),
        };
        listeners.push(Listener { name, addr, tls, h2: l.h2, timeouts });
    }

    c.scope.clear();
    listeners
}

/// `admin`: the admin listener and its token.
fn compile_admin(c: &mut Ctx<'_>, raw: Option<RawAdmin>) -> AdminSettings {
    let ra = raw.unwrap_or(RawAdmin { addr: d_admin(), token_file: None });
    let admin_addr = ra.addr.parse::<SocketAddr>().unwrap_or_else(|_| {
        c.err("admin.addr", Some(&ra.addr), format!("invalid address {:?}", ra.addr));
        SocketAddr::from(([127, 0, 0, 1], 9090))
    });
    let token = match &ra.token_file {
        None => None,
        Some(p) => match c.readable("token_file", p).map(std::fs::read_to_string) {
            Some(Ok(t)) if t.trim().len() >= 16 => Some(t.trim().to_string()),
            Some(Ok(_)) => {
                c.err("token_file", Some(p), "admin token must be at least 16 characters");
                None
            }
            Some(Err(e)) => {
                c.err("token_file", Some(p), format!("cannot read: {e}"));
                None
            }
            None => None,
        },
    };

    AdminSettings { addr: admin_addr, token }
}

/// `rules`: the rule directories (or the built-in set); their errors keep their own files.
fn compile_rules(c: &mut Ctx<'_>, raw: &RawRules) -> Option<Arc<RuleSet>> {
    let rules = if raw.dirs.is_empty() {
        crate::engine::default_rules()
    } else {
        let dirs: Vec<PathBuf> = raw.dirs.iter().map(|d| c.path(d)).collect();
        RuleSet::load(&dirs)
    };

    match rules {
        Ok(r) => Some(Arc::new(r)),
        Err(e) => {
            for re in e.0 {
                c.errs.push(ConfigError {
                    file: re.file.clone(),
                    line: re.line,
                    key: re.rule.map(|r| format!("rule {r}")).unwrap_or_default(),
                    msg: re.msg,
                });
            }
            None
        }
    }
}

/// `identity`: headers, trusted proxies, what happens to unknown callers.
fn compile_identity(c: &mut Ctx<'_>, raw: &RawIdentity) -> IdentitySettings {
    let mut trusted = Vec::new();
    for p in &raw.trusted_proxies {
        match Cidr::parse(p) {
            Ok(x) => trusted.push(x),
            Err(e) => c.err("trusted_proxies", Some(p), e),
        }
    }

    // header names, checked here once rather than parsed again for every request
    let mut name = |key: &str, value: &str| match http::HeaderName::from_bytes(value.to_ascii_lowercase().as_bytes()) {
        Ok(n) => n,
        Err(_) => {
            c.err(key, Some(value), format!("{value:?} is not a header name"));
            http::HeaderName::from_static("x-invalid")
        }
    };
    IdentitySettings {
        api_key_header: name("identity.api_key_header", &raw.api_key_header),
        trusted_proxies: trusted,
        department_header: name("identity.department_header", &raw.department_header),
        unknown: raw.unknown,
        unknown_api_key: raw.unknown_api_key,
    }
}

/// `departments`, and the `unknown` department (synthesised when not configured): the list and
/// the index of `unknown`.
fn compile_departments(c: &mut Ctx<'_>, raw: Vec<RawDepartment>) -> (Vec<Department>, usize) {
    let mut departments: Vec<Department> = Vec::new();
    for (n, d) in raw.into_iter().enumerate() {
        c.scope = format!("departments[{n}]");
        if departments.iter().any(|x| x.id == d.id) {
            c.err("id", Some(&d.id), format!("duplicate department id {:?}", d.id));
            continue;
        }
        // sent to upstreams in a header and used as a metric label
        if d.id.is_empty() || !d.id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
            c.err(
                "id",
                Some(&d.id),
                format!("department id {:?} must be ASCII letters, digits, '-', '_' or '.'", d.id),
            );
        }
        let mut keys = Vec::new();
        for k in &d.matcher.api_key_sha256 {
            let bytes: Option<Vec<u8>> = (k.len() == 64)
                .then(|| {
                    (0..32)
                        .map(|i| u8::from_str_radix(k.get(i * 2..i * 2 + 2).unwrap_or("zz"), 16).ok())
                        .collect::<Option<Vec<u8>>>()
                })
                .flatten();
            match bytes.and_then(|b| <[u8; 32]>::try_from(b).ok()) {
                Some(b) => keys.push(b),
                None => c.err(
                    "api_key_sha256",
                    Some(k),
                    "expected 64 hex digits (SHA-256 of the key; `printf %s KEY | sha256sum`)",
                ),
            }
        }
        let mut cidrs = Vec::new();
        for n in &d.matcher.cidrs {
            match Cidr::parse(n) {
                Ok(x) => cidrs.push(x),
                Err(e) => c.err("cidrs", Some(n), e),
            }
        }
        departments.push(Department {
            name: d.name.unwrap_or_else(|| d.id.clone()),
            id: d.id,
            clearance: d.clearance,
            cert_ou: d.matcher.cert_ou,
            cert_cn: d.matcher.cert_cn,
            cert_san: d.matcher.cert_san,
            api_keys: keys,
            cidrs,
        });
    }
    c.scope.clear();
    let unknown = match departments.iter().position(|d| d.id == "unknown") {
        Some(i) => i,
        None => {
            departments.push(Department {
                id: "unknown".into(),
                name: "unknown".into(),
                clearance: Clearance::None,
                cert_ou: vec![],
                cert_cn: vec![],
                cert_san: vec![],
                api_keys: vec![],
                cidrs: vec![],
            });
            departments.len() - 1
        }
    };
    (departments, unknown)
}

/// Whether `id` is a department's: a compiled one, or one in the file that did not read (its own
/// error says why; the places that name it are not reported again).
fn known_department(c: &Ctx<'_>, departments: &[Department], id: &str) -> bool {
    departments.iter().any(|x| x.id == id) || c.lines.find("departments", "id", Some(id)).is_some()
}

/// `policies`: every department, route, category and rule an override names must exist.
fn compile_policies(
    c: &mut Ctx<'_>,
    raw: Vec<RawPolicy>,
    route_ids: &[String],
    departments: &[Department],
    rules: Option<&RuleSet>,
) -> Vec<Policy> {
    let categories: Vec<String> =
        rules.as_ref().map(|r| r.rules().iter().map(|x| x.category.clone()).collect()).unwrap_or_default();
    let rule_ids: Vec<String> =
        rules.as_ref().map(|r| r.rules().iter().map(|x| x.id.clone()).collect()).unwrap_or_default();
    let mut policies: Vec<Policy> = Vec::new();
    for (n, p) in raw.into_iter().enumerate() {
        c.scope = format!("policies[{n}]");
        if policies.iter().any(|x| x.id == p.id) {
            c.err("id", Some(&p.id), format!("duplicate policy id {:?}", p.id));
            continue;
        }
        let mut overrides = Vec::new();
        for (k, o) in p.overrides.into_iter().enumerate() {
            // each override its own scope: a value named in two is reported at its own line
            c.scope = format!("policies[{n}].overrides[{k}]");
            for d in &o.departments {
                if !known_department(c, departments, d) {
                    c.err("departments", Some(d), format!("policy {}: unknown department {d:?}", p.id));
                }
            }
            for r in &o.routes {
                if !route_ids.contains(r) {
                    c.err("routes", Some(r), format!("policy {}: unknown route {r:?}", p.id));
                }
            }
            if rules.is_some() {
                for cat in &o.categories {
                    if !categories.contains(cat) {
                        c.err("categories", Some(cat), format!("policy {}: no loaded rule has category {cat:?}", p.id));
                    }
                }
                for r in &o.rules {
                    if !rule_ids.contains(r) {
                        c.err("rules", Some(r), format!("policy {}: unknown rule {r:?}", p.id));
                    }
                }
            }
            overrides.push(Override {
                departments: o.departments,
                routes: o.routes,
                categories: o.categories,
                rules: o.rules,
                direction: o.direction,
                action: o.action,
            });
        }
        policies.push(Policy { id: p.id, overrides });
    }

    policies
}

/// `routes`: matching, upstream, inspection limits, and every decision precomputed.
fn compile_routes(
    c: &mut Ctx<'_>,
    raw: Vec<RawRoute>,
    policies: &[Policy],
    departments: &[Department],
    rules: Option<&RuleSet>,
) -> Vec<Route> {
    let mut routes = Vec::new();
    if raw.is_empty() {
        c.err("routes", None, "at least one route is required");
    }
    for (n, r) in raw.into_iter().enumerate() {
        c.scope = format!("routes[{n}]");
        if routes.iter().any(|x: &Route| x.id == r.id) {
            c.err("id", Some(&r.id), format!("duplicate route id {:?}", r.id));
            continue;
        }
        let Some(policy) = policies.iter().position(|p| p.id == r.policy) else {
            c.err("policy", Some(&r.policy), format!("route {}: unknown policy {:?}", r.id, r.policy));
            continue;
        };
        if !r.path_prefix.starts_with('/') {
            c.err("path_prefix", Some(&r.path_prefix), format!("route {}: path_prefix must start with /", r.id));
        } else if !matches!(normal_path(&r.path_prefix, false), Ok(None)) {
            // requests are matched in normal form: another spelling would never match
            c.err(
                "path_prefix",
                Some(&r.path_prefix),
                format!("route {}: path_prefix must be in normal form (no escapes, dot segments or //)", r.id),
            );
        }
        let mut addrs = Vec::new();
        if r.upstream.addrs.is_empty() {
            c.err("addrs", None, format!("route {}: upstream needs at least one address", r.id));
        }
        for a in &r.upstream.addrs {
            match a.parse::<SocketAddr>() {
                Ok(x) => addrs.push(x),
                Err(_) => c.err(
                    "addrs",
                    Some(a),
                    format!("route {}: invalid upstream address {a:?} (expected ip:port)", r.id),
                ),
            }
        }
        let ca_file = if r.upstream.ca_file.is_empty() { None } else { c.readable("ca_file", &r.upstream.ca_file) };
        if r.upstream.tls && r.upstream.sni.trim().is_empty() {
            // Pingora would turn certificate verification off and every handshake would fail
            c.err_at(
                route_line(c.text, &r.id),
                "tls",
                format!(
                    "route {}: an upstream with tls: true needs sni (the name its certificate is checked against)",
                    r.id
                ),
            );
        }
        let rb = r.upstream.receive_buffer;
        if rb != 0 && !(4096..=16 << 20).contains(&rb) {
            c.err(
                "receive_buffer",
                Some(&rb.to_string()),
                format!("route {}: receive_buffer must be 4096..=16777216 bytes, or 0 for the system's", r.id),
            );
        }
        let i = r.inspect;
        if i.max_buffer == 0 || i.max_buffer > 256 << 20 {
            c.err(
                "max_buffer",
                Some(&i.max_buffer.to_string()),
                format!("route {}: max_buffer must be 1..=268435456 bytes", r.id),
            );
        }
        // every decision precomputed: [department][direction][rule] -> action
        let decisions: Vec<PerDirection<Vec<Action>>> = match &rules {
            Some(rs) => departments
                .iter()
                .map(|d| {
                    let p = &policies[policy];
                    PerDirection::from_fn(|dir| rs.rules().iter().map(|rule| p.decide(rule, d, &r.id, dir)).collect())
                })
                .collect(),
            None => vec![],
        };
        let inspected = PerDirection::new(i.request, i.response);
        let may_block = decisions
            .iter()
            .map(|x| PerDirection::from_fn(|dir| inspected[dir] && x[dir].contains(&Action::Block)))
            .collect();
        let may_act = decisions
            .iter()
            .map(|x| PerDirection::from_fn(|dir| inspected[dir] && x[dir].iter().any(|a| *a != Action::Allow)))
            .collect();
        routes.push(Route {
            id: r.id,
            hosts: r.hosts,
            path_prefix: r.path_prefix,
            policy,
            upstream: Upstream {
                addrs,
                tls: r.upstream.tls,
                sni: r.upstream.sni,
                ca_file,
                connect_timeout: Duration::from_millis(r.upstream.connect_timeout_ms.max(1)),
                read_timeout: Duration::from_millis(r.upstream.read_timeout_ms.max(1)),
                health_check_interval: Duration::from_secs(r.upstream.health_check_interval_s),
                receive_buffer: (rb != 0).then_some(rb),
            },
            inspect: Inspect {
                request: i.request,
                response: i.response,
                max_buffer: i.max_buffer,
                on_error: i.on_error,
                on_binary: i.on_binary,
                content_types: i.content_types,
                max_decompressed: i.max_decompressed,
                max_ratio: i.max_ratio.max(1),
                max_document: i.max_document,
                on_unmaskable: i.on_unmaskable,
                request_coding: i.request_coding,
                archive: crate::documents::Limits {
                    max_depth: i.archive.max_depth.max(1),
                    max_entries: i.archive.max_entries,
                    max_inflated: i.archive.max_inflated,
                    max_ratio: i.max_ratio.max(1) as u64,
                },
            },
            may_block,
            may_act,
            decisions,
        });
    }

    c.scope.clear();
    routes
}

/// `quotas`: departments and categories must exist; windows the buckets divide.
fn compile_quotas(
    c: &mut Ctx<'_>,
    raw: Vec<RawQuota>,
    departments: &[Department],
    rules: Option<&RuleSet>,
) -> Vec<Quota> {
    let categories: Vec<String> =
        rules.as_ref().map(|r| r.rules().iter().map(|x| x.category.clone()).collect()).unwrap_or_default();
    let mut quotas: Vec<Quota> = Vec::new();
    for (n, q) in raw.into_iter().enumerate() {
        c.scope = format!("quotas[{n}]");
        if quotas.iter().any(|x| x.id == q.id) {
            c.err("id", Some(&q.id), format!("duplicate quota id {:?}", q.id));
        }
        for d in &q.departments {
            if !known_department(c, departments, d) {
                c.err("departments", Some(d), format!("quota {}: unknown department {d:?}", q.id));
            }
        }
        if rules.is_some() {
            for cat in &q.categories {
                if !categories.contains(cat) {
                    c.err("categories", Some(cat), format!("quota {}: no loaded rule has category {cat:?}", q.id));
                }
            }
        }
        if q.limit == 0 {
            c.err("limit", Some("limit: 0"), format!("quota {}: limit must be at least 1", q.id));
        }
        if !(1..=86_400).contains(&q.window_seconds) || q.window_seconds % quota_buckets(q.window_seconds) != 0 {
            c.err(
                "window_seconds",
                Some(&format!("window_seconds: {}", q.window_seconds)),
                format!("quota {}: window_seconds must be 1..=60, or a multiple of 60 up to 86400", q.id),
            );
        }
        quotas.push(Quota {
            id: q.id,
            departments: q.departments,
            categories: q.categories,
            level: q.level,
            limit: q.limit,
            window_seconds: q.window_seconds,
            block: q.action == QuotaAction::Block,
        });
    }

    c.scope.clear();
    quotas
}

/// `audit`: sinks and queue.
fn compile_audit(c: &mut Ctx<'_>, raw: RawAudit) -> AuditSettings {
    let mut sinks = Vec::new();
    for (n, s) in raw.sinks.into_iter().enumerate() {
        c.scope = format!("audit.sinks[{n}]");
        match s {
            RawSink::File { path } => sinks.push(Sink::File(c.path(&path))),
            RawSink::Stdout => sinks.push(Sink::Stdout),
            RawSink::Syslog { addr } => {
                if !(addr.starts_with("udp://") || addr.starts_with("tcp://") || addr.starts_with("unix://")) {
                    c.err("addr", Some(&addr), "syslog addr must be udp://host:port, tcp://host:port or unix:///path");
                }
                sinks.push(Sink::Syslog(addr));
            }
        }
    }
    c.scope.clear();
    if raw.queue == 0 {
        c.err("queue", None, "audit queue must be at least 1");
    }
    AuditSettings { queue: raw.queue, sinks }
}

/// `logging.level`: a level (`error`, `warn`, `info`, `debug`, `trace`, `off`), or comma-separated
/// `target=level` directives with at most one bare level. A misspelt level would otherwise read
/// as a target name and silence every log line.
fn log_level(spec: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    let mut bare = 0;
    for d in spec.split(',').map(str::trim) {
        let level = match d.split_once('=') {
            Some((target, level)) if !target.trim().is_empty() => level.trim(),
            Some(_) => return Err(format!("{d:?}: a directive needs a target before '='")),
            None => {
                bare += 1;
                d
            }
        };
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!("{level:?} is not a log level (expected one of {})", LEVELS.join(", ")));
        }
    }
    if bare > 1 {
        return Err("more than one default level".to_string());
    }
    Ok(())
}

/// `cluster`: the Redis that replicas share quota counters through. Nothing is tried over the
/// network here (`dlpgate check --connect` does).
fn compile_cluster(c: &mut Ctx<'_>, raw: RawCluster) -> Option<ClusterSettings> {
    c.scope = "cluster.redis".to_string();
    let r = raw.redis;
    let url = r.url.trim().to_string();
    let tls_url = url.starts_with("rediss://");
    if !(url.starts_with("redis://") || tls_url) {
        c.err("url", Some(&r.url), "expected redis://host:port/db or rediss://host:port/db");
    } else if let Err(e) = redis::IntoConnectionInfo::into_connection_info(url.as_str()) {
        c.err("url", Some(&r.url), format!("invalid Redis URL: {e}"));
    } else if url.split_once("://").is_some_and(|(_, rest)| rest.split('/').next().unwrap_or("").contains('@')) {
        // a password in the config file ends up in backups and diffs
        c.err("url", Some(&r.url), "no credentials in the URL: use username and password_file");
    }
    if r.timeout_ms == 0 || r.sync_ms == 0 {
        c.err(if r.timeout_ms == 0 { "timeout_ms" } else { "sync_ms" }, None, "must be at least 1 ms");
    }
    if r.key_prefix.is_empty() {
        c.err("key_prefix", None, "a key prefix keeps the gateway's keys apart from others in the same database");
    }
    let read = |c: &mut Ctx<'_>, key: &str, p: &str| -> Option<Vec<u8>> {
        let path = c.readable(key, p)?;
        match std::fs::read(&path) {
            Ok(b) => Some(b),
            Err(e) => {
                c.err(key, Some(p), format!("cannot read {}: {e}", path.display()));
                None
            }
        }
    };
    let password = r
        .password_file
        .as_deref()
        .and_then(|p| read(c, "password_file", p))
        .map(|b| String::from_utf8_lossy(&b).trim_end_matches(['\r', '\n']).to_string());
    let (mut ca, mut client_cert) = (None, None);
    if let Some(t) = &r.tls {
        if !tls_url {
            c.err("tls", None, "tls needs a rediss:// URL");
        }
        ca = t.ca_file.as_deref().and_then(|p| read(c, "ca_file", p));
        client_cert = match (&t.cert, &t.key) {
            (Some(cert), Some(key)) => read(c, "cert", cert).zip(read(c, "key", key)),
            (None, None) => None,
            _ => {
                c.err("tls", None, "a client certificate needs both cert and key");
                None
            }
        };
    }
    c.scope.clear();
    Some(ClusterSettings {
        url,
        key_prefix: r.key_prefix,
        timeout: Duration::from_millis(r.timeout_ms.max(1)),
        sync: Duration::from_millis(r.sync_ms.max(1)),
        username: r.username,
        password,
        ca,
        client_cert,
        on_store_error: raw.on_store_error,
    })
}
