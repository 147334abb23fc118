//! Writing answers to the client ourselves (pingora's `respond_error` would close keep-alive):
//! function replies and the gateway's own JSON errors.

use crate::errors::GatewayError;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

/// Writes a complete response with a computed Content-Length. Bodies are omitted where HTTP
/// forbids them (HEAD, 204, 304).
pub async fn write(
    session: &mut Session,
    status: u16,
    headers: &[(HeaderName, HeaderValue)],
    request_id: &str,
    body: Bytes,
) -> Result<usize> {
    let mut resp = ResponseHeader::build(status, Some(headers.len() + 2))?;
    for (name, value) in headers {
        resp.append_header(name.clone(), value.clone())?;
    }
    resp.insert_header("x-jdcloud-request-id", request_id)?;
    let bodiless_status = status == 204 || status == 304;
    if !bodiless_status {
        resp.insert_header(http::header::CONTENT_LENGTH, body.len())?;
    }
    let send_body = !bodiless_status && session.req_header().method != Method::HEAD;
    let sent = if send_body { body.len() } else { 0 };
    session
        .write_response_header(Box::new(resp), !send_body || body.is_empty())
        .await?;
    if send_body && !body.is_empty() {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(sent)
}

/// Writes the gateway's JSON error answer (SPEC §4). The client connection stays open unless
/// the caller turned keep-alive off (413: the unread body would have to be drained).
pub async fn error(
    session: &mut Session,
    err: &GatewayError,
    request_id: &str,
    expose_details: bool,
) -> Result<usize> {
    let mut headers = vec![
        (
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ),
        (
            HeaderName::from_static("x-fngate-error"),
            HeaderValue::from_static(err.code()),
        ),
    ];
    match err {
        GatewayError::MethodNotAllowed { allow } => {
            if let Ok(v) = HeaderValue::from_str(allow) {
                headers.push((http::header::ALLOW, v));
            }
        }
        GatewayError::Unauthorized => headers.push((
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer"),
        )),
        GatewayError::QueueFull { retry_after } => {
            headers.push((http::header::RETRY_AFTER, HeaderValue::from(*retry_after)))
        }
        GatewayError::QueueUnavailable(_) => {
            headers.push((http::header::RETRY_AFTER, HeaderValue::from_static("5")))
        }
        _ => {}
    }
    let body = err.body(request_id, expose_details);
    write(
        session,
        err.status(),
        &headers,
        request_id,
        Bytes::from(body),
    )
    .await
}
