//! Pass-through (`upstream:`) routes: the request goes to the upstream as it came — method,
//! target, headers, body — minus hop-by-hop headers, with X-Forwarded-For, X-Forwarded-Proto
//! and the request id set; the reply streams back as it arrives, re-framed for the client.
//! Upstream connections are pooled with the function calls' (`invoke`), under the same rules:
//! pooled only after a reply framed exactly and read whole, reused only if nothing arrived
//! while idle, and sent again on a fresh connection only if not one byte of it left.

use crate::errors::GatewayError;
use crate::event::apigw::HopByHop;
use crate::http1::response::push_header;
use crate::http1::Exchange;
use crate::invoke::conn::{BodyReader, Conn, Failure, Framing, ReplyHead, Want};
use crate::invoke::Invoker;
use std::net::SocketAddr;
use std::time::Duration;

/// Where to and how long to wait for each step.
pub struct Target<'a> {
    pub addr: SocketAddr,
    pub timeout: Duration,
    pub request_id: &'a str,
    /// The X-Forwarded-For value: the client's chain with the peer appended.
    pub forwarded_for: &'a str,
}

/// Forwards the request and streams the reply; returns the status sent. An error is returned
/// only while nothing has been sent to the client.
pub async fn forward(
    x: &mut Exchange<'_>,
    invoker: &Invoker,
    t: &Target<'_>,
) -> Result<u16, GatewayError> {
    let head = request_head(x, t);
    let to_head = x.head.method == http::Method::HEAD;
    let call = |body| connect_and_send(invoker, t.addr, &head, body, to_head);
    let (mut conn, reply) = x
        .within_with_body(t.timeout, call)
        .await
        .ok_or(GatewayError::FunctionTimeout(t.timeout))??;

    let length = match (to_head, reply.framing) {
        (true, _) => declared_length(&conn, &reply),
        (false, Framing::Length(n)) => Some(n),
        (false, _) => None,
    };
    let hop = HopByHop::of(conn.header_lines(&reply));
    let headers = conn
        .header_lines(&reply)
        .filter(|(name, _)| passes(name, &hop) && !is_framing(name))
        .chain([("x-jdcloud-request-id", t.request_id.as_bytes())]);
    let started = x.start_answer(reply.status, headers, length);
    conn.consume_head(&reply);
    if started.is_err() {
        return Ok(reply.status);
    }

    let mut body = BodyReader::new(reply.framing);
    loop {
        let piece = {
            let next = std::pin::pin!(conn.next_piece(&mut body));
            x.within(t.timeout, next).await
        };
        let range = match piece {
            Some(Ok(Some(range))) => range,
            Some(Ok(None)) => break,
            Some(Err(_)) | None => {
                // Before the first byte of the body the head has not left either: the client
                // can still be told what happened.
                if x.retract_answer() {
                    return Err(match piece {
                        None => GatewayError::FunctionTimeout(t.timeout),
                        _ => unreachable(Failure::AfterReply(
                            "the reply broke off before its body".into(),
                        )),
                    });
                }
                // The status is out: all that can be said is an incomplete answer.
                x.abort();
                return Ok(reply.status);
            }
        };
        let n = range.len();
        if x.write_body(conn.piece(range)).await.is_err() {
            return Ok(reply.status);
        }
        conn.consume(n);
    }
    if x.end_body().await.is_ok() && conn.reusable(&reply, &body) {
        invoker.put_idle(t.addr, conn);
    }
    Ok(reply.status)
}

/// A pooled connection if there is one (the request sent again on a fresh one only if not one
/// byte of it could be written), else a new one; the request sent and the reply head read.
async fn connect_and_send(
    invoker: &Invoker,
    addr: SocketAddr,
    head: &[u8],
    body: &[u8],
    to_head: bool,
) -> Result<(Conn, ReplyHead), GatewayError> {
    if let Some(mut conn) = invoker.take_idle(addr) {
        let reply = match conn.send(|b| b.extend_from_slice(head), body).await {
            Ok(()) => conn.read_head(want(to_head)).await,
            Err(e) => Err(e),
        };
        match reply {
            Ok(reply) => return Ok((conn, reply)),
            Err(Failure::NotSent(_)) => {}
            Err(other) => return Err(unreachable(other)),
        }
    }
    let mut conn = invoker.open(addr).await.map_err(|e| {
        GatewayError::FunctionUnreachable(format!("upstream: connect to {addr}: {e}"))
    })?;
    conn.send(|b| b.extend_from_slice(head), body)
        .await
        .map_err(unreachable)?;
    let reply = conn.read_head(want(to_head)).await.map_err(unreachable)?;
    Ok((conn, reply))
}

fn unreachable(f: Failure) -> GatewayError {
    let why = match f {
        Failure::NotSent(why) | Failure::NoReply(why) | Failure::AfterReply(why) => why,
        Failure::TooLarge(limit) => format!("reply larger than {limit} bytes"),
    };
    GatewayError::FunctionUnreachable(format!("upstream: {why}"))
}

/// A header passed on: not hop-by-hop, and not the request id the gateway sets itself.
fn passes(name: &str, hop: &HopByHop) -> bool {
    !hop.contains(name) && !name.eq_ignore_ascii_case("x-jdcloud-request-id")
}

/// Framing is recomputed on each side.
fn is_framing(name: &str) -> bool {
    name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("transfer-encoding")
}

/// A HEAD reply's Content-Length, passed on as it is.
fn declared_length(conn: &Conn, reply: &ReplyHead) -> Option<usize> {
    conn.header_lines(reply)
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse().ok())
}

/// The request as the upstream gets it.
/// An absolute-form target (`GET http://host/a?b`, as sent to forward proxies) goes on in
/// origin-form (`/a?b`), with the target's authority as `Host` in place of the client's
/// (RFC 9112 §3.2.2: the target's authority wins over `Host`).
fn request_head(x: &Exchange<'_>, t: &Target<'_>) -> Vec<u8> {
    let mut h = Vec::with_capacity(256 + x.head.len);
    h.extend_from_slice(x.method().as_bytes());
    h.push(b' ');
    let absolute = crate::http1::head::absolute_form(x.target());
    match absolute {
        Some((_, rest)) if !rest.starts_with('/') => {
            h.push(b'/');
            h.extend_from_slice(rest.as_bytes());
        }
        Some((_, rest)) => h.extend_from_slice(rest.as_bytes()),
        None => h.extend_from_slice(x.target().as_bytes()),
    }
    h.extend_from_slice(b" HTTP/1.1\r\n");
    let hop = HopByHop::of(x.headers());
    // The client's Host goes on unless the target named the authority itself.
    let mut host_sent = false;
    if let Some((authority, _)) = absolute {
        push_header(&mut h, "Host", authority.as_bytes());
        host_sent = true;
    }
    for (name, value) in x.headers() {
        let replaced = ["x-forwarded-for", "x-forwarded-proto", "host"]
            .iter()
            .any(|r| name.eq_ignore_ascii_case(r));
        if name.eq_ignore_ascii_case("host") && !host_sent {
            push_header(&mut h, name, value);
            host_sent = true;
        } else if passes(name, &hop) && !is_framing(name) && !replaced {
            push_header(&mut h, name, value);
        }
    }
    if !host_sent {
        push_header(&mut h, "Host", t.addr.to_string().as_bytes());
    }
    push_header(&mut h, "X-Forwarded-For", t.forwarded_for.as_bytes());
    push_header(&mut h, "X-Forwarded-Proto", b"http");
    push_header(&mut h, "x-jdcloud-request-id", t.request_id.as_bytes());
    let had_body = x.declared_length() != Some(0) || x.header("content-length").is_some();
    if had_body || !x.body().is_empty() {
        push_header(
            &mut h,
            "Content-Length",
            x.body().len().to_string().as_bytes(),
        );
    }
    h.extend_from_slice(b"\r\n");
    h
}

/// The reply's header lines are passed on; a HEAD request's reply has no body.
fn want(to_head: bool) -> Want {
    match to_head {
        true => Want::HeadersOfHead,
        false => Want::Headers,
    }
}
