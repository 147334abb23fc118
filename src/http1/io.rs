//! Socket reads and writes shared by the server side (`conn`) and the client side
//! (`invoke::conn`, `proxy`): a read that costs one `recv` per arrival, and a two-part
//! `writev`.

use std::io::{ErrorKind, IoSlice};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;

/// Reads what is available now into `buf`'s spare capacity; `WouldBlock` without a system call
/// when tokio knows the socket is not readable.
pub fn read_now(stream: &TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let spare = buf.capacity() - buf.len();
    let mut got = None;
    let outer = stream.try_io(Interest::READABLE, || {
        let n = stream.try_read_buf(buf)?;
        got = Some(n);
        // A read that did not fill the buffer drained the socket (edge-triggered epoll): clear
        // the readiness now, as tokio's own `poll_read` does, instead of paying a failing
        // `recv` before the next wait. The readiness seen before the read is what is cleared,
        // so an arrival after it is not lost.
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

/// Waits until something can be read, then reads it; `Ok(0)` at end of input.
pub async fn read_some(stream: &TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    loop {
        match read_now(stream, buf) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => readable(stream).await?,
            done => return done,
        }
    }
}

/// Waits until `stream` is readable. Through the socket's one reader slot
/// (`poll_read_ready`), not `TcpStream::readable`, whose future joins a list of waiters under a
/// lock when it waits and again when it is dropped; each socket here has one reader at a time.
async fn readable(stream: &TcpStream) -> std::io::Result<()> {
    std::future::poll_fn(|cx| stream.poll_read_ready(cx)).await
}

/// Writes `a` then `b` with as few `writev` calls as the socket allows.
pub async fn write_all2(stream: &mut TcpStream, a: &[u8], b: &[u8]) -> std::io::Result<()> {
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
            return Err(ErrorKind::WriteZero.into());
        }
        done += n;
    }
    Ok(())
}
