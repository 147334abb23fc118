//! The HTTP/1.x server side, on the connections pingora's listeners accept.
//!
//! pingora still owns listening (bind, accept, graceful upgrade with fd passing, shutdown);
//! each accepted TCP connection is taken out of pingora's `Stream` as a plain `TcpStream`,
//! registered with one of the gateway's worker runtimes (`workers`) and served here: `head`
//! parses request heads, `conn` runs the connection (keep-alive, pipelining, bodies, timeouts,
//! limits) and `response` writes answer heads.

pub mod chunk;
pub mod conn;
pub mod head;
pub mod io;
pub mod response;
pub mod slots;
pub mod socket;
pub mod timer;

pub use conn::{serve, turn_away, BodyError, Exchange, Handler, Settings};
pub use head::HeadError;
pub use response::Answer;
pub use socket::{accept_tls, Socket};

use pingora::protocols::l4::stream::Stream as L4Stream;
use std::os::fd::{AsRawFd, FromRawFd};

/// The accepted socket as a non-blocking `TcpStream` of our own, to be registered with the
/// runtime that serves it (pingora's `Stream` offers no way to wait for input without a read
/// buffer, which idle keep-alive connections would then hold). The descriptor is duplicated
/// and pingora's stream dropped, which closes only its copy.
pub fn take_tcp(stream: pingora::protocols::Stream) -> Option<std::net::TcpStream> {
    let io: &dyn pingora::protocols::IO = &*stream;
    let l4 = io.as_any().downcast_ref::<L4Stream>()?;
    // SAFETY: dup of a descriptor we were handed and that stays open until after the call.
    let fd = unsafe { libc::dup(l4.as_raw_fd()) };
    if fd < 0 {
        return None;
    }
    drop(stream);
    // SAFETY: `fd` is a fresh descriptor owned by nothing else; it refers to a TCP socket
    // because pingora's TCP listener accepted it.
    let std = unsafe { std::net::TcpStream::from_raw_fd(fd) };
    std.set_nonblocking(true).ok()?;
    Some(std)
}
