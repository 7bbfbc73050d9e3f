//! The gateway's own exchange, for requests whose response is held before it is released.
//!
//! Pingora writes the response header to the client before any body filter runs, so a response
//! cannot be turned into a 403 from its body, and a rewritten one goes out chunked, its header
//! flushed on its own. Here the gateway performs the upstream exchange itself (with Pingora's
//! connector and connection pool) and holds up to `hold` bytes of the decoded response body:
//! - when a response `block` is possible, `hold` is the route's `max_buffer`: a `block` finding
//!   gives the client the 403 JSON and none of the data;
//! - for a body-less request whose response is inspected, `hold` is 64 KiB: a small response
//!   leaves with its new Content-Length, header and body in one write.
//!
//! Past `hold`, the header and what was scanned so far are released and the rest is streamed; a
//! later `block` finding aborts the stream and records the incident.
//!
//! The request body is read (up to `max_buffer`) and decided before the upstream is contacted; past
//! `max_buffer` it is refused with 413, or forwarded uninspected when the route says `on_error: pass`.

use bytes::Bytes;
use pingora::prelude::*;
use pingora::protocols::http::client::HttpSession as ClientSession;
use pingora::proxy::Session;

use super::ctx::{Ctx, continue_if_expected, read_client_body};
use super::decide::{self, BodyDecision, ResponsePlan};
use super::inspect::{Scope, Uninspectable};
use super::respond::{self, Verdict};
use super::state::Active;
use super::upstream;
use crate::config::RouteId;
use crate::policy::Direction;

/// The most of an upstream read scanned at once while a response streams: its masked output is
/// written before the next piece is scanned.
const STREAM_PIECE: usize = 16 * 1024;

/// Answer the client ourselves with `v` and record it.
async fn answer(session: &mut Session, ctx: &mut Ctx, v: Verdict) -> Result<()> {
    ctx.status = v.status();
    respond::send(session, &v).await?;
    ctx.verdict = Some(v);
    Ok(())
}

pub async fn run(
    conns: &super::idle::Connections,
    session: &mut Session,
    ctx: &mut Ctx,
    active: &Active,
    route: RouteId,
    hold: usize,
) -> Result<()> {
    // 1. the request body, decided before the upstream is contacted. Past `max_buffer` it cannot be
    // inspected: refused (413) when the route fails closed, else forwarded uninspected as it comes.
    let mut body = Vec::new();
    let mut oversize = false;
    if !session.as_mut().is_body_empty() {
        continue_if_expected(session, ctx).await?;
        let limit = decide::request_hold_limit(active, route, session.req_header());
        while let Some(c) = read_client_body(session).await? {
            body.extend_from_slice(&c);
            if body.len() > limit {
                if let Some(v) = decide::uninspectable(ctx, active, route, Direction::Request, Uninspectable::Oversize)
                {
                    return answer(session, ctx, v).await;
                }
                oversize = true;
                break;
            }
        }
    }
    if !oversize {
        match decide::request_body(ctx, active, route, session.req_header(), body) {
            BodyDecision::Refuse(v) => return answer(session, ctx, v).await,
            BodyDecision::Forward(out) => body = out,
        }
    }

    // 2. the upstream exchange. A pooled connection the upstream has just closed fails before
    // any response byte; as in Pingora's proxy path, the request is then sent again (it can be:
    // its whole body is held) on another connection, a few times at most.
    let body = Bytes::from(body);
    let mut retries = 0;
    let (mut up, peer) = loop {
        let peer = upstream::peer(active, route, &ctx.connect_failed);
        let (mut up, reused) = match conns.session(&peer).await {
            Ok(s) => s,
            Err(e) if upstream::fail_over(ctx, active, route, &peer, &e) => continue,
            Err(e) => {
                let v = respond::upstream_failure(&active.routes[route].id, &e);
                return answer(session, ctx, v).await;
            }
        };
        up.set_read_timeout(peer.options.read_timeout);
        up.set_write_timeout(peer.options.write_timeout);
        let mut req = session.req_header().clone();
        upstream::h1_upstream_head(&mut req)?;
        upstream::prepare_upstream(&mut req, ctx, active)?;
        if !oversize {
            // the whole (possibly rewritten) body is known: send it with its own length
            req.remove_header(&http::header::TRANSFER_ENCODING);
            if body.is_empty() {
                req.remove_header(&http::header::CONTENT_LENGTH);
            } else {
                req.insert_header("content-length", body.len().to_string())?;
            }
        } else if req.headers.get("content-length").is_none() {
            // an HTTP/2 client's body has no HTTP/1.1 framing of its own
            req.insert_header("transfer-encoding", "chunked")?;
        }
        let sent = async {
            up.write_request_header(Box::new(req)).await?;
            if !body.is_empty() {
                up.write_request_body(body.clone(), !oversize).await?;
            }
            if oversize {
                // the client's framing is kept; the rest goes on as it arrives
                while let Some(c) = read_client_body(session).await? {
                    up.write_request_body(c, false).await?;
                }
            }
            up.finish_request_body().await?;
            // interim responses (100 Continue, 103 Early Hints) are not the answer
            for _ in 0..8 {
                up.read_response_header().await?;
                if !up.response_header().is_some_and(|h| h.status.is_informational()) {
                    return Ok::<(), Box<Error>>(());
                }
            }
            Err(Error::explain(InvalidHTTPHeader, "upstream sent interim responses without end").into_up())
        }
        .await;
        match sent {
            Ok(()) => break (up, peer),
            Err(e) if e.esource() == &pingora::ErrorSource::Downstream => {
                // the client's streamed body failed: its error, answered by fail_to_proxy
                return Err(e);
            }
            // only a connection the upstream closed or reset; a timeout is not retried (a slow
            // upstream would otherwise cost the client several read timeouts)
            Err(e)
                if reused
                    && !oversize
                    && retries < 3
                    && matches!(e.etype(), ConnectionClosed | ReadError | WriteError) =>
            {
                tracing::debug!(error = %e, "pooled upstream connection failed; sending again");
                retries += 1;
            }
            Err(e) => {
                let v = respond::upstream_failure(&active.routes[route].id, &e);
                return answer(session, ctx, v).await;
            }
        }
    };
    let Some(mut resp) = up.response_header().cloned() else {
        let v = Verdict::Upstream { status: 502, kind: "protocol" };
        return answer(session, ctx, v).await;
    };
    ctx.status = resp.status.as_u16();

    // 3. the response
    let method = session.req_header().method.clone();
    let whole = super::ctx::WHOLE_BODY_LIMIT.min(hold);
    let mut insp = match ResponsePlan::new(ctx, active, route, &method, &mut resp, whole) {
        ResponsePlan::Relay => {
            let no_body = decide::without_body(&method, resp.status);
            session.write_response_header(Box::new(resp), no_body).await?;
            if no_body {
                conns.release(up, &peer).await;
                return Ok(());
            }
            // boxed, as below: a relayed body's loop is not carried in every exchange's future
            return Box::pin(upstream::relay_rest(conns, session, up, &peer)).await;
        }
        ResponsePlan::Refuse(v) => {
            up.shutdown().await;
            return answer(session, ctx, v).await;
        }
        ResponsePlan::Inspect(insp) => insp,
    };
    // a coded body, or one labelled as no text (a document may fail) where the route passes what
    // it cannot inspect: kept as it came while it is held, for `on_error: pass` to relay. Plain
    // text cannot fail, so it is not copied.
    let inspect = &active.routes[route].inspect;
    let ct = resp.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let relayable = super::inspect::coding(&resp.headers) != super::inspect::Coding::Identity
        || (inspect.on_error == crate::config::FailMode::Pass && !inspect.scannable(ct));
    let mut held: Vec<u8> = Vec::new();
    // the coded body as it came, while it is held and within `hold`: what `on_error: pass`
    // relays if decoding fails (None: nothing relayable, a failure is answered 502)
    let mut raw: Option<Vec<u8>> = relayable.then(Vec::new);
    let mut streaming = false;
    // announced longer than the hold, where no finding can refuse it whole: holding its start
    // buys nothing (it leaves chunked all the same), so it streams from its first piece, once
    // the inspector knows it for text, and a stream's memory is a piece, not the hold
    let early = !relayable
        && decide::announced_length(&resp.headers).is_some_and(|n| n > hold as u64)
        && !active.routes[route].may_block_for(ctx.dept, Direction::Response);
    let mut spare = Bytes::new();
    'body: loop {
        let chunk = match next_body(&mut up, &mut spare).await {
            Ok(c) => c,
            Err(e) => {
                if streaming {
                    return Err(e.into_up());
                }
                let v = respond::upstream_failure(&active.routes[route].id, &e);
                return answer(session, ctx, v).await;
            }
        };
        let eos = chunk.is_none();
        let data = chunk.unwrap_or_default();
        if let Some(r) = raw.as_mut() {
            if r.len() + data.len() > hold {
                raw = None;
            } else {
                r.extend_from_slice(data);
            }
        }
        // streamed, a piece's masked output waits for the client before the next piece is
        // scanned: a slow client holds at most STREAM_PIECE of it, not a whole upstream read
        let size = if streaming || early { STREAM_PIECE } else { data.len().max(1) };
        let pieces = data.len().div_ceil(size).max(1);
        for k in 0..pieces {
            let piece = &data[k * size..((k + 1) * size).min(data.len())];
            let eos = eos && k + 1 == pieces;
            let mut out = Vec::with_capacity(piece.len() + 256);
            let res = insp.push(
                Scope { snap: active, route, dept: ctx.dept, dir: Direction::Response },
                &mut ctx.log,
                piece,
                eos,
                &mut out,
            );
            if let Err(reason) = res {
                if streaming {
                    ctx.reason = Some(reason);
                    ctx.block_dir = Some(Direction::Response);
                    return Error::e_explain(InternalError, "dlp: response could not be inspected; aborting");
                }
                if let Some(v) = decide::failure(ctx, active, route, Direction::Response, reason) {
                    up.shutdown().await;
                    return answer(session, ctx, v).await;
                }
                let Some(raw) = raw else {
                    up.shutdown().await;
                    let v = Verdict::Uninspectable { status: 502, reason: reason.message() };
                    return answer(session, ctx, v).await;
                };
                // pass: nothing has been sent yet, so the response goes out as the upstream sent it,
                // uninspected (counted), its coding and length untouched
                session.write_response_header(Box::new(resp), false).await?;
                session.write_response_body(Some(Bytes::from(raw)), false).await?;
                return Box::pin(upstream::relay_rest(conns, session, up, &peer)).await;
            }
            if insp.blocked {
                if streaming {
                    ctx.block_dir = Some(Direction::Response);
                    ctx.reason = Some(Uninspectable::BlockedMidStream);
                    return Error::e_explain(InternalError, "dlp: blocked response aborted mid-stream");
                }
                let v = decide::block(ctx, active, Direction::Response);
                up.shutdown().await;
                return answer(session, ctx, v).await;
            }
            if streaming {
                if !out.is_empty() {
                    session.write_response_body(Some(Bytes::from(out)), false).await?;
                }
                if eos {
                    session.write_response_body(None, true).await?;
                    break 'body;
                }
                continue;
            }
            if held.is_empty() {
                held = out;
            } else {
                held.extend_from_slice(&out);
            }
            if eos {
                respond::strip_for_rewrite(&mut resp);
                resp.insert_header("content-length", held.len().to_string())?;
                session.write_response_header(Box::new(resp), false).await?;
                session.write_response_body(Some(Bytes::from(held)), true).await?;
                break 'body;
            }
            if (early || insp.decoded as usize > hold) && !insp.holding() {
                // past the hold: release what was scanned and stream the rest
                streaming = true;
                raw = None;
                respond::strip_for_rewrite(&mut resp);
                resp.insert_header("transfer-encoding", "chunked")?;
                session.write_response_header(Box::new(resp.clone()), false).await?;
                session.write_response_body(Some(Bytes::from(std::mem::take(&mut held))), false).await?;
            }
        }
    }
    conns.release(up, &peer).await;
    Ok(())
}

/// The next piece of the upstream response body. An HTTP/1.1 body is read in place, in the
/// connection's own buffer, rather than copied out of it for each piece: a held or streamed
/// response then costs its connection's buffer and its masked output, not a third copy as well.
async fn next_body<'a>(up: &'a mut ClientSession, spare: &'a mut Bytes) -> Result<Option<&'a [u8]>> {
    match up {
        ClientSession::H1(h1) => h1.read_body_ref().await,
        other => Ok(other.read_response_body().await?.map(|b| {
            *spare = b;
            &spare[..]
        })),
    }
}
