//! The portable backend: epoll readiness (mio); the owner of each socket reads it.

use std::io;
use std::time::Duration;

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

use super::{Input, WAKER};

pub(super) struct Epoll {
    pub(super) poll: Poll,
    events: Events,
    ready: Vec<Token>,
    /// Sockets with datagrams left after their read budget: offered again before waiting.
    unread: Vec<Token>,
}

impl Epoll {
    pub(super) fn new() -> io::Result<Epoll> {
        Ok(Epoll {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            ready: Vec::new(),
            unread: Vec::new(),
        })
    }

    pub(super) fn register(&mut self, token: Token, sock: &mut UdpSocket) -> io::Result<()> {
        self.poll
            .registry()
            .register(sock, token, Interest::READABLE)
    }

    pub(super) fn deregister(&mut self, sock: &mut UdpSocket) {
        let _ = self.poll.registry().deregister(sock);
    }

    pub(super) fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let timeout = if self.unread.is_empty() {
            timeout
        } else {
            Some(Duration::ZERO)
        };
        match self.poll.poll(&mut self.events, timeout) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => Err(e),
            _ => Ok(()),
        }
    }

    pub(super) fn drain(&mut self, mut deliver: impl FnMut(Token, Input<'_>) -> bool) {
        self.ready.clear();
        let tokens = self.events.iter().map(|ev| ev.token());
        self.ready.extend(tokens.filter(|&t| t != WAKER));
        self.events.clear();
        self.ready.append(&mut self.unread);
        for &token in &self.ready {
            if !deliver(token, Input::Readable) && !self.unread.contains(&token) {
                self.unread.push(token);
            }
        }
    }
}
