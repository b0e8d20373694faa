//! Media packet I/O on loopback, io_uring against epoll: one tick of a worker with N calls,
//! each receiving one 172-byte G.711 packet and sending one back. Timed: the worker's side
//! only (waits, reads, sends; with io_uring a tick's sends reach the kernel with the next
//! wait, which the next iteration times), as the thread's CPU time, user and kernel, so a
//! busy machine's preemptions do not count. The peers' sends and the sink's reads are not
//! timed. Throughput is packets received (each also answered) per second of one core.
//!
//!   cargo bench --bench packet_io

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chorus::media::packet_io::{Input, IoMode, PacketIo};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mio::Token;
use mio::net::UdpSocket;

const PACKET: [u8; 172] = [0x80; 172];

fn bind() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap()
}

struct Tick {
    io: PacketIo,
    legs: Vec<UdpSocket>,
    peer: UdpSocket,
    sink: UdpSocket,
    sink_addr: SocketAddr,
    buf: Vec<u8>,
}

impl Tick {
    fn new(mode: IoMode, calls: usize) -> Option<Tick> {
        let mut io = PacketIo::new(mode).ok()?;
        let mut legs: Vec<UdpSocket> = (0..calls).map(|_| bind()).collect();
        for (i, leg) in legs.iter_mut().enumerate() {
            io.register(Token(i), leg).unwrap();
        }
        let sink = bind();
        let sink_addr = sink.local_addr().unwrap();
        Some(Tick {
            io,
            legs,
            peer: bind(),
            sink,
            sink_addr,
            buf: vec![0; 2048],
        })
    }

    /// The peers' packets for one tick (not timed).
    fn arrive(&mut self) {
        for leg in &self.legs {
            self.peer
                .send_to(&PACKET, leg.local_addr().unwrap())
                .unwrap();
        }
    }

    /// Reads every call's packet and answers each (timed).
    fn run(&mut self) {
        let mut left = self.legs.len();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut answer = Vec::new();
        while left > 0 {
            assert!(Instant::now() < deadline, "packets lost on loopback");
            self.io
                .wait(Some(Duration::from_millis(100)), false)
                .unwrap();
            let (legs, buf) = (&self.legs, &mut self.buf);
            self.io.drain(|token, input| {
                match input {
                    Input::Datagram { bytes, .. } => {
                        black_box(bytes);
                        answer.push(token.0);
                    }
                    Input::Readable => {
                        while let Ok((n, _)) = legs[token.0].recv_from(buf) {
                            black_box(&buf[..n]);
                            answer.push(token.0);
                        }
                    }
                }
                true
            });
            left -= answer.len();
            for i in answer.drain(..) {
                self.io.send(&self.legs[i], self.sink_addr, &PACKET);
            }
        }
    }

    /// Empties the sink (not timed).
    fn sink(&mut self) {
        while self.sink.recv_from(&mut self.buf).is_ok() {}
    }
}

/// CPU time of this thread, user and kernel.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn packet_io(c: &mut Criterion) {
    let mut group = c.benchmark_group("packet_io");
    for calls in [64, 512] {
        group.throughput(Throughput::Elements(calls as u64));
        for (name, mode) in [("epoll", IoMode::Epoll), ("uring", IoMode::Uring)] {
            let Some(mut tick) = Tick::new(mode, calls) else {
                eprintln!("packet_io/{name}: not available on this kernel");
                continue;
            };
            group.bench_function(BenchmarkId::new(name, calls), |b| {
                b.iter_custom(|iters| {
                    let mut timed = Duration::ZERO;
                    for _ in 0..iters {
                        tick.arrive();
                        let start = thread_cpu();
                        tick.run();
                        timed += thread_cpu() - start;
                        tick.sink();
                    }
                    timed
                })
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = packet_io
}
criterion_main!(benches);
