//! Socket reads and writes shared by the server side (`conn`) and the client side
//! (`invoke::conn`, `proxy`): a read that costs one `recv` per arrival, and a two-part
//! `writev`. They work on anything that is `Io`: a `TcpStream`, or the server side's `Socket`
//! (plain or TLS).

use std::io::{ErrorKind, IoSlice};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Readiness-style, non-blocking I/O, as tokio's `TcpStream` offers it.
pub trait Io {
    /// Reads what is available now into `buf`'s spare capacity; `WouldBlock` when nothing is.
    fn read_now(&self, buf: &mut Vec<u8>) -> std::io::Result<usize>;
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>>;
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize>;
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>>;
    /// Puts on the wire what earlier writes accepted but kept (TLS records); `Ok(true)` when
    /// nothing is left.
    fn try_flush(&self) -> std::io::Result<bool> {
        Ok(true)
    }
}

impl Io for TcpStream {
    /// `WouldBlock` without a system call when tokio knows the socket is not readable.
    fn read_now(&self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        let spare = buf.capacity() - buf.len();
        let mut got = None;
        let outer = self.try_io(Interest::READABLE, || {
            let n = self.try_read_buf(buf)?;
            got = Some(n);
            // A read that did not fill the buffer drained the socket (edge-triggered epoll):
            // clear the readiness now, as tokio's own `poll_read` does, instead of paying a
            // failing `recv` before the next wait. The readiness seen before the read is what
            // is cleared, so an arrival after it is not lost.
            match n > 0 && n < spare {
                true => Err(ErrorKind::WouldBlock.into()),
                false => Ok(()),
            }
        });
        match (got, outer) {
            (Some(n), _) => Ok(n),
            (None, Err(e)) => Err(e),
            (None, Ok(())) => Err(ErrorKind::WouldBlock.into()),
        }
    }

    /// Through the socket's one reader slot, not `TcpStream::readable`, whose future joins a
    /// list of waiters under a lock when it waits and again when it is dropped; each socket
    /// here has one reader at a time.
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        TcpStream::poll_read_ready(self, cx)
    }

    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
        TcpStream::try_write_vectored(self, bufs)
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        TcpStream::poll_write_ready(self, cx)
    }
}

/// Reads what is available now into `buf`'s spare capacity.
pub fn read_now(stream: &impl Io, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    stream.read_now(buf)
}

/// Waits until something can be read, then reads it; `Ok(0)` at end of input.
pub async fn read_some(stream: &impl Io, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    loop {
        match stream.read_now(buf) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::future::poll_fn(|cx| stream.poll_read_ready(cx)).await?
            }
            done => return done,
        }
    }
}

/// A write that failed: the error and how many bytes had left before it.
#[derive(Debug)]
pub struct WriteError {
    pub written: usize,
    pub error: std::io::Error,
}

/// Writes `a` then `b` with as few `writev` calls as the socket allows. Each time the socket
/// takes no more, it waits at most `timeout` for room (nginx's `send_timeout`: between two
/// successive writes, not for the whole answer), so a peer that stops reading cannot hold the
/// connection and its buffers for ever. No timer is set while the socket takes the bytes.
pub async fn write_all2(
    stream: &impl Io,
    a: &[u8],
    b: &[u8],
    timeout: Duration,
) -> Result<(), WriteError> {
    let mut done = 0;
    let total = a.len() + b.len();
    let fail = |written, error| Err(WriteError { written, error });
    while done < total {
        let slices = if done < a.len() {
            [IoSlice::new(&a[done..]), IoSlice::new(b)]
        } else {
            [IoSlice::new(&b[done - a.len()..]), IoSlice::new(&[])]
        };
        match stream.try_write_vectored(&slices) {
            Ok(0) => return fail(done, ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let room = std::future::poll_fn(|cx| stream.poll_write_ready(cx));
                match tokio::time::timeout(timeout, room).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return fail(done, e),
                    Err(_) => return fail(done, ErrorKind::TimedOut.into()),
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return fail(done, e),
        }
    }
    // TLS keeps what it could not send yet; a plain socket has nothing left.
    loop {
        match stream.try_flush() {
            Ok(true) => return Ok(()),
            Ok(false) => {
                let room = std::future::poll_fn(|cx| stream.poll_write_ready(cx));
                match tokio::time::timeout(timeout, room).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return fail(done, e),
                    Err(_) => return fail(done, ErrorKind::TimedOut.into()),
                }
            }
            Err(e) => return fail(done, e),
        }
    }
}
