//! One HTTP/1.1 client connection to a function backend or upstream, pooled between requests:
//! the request head and body leave in one `writev`; the reply is read into the connection's
//! own buffer and parsed with httparse (Content-Length, chunked, or until close), either whole
//! (function calls) or piece by piece (pass-through routes).
//!
//! Why not pingora's client session here: it allocates a 64 KiB body buffer for every reply
//! and sends head and body in two writes; the event route does this once per request.

use crate::http1::chunk::{self, ChunkError};
use crate::http1::io::{read_some, write_all2};
use bytes::Bytes;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Most headers a reply may have.
const MAX_HEADERS: usize = 64;
/// Largest reply head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// A pooled connection's buffer is shrunk back to this after a large reply.
const KEEP_BUFFER: usize = 16 * 1024;
/// Read size while streaming a body.
const PIECE: usize = 64 * 1024;

pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    pub(super) idle_since: Instant,
    /// Longest wait for the peer to take more of the request.
    send_timeout: Duration,
}

#[derive(Debug)]
pub enum Failure {
    /// Not one byte of the request was written: it cannot have reached the peer, and may be
    /// sent again on another connection.
    NotSent(String),
    /// The request was written (or partly) and the connection closed or failed before a byte
    /// of the reply: the peer may have acted on it, so it is never sent again.
    NoReply(String),
    /// The reply was cut off or malformed.
    AfterReply(String),
    TooLarge(usize),
}

/// How a reply body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// What of a reply head is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Status and framing: a function call's reply, whose headers nobody reads.
    Status,
    /// The header lines too, for a proxied reply.
    Headers,
    /// The header lines of the answer to a HEAD request, which has no body whatever it says.
    HeadersOfHead,
}

/// A reply head; its header spans index the connection buffer until `consume_head`.
pub struct ReplyHead {
    pub status: u16,
    pub framing: Framing,
    /// The backend closes the connection after this reply.
    pub close: bool,
    len: usize,
    headers: Vec<(Range<usize>, Range<usize>)>,
}

/// A whole reply (function calls).
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
    /// Whether the connection can carry another request.
    pub reusable: bool,
}

/// Where a streamed body is.
pub struct BodyReader {
    framing: Framing,
    /// Bytes left of the body (Length) or of the current chunk (Chunked).
    left: usize,
    /// Chunked: the size line of the next chunk is due.
    at_size: bool,
    done: bool,
}

fn after(why: impl std::fmt::Display) -> Failure {
    Failure::AfterReply(why.to_string())
}

impl Conn {
    pub async fn open(addr: SocketAddr, send_timeout: Duration) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(4096),
            idle_since: Instant::now(),
            send_timeout,
        })
    }

    /// Whether an idle pooled connection can carry a request: nothing arrived on it while it
    /// waited, neither bytes (a late or unsolicited reply, which would be read as the next
    /// request's answer) nor the peer's close. The kernel is asked with a non-blocking peek,
    /// not tokio's readiness, which has not seen what arrived since the worker last polled.
    pub fn still_idle(&self) -> bool {
        let mut byte = [MaybeUninit::<u8>::uninit()];
        match socket2::SockRef::from(&self.stream).peek(&mut byte) {
            Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
            // Bytes, or the end of the stream.
            Ok(_) => false,
        }
    }

    /// Sends the head `write_head` writes and `body`, reads the whole reply.
    pub async fn exchange(
        &mut self,
        write_head: impl FnOnce(&mut Vec<u8>),
        body: &[u8],
        max_reply: usize,
    ) -> Result<Reply, Failure> {
        self.send(write_head, body).await?;
        let reply = self.read_head(Want::Status).await?;
        self.consume_head(&reply);
        let mut reader = BodyReader::new(reply.framing);
        if let Framing::Length(len) = reply.framing {
            if len > max_reply {
                return Err(Failure::TooLarge(max_reply));
            }
        }
        let mut body = match reply.framing {
            // Exact, so that `Bytes::from` takes the vector without another allocation.
            Framing::Length(len) => Vec::with_capacity(len),
            _ => Vec::new(),
        };
        while let Some(piece) = self.next_piece(&mut reader).await? {
            if body.len() + piece.len() > max_reply {
                return Err(Failure::TooLarge(max_reply));
            }
            let n = piece.len();
            body.extend_from_slice(&self.buf[piece]);
            self.buf.drain(..n);
        }
        if self.buf.capacity() > KEEP_BUFFER {
            self.buf = Vec::with_capacity(4096);
        }
        Ok(Reply {
            status: reply.status,
            body: Bytes::from(body),
            reusable: self.reusable(&reply, &reader),
        })
    }

    /// Sends the head `write_head` writes, then `body`, in one `writev`. The head is written
    /// into the connection's buffer, which is free until the reply is read.
    pub async fn send(
        &mut self,
        write_head: impl FnOnce(&mut Vec<u8>),
        body: &[u8],
    ) -> Result<(), Failure> {
        self.buf.clear();
        write_head(&mut self.buf);
        let sent = write_all2(&self.stream, &self.buf, body, self.send_timeout).await;
        self.buf.clear();
        sent.map_err(|e| {
            let why = format!("sending the request: {}", e.error);
            match e.written {
                0 => Failure::NotSent(why),
                _ => Failure::NoReply(why),
            }
        })
    }

    /// Reads more bytes into the buffer; `Ok(0)` at end of stream.
    async fn fill(&mut self) -> std::io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(self.buf.capacity().max(4096));
        }
        read_some(&self.stream, &mut self.buf).await
    }

    /// Reads the reply head (skipping 1xx interim answers).
    pub async fn read_head(&mut self, want: Want) -> Result<ReplyHead, Failure> {
        loop {
            if let Some(head) = self.parse_head(want)? {
                return Ok(head);
            }
            let started = !self.buf.is_empty();
            match self.fill().await {
                Ok(0) if !started => {
                    return Err(Failure::NoReply("closed before the reply".into()))
                }
                Ok(0) => return Err(after("closed in the reply head")),
                Ok(_) => {}
                Err(e) if !started => {
                    return Err(Failure::NoReply(format!("reading the reply: {e}")))
                }
                Err(e) => return Err(after(format!("reading the reply: {e}"))),
            }
        }
    }

    /// Parses a complete head at the start of the buffer, if there is one. Not async: the
    /// 2 KiB of httparse slots stay off the request's future.
    fn parse_head(&mut self, want: Want) -> Result<Option<ReplyHead>, Failure> {
        loop {
            // Uninitialised slots: see `http1::head::parse`.
            let mut raw = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut []);
            let config = httparse::ParserConfig::default();
            let len = match config
                .parse_response_with_uninit_headers(&mut resp, &self.buf, &mut raw)
            {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) if self.buf.len() < MAX_HEAD => return Ok(None),
                Ok(httparse::Status::Partial) => return Err(after("the reply head is too large")),
                Err(e) => return Err(after(format!("malformed reply: {e}"))),
            };
            let status = resp.code.unwrap_or(0);
            // Nothing here asks for an upgrade (`Upgrade` is hop-by-hop and not passed on), so
            // a 101 is a peer out of step; the connection would no longer be HTTP.
            if status == 101 {
                return Err(after(
                    "a 101 (Switching Protocols) reply: upgrades are not supported",
                ));
            }
            if (100..200).contains(&status) {
                self.buf.drain(..len);
                continue;
            }
            let (mut framing, close) = framing(&resp)?;
            if want == Want::HeadersOfHead {
                framing = Framing::Length(0);
            }
            let span = |part: &[u8]| crate::text::span(&self.buf[..len], part);
            let headers = match want {
                Want::Status => Vec::new(),
                Want::Headers | Want::HeadersOfHead => resp
                    .headers
                    .iter()
                    .map(|h| (span(h.name.as_bytes()), span(h.value)))
                    .collect(),
            };
            return Ok(Some(ReplyHead {
                status,
                framing,
                close,
                len,
                headers,
            }));
        }
    }

    /// The reply's header lines (valid until `consume_head`).
    pub fn header_lines<'a>(
        &'a self,
        head: &'a ReplyHead,
    ) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        head.headers.iter().map(|(n, v)| {
            let name = crate::text::utf8(&self.buf[n.clone()]).unwrap_or("");
            (name, &self.buf[v.clone()])
        })
    }

    pub fn consume_head(&mut self, head: &ReplyHead) {
        self.buf.drain(..head.len.min(self.buf.len()));
    }

    /// The next piece of the body as a range of the buffer, which the caller drops with
    /// `consume` once used; `None` at the end.
    pub async fn next_piece(
        &mut self,
        r: &mut BodyReader,
    ) -> Result<Option<Range<usize>>, Failure> {
        loop {
            if r.done {
                return Ok(None);
            }
            match r.framing {
                Framing::Length(_) if r.left == 0 => {
                    r.done = true;
                    continue;
                }
                Framing::Chunked if r.at_size => {
                    self.chunk_size(r).await?;
                    continue;
                }
                Framing::Chunked if r.left == 0 => {
                    self.need(2).await?;
                    if &self.buf[..2] != b"\r\n" {
                        return Err(after("malformed chunked reply"));
                    }
                    self.buf.drain(..2);
                    r.at_size = true;
                    continue;
                }
                _ => {}
            }
            if self.buf.is_empty() {
                let want = match r.framing {
                    Framing::Length(_) => r.left.min(PIECE),
                    _ => PIECE,
                };
                self.buf.reserve(want);
                match self.fill().await {
                    Ok(0) if r.framing == Framing::UntilClose => {
                        r.done = true;
                        continue;
                    }
                    Ok(0) => return Err(after("closed in the reply body")),
                    Ok(_) => {}
                    Err(e) => return Err(after(format!("reading the reply body: {e}"))),
                }
            }
            let n = match r.framing {
                Framing::UntilClose => self.buf.len(),
                _ => self.buf.len().min(r.left),
            };
            r.left -= n.min(r.left);
            return Ok(Some(0..n));
        }
    }

    /// The bytes of a piece returned by `next_piece`.
    pub fn piece(&self, range: Range<usize>) -> &[u8] {
        &self.buf[range]
    }

    /// Drops the first `n` bytes of the buffer (a piece that has been used).
    pub fn consume(&mut self, n: usize) {
        self.buf.drain(..n.min(self.buf.len()));
    }

    /// Makes sure `n` bytes are buffered.
    async fn need(&mut self, n: usize) -> Result<(), Failure> {
        while self.buf.len() < n {
            match self.fill().await {
                Ok(0) => return Err(after("closed in the reply body")),
                Ok(_) => {}
                Err(e) => return Err(after(format!("reading the reply body: {e}"))),
            }
        }
        Ok(())
    }

    /// Reads a chunk-size line (or, for the last chunk, the trailers, which are dropped).
    async fn chunk_size(&mut self, r: &mut BodyReader) -> Result<(), Failure> {
        let (skip, size) = loop {
            match chunk::size_line(&self.buf).map_err(chunk_failure)? {
                Some(line) => break line,
                None => self.need(self.buf.len() + 1).await?,
            }
        };
        self.buf.drain(..skip);
        r.at_size = false;
        r.left = usize::try_from(size).map_err(|_| after("chunk too large"))?;
        if r.left == 0 {
            let mut scan = crate::http1::head::EndScan::default();
            let len = loop {
                if scan.due(&self.buf) {
                    if let Some(len) = chunk::trailers(&self.buf).map_err(chunk_failure)? {
                        break len;
                    }
                }
                self.need(self.buf.len() + 1).await?;
            };
            self.buf.drain(..len);
            r.done = true;
        }
        Ok(())
    }

    /// Whether the connection can be pooled after a reply read to its end.
    pub fn reusable(&self, head: &ReplyHead, r: &BodyReader) -> bool {
        r.done && !head.close && head.framing != Framing::UntilClose && self.buf.is_empty()
    }
}

impl BodyReader {
    pub fn new(framing: Framing) -> BodyReader {
        BodyReader {
            framing,
            left: match framing {
                Framing::Length(n) => n,
                _ => 0,
            },
            at_size: framing == Framing::Chunked,
            done: false,
        }
    }
}

fn chunk_failure(e: ChunkError) -> Failure {
    match e {
        ChunkError::Malformed => after("malformed chunked reply"),
        ChunkError::TrailersTooLarge => after("reply trailers too large"),
    }
}

/// The reply's framing, and whether the connection must close after it: the peer says so, or
/// the reply is not framed exactly (a 204 that declares a body, RFC 9110 §15.3.5: whatever
/// follows it could be read as the next reply).
fn framing(resp: &httparse::Response) -> Result<(Framing, bool), Failure> {
    let mut length = None;
    let mut chunked = false;
    let mut close = resp.version == Some(0);
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = crate::http1::head::parse_length(h.value);
            match (v, length) {
                (Some(v), None) => length = Some(v),
                (Some(v), Some(l)) if v == l => {}
                _ => return Err(after("bad Content-Length in the reply")),
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
    close |= status == 204 && (chunked || length.is_some_and(|l| l > 0));
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
