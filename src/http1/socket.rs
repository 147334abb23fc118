//! A client connection's socket: plain TCP, or TLS on top of it (`server.tls`).
//!
//! TLS is rustls driven by hand over the non-blocking socket, so that a TLS connection is
//! served exactly as a plain one: readiness first, then a read of what is there, and writes
//! that never wait on a full socket inside a lock. Records rustls could not hand to the socket
//! yet are sent by the next write or by `try_flush`, which `io::write_all2` calls before it
//! reports an answer written.

use super::io::Io;
use rustls::{ServerConfig, ServerConnection};
use std::io::{ErrorKind, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;

/// Plaintext accepted ahead of the socket, per TLS connection (rustls buffers without limit
/// otherwise).
const TLS_BUFFER: usize = 64 * 1024;

pub enum Socket {
    Tcp(TcpStream),
    Tls(Box<Tls>),
}

pub struct Tls {
    tcp: TcpStream,
    /// Locked only for calls that do not wait; one task uses a connection at a time.
    session: Mutex<ServerConnection>,
}

impl Socket {
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.tcp().peer_addr().ok()
    }

    pub fn set_nodelay(&self) {
        let _ = self.tcp().set_nodelay(true);
    }

    fn tcp(&self) -> &TcpStream {
        match self {
            Socket::Tcp(tcp) => tcp,
            Socket::Tls(tls) => &tls.tcp,
        }
    }

    /// Ends the sending side: a TLS close_notify first, then the TCP FIN.
    pub async fn shutdown(&mut self) {
        use tokio::io::AsyncWriteExt;
        if let Socket::Tls(tls) = &*self {
            if let Ok(mut s) = tls.session.lock() {
                s.send_close_notify();
            }
            let flushed = async {
                while let Ok(false) = self.try_flush() {
                    let ready = std::future::poll_fn(|cx| self.poll_write_ready(cx)).await;
                    if ready.is_err() {
                        return;
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), flushed).await;
        }
        let tcp = match self {
            Socket::Tcp(tcp) => tcp,
            Socket::Tls(tls) => &mut tls.tcp,
        };
        let _ = tcp.shutdown().await;
    }
}

impl Tls {
    fn session(&self) -> std::io::Result<MutexGuard<'_, ServerConnection>> {
        self.session
            .lock()
            .map_err(|_| std::io::Error::other("TLS session poisoned"))
    }
}

/// The handshake, within `timeout`; the socket then carries HTTP/1.1 as a plain one does.
pub async fn accept_tls(
    tcp: TcpStream,
    config: Arc<ServerConfig>,
    timeout: Duration,
) -> std::io::Result<Socket> {
    let mut session = ServerConnection::new(config).map_err(std::io::Error::other)?;
    session.set_buffer_limit(Some(TLS_BUFFER));
    let handshake = async {
        // Until the handshake is done and everything it produced (TLS 1.3 session tickets
        // too) has been sent.
        while session.is_handshaking() || session.wants_write() {
            while session.wants_write() {
                match session.write_tls(&mut SocketWriter(&tcp)) {
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::future::poll_fn(|cx| tcp.poll_write_ready(cx)).await?
                    }
                    Err(e) => return Err(e),
                }
            }
            if !session.is_handshaking() {
                break;
            }
            match session.read_tls(&mut SocketReader(&tcp)) {
                Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
                Ok(_) => process(&mut session, &tcp)?,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    std::future::poll_fn(|cx| tcp.poll_read_ready(cx)).await?
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    };
    match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok(())) => Ok(Socket::Tls(Box::new(Tls {
            tcp,
            session: Mutex::new(session),
        }))),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ErrorKind::TimedOut.into()),
    }
}

/// Decrypts what was read; on a protocol error the alert rustls prepared is sent (best
/// effort) and the error returned.
fn process(session: &mut ServerConnection, tcp: &TcpStream) -> std::io::Result<()> {
    if let Err(e) = session.process_new_packets() {
        let _ = session.write_tls(&mut SocketWriter(tcp));
        return Err(std::io::Error::new(ErrorKind::InvalidData, e));
    }
    Ok(())
}

/// Sends pending records until the socket takes no more: `Ok(true)` when none is left.
fn send_pending(session: &mut ServerConnection, tcp: &TcpStream) -> std::io::Result<bool> {
    while session.wants_write() {
        match session.write_tls(&mut SocketWriter(tcp)) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// rustls reads and writes through `std::io`; these never block (`WouldBlock` instead).
struct SocketReader<'a>(&'a TcpStream);
struct SocketWriter<'a>(&'a TcpStream);

impl Read for SocketReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for SocketWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.try_write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Io for Tls {
    fn read_now(&self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        let mut session = self.session()?;
        if buf.capacity() == buf.len() {
            buf.reserve(1024);
        }
        let start = buf.len();
        // rustls copies into initialised memory: zero at most what one read can fill, not a
        // large body's whole reservation each time.
        let room = (buf.capacity() - start).min(TLS_BUFFER);
        loop {
            buf.resize(start + room, 0);
            let got = session.reader().read(&mut buf[start..]);
            buf.truncate(start + *got.as_ref().unwrap_or(&0));
            match got {
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                // The peer closed without close_notify: the end of input, as on plain TCP.
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(0),
                done => return done,
            }
            match session.read_tls(&mut SocketReader(&self.tcp))? {
                0 => return Ok(0),
                _ => process(&mut session, &self.tcp)?,
            }
            // What the peer is owed (a key update's answer), best effort.
            send_pending(&mut session, &self.tcp)?;
        }
    }

    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let buffered = match self.session() {
            Ok(mut s) => s.process_new_packets().map_or(true, |state| {
                state.plaintext_bytes_to_read() > 0 || state.peer_has_closed()
            }),
            Err(_) => true,
        };
        if buffered {
            // A read will find plaintext, the end, or the error.
            return Poll::Ready(Ok(()));
        }
        self.tcp.poll_read_ready(cx)
    }

    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
        let mut session = self.session()?;
        if !send_pending(&mut session, &self.tcp)? {
            return Err(ErrorKind::WouldBlock.into());
        }
        let n = session.writer().write_vectored(bufs)?;
        send_pending(&mut session, &self.tcp)?;
        Ok(n)
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.tcp.poll_write_ready(cx)
    }

    fn try_flush(&self) -> std::io::Result<bool> {
        send_pending(&mut *self.session()?, &self.tcp)
    }
}

impl Io for Socket {
    fn read_now(&self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        match self {
            Socket::Tcp(tcp) => tcp.read_now(buf),
            Socket::Tls(tls) => tls.read_now(buf),
        }
    }

    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self {
            Socket::Tcp(tcp) => Io::poll_read_ready(tcp, cx),
            Socket::Tls(tls) => tls.poll_read_ready(cx),
        }
    }

    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
        match self {
            Socket::Tcp(tcp) => Io::try_write_vectored(tcp, bufs),
            Socket::Tls(tls) => tls.try_write_vectored(bufs),
        }
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self {
            Socket::Tcp(tcp) => Io::poll_write_ready(tcp, cx),
            Socket::Tls(tls) => tls.poll_write_ready(cx),
        }
    }

    fn try_flush(&self) -> std::io::Result<bool> {
        match self {
            Socket::Tcp(_) => Ok(true),
            Socket::Tls(tls) => tls.try_flush(),
        }
    }
}
