//! The io_uring backend: one ring per worker. Each socket has a multishot `recvmsg` armed
//! into a ring of provided buffers, so a datagram costs no syscall of its own; sends are
//! queued as `sendmsg` entries and reach the kernel with the next wait; the command waker's
//! epoll descriptor is watched by a multishot poll. One `io_uring_enter` per wake-up
//! submits a tick's packets and waits for the next input.
//!
//! The ring defers its task work to the worker's own waits (`DEFER_TASKRUN`, kernel 6.1+;
//! older kernels get `COOP_TASKRUN`), so a batched wait sleeps until its deadline instead
//! of waking per datagram; it must then be created on the thread that uses it. Sockets
//! stamp datagrams on arrival (`SO_TIMESTAMPNS`) for the jitter buffers.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use io_uring::types::{BufRingEntry, Fd, RecvMsgOut, SubmitArgs, Timespec};
use io_uring::{IoUring, cqueue, opcode, squeue};
use mio::net::UdpSocket;
use mio::{Events, Poll, Token};
use socket2::SockAddr;

use super::{Input, RECV_BUF, send_now};

/// Submission queue entries: a tick's sends beyond this are submitted in several batches.
const SQ_ENTRIES: u32 = 1024;
/// Completions held before the kernel keeps them aside (it drops none: FEAT_NODROP).
const CQ_ENTRIES: u32 = 8192;
/// Receive buffers shared by every socket of the worker (a power of two). When a burst
/// uses them all, the sockets' receives stop and are re-armed once buffers come back;
/// datagrams wait in the socket buffers meanwhile.
const BUFFERS: u16 = 1024;
const GROUP: u16 = 0;
/// Sends in flight at most; beyond, a send is a plain `sendto`.
const MAX_SENDS: usize = 8192;
/// Largest datagram sent through the ring (RTP fits; anything longer is sent directly).
const SEND_DATA: usize = 1500;

/// A completion's `user_data`: its kind in the top bits, an id below.
const KIND_SHIFT: u32 = 62;
const ID_MASK: u64 = (1 << KIND_SHIFT) - 1;
const RECV: u64 = 0;
const SEND: u64 = 1;
const WAKE: u64 = 2;
const CANCEL: u64 = 3;

fn tag(kind: u64, id: u64) -> u64 {
    (kind << KIND_SHIFT) | (id & ID_MASK)
}

pub(crate) struct Uring {
    /// Holds only the command waker; the ring watches its descriptor.
    pub(super) poll: Poll,
    events: Events,
    ring: IoUring,
    bufs: BufRing,
    msghdr: Box<RecvHeader>,
    /// Each registration's receive, by id; ids are never reused, so completions of a
    /// cancelled receive find nothing.
    regs: HashMap<u64, Token>,
    ids: HashMap<Token, (u64, RawFd)>,
    next_id: u64,
    rearm: Vec<u64>,
    rearm_waker: bool,
    /// Boxed: a queued entry points into its slot, which must not move as the Vec grows.
    #[allow(clippy::vec_box)]
    sends: Vec<Box<SendSlot>>,
    free_sends: Vec<usize>,
}

impl Uring {
    /// A ring, its buffers and its waker watch; checked end to end on loopback, so a kernel
    /// that refuses any part of it is found here, not on the first call.
    pub(crate) fn new() -> io::Result<Uring> {
        let ring = IoUring::builder()
            .setup_cqsize(CQ_ENTRIES)
            .setup_coop_taskrun()
            .build(SQ_ENTRIES)
            .or_else(|_| {
                IoUring::builder()
                    .setup_cqsize(CQ_ENTRIES)
                    .build(SQ_ENTRIES)
            })?;
        let bufs = BufRing::new(&ring)?;
        // SAFETY: msghdr is plain data; all-zero is a valid value.
        let mut msghdr = Box::new(RecvHeader(unsafe { std::mem::zeroed() }));
        msghdr.0.msg_namelen = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        // SAFETY: arithmetic on a size.
        msghdr.0.msg_controllen = unsafe { libc::CMSG_SPACE(TIMESPEC as u32) } as usize;
        let mut u = Uring {
            poll: Poll::new()?,
            events: Events::with_capacity(8),
            ring,
            bufs,
            msghdr,
            regs: HashMap::new(),
            ids: HashMap::new(),
            next_id: 0,
            rearm: Vec::new(),
            rearm_waker: true,
            sends: Vec::new(),
            free_sends: Vec::new(),
        };
        u.self_test()?;
        Ok(u)
    }

    /// One datagram sent and received through the ring.
    fn self_test(&mut self) -> io::Result<()> {
        let any = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let (mut rx, tx) = (UdpSocket::bind(any)?, UdpSocket::bind(any)?);
        let token = Token(0);
        self.register(token, &mut rx)?;
        self.send(&tx, rx.local_addr()?, b"probe");
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut got = false;
        while !got && Instant::now() < deadline {
            self.wait(Some(Duration::from_millis(50)), false)?;
            self.drain(|_, input| {
                got |= matches!(
                    input,
                    Input::Datagram {
                        bytes: b"probe",
                        ..
                    }
                );
                true
            });
        }
        self.deregister(token);
        got.then_some(())
            .ok_or_else(|| io::Error::other("multishot recvmsg delivered nothing"))
    }

    pub(super) fn register(&mut self, token: Token, sock: &mut UdpSocket) -> io::Result<()> {
        if self.ids.contains_key(&token) {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        let (id, fd) = (self.next_id, sock.as_raw_fd());
        stamp_arrivals(fd)?;
        self.next_id += 1;
        self.regs.insert(id, token);
        self.ids.insert(token, (id, fd));
        self.arm(id, fd);
        Ok(())
    }

    /// Cancels the socket's receive, and submits at once (with any sends queued for it), so
    /// the ring is done with the descriptor before the socket closes or moves.
    pub(super) fn deregister(&mut self, token: Token) {
        let Some((id, _)) = self.ids.remove(&token) else {
            return;
        };
        self.regs.remove(&id);
        let cancel = opcode::AsyncCancel::new(tag(RECV, id)).build();
        self.push(&cancel.user_data(tag(CANCEL, 0)));
        if let Err(e) = self.ring.submit() {
            tracing::warn!(error = %e, "io_uring submit");
        }
    }

    fn arm(&mut self, id: u64, fd: RawFd) {
        let recv = opcode::RecvMsgMulti::new(Fd(fd), &self.msghdr.0, GROUP).build();
        self.push(&recv.user_data(tag(RECV, id)));
    }

    pub(super) fn send(&mut self, sock: &UdpSocket, to: SocketAddr, bytes: &[u8]) {
        let Some(i) = self.send_slot().filter(|_| bytes.len() <= SEND_DATA) else {
            return send_now(sock, to, bytes);
        };
        let msg = self.sends[i].fill(to, bytes);
        // MSG_DONTWAIT: a full socket buffer fails the send instead of parking it.
        let sqe = opcode::SendMsg::new(Fd(sock.as_raw_fd()), msg)
            .flags(libc::MSG_DONTWAIT as u32)
            .build();
        self.push(&sqe.user_data(tag(SEND, i as u64)));
    }

    fn send_slot(&mut self) -> Option<usize> {
        if let Some(i) = self.free_sends.pop() {
            return Some(i);
        }
        (self.sends.len() < MAX_SENDS).then(|| {
            self.sends.push(Box::new(SendSlot::new()));
            self.sends.len() - 1
        })
    }

    /// Queues an entry, submitting what is queued first when the queue is full.
    fn push(&mut self, sqe: &squeue::Entry) {
        for _ in 0..2 {
            // SAFETY: every pointer an entry carries (msghdr templates, send slots) lives
            // in `self` until the entry's completion.
            if unsafe { self.ring.submission().push(sqe) }.is_ok() {
                return;
            }
            if let Err(e) = self.ring.submit() {
                tracing::warn!(error = %e, "io_uring submit");
            }
        }
        tracing::warn!("io_uring submission queue full: entry dropped");
    }

    pub(super) fn wait(&mut self, timeout: Option<Duration>, batch: bool) -> io::Result<()> {
        if std::mem::take(&mut self.rearm_waker) {
            let poll = opcode::PollAdd::new(Fd(self.poll.as_raw_fd()), libc::POLLIN as u32);
            self.push(&poll.multi(true).build().user_data(tag(WAKE, 0)));
        }
        let want = if batch { CQ_ENTRIES as usize / 4 } else { 1 };
        let result = if !self.ring.completion().is_empty() {
            if self.ring.submission().is_empty() {
                Ok(0)
            } else {
                self.ring.submit()
            }
        } else if let Some(timeout) = timeout {
            let ts = Timespec::from(timeout);
            let args = SubmitArgs::new().timespec(&ts);
            self.ring.submitter().submit_with_args(want, &args)
        } else {
            self.ring.submit_and_wait(want)
        };
        match result {
            Err(e)
                if !matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) =>
            {
                Err(e)
            }
            _ => Ok(()),
        }
    }

    pub(super) fn drain(&mut self, mut deliver: impl FnMut(Token, Input<'_>) -> bool) {
        let clock = Clocks::now();
        for cqe in self.ring.completion() {
            let (id, res, flags) = (cqe.user_data() & ID_MASK, cqe.result(), cqe.flags());
            match cqe.user_data() >> KIND_SHIFT {
                RECV => {
                    let token = self.regs.get(&id).copied();
                    if let Some(bid) = cqueue::buffer_select(flags) {
                        if let (Some(token), Ok(len)) = (token, usize::try_from(res)) {
                            let buf = self.bufs.get(bid, len);
                            if let Ok(m) = RecvMsgOut::parse(buf, &self.msghdr.0)
                                && let Some(from) = source(m.name_data())
                            {
                                let (bytes, at) =
                                    (m.payload_data(), clock.arrival(m.control_data()));
                                deliver(token, Input::Datagram { from, bytes, at });
                            }
                        }
                        self.bufs.give_back(bid);
                    }
                    if res < 0 && res != -libc::ENOBUFS && res != -libc::ECANCELED {
                        let e = io::Error::from_raw_os_error(-res);
                        tracing::debug!(error = %e, "rtp receive");
                    }
                    if token.is_some() && !cqueue::more(flags) {
                        self.rearm.push(id);
                    }
                }
                SEND => self.free_sends.push(id as usize),
                WAKE => {
                    // Clears the waker's event so the descriptor can signal the next one.
                    let _ = self.poll.poll(&mut self.events, Some(Duration::ZERO));
                    self.rearm_waker |= !cqueue::more(flags);
                }
                _ => {}
            }
        }
        self.bufs.commit();
        for id in std::mem::take(&mut self.rearm) {
            let fd = self
                .regs
                .get(&id)
                .and_then(|t| self.ids.get(t))
                .map(|r| r.1);
            if let Some(fd) = fd {
                self.arm(id, fd);
            }
        }
    }
}

impl Drop for Uring {
    fn drop(&mut self) {
        // The kernel lets go of the buffers before they are freed (the ring closes after).
        let _ = self.ring.submitter().unregister_buf_ring(GROUP);
    }
}

const TIMESPEC: usize = std::mem::size_of::<libc::timespec>();

/// Asks the socket for each datagram's arrival time (`SCM_TIMESTAMPNS`).
fn stamp_arrivals(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid descriptor and an int option of the right size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&raw const on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The monotonic and wall clocks read together once per drain: arrival stamps are wall
/// time, turned into `Instant`s by their age.
struct Clocks {
    now: Instant,
    wall: Duration,
}

impl Clocks {
    fn now() -> Clocks {
        let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        Clocks {
            now: Instant::now(),
            wall: wall.unwrap_or_default(),
        }
    }

    /// When a datagram arrived, from its `SCM_TIMESTAMPNS` control message; `now` when it
    /// has none, or the wall clock stepped so that the age makes no sense.
    fn arrival(&self, control: &[u8]) -> Instant {
        let Some(stamp) = timestamp(control) else {
            return self.now;
        };
        match self.wall.checked_sub(stamp) {
            Some(age) if age < Duration::from_secs(1) => {
                self.now.checked_sub(age).unwrap_or(self.now)
            }
            _ => self.now,
        }
    }
}

/// The `SCM_TIMESTAMPNS` of a control buffer (the only control message asked for).
fn timestamp(control: &[u8]) -> Option<Duration> {
    const HDR: usize = std::mem::size_of::<libc::cmsghdr>();
    let hdr = control.get(..HDR)?;
    // SAFETY: HDR bytes, read unaligned.
    let hdr: libc::cmsghdr = unsafe { hdr.as_ptr().cast::<libc::cmsghdr>().read_unaligned() };
    if hdr.cmsg_level != libc::SOL_SOCKET || hdr.cmsg_type != libc::SCM_TIMESTAMPNS {
        return None;
    }
    // SAFETY: arithmetic on a size.
    let start = unsafe { libc::CMSG_LEN(0) } as usize;
    let ts = control.get(start..start + TIMESPEC)?;
    // SAFETY: TIMESPEC bytes, read unaligned.
    let ts: libc::timespec = unsafe { ts.as_ptr().cast::<libc::timespec>().read_unaligned() };
    let secs = u64::try_from(ts.tv_sec).ok()?;
    Some(Duration::new(secs, u32::try_from(ts.tv_nsec).ok()?))
}

/// The source address a multishot `recvmsg` wrote (a `sockaddr_in` or `sockaddr_in6`).
fn source(name: &[u8]) -> Option<SocketAddr> {
    let family = i32::from(u16::from_ne_bytes(name.get(..2)?.try_into().ok()?));
    let port = u16::from_be_bytes(name.get(2..4)?.try_into().ok()?);
    match family {
        libc::AF_INET => {
            let ip: [u8; 4] = name.get(4..8)?.try_into().ok()?;
            Some(SocketAddrV4::new(Ipv4Addr::from(ip), port).into())
        }
        libc::AF_INET6 => {
            let flow = u32::from_be_bytes(name.get(4..8)?.try_into().ok()?);
            let ip: [u8; 16] = name.get(8..24)?.try_into().ok()?;
            let scope = u32::from_ne_bytes(name.get(24..28)?.try_into().ok()?);
            Some(SocketAddrV6::new(Ipv6Addr::from(ip), port, flow, scope).into())
        }
        _ => None,
    }
}

/// The multishot `recvmsg` template: room for an IPv6 source, no control data.
struct RecvHeader(libc::msghdr);

// SAFETY: its pointers are null (only the lengths are set).
unsafe impl Send for RecvHeader {}

/// A ring of provided receive buffers (`IORING_REGISTER_PBUF_RING`), `RECV_BUF` bytes each.
struct BufRing {
    entries: NonNull<BufRingEntry>,
    entries_layout: Layout,
    data: NonNull<u8>,
    data_layout: Layout,
    /// Tail as we have filled it; published to the kernel by `commit`.
    tail: u16,
}

// SAFETY: the pointers are to memory the BufRing owns; it moves with its ring.
unsafe impl Send for BufRing {}

impl BufRing {
    fn new(ring: &IoUring) -> io::Result<BufRing> {
        let n = usize::from(BUFFERS);
        let entries_layout = Layout::array::<BufRingEntry>(n)
            .and_then(|l| l.align_to(4096))
            .map_err(io::Error::other)?;
        let data_layout = Layout::array::<u8>(n * RECV_BUF).map_err(io::Error::other)?;
        // SAFETY: both layouts have a non-zero size.
        let (entries, data) = unsafe { (alloc_zeroed(entries_layout), alloc_zeroed(data_layout)) };
        let mut b = BufRing {
            entries: NonNull::new(entries.cast()).ok_or_else(|| io::Error::other("no memory"))?,
            entries_layout,
            data: NonNull::new(data).ok_or_else(|| io::Error::other("no memory"))?,
            data_layout,
            tail: 0,
        };
        for bid in 0..BUFFERS {
            b.give_back(bid);
        }
        b.commit();
        // SAFETY: the entries stay allocated until this BufRing drops, after the ring
        // unregisters them (Uring's Drop).
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(entries as u64, BUFFERS, GROUP, 0)?
        };
        Ok(b)
    }

    /// The first `len` bytes of a buffer the kernel handed back.
    fn get(&self, bid: u16, len: usize) -> &[u8] {
        let start = usize::from(bid % BUFFERS) * RECV_BUF;
        // SAFETY: in bounds; the kernel does not write a buffer until it is given back.
        unsafe { std::slice::from_raw_parts(self.data.as_ptr().add(start), len.min(RECV_BUF)) }
    }

    /// Puts a buffer back at the tail (seen by the kernel after `commit`).
    fn give_back(&mut self, bid: u16) {
        let bid = bid % BUFFERS;
        let slot = usize::from(self.tail & (BUFFERS - 1));
        // SAFETY: slot < BUFFERS entries; the buffer lies within `data`.
        unsafe {
            let e = &mut *self.entries.as_ptr().add(slot);
            e.set_addr(self.data.as_ptr().add(usize::from(bid) * RECV_BUF) as u64);
            e.set_len(RECV_BUF as u32);
            e.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    fn commit(&self) {
        // SAFETY: the tail field sits in the first entry, which the kernel reads atomically.
        unsafe {
            let tail = BufRingEntry::tail(self.entries.as_ptr()) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with these layouts.
        unsafe {
            dealloc(self.entries.as_ptr().cast(), self.entries_layout);
            dealloc(self.data.as_ptr(), self.data_layout);
        }
    }
}

/// One queued send: the `msghdr` the kernel reads and everything it points to.
struct SendSlot {
    hdr: libc::msghdr,
    iov: libc::iovec,
    to: SockAddr,
    data: [u8; SEND_DATA],
}

// SAFETY: the pointers in `hdr` and `iov` are into the slot itself (boxed, never moved).
unsafe impl Send for SendSlot {}

impl SendSlot {
    fn new() -> SendSlot {
        SendSlot {
            // SAFETY: msghdr and iovec are plain data; all-zero is a valid value.
            hdr: unsafe { std::mem::zeroed() },
            iov: unsafe { std::mem::zeroed() },
            to: SockAddr::from(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))),
            data: [0; SEND_DATA],
        }
    }

    /// Copies the datagram in and points the header at it.
    fn fill(&mut self, to: SocketAddr, bytes: &[u8]) -> *const libc::msghdr {
        self.data[..bytes.len()].copy_from_slice(bytes);
        self.to = SockAddr::from(to);
        self.iov.iov_base = self.data.as_mut_ptr().cast();
        self.iov.iov_len = bytes.len();
        self.hdr.msg_name = self.to.as_ptr() as *mut libc::c_void;
        self.hdr.msg_namelen = self.to.len();
        self.hdr.msg_iov = &mut self.iov;
        self.hdr.msg_iovlen = 1;
        &self.hdr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_from_sockaddr_bytes() {
        for addr in ["127.0.0.1:4000", "[::1]:5004", "[fe80::1%2]:7"] {
            let addr: SocketAddr = addr.parse().unwrap();
            let raw = SockAddr::from(addr);
            // SAFETY: as_ptr points at len() bytes of the address.
            let bytes = unsafe {
                std::slice::from_raw_parts(raw.as_ptr().cast::<u8>(), raw.len() as usize)
            };
            assert_eq!(source(bytes), Some(addr));
        }
        assert_eq!(source(&[0; 1]), None);
        assert_eq!(source(&[0; 16]), None, "family 0 is no address");
    }
}
