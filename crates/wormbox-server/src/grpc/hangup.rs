//! Connections the server can close on its own. A response stream whose
//! client stopped reading cannot be ended from inside the server: HTTP/2
//! flow control holds what is already queued for it until the client reads,
//! a status sent at the end waits behind that, and a graceful shutdown waits
//! for every stream. Closing the connection is the one way out, so every
//! accepted connection carries a `Hangup` handle, and each request sees its
//! connection's handle in its extensions.
//!
//! Invariant: a connection is closed only through its own handle, by the
//! call that holds it (today a backup that stalled or was ended by shutdown);
//! no other connection is touched.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use futures::task::AtomicWaker;
use futures::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

/// Closes one connection: its next read or write fails, which ends every
/// call on it and lets the server forget it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Hangup(Arc<State>);

#[derive(Debug, Default)]
struct State {
    closed: AtomicBool,
    /// The connection's task, which may be idle waiting for the client.
    waker: AtomicWaker,
}

impl Hangup {
    /// Closes the connection.
    pub(crate) fn hang_up(&self) {
        self.0.closed.store(true, Ordering::Release);
        self.0.waker.wake();
    }

    /// Whether the connection was closed; registers `cx` to be woken when it is.
    fn is_closed(&self, cx: &mut Context<'_>) -> bool {
        self.0.waker.register(cx.waker());
        self.0.closed.load(Ordering::Acquire)
    }
}

/// An accepted connection that its `Hangup` can close.
#[derive(Debug)]
pub(crate) struct HangupIo<IO> {
    io: IO,
    hangup: Hangup,
}

impl<IO> HangupIo<IO> {
    fn new(io: IO) -> HangupIo<IO> {
        HangupIo { io, hangup: Hangup::default() }
    }
}

/// Gives every connection `accepted` yields a handle to close it.
pub(crate) fn incoming<IO, E>(
    accepted: impl Stream<Item = Result<IO, E>>,
) -> impl Stream<Item = Result<HangupIo<IO>, E>> {
    accepted.map(|connection| connection.map(HangupIo::new))
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "the server closed the connection")
}

impl<IO: AsyncRead + Unpin> AsyncRead for HangupIo<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.hangup.is_closed(cx) {
            return Poll::Ready(Err(closed()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for HangupIo<IO> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.hangup.is_closed(cx) {
            return Poll::Ready(Err(closed()));
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.hangup.is_closed(cx) {
            return Poll::Ready(Err(closed()));
        }
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    // Passed through, so that HTTP/2 frames still go out in one vectored write.
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.hangup.is_closed(cx) {
            return Poll::Ready(Err(closed()));
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    // Always passed through: shutting the socket down is what a hangup wants.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl<IO: Connected> Connected for HangupIo<IO> {
    type ConnectInfo = Hangup;

    fn connect_info(&self) -> Hangup {
        self.hangup.clone()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn a_hangup_wakes_an_idle_connection_and_fails_it() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let mut conn = HangupIo::new(ours);
        let hangup = conn.connect_info();
        theirs.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        conn.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        // Idle, waiting for the client: the hangup must wake it.
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 1];
            conn.read(&mut buf).await
        });
        tokio::task::yield_now().await;
        hangup.hang_up();
        let err = reader.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
    }
}
