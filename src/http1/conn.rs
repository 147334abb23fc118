//! One client connection: requests read and answered in turn (keep-alive, pipelining) until the
//! client leaves, a limit or timeout is hit, or the server shuts down.
//!
//! Why not pingora's HTTP/1 session: measured, it costs 16.7 CPU-µs per request on its own
//! (docs/performance.md) and 23 KiB per idle connection. Here an idle connection holds no
//! buffer at all — it waits for readiness, not for a read into memory — and a request is read
//! with one `recv` and answered with one `writev` in the common case.

use super::chunk::{self, ChunkError};
use super::head::{self, Framing, Head, HeadError};
use super::io::{read_now, read_some, write_all2, Io};
use super::response::{self, DateCache};
use super::socket::Socket;
use super::timer::LazyTimer;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// First read buffer of a request: small enough for malloc's per-thread cache.
const INITIAL_BUFFER: usize = 1024;
/// Unread request bodies up to this size are read and dropped so the connection survives an
/// answer that did not need the body (404, 405, …); larger ones close the connection.
pub const DRAIN_LIMIT: usize = 64 * 1024;
/// After a closing answer the rest of the input is read and dropped this long at most, so the
/// client reads the answer instead of a reset (nginx's lingering close).
const LINGER: Duration = Duration::from_secs(2);

/// Per-listener limits (from `server:` in the config).
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long an idle keep-alive connection is kept.
    pub keepalive_timeout: Duration,
    /// Requests served on one connection before it is closed.
    pub keepalive_requests: Option<u32>,
    /// The head must arrive within this from its first byte; each body read too.
    pub read_timeout: Duration,
    /// Longest wait for the client to take more of an answer (nginx's `send_timeout`).
    pub send_timeout: Duration,
}

/// The application behind the connection.
pub trait Handler: Send + Sync {
    /// Answers one request; `x.respond` (or the streaming calls) must be used once.
    fn serve(&self, x: &mut Exchange<'_>) -> impl Future<Output = ()> + Send;
    /// The answer to a head that cannot be served; the connection is closed after it.
    fn refuse(&self, err: &HeadError, peer: Option<SocketAddr>) -> response::Answer;
}

/// Why a connection stops waiting for a request.
enum Stop {
    /// The client closed, the server is shutting down, or the idle time is up: nothing to say.
    Quiet,
    /// The head cannot be served: answer, then close.
    Refuse(HeadError),
}

/// The connection's state between requests.
pub struct Conn {
    stream: Socket,
    peer: Option<SocketAddr>,
    /// The peer's IP address written out once (it goes into every event).
    peer_ip: String,
    /// Request bytes: the current head, its body, then any pipelined bytes.
    buf: Vec<u8>,
    /// The answer's head, reused.
    out: Vec<u8>,
    date: DateCache,
    timer: LazyTimer,
    /// Turns true when the server starts shutting down.
    shutdown: watch::Receiver<bool>,
}

impl Conn {
    fn new(stream: Socket, shutdown: watch::Receiver<bool>) -> Conn {
        let peer = stream.peer_addr();
        Conn {
            peer_ip: peer.map(|p| p.ip().to_string()).unwrap_or_default(),
            peer,
            shutdown,
            stream,
            buf: Vec::new(),
            out: Vec::new(),
            date: DateCache::default(),
            timer: LazyTimer::default(),
        }
    }

    /// Reads once into `buf`: `Ok(0)` at end of input. When it has to wait, it waits until
    /// `deadline`, which is set to `timeout` from now if it is not set yet (the clock is read
    /// only then).
    async fn fill(
        &mut self,
        deadline: &mut Option<Instant>,
        timeout: Duration,
    ) -> std::io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < INITIAL_BUFFER / 2 {
            self.buf.reserve(self.buf.capacity().max(INITIAL_BUFFER));
        }
        // Usually the bytes are there already: no timer needed.
        match read_now(&self.stream, &mut self.buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            done => return done,
        }
        let deadline = *deadline.get_or_insert_with(|| Instant::now() + timeout);
        let read = std::pin::pin!(read_some(&self.stream, &mut self.buf));
        race(read, &mut self.timer, deadline)
            .await
            .unwrap_or_else(|| Err(std::io::ErrorKind::TimedOut.into()))
    }

    /// Waits for the next head: idle (no buffer) until a byte arrives, `keepalive_timeout`
    /// passes or `stopping` (the shutdown signal) resolves; then the whole head within
    /// `read_timeout`.
    async fn next_head(
        &mut self,
        settings: &Settings,
        stopping: Pin<&mut impl Future>,
    ) -> Result<Head, Stop> {
        if self.buf.is_empty() {
            let idle_until = Instant::now() + settings.keepalive_timeout;
            let mut stopping = stopping;
            // Readable, or the idle time is up, or the server is stopping (a poll, not a
            // `select!`: it runs once a request).
            let readable = std::future::poll_fn(|cx| {
                if let Poll::Ready(ready) = self.stream.poll_read_ready(cx) {
                    return Poll::Ready(ready.is_ok());
                }
                if self.timer.poll_until(cx, idle_until).is_ready()
                    || stopping.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(false);
                }
                Poll::Pending
            });
            if !readable.await {
                return Err(Stop::Quiet);
            }
        }
        // The whole head within `read_timeout` of its first byte. It is parsed on its first
        // read (garbage is refused at once), then only once its end has arrived or the buffer
        // is full, not again on every read.
        let mut deadline = None;
        let mut scan = head::EndScan::default();
        loop {
            if scan.due(&self.buf) {
                if let Some(head) = head::parse(&self.buf).map_err(Stop::Refuse)? {
                    return Ok(head);
                }
            }
            match self.fill(&mut deadline, settings.read_timeout).await {
                Ok(0) | Err(_) => return Err(Stop::Quiet),
                Ok(_) => {}
            }
        }
    }

    fn closing(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Answers with `answer` and `Connection: close`, then closes (lingering).
    async fn answer_and_close(&mut self, answer: &response::Answer, settings: &Settings) {
        let mut x = Exchange::new(self, Head::default(), settings);
        x.keep_alive = false;
        let _ = x.respond_answer(answer).await;
        self.linger().await;
    }

    /// Reads and drops input until the client closes or `LINGER` passes.
    async fn linger(&mut self) {
        self.stream.shutdown().await;
        let mut deadline = None;
        let mut dropped = 0;
        while dropped < 16 * DRAIN_LIMIT {
            self.buf.clear();
            match self.fill(&mut deadline, LINGER).await {
                Ok(n) if n > 0 => dropped += n,
                _ => return,
            }
        }
    }
}

/// Serves a connection until it ends.
pub async fn serve<H: Handler>(
    stream: Socket,
    handler: &H,
    settings: &Settings,
    shutdown: &watch::Receiver<bool>,
) {
    stream.set_nodelay();
    let mut conn = Conn::new(stream, shutdown.clone());
    // One wait on the shutdown signal for the connection's life, not one per request: setting
    // a wait up and tearing it down took the watch's lock twice a request.
    let mut signal = shutdown.clone();
    let mut stopping = std::pin::pin!(signal.changed());
    let mut served: u32 = 0;
    loop {
        if conn.closing() && conn.buf.is_empty() {
            return;
        }
        let head = match conn.next_head(settings, stopping.as_mut()).await {
            Ok(head) => head,
            Err(Stop::Quiet) => return,
            Err(Stop::Refuse(err)) => {
                let answer = handler.refuse(&err, conn.peer);
                conn.answer_and_close(&answer, settings).await;
                return;
            }
        };
        served += 1;
        let limit = settings.keepalive_requests.is_some_and(|n| served >= n);
        let keep_alive = head.keep_alive && !limit;
        let mut x = Exchange::new(&mut conn, head, settings);
        x.keep_alive = keep_alive;
        // Boxed: the request path's future is several KiB, and inline it would make every idle
        // connection that large (measured: 10 KiB per connection, 4.7 of it the request).
        let fut = Box::pin(handler.serve(&mut x));
        fut.await;
        match x.finish().await {
            Next::Continue => {}
            Next::Close => return,
            Next::Linger => {
                conn.linger().await;
                return;
            }
        }
    }
}

/// Answers a connection that will not be served (the listeners' connection limit) with
/// `answer` before reading anything, then closes it the way a refused head is closed.
pub async fn turn_away(
    stream: Socket,
    answer: &response::Answer,
    settings: &Settings,
    shutdown: &watch::Receiver<bool>,
) {
    let mut conn = Conn::new(stream, shutdown.clone());
    conn.answer_and_close(answer, settings).await;
}

/// `f`'s output, or `None` once `timer` reaches `deadline` (`f` is polled first).
fn race<'a, F: Future>(
    mut f: Pin<&'a mut F>,
    timer: &'a mut LazyTimer,
    deadline: Instant,
) -> impl Future<Output = Option<F::Output>> + 'a {
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(out) = f.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        timer.poll_until(cx, deadline).map(|()| None)
    })
}

/// What happens to the connection after an exchange.
enum Next {
    Continue,
    Close,
    Linger,
}

/// The request body, once read.
enum Body {
    Unread,
    /// In the connection buffer, right after the head.
    InBuffer(usize),
    /// Decoded from chunks.
    Decoded(Vec<u8>),
}

fn body_of<'a>(body: &'a Body, buf: &'a [u8], head_len: usize) -> &'a [u8] {
    match body {
        Body::Unread => &[],
        Body::InBuffer(len) => &buf[head_len..head_len + len],
        Body::Decoded(v) => v,
    }
}

/// Why a request body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Larger than the limit (declared or received): 413.
    TooLarge,
    /// Malformed chunked framing: 400.
    Malformed,
    /// Chunked trailers beyond the head limits: 431.
    TrailersTooLarge,
    /// The client stalled past `read_timeout`: 408.
    TimedOut,
    /// The client closed the connection: nothing can be answered.
    Closed,
}

fn body_error(e: ChunkError) -> BodyError {
    match e {
        ChunkError::Malformed => BodyError::Malformed,
        ChunkError::TrailersTooLarge => BodyError::TrailersTooLarge,
    }
}

/// One request and its answer.
pub struct Exchange<'c> {
    conn: &'c mut Conn,
    pub head: Head,
    settings: &'c Settings,
    body: Body,
    /// Where this request ends in the buffer once its body is read.
    end: usize,
    /// Whether the connection carries another request after this one.
    pub keep_alive: bool,
    /// The answer's head has been written.
    responded: bool,
    /// The answer could not be written whole.
    broken: bool,
    /// The streamed body is sent in chunks.
    chunked: bool,
    pub bytes_out: usize,
    /// Headers the gateway adds to whatever answer this request gets (CORS, rate limits).
    pub extra_headers: Vec<(&'static str, Vec<u8>)>,
}

impl<'c> Exchange<'c> {
    fn new(conn: &'c mut Conn, head: Head, settings: &'c Settings) -> Exchange<'c> {
        let end = head.len;
        Exchange {
            conn,
            body: match head.framing {
                Framing::Empty => Body::InBuffer(0),
                _ => Body::Unread,
            },
            head,
            settings,
            end,
            keep_alive: false,
            responded: false,
            broken: false,
            chunked: false,
            bytes_out: 0,
            extra_headers: Vec::new(),
        }
    }

    /// The buffer the head's spans index.
    pub fn buf(&self) -> &[u8] {
        &self.conn.buf
    }

    pub fn method(&self) -> &str {
        self.head.method.as_str()
    }

    pub fn path(&self) -> &str {
        self.head.path(&self.conn.buf)
    }

    pub fn query(&self) -> &str {
        self.head.query(&self.conn.buf)
    }

    pub fn target(&self) -> &str {
        self.head.target(&self.conn.buf)
    }

    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.head.header(&self.conn.buf, name)
    }

    /// Header lines in order, names as sent.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.head.headers(&self.conn.buf)
    }

    pub fn peer(&self) -> Option<SocketAddr> {
        self.conn.peer
    }

    /// The peer's IP address as text (`""` when unknown).
    pub fn peer_ip(&self) -> &str {
        &self.conn.peer_ip
    }

    /// The body read by `read_body` (empty before).
    pub fn body(&self) -> &[u8] {
        body_of(&self.body, &self.conn.buf, self.head.len)
    }

    /// Runs `f` for at most `timeout`, on the connection's own timer (`timer`): `None` when the
    /// time is up. `f` comes pinned by the caller, which holds it: a future taken by value
    /// would be stored again in this one's (measured: the call's 1.1 KiB future made this one
    /// 3.5 KiB).
    pub async fn within<F: Future>(
        &mut self,
        timeout: Duration,
        f: Pin<&mut F>,
    ) -> Option<F::Output> {
        let deadline = Instant::now() + timeout;
        race(f, &mut self.conn.timer, deadline).await
    }

    /// `within` for a future that needs the request body.
    pub async fn within_with_body<'b, F: Future + 'b>(
        &'b mut self,
        timeout: Duration,
        make: impl FnOnce(&'b [u8]) -> F,
    ) -> Option<F::Output> {
        let deadline = Instant::now() + timeout;
        let conn = &mut *self.conn;
        let f = std::pin::pin!(make(body_of(&self.body, &conn.buf, self.head.len)));
        race(f, &mut conn.timer, deadline).await
    }

    /// An unread body that can be read and dropped after the answer (a client that waits for
    /// `100 Continue` may never send it).
    fn can_drain(&self) -> bool {
        let small = self.declared_length().is_some_and(|n| n <= DRAIN_LIMIT);
        small && !self.head.expect_continue
    }

    /// Whether the body has been read (or there is none).
    pub fn body_read(&self) -> bool {
        !matches!(self.body, Body::Unread)
    }

    /// The declared body length, when there is one.
    pub fn declared_length(&self) -> Option<usize> {
        match self.head.framing {
            Framing::Length(n) => Some(n),
            Framing::Empty => Some(0),
            Framing::Chunked => None,
        }
    }

    /// Reads the whole body, up to `limit` bytes. `Expect: 100-continue` is answered here, so
    /// only when the body is wanted and allowed.
    pub async fn read_body(&mut self, limit: usize) -> Result<(), BodyError> {
        if self.body_read() {
            return Ok(());
        }
        let start = self.head.len;
        if let Framing::Length(n) = self.head.framing {
            if n > limit {
                return Err(BodyError::TooLarge);
            }
        }
        if self.head.expect_continue && self.conn.buf.len() == start {
            let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
            let sent = write_all2(&self.conn.stream, interim, &[], self.settings.send_timeout);
            sent.await.map_err(|_| BodyError::Closed)?;
        }
        match self.head.framing {
            Framing::Empty => {}
            Framing::Length(n) => {
                self.conn
                    .buf
                    .reserve((start + n).saturating_sub(self.conn.buf.len()));
                while self.conn.buf.len() < start + n {
                    self.fill_body().await?;
                }
                self.body = Body::InBuffer(n);
                self.end = start + n;
            }
            Framing::Chunked => {
                let decoded = self.read_chunked(limit).await?;
                self.body = Body::Decoded(decoded);
            }
        }
        Ok(())
    }

    async fn fill_body(&mut self) -> Result<(), BodyError> {
        let timeout = self.settings.read_timeout;
        match self.conn.fill(&mut None, timeout).await {
            Ok(n) if n > 0 => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                // The 408 closes the connection: draining the rest of a stalled body would
                // wait out `read_timeout` a second time.
                self.keep_alive = false;
                Err(BodyError::TimedOut)
            }
            _ => Err(BodyError::Closed),
        }
    }

    /// Decodes a chunked body; consumed chunk bytes are removed from the buffer as it goes, so
    /// the buffer holds the head and at most one partial chunk.
    async fn read_chunked(&mut self, limit: usize) -> Result<Vec<u8>, BodyError> {
        let start = self.head.len;
        let mut body = Vec::new();
        let mut pos = start;
        loop {
            let (skip, size) = loop {
                match chunk::size_line(&self.conn.buf[pos..]).map_err(body_error)? {
                    Some(line) => break line,
                    None => self.fill_body().await?,
                }
            };
            pos += skip;
            let size = usize::try_from(size).map_err(|_| BodyError::TooLarge)?;
            if size == 0 {
                pos = self.skip_trailers(pos).await?;
                break;
            }
            // Checked: the limit comes from the config and may be anything.
            let end = pos
                .checked_add(size)
                .filter(|_| body.len().saturating_add(size) <= limit);
            let Some(end) = end.filter(|e| e.checked_add(2).is_some()) else {
                return Err(BodyError::TooLarge);
            };
            while self.conn.buf.len() < end + 2 {
                self.fill_body().await?;
            }
            if &self.conn.buf[end..end + 2] != b"\r\n" {
                return Err(BodyError::Malformed);
            }
            body.extend_from_slice(&self.conn.buf[pos..end]);
            self.conn.buf.drain(start..end + 2);
            pos = start;
        }
        self.end = pos;
        Ok(body)
    }

    /// Skips the trailer section (within the head limits); returns where the request ends.
    async fn skip_trailers(&mut self, pos: usize) -> Result<usize, BodyError> {
        let mut scan = head::EndScan::default();
        loop {
            let section = &self.conn.buf[pos..];
            if scan.due(section) {
                if let Some(len) = chunk::trailers(section).map_err(body_error)? {
                    return Ok(pos + len);
                }
            }
            self.fill_body().await?;
        }
    }

    /// Writes a complete answer; see `response::head` for the headers added.
    pub async fn respond<'h>(
        &mut self,
        status: u16,
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
        body: &[u8],
    ) -> std::io::Result<()> {
        let send_body = response::has_body(status) && self.head.method != http::Method::HEAD;
        self.start_answer(status, headers, Some(body.len()))?;
        self.bytes_out = if send_body { body.len() } else { 0 };
        self.send(if send_body { body } else { &[] }).await
    }

    pub async fn respond_answer(&mut self, a: &response::Answer) -> std::io::Result<()> {
        let headers = a.headers.iter().map(|(n, v)| (*n, v.as_bytes()));
        self.respond(a.status, headers, &a.body).await
    }

    /// Prepares the answer's head; it leaves with the first `write_body`, or `end_body`.
    /// `length: None` streams the body chunked to HTTP/1.1 clients and until close to
    /// HTTP/1.0 ones.
    pub fn start_answer<'h>(
        &mut self,
        status: u16,
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
        length: Option<usize>,
    ) -> std::io::Result<()> {
        if self.responded {
            return Err(std::io::ErrorKind::InvalidInput.into());
        }
        self.responded = true;
        // A body left unread closes the connection unless it is small enough to drop; so does
        // a shutdown that began while the request was served.
        if (!self.body_read() && !self.can_drain()) || self.conn.closing() {
            self.keep_alive = false;
        }
        let bodied = response::has_body(status) && self.head.method != http::Method::HEAD;
        self.chunked = length.is_none() && bodied && !self.head.http10;
        if length.is_none() && bodied && self.head.http10 {
            self.keep_alive = false;
        }
        let conn = &mut *self.conn;
        conn.out.clear();
        let date = conn.date.now();
        response::head(
            &mut conn.out,
            status,
            headers,
            &self.extra_headers,
            length,
            self.chunked,
            self.keep_alive,
            date,
        );
        Ok(())
    }

    /// Sends what is pending in `out` (the head, chunk framing) and `body`.
    async fn send(&mut self, body: &[u8]) -> std::io::Result<()> {
        let conn = &mut *self.conn;
        let timeout = self.settings.send_timeout;
        let result = write_all2(&conn.stream, &conn.out, body, timeout).await;
        conn.out.clear();
        result.map_err(|e| {
            self.broken = true;
            e.error
        })
    }

    /// Streams part of the body after `start_answer`, with chunk framing when the length was
    /// not given.
    pub async fn write_body(&mut self, data: &[u8]) -> std::io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.bytes_out += data.len();
        if self.chunked {
            use std::io::Write;
            let _ = write!(self.conn.out, "{:x}\r\n", data.len());
            self.send(data).await?;
            // The chunk's CRLF leaves with the next write.
            self.conn.out.extend_from_slice(b"\r\n");
            return Ok(());
        }
        self.send(data).await
    }

    /// Gives up on an answer that has started: the connection is closed, so the client sees an
    /// incomplete answer rather than a wrong one.
    pub fn abort(&mut self) {
        self.broken = true;
    }

    /// Takes back an answer whose head has not left yet (`start_answer`, nothing written
    /// since), so that another can be given instead; false once anything has been sent.
    pub fn retract_answer(&mut self) -> bool {
        let unsent = self.responded && self.bytes_out == 0 && !self.broken;
        if unsent && !self.conn.out.is_empty() {
            self.conn.out.clear();
            self.responded = false;
            self.chunked = false;
            return true;
        }
        false
    }

    /// Whether the answer's head has been prepared or sent.
    pub fn responded(&self) -> bool {
        self.responded
    }

    /// Ends a streamed body (the last chunk, or just the head of an empty body).
    pub async fn end_body(&mut self) -> std::io::Result<()> {
        if self.chunked {
            self.conn.out.extend_from_slice(b"0\r\n\r\n");
        }
        if self.conn.out.is_empty() {
            return Ok(());
        }
        self.send(&[]).await
    }

    /// Settles the connection: drops a small unread body, keeps pipelined bytes, frees the
    /// buffer when nothing is left in it.
    async fn finish(mut self) -> Next {
        if !self.responded || self.broken {
            return Next::Close;
        }
        if !self.body_read() {
            if !self.keep_alive || !self.can_drain() {
                return Next::Linger;
            }
            if self.read_body(DRAIN_LIMIT).await.is_err() {
                return Next::Close;
            }
        }
        if !self.keep_alive {
            // Pipelined requests that will not be served are input left unread.
            return match self.end < self.conn.buf.len() {
                true => Next::Linger,
                false => Next::Close,
            };
        }
        let conn = &mut *self.conn;
        if self.end >= conn.buf.len() {
            // Nothing pipelined: an idle connection keeps no buffers (both fit malloc's
            // per-thread cache, so taking them again for the next request is cheap).
            conn.buf = Vec::new();
            conn.out = Vec::new();
        } else {
            conn.buf.drain(..self.end);
        }
        Next::Continue
    }
}
