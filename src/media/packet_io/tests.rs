//! Both backends on loopback: what arrives, with which source, what is sent, and what a
//! deregistered socket keeps for its next owner.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;

fn bind() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap()
}

/// Every backend this kernel offers (io_uring may be refused; epoll always works).
fn backends() -> Vec<PacketIo> {
    let mut all = vec![PacketIo::new(IoMode::Epoll).unwrap()];
    match PacketIo::new(IoMode::Uring) {
        Ok(io) => all.push(io),
        Err(e) => eprintln!("io_uring refused here ({e}): testing epoll only"),
    }
    all
}

/// Waits and drains until `want` datagrams came or `limit` passed; the epoll backend's
/// readable sockets are read here, as a session reads its own.
fn collect(
    io: &mut PacketIo,
    socks: &[(Token, &UdpSocket)],
    want: usize,
    limit: Duration,
) -> Vec<(Token, SocketAddr, Vec<u8>)> {
    let mut got = Vec::new();
    let end = Instant::now() + limit;
    while got.len() < want && Instant::now() < end {
        io.wait(Duration::from_millis(20), false).unwrap();
        io.drain(|token, input| {
            match input {
                Input::Datagram { from, bytes, .. } => got.push((token, from, bytes.to_vec())),
                Input::Readable => {
                    let sock = socks.iter().find(|(t, _)| *t == token).unwrap().1;
                    let mut buf = [0u8; 2048];
                    while let Ok((n, from)) = sock.recv_from(&mut buf) {
                        got.push((token, from, buf[..n].to_vec()));
                    }
                }
            }
            true
        });
    }
    got
}

#[test]
fn datagrams_arrive_under_their_socket_with_their_source() {
    for mut io in backends() {
        let (mut a, mut b) = (bind(), bind());
        let (pa, pb) = (bind(), bind());
        io.register(Token(2), &mut a).unwrap();
        io.register(Token(5), &mut b).unwrap();
        pa.send_to(b"to a", a.local_addr().unwrap()).unwrap();
        pb.send_to(b"to b, one", b.local_addr().unwrap()).unwrap();
        pb.send_to(b"to b, two", b.local_addr().unwrap()).unwrap();
        let socks = [(Token(2), &a), (Token(5), &b)];
        let got: BTreeSet<_> = collect(&mut io, &socks, 3, Duration::from_secs(2))
            .into_iter()
            .collect();
        let want: BTreeSet<_> = [
            (Token(2), pa.local_addr().unwrap(), b"to a".to_vec()),
            (Token(5), pb.local_addr().unwrap(), b"to b, one".to_vec()),
            (Token(5), pb.local_addr().unwrap(), b"to b, two".to_vec()),
        ]
        .into_iter()
        .collect();
        assert_eq!(got, want, "{}", io.kind());
    }
}

#[test]
fn sends_leave_from_the_given_socket() {
    for mut io in backends() {
        let (from, mut peer) = (bind(), bind());
        io.register(Token(1), &mut peer).unwrap();
        for i in 0..3u8 {
            io.send(&from, peer.local_addr().unwrap(), &[0x80, i]);
        }
        let got = collect(&mut io, &[(Token(1), &peer)], 3, Duration::from_secs(2));
        let sent: Vec<_> = got.iter().map(|(_, f, b)| (*f, b.clone())).collect();
        let src = from.local_addr().unwrap();
        let want: Vec<_> = (0..3u8).map(|i| (src, vec![0x80, i])).collect();
        assert_eq!(sent, want, "{}", io.kind());
    }
}

#[test]
fn a_deregistered_socket_keeps_its_datagrams_for_the_next_owner() {
    for mut io in backends() {
        let (mut sock, peer) = (bind(), bind());
        io.register(Token(3), &mut sock).unwrap();
        io.deregister(Token(3), &mut sock);
        peer.send_to(b"later", sock.local_addr().unwrap()).unwrap();
        let got = collect(&mut io, &[(Token(3), &sock)], 1, Duration::from_millis(200));
        assert!(
            got.is_empty(),
            "{}: read after deregister: {got:?}",
            io.kind()
        );
        let mut next = PacketIo::new(IoMode::Epoll).unwrap();
        next.register(Token(3), &mut sock).unwrap();
        let got = collect(&mut next, &[(Token(3), &sock)], 1, Duration::from_secs(2));
        assert_eq!(got.len(), 1, "{}: datagram lost in the move", io.kind());
        assert_eq!(got[0].2, b"later");
    }
}

#[test]
fn the_waker_ends_a_wait() {
    for mut io in backends() {
        let waker = std::sync::Arc::new(io.waker().unwrap());
        let remote = waker.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            remote.wake().unwrap();
        });
        let start = Instant::now();
        io.wait(Duration::from_secs(20), false).unwrap();
        io.drain(|_, _| true);
        t.join().unwrap();
        assert!(start.elapsed() < Duration::from_secs(10), "{}", io.kind());
        // The waker fires again after its first event was cleared.
        waker.wake().unwrap();
        let start = Instant::now();
        io.wait(Duration::from_secs(20), false).unwrap();
        assert!(start.elapsed() < Duration::from_secs(10), "{}", io.kind());
    }
}

#[test]
fn auto_falls_back_to_epoll_when_the_kernel_refuses_io_uring() {
    let refused = || Err(io::Error::from_raw_os_error(libc::EPERM));
    assert_eq!(
        PacketIo::open(IoMode::Auto, refused).unwrap().kind(),
        "epoll"
    );
    assert!(PacketIo::open(IoMode::Uring, refused).is_err());
    let untouched = || -> io::Result<uring::Uring> { unreachable!("epoll asked for") };
    assert_eq!(
        PacketIo::open(IoMode::Epoll, untouched).unwrap().kind(),
        "epoll"
    );
}

#[test]
fn modes_parse_from_the_environment_names() {
    assert_eq!(IoMode::parse("epoll"), Some(IoMode::Epoll));
    assert_eq!(IoMode::parse("uring"), Some(IoMode::Uring));
    assert_eq!(IoMode::parse("auto"), Some(IoMode::Auto));
    assert_eq!(IoMode::parse("EPOLL"), None);
}

#[test]
fn io_uring_gives_arrival_times_and_batches_waits_until_the_tick() {
    let Ok(mut io) = PacketIo::new(IoMode::Uring) else {
        eprintln!("io_uring refused here: nothing to test");
        return;
    };
    let (mut sock, peer) = (bind(), bind());
    io.register(Token(4), &mut sock).unwrap();
    // Arms the receive and clears what the start-up check left.
    io.wait(Duration::ZERO, false).unwrap();
    io.drain(|_, _| true);
    let sent = Instant::now();
    peer.send_to(b"early", sock.local_addr().unwrap()).unwrap();
    // A batched wait sleeps through the datagram to its timeout.
    io.wait(Duration::from_millis(150), true).unwrap();
    let woke = Instant::now();
    assert!(woke - sent >= Duration::from_millis(140), "woke after {:?}", woke - sent);
    let mut at = None;
    io.drain(|_, input| {
        if let Input::Datagram { at: t, .. } = input {
            at = Some(t);
        }
        true
    });
    let at = at.expect("the datagram, delivered after the batched wait");
    assert!(at >= sent - Duration::from_millis(5), "stamped before it was sent");
    assert!(woke - at >= Duration::from_millis(100), "stamped when read, not on arrival");
}
