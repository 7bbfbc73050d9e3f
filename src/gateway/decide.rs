//! The gateway's decisions about bodies, each written once and called from both paths (Pingora's
//! proxy phases and the gateway's own exchange):
//! - [`request_body`]: what the upstream gets for a complete request body, or the refusal;
//! - [`ResponsePlan::new`]: how a response is relayed, inspected or refused, from its head.
//!
//! Refusals are [`Verdict`]s and go through `respond`; counting and the audit reason go through
//! [`Gateway::uninspectable`], [`Gateway::binary`] and [`Gateway::block`].

use pingora::http::{RequestHeader, ResponseHeader};

use super::ctx::Ctx;
use super::inspect::{self, BodyInspector, BodyRules, Coding, Decoder, Scope, Uninspectable};
use super::respond::{self, Verdict};
use crate::config::RouteId;
use crate::config::{BinaryMode, FailMode, RequestCoding, Snapshot};
use crate::documents;
use crate::policy::Direction;
use crate::telemetry::Metrics;

/// What becomes of a complete request body.
#[derive(Debug)]
pub enum BodyDecision {
    /// Send the upstream this (the body as it came, or rewritten).
    Forward(Vec<u8>),
    /// Answer the client with this instead; the upstream gets nothing.
    Refuse(Verdict),
}

fn content_type(headers: &http::HeaderMap) -> Option<&str> {
    headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
}

/// `v` refuses the body when the route fails closed; without a verdict it goes on as it is.
fn refuse_or_forward(v: Option<Verdict>, body: Vec<u8>) -> BodyDecision {
    match v {
        Some(v) => BodyDecision::Refuse(v),
        None => BodyDecision::Forward(body),
    }
}

/// Decide a complete request body: scanned as text, a form, multipart or a document (told by its
/// bytes), masked where the policy masks; refused on a `block` finding, an encoding the gateway
/// does not decode, or a body that is not text on a route that refuses those.
pub fn request_body(
    ctx: &mut Ctx,
    snap: &Snapshot,
    route: RouteId,
    req: &RequestHeader,
    body: Vec<u8>,
) -> BodyDecision {
    let r = &snap.routes[route];
    if body.is_empty() || !r.inspect.request || !r.may_act_for(ctx.dept, Direction::Request) {
        return BodyDecision::Forward(body);
    }
    let coded = match inspect::coding(&req.headers) {
        Coding::Identity => None,
        Coding::Decode(kind) => Some(kind),
        // a body in a coding the gateway cannot decode would be scanned still coded
        Coding::Unsupported => {
            let v = uninspectable(ctx, snap, route, Direction::Request, Uninspectable::EncodedRequest);
            return refuse_or_forward(v, body);
        }
    };
    // a compressed upload (log shippers, SDKs): decoded within the same limits as a response,
    // scanned, and sent on as the route says (identity, or coded again)
    let decision = match coded {
        None => request_body_plain(ctx, snap, route, req, body),
        Some(kind) => match BodyRules::of(&r.inspect).decode.decode(kind, &body) {
            Err(why) => {
                let v = uninspectable(ctx, snap, route, Direction::Request, why);
                return refuse_or_forward(v, body);
            }
            Ok(plain) => request_body_plain(ctx, snap, route, req, plain),
        },
    };
    match (coded, decision) {
        (Some(kind), BodyDecision::Forward(out)) => {
            if r.inspect.request_coding == RequestCoding::Keep {
                BodyDecision::Forward(inspect::encode(kind, &out))
            } else {
                ctx.req_decoded = true;
                BodyDecision::Forward(out)
            }
        }
        (_, d) => d,
    }
}

/// [`request_body`] once the body is decoded.
fn request_body_plain(
    ctx: &mut Ctx,
    snap: &Snapshot,
    route: RouteId,
    req: &RequestHeader,
    body: Vec<u8>,
) -> BodyDecision {
    let r = &snap.routes[route];
    if let Some(cd) = req.headers.get(http::header::CONTENT_DISPOSITION).and_then(|v| v.to_str().ok()) {
        ctx.log.file = inspect::disposition_filename(cd);
    }
    let ct = content_type(&req.headers);
    if !r.inspect.scannable(ct) && documents::sniff(&body).is_none() {
        let v = binary(ctx, snap, route, Direction::Request);
        return refuse_or_forward(v, body);
    }
    let scope = Scope { snap, route, dept: ctx.dept, dir: Direction::Request };
    match inspect::scan_body(scope, &mut ctx.log, &body, ct, &BodyRules::of(&r.inspect)) {
        Err(why) => {
            let v = failure(ctx, snap, route, Direction::Request, why);
            refuse_or_forward(v, body)
        }
        Ok(s) if s.blocked => BodyDecision::Refuse(block(ctx, snap, Direction::Request)),
        Ok(s) if s.binary_parts > 0 => {
            let v = binary(ctx, snap, route, Direction::Request);
            refuse_or_forward(v, s.out)
        }
        Ok(s) => BodyDecision::Forward(s.out),
    }
}

/// The most of a request body read before it is decided: `max_buffer` for text, and up to
/// `max_document` for a body whose type is not text (it may be a workbook or an archive).
pub fn request_hold_limit(snap: &Snapshot, route: RouteId, req: &RequestHeader) -> usize {
    let i = &snap.routes[route].inspect;
    if i.scannable(content_type(&req.headers)) { i.max_buffer } else { i.max_buffer.max(i.max_document) }
}

/// Whether a label may hide a document: the types exports and archives are served as. Bodies of
/// other types that are not text (images, video) are not held to look at their bytes.
pub fn may_be_document(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return true };
    let ct = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    ct.is_empty()
        || ct == "application/octet-stream"
        || ct == "application/pdf"
        || ct == "application/msword"
        || ct.contains("zip")
        || ct.starts_with("application/vnd.openxmlformats-")
        || ct.starts_with("application/vnd.ms-")
        || ct.starts_with("application/x-")
}

/// A response that has no body whatever its head says: to HEAD, a 204 or 304, or an interim one.
pub fn without_body(method: &http::Method, status: http::StatusCode) -> bool {
    method == http::Method::HEAD || matches!(status.as_u16(), 204 | 304) || status.is_informational()
}

/// The body length a head announces (`Content-Length`), when it is a number.
pub fn announced_length(headers: &http::HeaderMap) -> Option<u64> {
    headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse().ok())
}

/// How a response is handled, decided from its head.
#[derive(Debug)]
pub enum ResponsePlan {
    /// Relayed as it is: no body, or nothing this department receives is acted on.
    Relay,
    /// Refused from its head (a type the route blocks, a coding it cannot decode).
    Refuse(Verdict),
    /// Inspected through this (its head already prepared for a rewritten body).
    Inspect(Box<BodyInspector>),
}

impl ResponsePlan {
    /// Decide what a response needs, and prepare its head: private to the caller on an inspected
    /// route, validators dropped for HEAD. `hold_whole`: a small body of known length up to this
    /// is held and scanned once at its end.
    pub fn new(
        ctx: &mut Ctx,
        snap: &Snapshot,
        route: RouteId,
        method: &http::Method,
        resp: &mut ResponseHeader,
        hold_whole: usize,
    ) -> ResponsePlan {
        let r = &snap.routes[route];
        let head = method == http::Method::HEAD;
        let no_body = without_body(method, resp.status);
        if r.inspect.response && !resp.status.is_informational() {
            respond::private_cache(resp);
            if head {
                respond::strip_head(resp);
            }
        }
        if no_body || !r.inspect.response || !r.may_act_for(ctx.dept, Direction::Response) {
            return ResponsePlan::Relay;
        }
        if let Some(cd) = resp.headers.get(http::header::CONTENT_DISPOSITION).and_then(|v| v.to_str().ok()) {
            ctx.log.file = inspect::disposition_filename(cd);
        }
        let ct = content_type(&resp.headers);
        let text = r.inspect.scannable(ct);
        if !text && !may_be_document(ct) {
            // an image, a video: neither text nor a document, passed untouched (counted) or refused
            return match binary(ctx, snap, route, Direction::Response) {
                Some(v) => ResponsePlan::Refuse(v),
                None => ResponsePlan::Relay,
            };
        }
        let decoder = match inspect::coding(&resp.headers) {
            Coding::Identity => None,
            Coding::Decode(kind) => Decoder::new(kind),
            Coding::Unsupported => {
                return match uninspectable(ctx, snap, route, Direction::Response, Uninspectable::UnsupportedCoding) {
                    Some(v) => ResponsePlan::Refuse(v),
                    None => ResponsePlan::Relay,
                };
            }
        };
        let plain = decoder.is_none();
        let mut insp = BodyInspector::new(decoder, BodyRules::of(&r.inspect), text)
            .with_charset(crate::charset::Declared::of_content_type(ct));
        if plain && text && announced_length(&resp.headers).is_some_and(|l| l <= hold_whole as u64) {
            insp.hold_whole(hold_whole);
        }
        ResponsePlan::Inspect(Box::new(insp))
    }
}

/// What becomes of a body that could not be inspected, in either direction: refused (`Some`), or
/// passed as it came where the route passes such bodies. A body found to be binary was counted
/// and refused where it was found (only a route that blocks binary bodies reports it).
pub fn failure(ctx: &mut Ctx, snap: &Snapshot, route: RouteId, dir: Direction, why: Uninspectable) -> Option<Verdict> {
    if why == Uninspectable::Binary {
        // counted where it was found, and only reported where the route blocks such bodies
        return Some(binary_refusal(ctx, dir));
    }
    uninspectable(ctx, snap, route, dir, why)
}

/// The refusal of a body that is neither text nor a document, on a route that blocks them.
fn binary_refusal(ctx: &mut Ctx, dir: Direction) -> Verdict {
    let why = Uninspectable::Binary;
    ctx.block_dir = Some(dir);
    ctx.reason = Some(why);
    Verdict::Uninspectable { status: why.status(dir), reason: why.message() }
}

pub fn block(ctx: &mut Ctx, snap: &Snapshot, dir: Direction) -> Verdict {
    ctx.block_dir = Some(dir);
    Verdict::Blocked { incident: ctx.incident.to_string(), rules: ctx.log.blocked_rules(snap) }
}

/// A body of a type that cannot be scanned: pass (counted) or block, per route.
pub fn binary(ctx: &mut Ctx, snap: &Snapshot, route: RouteId, dir: Direction) -> Option<Verdict> {
    let r = &snap.routes[route];
    Metrics::get().uninspected.with_label_values(&[&r.id, Uninspectable::Binary.label()]).inc();
    (r.inspect.on_binary == BinaryMode::Block).then(|| binary_refusal(ctx, dir))
}

/// A body that cannot be inspected: block (fail closed) or pass with an alert, per route.
pub fn uninspectable(
    ctx: &mut Ctx,
    snap: &Snapshot,
    route: RouteId,
    dir: Direction,
    reason: Uninspectable,
) -> Option<Verdict> {
    let r = &snap.routes[route];
    Metrics::get().uninspected.with_label_values(&[&r.id, reason.label()]).inc();
    ctx.reason = Some(reason);
    if r.inspect.on_error == FailMode::Block {
        ctx.block_dir = Some(dir);
        return Some(Verdict::Uninspectable { status: reason.status(dir), reason: reason.message() });
    }
    None
}
