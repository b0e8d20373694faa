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
        io.wait(Some(Duration::from_millis(20)), false).unwrap();
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
        io.wait(Some(Duration::from_secs(20)), false).unwrap();
        io.drain(|_, _| true);
        t.join().unwrap();
        assert!(start.elapsed() < Duration::from_secs(10), "{}", io.kind());
        // The waker fires again after its first event was cleared.
        waker.wake().unwrap();
        let start = Instant::now();
        io.wait(Some(Duration::from_secs(20)), false).unwrap();
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
fn io_uring_stamps_arrivals_and_batched_waits_wake_per_tick_not_per_datagram() {
    let Ok(mut io) = PacketIo::new(IoMode::Uring) else {
        eprintln!("io_uring refused here: nothing to test");
        return;
    };
    let (mut sock, peer) = (bind(), bind());
    io.register(Token(4), &mut sock).unwrap();
    io.wait(Some(Duration::ZERO), false).unwrap();
    io.drain(|_, _| true);
    // A datagram read 100 ms after it came carries the time it came.
    let sent = Instant::now();
    peer.send_to(b"early", sock.local_addr().unwrap()).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let got = collect_arrivals(&mut io, 1, false);
    let (at, read) = got[0];
    assert!(
        at >= sent - Duration::from_millis(5),
        "stamped before it was sent"
    );
    assert!(
        read - at >= Duration::from_millis(90),
        "stamped when read, not on arrival"
    );
    // A datagram every 2 ms for 400 ms; waits of up to 20 ms, batched: about 20 wake-ups,
    // not 200.
    let to = sock.local_addr().unwrap();
    let sender = std::thread::spawn(move || {
        for _ in 0..200 {
            peer.send_to(b"rtp", to).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    let (mut wakes, mut datagrams) = (0, 0);
    let end = Instant::now() + Duration::from_secs(10);
    while datagrams < 200 && Instant::now() < end {
        io.wait(Some(Duration::from_millis(20)), true).unwrap();
        wakes += 1;
        io.drain(|_, _| {
            datagrams += 1;
            true
        });
    }
    sender.join().unwrap();
    assert_eq!(datagrams, 200);
    assert!(
        wakes < 100,
        "{wakes} wake-ups for 200 datagrams over ~400 ms"
    );
}

/// Waits (not batched) until `n` datagrams came: their arrival stamps and when read.
fn collect_arrivals(io: &mut PacketIo, n: usize, batch: bool) -> Vec<(Instant, Instant)> {
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(5);
    while got.len() < n && Instant::now() < end {
        io.wait(Some(Duration::from_millis(20)), batch).unwrap();
        let read = Instant::now();
        io.drain(|_, input| {
            if let Input::Datagram { at, .. } = input {
                got.push((at, read));
            }
            true
        });
    }
    assert_eq!(got.len(), n, "datagrams lost");
    got
}
