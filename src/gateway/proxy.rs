//! The `ProxyHttp` implementation. Each phase is a few lines that call plain functions.
//!
//! Request: snapshot → identify department → route → inspect query and headers → body (decided
//! before the upstream is contacted when small, held when a block is possible, streamed
//! otherwise). Response: decode → stream-scan → mask. When a response may have to be blocked, or
//! when a body-less request's response is inspected, the whole exchange goes through
//! [`super::exchange`], which holds the response (up to a limit) until it is scanned; see
//! `exchange_hold`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;

use super::conn::Timed;
use super::ctx::{Ctx, EARLY_BODY_LIMIT, Incident, ReqBody, WHOLE_BODY_LIMIT, continue_if_expected, read_client_body};
use super::decide::{self, BodyDecision, ResponsePlan};
use super::head;
use super::inspect::{self, BodyInspector, BodyRules, FindingLog, Scope, Uninspectable};
use super::quota::Check;
use super::respond::MAX_REQUEST_HEAD;
use super::respond::{self, Verdict};
use super::state::Store;
use super::upstream::{self, CLIENT_IDENTITY_HEADERS};
use crate::config::RouteId;
use crate::config::{Snapshot, Timeouts, UnknownMode};
use crate::engine::Action;
use crate::policy::{self, Direction, Identity};
use crate::telemetry::metrics::status_class;
use crate::telemetry::{AuditEvent, AuditWriter, Metrics};

/// The gateway service.
pub struct Gateway {
    pub store: Store,
    pub audit: AuditWriter,
    /// Upstream connections for the gateway's own exchanges (this event loop's).
    pub conns: super::idle::Connections,
    /// Quota counters, shared by every thread and kept across reloads.
    pub quotas: Arc<super::quota::Counters>,
}

impl Gateway {
    /// Identify, route and inspect the request head. Returns a verdict when the gateway answers.
    fn inspect_head(&self, session: &mut Session, ctx: &mut Ctx, snap: &Snapshot) -> Option<Verdict> {
        let req = session.req_header();
        ctx.method = req.method.to_string();
        ctx.path = req.uri.path().to_string();
        let head: usize = req.uri.path_and_query().map_or(0, |p| p.as_str().len())
            + req.headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum::<usize>();
        if head > MAX_REQUEST_HEAD {
            return Some(Verdict::HeadTooLarge);
        }
        if let Some(why) = head::ambiguous_framing(req) {
            return Some(Verdict::BadRequest(why));
        }
        if let Some(why) = head::bad_host(req) {
            return Some(Verdict::BadRequest(why));
        }
        // identity
        let mut id = Identity::default();
        ctx.peer_ip = head::inet(session.client_addr()).map(|a| a.ip());
        ctx.forwarded_for = head::forwarded_for(req);
        ctx.client_ip = head::client_ip(snap, ctx.peer_ip, ctx.forwarded_for.as_deref());
        id.ip = ctx.client_ip;
        if let Some(k) = req.headers.get(snap.identity.api_key_header.as_str()) {
            id.api_key_sha256 = Some(crate::config::api_key_digest(k.as_bytes()));
        }
        if let Some(ssl) = session.digest().and_then(|d| d.ssl_digest.as_ref()) {
            id.cert = ssl.extension.get::<policy::CertIdentity>().cloned();
        }
        let local = head::inet(session.server_addr());
        ctx.listener = snap
            .listeners
            .iter()
            .find(|l| local.is_some_and(|a| a.port() == l.addr.port()))
            .map(|l| l.name.clone())
            .unwrap_or_default();
        // a key no department holds is a wrong credential, whatever else names the caller
        let identified = policy::identify(&snap.departments, &id);
        // (a key that named the department is known; only otherwise are the keys looked through)
        let by_key = matches!(identified, Some((_, policy::Recognised::ApiKey)));
        let bad_key =
            !by_key && id.api_key_sha256.as_ref().is_some_and(|k| !policy::api_key_known(&snap.departments, k));
        let recognised = identified.map(|(d, _)| d);
        ctx.dept = recognised.unwrap_or(snap.unknown);
        if recognised.is_none() {
            ctx.identity_failure = Some("unrecognised");
        }
        if bad_key {
            ctx.identity_failure = Some("unknown_api_key");
        }
        if let Some(reason) = ctx.identity_failure {
            Metrics::get().identity_failures.with_label_values(&[reason]).inc();
        }
        if bad_key && snap.identity.unknown_api_key == UnknownMode::Refuse {
            return Some(Verdict::UnknownApiKey);
        }
        if recognised.is_none() && snap.identity.unknown == UnknownMode::Refuse {
            return Some(Verdict::Unrecognised);
        }
        // route
        let req = session.req_header();
        let host = req
            .uri
            .host()
            .map(str::to_string)
            .or_else(|| head::header_str(req, "host").map(str::to_string))
            .unwrap_or_default();
        let route = match head::choose_route(snap, &host, req.uri.path()) {
            Ok(r) => r,
            Err(v) => return Some(v),
        };
        ctx.route = Some(route);
        if !snap.routes[route].inspect.request {
            return None;
        }
        // query string and header values
        let t0 = Instant::now();
        let mut scanned = 0;
        let mut log = std::mem::take(&mut ctx.log);
        let mut blocked = false;
        let mut too_long = false;
        let mut not_utf8 = false;
        if let Some(q) = req.uri.query() {
            scanned += q.len();
            let (out, b) = inspect::scan_form(
                Scope { snap, route, dept: ctx.dept, dir: Direction::Request },
                &mut log,
                q.as_bytes(),
            );
            blocked |= b;
            if out != q.as_bytes() {
                let nq = head::encode_query(&out);
                // labels and tokens can make a query longer than a URI may be: refuse it rather
                // than ever send the raw one
                if format!("{}?{nq}", req.uri.path()).parse::<http::Uri>().is_err() {
                    too_long = true;
                }
                // the rewrite would go out with a lossy copy of the path's raw bytes
                not_utf8 = !req.raw_path_is_utf8();
                ctx.new_query = Some(nq);
            }
        }
        let skip = [
            "host",
            "content-length",
            "content-type",
            "content-encoding",
            "transfer-encoding",
            "connection",
            "accept",
            "accept-encoding",
            snap.identity.api_key_header.as_str(),
            snap.identity.department_header.as_str(),
        ];
        for name in req.headers.keys() {
            if skip.contains(&name.as_str()) || CLIENT_IDENTITY_HEADERS.contains(name) {
                continue;
            }
            // every value of the field, collected only once one of them is rewritten
            let mut values: Option<Vec<http::HeaderValue>> = None;
            for (k, value) in req.headers.get_all(name).iter().enumerate() {
                scanned += value.len();
                let (out, b) = inspect::scan_buffer(
                    Scope { snap, route, dept: ctx.dept, dir: Direction::Request },
                    &mut log,
                    value.as_bytes(),
                );
                blocked |= b;
                if out == value.as_bytes() {
                    if let Some(vs) = values.as_mut() {
                        vs.push(value.clone());
                    }
                } else {
                    // masks, labels and tokens are valid field bytes; anything else is escaped
                    let v = http::HeaderValue::from_bytes(&out)
                        .or_else(|_| http::HeaderValue::from_str(&head::encode_query(&out)))
                        .unwrap_or_else(|_| http::HeaderValue::from_static(""));
                    values.get_or_insert_with(|| req.headers.get_all(name).iter().take(k).cloned().collect()).push(v);
                }
            }
            if let Some(values) = values {
                ctx.new_headers.push((name.clone(), values));
            }
        }
        inspect::observe(Direction::Request, scanned, t0);
        ctx.log = log;
        if blocked {
            return Some(decide::block(ctx, snap, Direction::Request));
        }
        if too_long {
            return Some(Verdict::Uninspectable { status: 414, reason: "rewritten query too long" });
        }
        if not_utf8 {
            return Some(Verdict::BadRequest("request target not UTF-8 cannot be rewritten"));
        }
        None
    }

    /// Choose how to handle the request body; reads it now when it is small and a decision is
    /// needed, so a blocked request never reaches the upstream.
    async fn plan_request_body(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        snap: &Snapshot,
        route: RouteId,
    ) -> Result<Option<Verdict>> {
        let r = &snap.routes[route];
        if !r.inspect.request || session.as_mut().is_body_empty() || !r.may_act_for(ctx.dept, Direction::Request) {
            return Ok(None);
        }
        let ct = head::header_str(session.req_header(), "content-type").map(str::to_string);
        let text = r.inspect.scannable(ct.as_deref());
        if inspect::coding(&session.req_header().headers) != inspect::Coding::Identity {
            return Ok(decide::uninspectable(ctx, snap, route, Direction::Request, Uninspectable::EncodedRequest));
        }
        if !text && !decide::may_be_document(ct.as_deref()) {
            return Ok(decide::binary(ctx, snap, route, Direction::Request));
        }
        let may_block = r.may_block_for(ctx.dept, Direction::Request);
        let len: Option<usize> =
            head::header_str(session.req_header(), "content-length").and_then(|v| v.trim().parse().ok());
        let early = len
            .is_some_and(|l| l <= EARLY_BODY_LIMIT.min(decide::request_hold_limit(snap, route, session.req_header())));
        if early {
            session.as_downstream_mut().enable_retry_buffering();
            continue_if_expected(session, ctx).await?;
            let mut body = Vec::new();
            while let Some(c) = read_client_body(session).await? {
                body.extend_from_slice(&c);
                if body.len() > EARLY_BODY_LIMIT {
                    return Ok(Some(Verdict::BadRequest("body longer than content-length")));
                }
            }
            match decide::request_body(ctx, snap, route, session.req_header(), body) {
                BodyDecision::Refuse(v) => return Ok(Some(v)),
                BodyDecision::Forward(out) => ctx.req_body = ReqBody::Decided(Some(Bytes::from(out))),
            }
        } else if text && (may_block || inspect::multipart_boundary(ct.as_deref()).is_some()) {
            // multipart bodies are parsed whole, so that binary parts are never rewritten
            ctx.req_body = ReqBody::Hold(Vec::new());
        } else {
            // text streamed through the scanner; any other type streamed as it is unless its bytes
            // show a document, which is held whole and inspected at its end
            let charset = crate::charset::Declared::of_content_type(ct.as_deref());
            let insp = BodyInspector::new(None, BodyRules::of(&r.inspect), text).with_charset(charset);
            ctx.req_body = ReqBody::Stream(Box::new(insp));
        }
        Ok(None)
    }

    /// Emit metrics and the audit event for a finished request.
    fn finish(&self, session: &Session, ctx: &mut Ctx) {
        let Some(snap) = ctx.snap.clone() else { return };
        let m = Metrics::get();
        let route_id = ctx.route.map(|r| snap.routes[r].id.as_str()).unwrap_or("none");
        let dept_id = snap.departments.get(ctx.dept.0).map(|d| d.id.as_str()).unwrap_or("unknown");
        let status = if ctx.status != 0 {
            ctx.status
        } else {
            respond::final_written(session).map(|r| r.status.as_u16()).unwrap_or(0)
        };
        // a known route and department: their series, held by the configuration
        match ctx.route.and_then(|r| snap.series.requests(&snap, r.0, ctx.dept.0, status)) {
            Some(c) => c.inc(),
            None => m.requests.with_label_values(&[route_id, dept_id, status_class(status)]).inc(),
        }
        if let Some(t) = ctx.start {
            let secs = t.elapsed().as_secs_f64();
            match ctx.route.and_then(|r| snap.series.duration(&snap, r.0)) {
                Some(h) => h.observe(secs),
                None => m.request_duration.with_label_values(&[route_id]).observe(secs),
            }
        }
        ctx.log.count(&snap, ctx.dept);
        self.count_quotas(ctx, &snap, route_id, dept_id, status);
        let blocked = ctx.block_dir.is_some();
        if blocked {
            let reason = if ctx.log.strongest() == Action::Block {
                "dlp_rule"
            } else {
                ctx.reason.map_or("policy", Uninspectable::label)
            };
            let dir = ctx.block_dir.unwrap_or(Direction::Request);
            m.blocked.with_label_values(&[route_id, dept_id, dir.as_str(), reason]).inc();
        }
        if ctx.identity_failure == Some("unknown_api_key") && self.audit.enabled() {
            let refused = matches!(ctx.verdict, Some(Verdict::UnknownApiKey | Verdict::Unrecognised));
            self.audit.emit(&AuditEvent {
                direction: Direction::Request.as_str(),
                action: if refused { "block" } else { "alert" }.to_string(),
                reason: Some("API key no department holds".to_string()),
                ..ctx.audit_event("dlp.identity", route_id, dept_id, status)
            });
        }
        let acted = ctx.log.entries.iter().any(|e| e.action != Action::Allow);
        if (!acted && !blocked && ctx.reason.is_none()) || !self.audit.enabled() {
            return;
        }
        let dir = ctx
            .block_dir
            .or_else(|| ctx.log.entries.iter().find(|e| e.action != Action::Allow).map(|e| e.dir))
            .unwrap_or(Direction::Response);
        let action = if blocked { Action::Block } else { ctx.log.strongest() };
        let ev = AuditEvent {
            direction: dir.as_str(),
            action: action.as_str().to_string(),
            reason: ctx.reason.map(|r| r.message().to_string()),
            findings: ctx.log.audit_findings(&snap),
            ..ctx.audit_event(if blocked { "dlp.block" } else { "dlp.finding" }, route_id, dept_id, status)
        };
        self.audit.emit(&ev);
    }
}

/// Whether the gateway performs this exchange itself ([`super::exchange`]), holding up to how much
/// of the decoded response body before it releases the header:
/// - a response `block` is possible: up to the route's `max_buffer`, so that a block finding can
///   still become a 403;
/// - the response is inspected and the request has no body: up to [`WHOLE_BODY_LIMIT`]. A small
///   response then leaves with its new Content-Length in one write; through Pingora's proxy path
///   its rewritten header would go out first, flushed and chunked, and the body in two more writes.
///
/// Otherwise (`None`) Pingora proxies it and the body filters stream both directions.
fn exchange_hold(session: &mut Session, ctx: &Ctx, r: &crate::config::Route) -> Option<usize> {
    if r.may_block_for(ctx.dept, Direction::Response) {
        return Some(r.inspect.max_buffer);
    }
    // a request body that may be blocked and whose length is not announced (chunked, HTTP/2), or
    // a compressed one (decoded whole): read and decided before the upstream is contacted at
    // all, as a small one with a length is
    let has_body = !session.as_mut().is_body_empty();
    let coded = || {
        r.inspect.request
            && r.may_act_for(ctx.dept, Direction::Request)
            && matches!(inspect::coding(&session.req_header().headers), inspect::Coding::Decode(_))
    };
    if has_body
        && (r.may_block_for(ctx.dept, Direction::Request)
            && !session.req_header().headers.contains_key(http::header::CONTENT_LENGTH)
            || coded())
    {
        return Some(WHOLE_BODY_LIMIT.min(r.inspect.max_buffer));
    }
    let small = r.inspect.response
        && r.may_act_for(ctx.dept, Direction::Response)
        && !session.is_upgrade_req()
        && session.as_mut().is_body_empty();
    small.then_some(WHOLE_BODY_LIMIT.min(r.inspect.max_buffer))
}

/// A request head has been read: HTTP/1.1 pipelining on (requests already buffered behind this
/// one are answered in order, RFC 9112 §9.3.2), and the listener's body and keep-alive timeouts.
fn client_connection(session: &mut Session) {
    let down = session.as_downstream_mut();
    down.set_pipelining_enabled(true);
    let Some(t) = Timed::of(down.stream()) else { return };
    t.head_done();
    let Timeouts { body, keepalive, .. } = t.timeouts;
    down.set_read_timeout(Some(body));
    if keepalive.is_zero() {
        down.set_keepalive(None);
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        let log = FindingLog { brief: !self.audit.enabled(), ..FindingLog::default() };
        Ctx { start: Some(Instant::now()), incident: Incident::new(), log, ..Ctx::default() }
    }

    fn init_downstream_modules(&self, modules: &mut pingora::modules::http::HttpModules) {
        // recompress masked output for clients that accept gzip (level 6); brotli is disabled
        // per request (Pingora's encoder never finishes the stream, issue #1013)
        modules.add_module(pingora::modules::http::compression::ResponseCompressionBuilder::enable(6));
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let snap = self.store.load();
        ctx.snap = Some(snap.clone());
        client_connection(session);
        if let Some(c) =
            session.downstream_modules_ctx.get_mut::<pingora::modules::http::compression::ResponseCompression>()
        {
            c.adjust_algorithm_level(pingora::protocols::http::compression::Algorithm::Brotli, 0);
            c.adjust_algorithm_level(pingora::protocols::http::compression::Algorithm::Zstd, 0);
        }
        let mut verdict = self.inspect_head(session, ctx, &snap);
        if verdict.is_none() && !snap.quotas.is_empty() {
            let dept = snap.departments.get(ctx.dept.0).map_or("unknown", |d| d.id.as_str());
            match self.quotas.check(&snap.quotas, dept).await {
                Check::Under => {}
                Check::Over(e) => {
                    ctx.reason = Some(Uninspectable::Quota);
                    ctx.block_dir = Some(Direction::Request);
                    verdict = Some(Verdict::QuotaExceeded {
                        quota: snap.quotas[e.quota].id.clone(),
                        retry_after: e.retry_after,
                    });
                }
                Check::StoreDown => {
                    ctx.reason = Some(Uninspectable::Quota);
                    ctx.block_dir = Some(Direction::Request);
                    verdict = Some(Verdict::QuotaStoreDown);
                }
            }
        }
        let route = ctx.route;
        if verdict.is_none() {
            if let Some(route) = route {
                let r = &snap.routes[route];
                // what follows an upgrade (WebSocket frames) is not HTTP and is never inspected
                let inspected =
                    r.may_act_for(ctx.dept, Direction::Request) || r.may_act_for(ctx.dept, Direction::Response);
                if inspected && session.req_header().headers.contains_key(http::header::UPGRADE) {
                    verdict = decide::uninspectable(ctx, &snap, route, Direction::Request, Uninspectable::Upgrade);
                }
            }
        }
        if verdict.is_none() {
            if let Some(route) = route {
                let r = &snap.routes[route];
                if let Some(hold) = exchange_hold(session, ctx, r) {
                    super::exchange::run(&self.conns, session, ctx, &snap, route, hold).await?;
                    return Ok(true);
                }
                verdict = self.plan_request_body(session, ctx, &snap, route).await?;
            }
        }
        if let Some(v) = verdict {
            ctx.status = v.status();
            respond::send(session, &v).await?;
            ctx.verdict = Some(v);
            return Ok(true);
        }
        Ok(false)
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let snap = ctx.snap()?;
        let route = ctx.route.ok_or_else(|| Error::explain(InternalError, "no route"))?;
        Ok(upstream::peer(&snap, route, &ctx.connect_failed))
    }

    fn fail_to_connect(&self, _session: &mut Session, peer: &HttpPeer, ctx: &mut Ctx, mut e: Box<Error>) -> Box<Error> {
        if let Some(snap) = ctx.snap.clone() {
            if let Some(route) = ctx.route {
                if upstream::fail_over(ctx, &snap, route, peer, &e) {
                    e.set_retry(true);
                }
            }
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let snap = ctx.snap()?;
        upstream::prepare_upstream(req, ctx, &snap)
    }

    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        eos: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let snap = ctx.snap()?;
        let Some(route) = ctx.route else { return Ok(()) };
        match &mut ctx.req_body {
            ReqBody::Pass => Ok(()),
            ReqBody::Decided(final_body) => {
                // replayed from the retry buffer: send the decided (possibly masked) body instead
                *body = if eos { final_body.take().or(Some(Bytes::new())) } else { Some(Bytes::new()) };
                Ok(())
            }
            ReqBody::Hold(buf) => {
                if let Some(b) = body.take() {
                    buf.extend_from_slice(&b);
                }
                if buf.len() > decide::request_hold_limit(&snap, route, session.req_header()) {
                    let held = std::mem::take(buf);
                    match decide::uninspectable(ctx, &snap, route, Direction::Request, Uninspectable::Oversize) {
                        Some(v) => return self.refuse(session, ctx, v).await,
                        None => {
                            ctx.req_body = ReqBody::Pass;
                            *body = Some(Bytes::from(held));
                            return Ok(());
                        }
                    }
                }
                if !eos {
                    *body = Some(Bytes::new());
                    return Ok(());
                }
                let held = std::mem::take(buf);
                match decide::request_body(ctx, &snap, route, session.req_header(), held) {
                    BodyDecision::Refuse(v) => self.refuse(session, ctx, v).await,
                    BodyDecision::Forward(out) => {
                        *body = Some(Bytes::from(out));
                        Ok(())
                    }
                }
            }
            ReqBody::Stream(insp) => {
                let mut out = Vec::new();
                let chunk = body.take().unwrap_or_default();
                let r = insp.push(
                    Scope { snap: &snap, route, dept: ctx.dept, dir: Direction::Request },
                    &mut ctx.log,
                    &chunk,
                    eos,
                    &mut out,
                );
                let blocked = insp.blocked;
                if let Err(reason) = r {
                    if let Some(v) = decide::failure(ctx, &snap, route, Direction::Request, reason) {
                        return self.refuse(session, ctx, v).await;
                    }
                }
                if blocked {
                    // a document, held whole, with a block finding: none of it goes on
                    let v = decide::block(ctx, &snap, Direction::Request);
                    return self.refuse(session, ctx, v).await;
                }
                *body = Some(Bytes::from(out));
                Ok(())
            }
        }
    }

    async fn response_filter(&self, session: &mut Session, resp: &mut ResponseHeader, ctx: &mut Ctx) -> Result<()> {
        ctx.status = resp.status.as_u16();
        let snap = ctx.snap()?;
        let Some(route) = ctx.route else { return Ok(()) };
        let method = session.req_header().method.clone();
        match ResponsePlan::new(ctx, &snap, route, &method, resp, WHOLE_BODY_LIMIT) {
            ResponsePlan::Relay => Ok(()),
            ResponsePlan::Refuse(v) => {
                let status = v.status();
                ctx.status = status;
                ctx.verdict = Some(v);
                Error::e_explain(HTTPStatus(status), "dlp: response refused from its head")
            }
            ResponsePlan::Inspect(insp) => {
                ctx.resp = Some(insp);
                respond::strip_for_rewrite(resp);
                resp.insert_header("transfer-encoding", "chunked")?;
                Ok(())
            }
        }
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        eos: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<Duration>> {
        let Some(insp) = ctx.resp.as_mut() else { return Ok(None) };
        let (Some(snap), Some(route)) = (ctx.snap.clone(), ctx.route) else { return Ok(None) };
        let chunk = body.take().unwrap_or_default();
        let mut out = Vec::with_capacity(chunk.len() + 64);
        let r = insp.push(
            Scope { snap: &snap, route, dept: ctx.dept, dir: Direction::Response },
            &mut ctx.log,
            &chunk,
            eos,
            &mut out,
        );
        let blocked = insp.blocked;
        if let Err(reason) = r {
            if reason != Uninspectable::Binary {
                // (a binary body was counted where it was found)
                Metrics::get().uninspected.with_label_values(&[&snap.routes[route].id, reason.label()]).inc();
            }
            ctx.reason = Some(reason);
            ctx.block_dir = Some(Direction::Response);
            // The client already has a decoded head and part of the decoded body: neither the
            // rest decoded nor the raw rest can follow intact, whatever `on_error` says. (The
            // exchange path, which holds small responses, can still pass them as they came.)
            return Error::e_explain(InternalError, "dlp: response could not be inspected; aborting");
        }
        if blocked {
            // headers are already gone: never forward the offending bytes, abort the stream
            ctx.block_dir = Some(Direction::Response);
            ctx.reason = Some(Uninspectable::BlockedMidStream);
            return Error::e_explain(InternalError, "dlp: blocked response aborted mid-stream");
        }
        *body = Some(Bytes::from(out));
        Ok(None)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let verdict = ctx.verdict.clone().or_else(|| {
            let route_id = ctx.snap.as_ref().zip(ctx.route).map(|(snap, r)| snap.routes[r].id.as_str());
            respond::failure_verdict(e, route_id)
        });
        // a client whose connection failed is not answered; 400 is what it is counted as
        let code = verdict.as_ref().map_or(400, Verdict::status);
        if let Some(v) = verdict.as_ref().filter(|_| respond::final_written(session).is_none()) {
            let _ = respond::send(session, v).await;
        }
        ctx.status = if respond::final_written(session).is_some() { ctx.status.max(code) } else { code };
        FailToProxy { error_code: 0, can_reuse_downstream: false }
    }

    /// Pingora's default summary (in its error logs) includes the query string, which may carry
    /// the very values the gateway protects: method and path only.
    fn request_summary(&self, session: &Session, ctx: &Ctx) -> String {
        // the path too may carry values (a REST id): masked as in audit events
        let path = if ctx.snap.is_some() && !ctx.path.is_empty() { ctx.audit_path() } else { "-".to_string() };
        format!("{} {path}", session.req_header().method)
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Ctx) {
        if let Some(t) = Timed::of(session.as_downstream().stream()) {
            t.request_done();
        }
        self.finish(session, ctx);
    }
}

impl Gateway {
    /// Count the values the department received in clear against its quotas; a quota whose
    /// limit this crosses is counted in `dlpgate_quota_exceeded_total`, logged and audited.
    fn count_quotas(&self, ctx: &Ctx, snap: &Snapshot, route_id: &str, dept_id: &str, status: u16) {
        // nothing was received when the gateway answered instead (a block, a failure)
        if snap.quotas.is_empty() || ctx.log.returned.is_empty() || ctx.verdict.is_some() {
            return;
        }
        let rules = snap.rules.rules();
        let event = || ctx.audit_event("dlp.quota", route_id, dept_id, status);
        let crossed = self.quotas.add(
            &snap.quotas,
            dept_id,
            |q| ctx.log.returned.iter().filter(|r| q.counts(&rules[r.rule])).map(|r| r.count).sum(),
            &event,
        );
        for (i, total) in crossed {
            super::quota::report_crossing(&self.audit, &snap.quotas[i], dept_id, total, Some(event()));
        }
    }

    async fn refuse(&self, session: &mut Session, ctx: &mut Ctx, v: Verdict) -> Result<()> {
        ctx.status = v.status();
        respond::send(session, &v).await?;
        ctx.verdict = Some(v);
        Error::e_explain(HTTPStatus(403), "dlp: request refused")
    }
}
