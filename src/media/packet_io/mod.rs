//! A media worker's packet I/O: waiting for datagrams on every call's sockets (and for the
//! worker's command waker), reading them and sending the ticks' packets.
//!
//! Two backends, chosen when the worker starts ([`IoMode`]):
//! - `uring`: one io_uring per worker. Every socket has a multishot `recvmsg` armed into a
//!   ring of provided buffers, so datagrams arrive without a syscall each; a tick's sends
//!   are queued and go to the kernel with the next wait, all in one `io_uring_enter`. While a
//!   tick is near, the worker sleeps until it (datagrams only feed jitter buffers, which the
//!   tick reads), and each datagram carries the kernel's arrival time, so the jitter
//!   buffers see when it came, not when it was read.
//! - `epoll`: readiness from epoll (mio), then one `recvfrom` per datagram (and one that
//!   finds the socket empty) and one `sendto` per packet. It works everywhere.
//!
//! Either way each datagram reaches the caller with its source address, so the legs' source
//! checks (`media::leg`'s latch) are the same on both.

mod epoll;
mod uring;

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Token, Waker};
use serde::Deserialize;

/// The token of the worker's command waker; sockets use any other.
pub const WAKER: Token = Token(usize::MAX);
/// Overrides `[media] io` (CI runs the suite with `epoll` to keep the fallback tested).
pub const ENV: &str = "CHORUS_MEDIA_IO";
/// Room for the largest datagram read; longer ones are cut (and fail to parse).
const RECV_BUF: usize = 2048;

/// Which backend a worker uses (`[media] io`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IoMode {
    /// io_uring when the kernel allows it, else epoll.
    #[default]
    Auto,
    /// io_uring or nothing: the worker does not start without it.
    Uring,
    Epoll,
}

impl IoMode {
    /// The mode `CHORUS_MEDIA_IO` asks for, else `configured`.
    pub fn from_env_or(configured: IoMode) -> io::Result<IoMode> {
        match std::env::var(ENV) {
            Ok(v) => IoMode::parse(&v).ok_or_else(|| {
                let msg = format!("{ENV}={v}: expected auto, uring or epoll");
                io::Error::new(io::ErrorKind::InvalidInput, msg)
            }),
            Err(_) => Ok(configured),
        }
    }

    fn parse(s: &str) -> Option<IoMode> {
        match s {
            "auto" => Some(IoMode::Auto),
            "uring" => Some(IoMode::Uring),
            "epoll" => Some(IoMode::Epoll),
            _ => None,
        }
    }
}

/// What a wait found on a socket.
pub enum Input<'a> {
    /// (epoll) The socket is readable: the owner reads it, and answers false if datagrams
    /// may be left (a read budget ran out), to be offered again before the next wait.
    Readable,
    /// (uring) One datagram, already read, and when it reached the socket.
    Datagram {
        from: SocketAddr,
        bytes: &'a [u8],
        at: Instant,
    },
}

/// A worker's packet I/O.
pub struct PacketIo {
    backend: Backend,
}

enum Backend {
    Epoll(epoll::Epoll),
    Uring(Box<uring::Uring>),
}

impl PacketIo {
    pub fn new(mode: IoMode) -> io::Result<PacketIo> {
        PacketIo::open(mode, uring::Uring::new)
    }

    /// `uring` builds the io_uring backend; `auto` falls back to epoll when it fails.
    fn open(
        mode: IoMode,
        uring: impl FnOnce() -> io::Result<uring::Uring>,
    ) -> io::Result<PacketIo> {
        let backend = match mode {
            IoMode::Epoll => Backend::Epoll(epoll::Epoll::new()?),
            IoMode::Uring => Backend::Uring(Box::new(uring()?)),
            IoMode::Auto => match uring() {
                Ok(u) => Backend::Uring(Box::new(u)),
                Err(e) => {
                    tracing::info!(error = %e, "io_uring refused: media I/O falls back to epoll");
                    Backend::Epoll(epoll::Epoll::new()?)
                }
            },
        };
        Ok(PacketIo { backend })
    }

    /// "uring" or "epoll".
    pub fn kind(&self) -> &'static str {
        match self.backend {
            Backend::Epoll(_) => "epoll",
            Backend::Uring(_) => "uring",
        }
    }

    /// A waker that ends the current or next [`PacketIo::wait`] from another thread.
    pub fn waker(&self) -> io::Result<Waker> {
        Waker::new(self.poll().registry(), WAKER)
    }

    fn poll(&self) -> &mio::Poll {
        match &self.backend {
            Backend::Epoll(e) => &e.poll,
            Backend::Uring(u) => &u.poll,
        }
    }

    /// Starts receiving on `sock`; its datagrams are delivered under `token`.
    pub fn register(&mut self, token: Token, sock: &mut UdpSocket) -> io::Result<()> {
        match &mut self.backend {
            Backend::Epoll(e) => e.register(token, sock),
            Backend::Uring(u) => u.register(token, sock),
        }
    }

    /// Stops receiving on `sock` before it is closed or handed to another worker.
    pub fn deregister(&mut self, token: Token, sock: &mut UdpSocket) {
        match &mut self.backend {
            Backend::Epoll(e) => e.deregister(sock),
            Backend::Uring(u) => u.deregister(token),
        }
    }

    /// Sends one datagram from `sock` (queued until the next wait with io_uring). A full
    /// socket buffer drops it: late audio is worse than lost audio.
    pub fn send(&mut self, sock: &UdpSocket, to: SocketAddr, bytes: &[u8]) {
        match &mut self.backend {
            Backend::Epoll(_) => send_now(sock, to, bytes),
            Backend::Uring(u) => u.send(sock, to, bytes),
        }
    }

    /// Hands queued sends to the kernel and waits until input arrives, the waker fires or
    /// `timeout` passes. With `batch`, io_uring sleeps through input and the waker until
    /// `timeout` (or until a flood fills its completion queue): the caller has a tick due
    /// then and acts on everything at once. epoll always wakes on input.
    pub fn wait(&mut self, timeout: Option<Duration>, batch: bool) -> io::Result<()> {
        match &mut self.backend {
            Backend::Epoll(e) => e.wait(timeout),
            Backend::Uring(u) => u.wait(timeout, batch),
        }
    }

    /// Offers what the last wait found to `deliver`.
    pub fn drain(&mut self, deliver: impl FnMut(Token, Input<'_>) -> bool) {
        match &mut self.backend {
            Backend::Epoll(e) => e.drain(deliver),
            Backend::Uring(u) => u.drain(deliver),
        }
    }
}

/// One `sendto`.
pub(crate) fn send_now(sock: &UdpSocket, to: SocketAddr, bytes: &[u8]) {
    if let Err(e) = sock.send_to(bytes, to)
        && e.kind() != io::ErrorKind::WouldBlock
    {
        tracing::debug!(error = %e, %to, "rtp send");
    }
}

#[cfg(test)]
mod tests;
