//! One HTTP/1.1 exchange with a function backend over a pooled keep-alive connection: the
//! request head and the event leave in one `writev`, the reply is read into the connection's
//! own buffer and parsed with httparse (Content-Length, chunked, or until close).
//!
//! Why not pingora's client session here: it allocates a 64 KiB body buffer for every reply
//! and sends head and body in two writes; the event route does this once per request.

use bytes::Bytes;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Most headers a function reply may have.
const MAX_HEADERS: usize = 64;
/// Largest reply head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// A pooled connection's buffer is shrunk back to this after a large reply.
const KEEP_BUFFER: usize = 16 * 1024;

pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    pub(super) idle_since: Instant,
}

#[derive(Debug)]
pub enum Failure {
    /// Nothing of a reply arrived: the connection was closed or reset before it. On a reused
    /// connection this means the backend had closed it while idle.
    BeforeReply(String),
    /// The reply was cut off or malformed.
    AfterReply(String),
    TooLarge(usize),
}

pub struct Reply {
    pub status: u16,
    pub body: Bytes,
    /// Whether the connection can carry another request.
    pub reusable: bool,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(4096),
            idle_since: Instant::now(),
        })
    }

    /// Sends `head` and `body`, reads the reply.
    pub async fn exchange(
        &mut self,
        head: &[u8],
        body: &[u8],
        max_reply: usize,
    ) -> Result<Reply, Failure> {
        write_all_vectored(&mut self.stream, head, body)
            .await
            .map_err(|e| Failure::BeforeReply(format!("sending the event: {e}")))?;
        self.buf.clear();
        let reply = self.read_reply(max_reply).await;
        if self.buf.capacity() > KEEP_BUFFER {
            self.buf = Vec::with_capacity(4096);
        }
        reply
    }

    /// Reads more bytes into the buffer; `Ok(0)` at end of stream.
    async fn fill(&mut self) -> std::io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(self.buf.capacity().max(4096));
        }
        self.stream.read_buf(&mut self.buf).await
    }

    async fn read_reply(&mut self, max_reply: usize) -> Result<Reply, Failure> {
        // The head.
        let (head_len, status, framing, close) = loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let status = resp.code.unwrap_or(0);
                    let (framing, close) = framing(&resp)?;
                    // A 1xx interim answer precedes the real one.
                    if (100..200).contains(&status) && status != 101 {
                        self.buf.drain(..len);
                        continue;
                    }
                    break (len, status, framing, close);
                }
                Ok(httparse::Status::Partial) if self.buf.len() < MAX_HEAD => {}
                Ok(httparse::Status::Partial) => {
                    return Err(Failure::AfterReply("the reply head is too large".into()))
                }
                Err(e) => return Err(Failure::AfterReply(format!("malformed reply: {e}"))),
            }
            let started = !self.buf.is_empty();
            match self.fill().await {
                Ok(0) if !started => {
                    return Err(Failure::BeforeReply("closed before the reply".into()))
                }
                Ok(0) => return Err(Failure::AfterReply("closed in the reply head".into())),
                Ok(_) => {}
                Err(e) if !started => {
                    return Err(Failure::BeforeReply(format!("reading the reply: {e}")))
                }
                Err(e) => return Err(Failure::AfterReply(format!("reading the reply: {e}"))),
            }
        };
        self.buf.drain(..head_len);
        // The body.
        let (body, reusable) = match framing {
            Framing::Length(len) => {
                if len > max_reply {
                    return Err(Failure::TooLarge(max_reply));
                }
                while self.buf.len() < len {
                    self.fill_body().await?;
                }
                (
                    Bytes::copy_from_slice(&self.buf[..len]),
                    !close && self.buf.len() == len,
                )
            }
            Framing::Chunked => (self.read_chunked(max_reply).await?, !close),
            Framing::UntilClose => {
                loop {
                    if self.buf.len() > max_reply {
                        return Err(Failure::TooLarge(max_reply));
                    }
                    if self
                        .fill()
                        .await
                        .map_err(|e| Failure::AfterReply(e.to_string()))?
                        == 0
                    {
                        break;
                    }
                }
                (Bytes::copy_from_slice(&self.buf), false)
            }
        };
        Ok(Reply {
            status,
            body,
            reusable,
        })
    }

    async fn fill_body(&mut self) -> Result<(), Failure> {
        match self.fill().await {
            Ok(0) => Err(Failure::AfterReply("closed in the reply body".into())),
            Ok(_) => Ok(()),
            Err(e) => Err(Failure::AfterReply(format!("reading the reply body: {e}"))),
        }
    }

    /// Decodes a chunked body in place: chunk sizes with httparse, then the data.
    async fn read_chunked(&mut self, max_reply: usize) -> Result<Bytes, Failure> {
        let mut body = Vec::new();
        let mut pos = 0;
        loop {
            let (skip, size) = loop {
                match httparse::parse_chunk_size(&self.buf[pos..]) {
                    Ok(httparse::Status::Complete((skip, size))) => break (skip, size as usize),
                    // A size line (with extensions) must end within MAX_HEAD bytes.
                    Ok(httparse::Status::Partial) if self.buf.len() - pos > MAX_HEAD => {
                        return Err(Failure::AfterReply("malformed chunked reply".into()))
                    }
                    Ok(httparse::Status::Partial) => self.fill_body().await?,
                    Err(_) => return Err(Failure::AfterReply("malformed chunked reply".into())),
                }
            };
            pos += skip;
            if size == 0 {
                // Trailers (usually none), up to the blank line.
                loop {
                    if let Some(end) = find(&self.buf[pos..], b"\r\n") {
                        pos += end + 2;
                        if end == 0 {
                            break;
                        }
                    } else if self.buf.len() - pos > MAX_HEAD {
                        return Err(Failure::AfterReply("reply trailers too large".into()));
                    } else {
                        self.fill_body().await?;
                    }
                }
                break;
            }
            if body.len() + size > max_reply {
                return Err(Failure::TooLarge(max_reply));
            }
            while self.buf.len() < pos + size + 2 {
                self.fill_body().await?;
            }
            if &self.buf[pos + size..pos + size + 2] != b"\r\n" {
                return Err(Failure::AfterReply("malformed chunked reply".into()));
            }
            body.extend_from_slice(&self.buf[pos..pos + size]);
            pos += size + 2;
        }
        self.buf.drain(..pos);
        Ok(Bytes::from(body))
    }
}

enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

fn framing(resp: &httparse::Response) -> Result<(Framing, bool), Failure> {
    let mut length = None;
    let mut chunked = false;
    let mut close = resp.version == Some(0);
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok());
            match (v, length) {
                (Some(v), None) => length = Some(v),
                (Some(v), Some(l)) if v == l => {}
                _ => {
                    return Err(Failure::AfterReply(
                        "bad Content-Length in the reply".into(),
                    ))
                }
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h
                .value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            close |= h
                .value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
    }
    let status = resp.code.unwrap_or(0);
    let framing = if status == 204 || status == 304 {
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked
    } else if let Some(len) = length {
        Framing::Length(len)
    } else {
        Framing::UntilClose
    };
    Ok((framing, close))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Writes `a` then `b` with as few `writev` calls as the socket allows.
async fn write_all_vectored(stream: &mut TcpStream, a: &[u8], b: &[u8]) -> std::io::Result<()> {
    let mut done = 0;
    let total = a.len() + b.len();
    while done < total {
        let slices = if done < a.len() {
            [IoSlice::new(&a[done..]), IoSlice::new(b)]
        } else {
            [IoSlice::new(&b[done - a.len()..]), IoSlice::new(&[])]
        };
        let n = stream.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        done += n;
    }
    Ok(())
}
