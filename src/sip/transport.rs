//! Tokio driver: one UDP socket and one TCP listener on the same address feed a single
//! [`Endpoint`] in one task; it moves bytes, runs the endpoint's clock and relays commands.
//!
//! Bounds, and what happens at each:
//! - events the application has not taken: [`MAX_PENDING`]; at it, no input is read (UDP
//!   datagrams wait in, then overflow, the socket buffer; TCP readers wait) until it drains;
//! - commands from the application: [`COMMAND_QUEUE`]; senders wait;
//! - messages from TCP readers: [`CONN_QUEUE`]; readers wait, so the peer's window closes;
//! - bytes queued for one TCP connection beyond what its socket took: past
//!   [`WRITE_QUEUE_BYTES`] its requests are no longer read until the queue drains (closed if it
//!   does not within the header timeout: the peer is not reading); past [`WRITE_QUEUE_MAX`] it
//!   is closed at once;
//! - TCP connections: [`TcpLimits`] caps and timeouts (see [`super::connections`]); past a
//!   cap the connection is accepted and closed at once. When accept fails for lack of file
//!   descriptors it is retried after [`ACCEPT_BACKOFF`], and repeated failures or refusals are
//!   logged once per [`LOG_EVERY`] with a count.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

use super::connections::{ConnClock, Connections, Expiry, TcpLimits, Timeouts};
use super::endpoint::{
    CallId, ConnId, Dial, Endpoint, EndpointConfig, Event, IncomingRegister, RegisterId, RequestId,
    SipError, Transmit, Transport,
};
use super::framer::{FrameError, Framer};
use super::log_limit::LogLimit;
use super::message::Body;

const EVENT_QUEUE: usize = 1024;
/// REGISTERs waiting for the registrar task.
const REGISTER_QUEUE: usize = 256;
pub const MAX_PENDING: usize = 4096;
pub const COMMAND_QUEUE: usize = 1024;
pub const CONN_QUEUE: usize = 1024;
pub const WRITE_QUEUE_BYTES: usize = 256 * 1024;
pub const WRITE_QUEUE_MAX: usize = 4 * WRITE_QUEUE_BYTES;
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
pub const LOG_EVERY: Duration = Duration::from_secs(10);
/// Bytes a TCP reader takes from the socket at a time.
const READ_CHUNK: usize = 4096;
/// A connection we open to place a call: connected within this, or its calls fail.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

type Reply<T> = oneshot::Sender<Result<T, SipError>>;

enum Command {
    Respond {
        call: CallId,
        reinvite: bool,
        status: u16,
        reason: String,
        body: Option<Body>,
        reply: Reply<()>,
    },
    Reject {
        call: CallId,
        reinvite: bool,
        status: u16,
        reason: String,
        headers: Vec<(&'static str, String)>,
        reply: Reply<()>,
    },
    Bye {
        call: CallId,
        reply: Reply<()>,
    },
    Request {
        call: CallId,
        method: String,
        body: Option<Body>,
        reply: Reply<RequestId>,
    },
    Invite {
        dial: Box<Dial>,
        reply: Reply<CallId>,
    },
    Cancel {
        call: CallId,
        reply: Reply<()>,
    },
    RespondRegister {
        id: RegisterId,
        status: u16,
        reason: &'static str,
        headers: Vec<(&'static str, String)>,
    },
}

/// Sends application commands into the SIP task. Cheap to clone.
#[derive(Clone)]
pub struct SipHandle {
    commands: mpsc::Sender<Command>,
}

impl SipHandle {
    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, SipError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| SipError::Stopped)?;
        rx.await.map_err(|_| SipError::Stopped)?
    }

    /// See [`Endpoint::respond`].
    pub async fn respond(
        &self,
        call: CallId,
        status: u16,
        reason: &str,
        body: Option<Body>,
    ) -> Result<(), SipError> {
        let reason = reason.to_string();
        self.call(|reply| Command::Respond {
            call,
            reinvite: false,
            status,
            reason,
            body,
            reply,
        })
        .await
    }

    /// See [`Endpoint::respond_reinvite`].
    pub async fn respond_reinvite(
        &self,
        call: CallId,
        status: u16,
        reason: &str,
        body: Option<Body>,
    ) -> Result<(), SipError> {
        let reason = reason.to_string();
        self.call(|reply| Command::Respond {
            call,
            reinvite: true,
            status,
            reason,
            body,
            reply,
        })
        .await
    }

    /// See [`Endpoint::reject`].
    pub async fn reject(
        &self,
        call: CallId,
        reinvite: bool,
        status: u16,
        reason: &str,
        headers: Vec<(&'static str, String)>,
    ) -> Result<(), SipError> {
        let reason = reason.to_string();
        self.call(|reply| Command::Reject {
            call,
            reinvite,
            status,
            reason,
            headers,
            reply,
        })
        .await
    }

    /// See [`Endpoint::bye`].
    pub async fn bye(&self, call: CallId) -> Result<(), SipError> {
        self.call(|reply| Command::Bye { call, reply }).await
    }

    /// See [`Endpoint::info`].
    pub async fn info(&self, call: CallId, body: Body) -> Result<RequestId, SipError> {
        self.request(call, "INFO", Some(body)).await
    }

    /// See [`Endpoint::invite`].
    pub async fn invite(&self, dial: Dial) -> Result<CallId, SipError> {
        let dial = Box::new(dial);
        self.call(|reply| Command::Invite { dial, reply }).await
    }

    /// See [`Endpoint::cancel`].
    pub async fn cancel(&self, call: CallId) -> Result<(), SipError> {
        self.call(|reply| Command::Cancel { call, reply }).await
    }

    /// See [`Endpoint::respond_register`].
    pub async fn respond_register(
        &self,
        id: RegisterId,
        status: u16,
        reason: &'static str,
        headers: Vec<(&'static str, String)>,
    ) {
        let command = Command::RespondRegister {
            id,
            status,
            reason,
            headers,
        };
        // A stopped SIP task has nobody to answer.
        let _ = self.commands.send(command).await;
    }

    /// See [`Endpoint::request`].
    pub async fn request(
        &self,
        call: CallId,
        method: &str,
        body: Option<Body>,
    ) -> Result<RequestId, SipError> {
        let method = method.to_string();
        self.call(|reply| Command::Request {
            call,
            method,
            body,
            reply,
        })
        .await
    }
}

/// Binds UDP and TCP on `bind` (TCP on the port UDP got, so port 0 works) and starts the task.
/// Zero ports in `config` are replaced by the bound port. The task ends when every
/// [`SipHandle`] is dropped; events wait in the task (never dropped) while the receiver is full.
pub async fn spawn(
    bind: SocketAddr,
    config: EndpointConfig,
    tcp_limits: TcpLimits,
) -> io::Result<(SipHandle, mpsc::Receiver<Event>, SocketAddr)> {
    start(bind, config, tcp_limits, None).await
}

/// [`spawn`] with REGISTER served (when `config.registrar`): requests arrive on the second
/// receiver, to be answered with [`SipHandle::respond_register`] (503 at once while the
/// receiver is full).
pub async fn spawn_with_registrar(
    bind: SocketAddr,
    config: EndpointConfig,
    tcp_limits: TcpLimits,
) -> io::Result<(
    SipHandle,
    mpsc::Receiver<Event>,
    mpsc::Receiver<IncomingRegister>,
    SocketAddr,
)> {
    let (tx, rx) = mpsc::channel(REGISTER_QUEUE);
    let (handle, events, bound) = start(bind, config, tcp_limits, Some(tx)).await?;
    Ok((handle, events, rx, bound))
}

/// UDP and TCP on one port. With port 0 the kernel picks the UDP port, and TCP may already
/// have that one taken by another socket: pick again, a few times.
async fn bind_both(bind: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    let tries = if bind.port() == 0 { 8 } else { 1 };
    let mut last = None;
    for _ in 0..tries {
        let udp = UdpSocket::bind(bind).await?;
        match TcpListener::bind(udp.local_addr()?).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no port")))
}

async fn start(
    bind: SocketAddr,
    mut config: EndpointConfig,
    tcp_limits: TcpLimits,
    registers: Option<mpsc::Sender<IncomingRegister>>,
) -> io::Result<(SipHandle, mpsc::Receiver<Event>, SocketAddr)> {
    let (udp, tcp) = bind_both(bind).await?;
    let bound = udp.local_addr()?;
    for port in [&mut config.udp_port, &mut config.tcp_port] {
        if *port == 0 {
            *port = bound.port();
        }
    }
    let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
    let (event_tx, event_rx) = mpsc::channel(EVENT_QUEUE);
    let (conn_tx, conn_rx) = mpsc::channel(CONN_QUEUE);
    let driver = Driver {
        endpoint: Endpoint::new(config),
        udp,
        tcp,
        conns: HashMap::new(),
        connections: Connections::new(&tcp_limits),
        timeouts: tcp_limits.timeouts(),
        conn_tx,
        next_conn: 0,
        pending: VecDeque::new(),
        accept_paused: None,
        logs: Logs::default(),
        turned_away: 0,
        registers,
    };
    tokio::spawn(driver.run(cmd_rx, conn_rx, event_tx));
    Ok((SipHandle { commands: cmd_tx }, event_rx, bound))
}

/// What the per-connection tasks report.
enum ConnInput {
    /// A connection we opened is up: its writer runs, the driver starts its reader.
    Connected(ConnId, OwnedReadHalf),
    Message(ConnId, SocketAddr, Vec<u8>),
    /// Nothing arrived for the idle timeout.
    Idle(ConnId),
    /// The connection ended, or misbehaved (then the reason) and must be closed.
    Closed(ConnId, Option<Misbehaved>),
}

#[derive(Debug)]
enum Misbehaved {
    Slow,
    NotReading,
    Framing(FrameError),
}

impl std::fmt::Display for Misbehaved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Misbehaved::Slow => f.write_str("message not completed within the header timeout"),
            Misbehaved::NotReading => f.write_str("the peer does not read its responses"),
            Misbehaved::Framing(e) => write!(f, "{e}"),
        }
    }
}

struct Conn {
    writer: mpsc::UnboundedSender<Vec<u8>>,
    /// Bytes handed to the writer and not yet written: at most [`WRITE_QUEUE_MAX`].
    queued: Arc<AtomicUsize>,
    peer: SocketAddr,
    /// The task writing (for a connection we open: connecting, then writing), and the
    /// reader once the socket is up: `close` stops both, so neither keeps the socket open,
    /// not even a writer blocked on a peer that does not read.
    write_task: AbortHandle,
    reader: Option<AbortHandle>,
}

/// Log lines that could repeat at the rate of an attack, one per [`LOG_EVERY`].
struct Logs {
    accept_failed: LogLimit,
    refused_conn: LogLimit,
    misbehaved: LogLimit,
    turned_away: LogLimit,
}

impl Default for Logs {
    fn default() -> Self {
        let limit = || LogLimit::new(LOG_EVERY);
        Logs {
            accept_failed: limit(),
            refused_conn: limit(),
            misbehaved: limit(),
            turned_away: limit(),
        }
    }
}

struct Driver {
    endpoint: Endpoint,
    udp: UdpSocket,
    tcp: TcpListener,
    conns: HashMap<ConnId, Conn>,
    connections: Connections,
    timeouts: Timeouts,
    conn_tx: mpsc::Sender<ConnInput>,
    next_conn: u64,
    /// Events the application has not had room for yet: kept, never dropped; input pauses
    /// while there are [`MAX_PENDING`].
    pending: VecDeque<Event>,
    /// Accepting resumes at this time (after running out of file descriptors).
    accept_paused: Option<tokio::time::Instant>,
    logs: Logs,
    /// The endpoint's count of refused requests when last logged.
    turned_away: u64,
    /// Where REGISTERs go, when served.
    registers: Option<mpsc::Sender<IncomingRegister>>,
}

impl Driver {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut conn_rx: mpsc::Receiver<ConnInput>,
        events: mpsc::Sender<Event>,
    ) {
        let mut buf = vec![0u8; 65_536];
        loop {
            self.flush().await;
            self.log_turned_away();
            let deadline = self.endpoint.poll_timeout();
            let sleep = tokio::time::sleep_until(deadline.map_or_else(far_future, Into::into));
            let room = self.pending.len() < MAX_PENDING;
            let paused = self.accept_paused;
            tokio::select! {
                r = self.udp.recv_from(&mut buf), if room => match r {
                    Ok((n, from)) => self.endpoint.handle_input(Instant::now(), from, Transport::Udp, &buf[..n]),
                    Err(e) => tracing::debug!("udp receive: {e}"),
                },
                accepted = self.tcp.accept(), if room && paused.is_none() => match accepted {
                    Ok((stream, peer)) => self.adopt(stream, peer),
                    Err(e) => self.accept_failed(&e),
                },
                () = sleep_until_some(paused), if paused.is_some() => self.accept_paused = None,
                Some(input) = conn_rx.recv(), if room => match input {
                    ConnInput::Connected(conn, read) => self.connected(conn, read),
                    ConnInput::Message(conn, from, bytes) => {
                        self.endpoint.handle_input(Instant::now(), from, Transport::Tcp(conn), &bytes)
                    }
                    ConnInput::Idle(conn) => {
                        if !self.endpoint.transport_in_use(conn) {
                            self.close(conn);
                        }
                    }
                    ConnInput::Closed(conn, why) => {
                        if let Some(why) = why {
                            self.log_misbehaved(conn, &why);
                        }
                        self.close(conn);
                    }
                },
                command = commands.recv() => match command {
                    Some(c) => self.apply(c),
                    // Every handle dropped: nobody can answer calls any more.
                    None => return,
                },
                permit = events.reserve(), if !self.pending.is_empty() => match (permit, self.pending.pop_front()) {
                    (Ok(p), Some(e)) => p.send(e),
                    _ => self.pending.clear(),
                },
                () = sleep, if deadline.is_some() => self.endpoint.handle_timeout(Instant::now()),
            }
        }
    }

    async fn flush(&mut self) {
        // Before the transmits: some go to these connections.
        while let Some((conn, to)) = self.endpoint.poll_connect() {
            self.connect(conn, to);
        }
        while let Some(r) = self.endpoint.poll_register() {
            let id = r.id;
            let queued = self
                .registers
                .as_ref()
                .is_some_and(|tx| tx.try_send(r).is_ok());
            if !queued {
                let retry = vec![("Retry-After", "5".to_string())];
                let now = Instant::now();
                self.endpoint
                    .respond_register(now, id, 503, "Service Unavailable", retry);
            }
        }
        while let Some(t) = self.endpoint.poll_transmit() {
            self.send(t).await;
        }
        while let Some(e) = self.endpoint.poll_event() {
            self.pending.push_back(e);
        }
    }

    async fn send(&mut self, t: Transmit) {
        match t.transport {
            Transport::Udp => {
                if let Err(e) = self.udp.send_to(&t.bytes, t.to).await {
                    tracing::debug!("udp send to {}: {e}", t.to);
                }
            }
            Transport::Tcp(conn) => {
                // A full queue means the peer stopped reading: it loses the connection.
                let sent = self.conns.get(&conn).is_some_and(|c| {
                    let len = t.bytes.len();
                    let queued = c.queued.fetch_add(len, Ordering::Relaxed) + len;
                    queued <= WRITE_QUEUE_MAX && c.writer.send(t.bytes).is_ok()
                });
                if !sent {
                    self.close(conn);
                }
            }
        }
    }

    fn apply(&mut self, command: Command) {
        let now = Instant::now();
        let ep = &mut self.endpoint;
        // A dropped reply receiver only means the caller stopped waiting.
        match command {
            Command::Respond {
                call,
                reinvite: false,
                status,
                reason,
                body,
                reply,
            } => {
                let _ = reply.send(ep.respond(now, call, status, &reason, body));
            }
            Command::Respond {
                call,
                status,
                reason,
                body,
                reply,
                ..
            } => {
                let _ = reply.send(ep.respond_reinvite(now, call, status, &reason, body));
            }
            Command::Reject {
                call,
                reinvite,
                status,
                reason,
                headers,
                reply,
            } => {
                let _ = reply.send(ep.reject(now, call, reinvite, status, &reason, headers));
            }
            Command::Bye { call, reply } => {
                let _ = reply.send(ep.bye(now, call));
            }
            Command::Request {
                call,
                method,
                body,
                reply,
            } => {
                let _ = reply.send(ep.request(now, call, &method, body));
            }
            Command::Invite { dial, reply } => {
                let _ = reply.send(Ok(ep.invite(now, *dial)));
            }
            Command::Cancel { call, reply } => {
                let _ = reply.send(ep.cancel(now, call));
            }
            Command::RespondRegister {
                id,
                status,
                reason,
                headers,
            } => ep.respond_register(now, id, status, reason, headers),
        }
    }

    fn adopt(&mut self, stream: TcpStream, peer: SocketAddr) {
        let admitted = if self.endpoint.permits(peer.ip()) {
            self.connections.open(peer.ip()).map_err(|e| e.to_string())
        } else {
            Err("source denied by sip.acl".to_string())
        };
        if let Err(why) = admitted {
            // Dropping the stream closes it.
            if let Some(n) = self.logs.refused_conn.count(Instant::now(), 1) {
                tracing::warn!(refused = n, last = %peer, "tcp connections refused: {why}");
            }
            return;
        }
        self.next_conn += 1;
        let conn = ConnId(self.next_conn);
        let (read, write) = stream.into_split();
        let queued = Arc::new(AtomicUsize::new(0));
        let (writer, queue) = mpsc::unbounded_channel();
        let reader = Some(self.spawn_reader(conn, peer, read, &queued));
        let (done, out) = (queued.clone(), self.conn_tx.clone());
        let write_task = tokio::spawn(write_conn(conn, write, queue, done, out)).abort_handle();
        self.conns.insert(
            conn,
            Conn {
                writer,
                queued,
                peer,
                write_task,
                reader,
            },
        );
    }

    fn spawn_reader(
        &self,
        conn: ConnId,
        peer: SocketAddr,
        read: OwnedReadHalf,
        queued: &Arc<AtomicUsize>,
    ) -> AbortHandle {
        let out = self.conn_tx.clone();
        let reader = read_conn(conn, peer, read, out, self.timeouts, queued.clone());
        tokio::spawn(reader).abort_handle()
    }

    /// Opens the connection the endpoint asked for, under the same caps as accepted ones;
    /// what the endpoint sends meanwhile waits in its write queue.
    fn connect(&mut self, conn: ConnId, to: SocketAddr) {
        if let Err(why) = self.connections.open(to.ip()) {
            tracing::warn!(%to, "tcp connection not opened: {why}");
            self.endpoint.handle_transport_closed(Instant::now(), conn);
            return;
        }
        let queued = Arc::new(AtomicUsize::new(0));
        let (writer, queue) = mpsc::unbounded_channel();
        let (done, out) = (queued.clone(), self.conn_tx.clone());
        let task = tokio::spawn(dial_conn(conn, to, queue, done, out));
        let conn_state = Conn {
            writer,
            queued,
            peer: to,
            write_task: task.abort_handle(),
            reader: None,
        };
        self.conns.insert(conn, conn_state);
    }

    fn connected(&mut self, conn: ConnId, read: OwnedReadHalf) {
        let Some((peer, queued)) = self.conns.get(&conn).map(|c| (c.peer, c.queued.clone())) else {
            return;
        };
        let reader = self.spawn_reader(conn, peer, read, &queued);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.reader = Some(reader);
        }
    }

    /// Out of file descriptors (or memory), accept fails at once for as long as a connection
    /// waits: pause instead of spinning, and say so once per [`LOG_EVERY`].
    fn accept_failed(&mut self, e: &io::Error) {
        let exhausted = matches!(
            e.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
        );
        if exhausted {
            self.accept_paused = Some(tokio::time::Instant::now() + ACCEPT_BACKOFF);
        }
        if let Some(n) = self.logs.accept_failed.count(Instant::now(), 1) {
            tracing::warn!(
                failures = n,
                open = self.connections.total(),
                "tcp accept: {e}"
            );
        }
    }

    fn log_misbehaved(&mut self, conn: ConnId, why: &Misbehaved) {
        let peer = self.conns.get(&conn).map(|c| c.peer);
        if let Some(n) = self.logs.misbehaved.count(Instant::now(), 1) {
            tracing::info!(closed = n, last = ?peer, "tcp connections closed: {why}");
        }
    }

    fn log_turned_away(&mut self) {
        let total = self.endpoint.turned_away();
        let new = total - self.turned_away;
        if new == 0 {
            return;
        }
        self.turned_away = total;
        if let Some(n) = self.logs.turned_away.count(Instant::now(), new) {
            tracing::warn!(
                requests = n,
                "SIP requests refused or dropped by admission control (see sip.limits, sip.acl)"
            );
        }
    }

    fn close(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            tracing::debug!("tcp connection from {} closed", c.peer);
            // Each task holds half the socket: stop both so the socket closes now.
            c.write_task.abort();
            c.reader.iter().for_each(AbortHandle::abort);
            self.connections.close(c.peer.ip());
            self.endpoint.handle_transport_closed(Instant::now(), conn);
        }
    }
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(3600)
}

async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    tokio::time::sleep_until(at.unwrap_or_else(far_future)).await
}

async fn read_conn(
    conn: ConnId,
    peer: SocketAddr,
    read: OwnedReadHalf,
    out: mpsc::Sender<ConnInput>,
    timeouts: Timeouts,
    queued: Arc<AtomicUsize>,
) {
    let mut framer = Framer::new();
    let mut clock = ConnClock::new(Instant::now(), timeouts);
    let why = loop {
        if !drained(&queued, timeouts.header).await {
            break Some(Misbehaved::NotReading);
        }
        let (deadline, expiry) = clock.deadline();
        let ready = tokio::time::timeout_at(deadline.into(), read.readable()).await;
        match (ready, expiry) {
            (Err(_), Expiry::Header) => break Some(Misbehaved::Slow),
            (Err(_), Expiry::Idle) => {
                if out.send(ConnInput::Idle(conn)).await.is_err() {
                    return;
                }
                clock.touch(Instant::now());
                continue;
            }
            (Ok(Err(_)), _) => break None,
            (Ok(Ok(())), _) => {}
        }
        match read_into(&read, &mut framer) {
            Ok(0) => break None,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(_) => break None,
        }
        let mut messages = 0;
        let failed = loop {
            match framer.next_message() {
                Ok(Some(msg)) => {
                    messages += 1;
                    if out.send(ConnInput::Message(conn, peer, msg)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break None,
                Err(e) => break Some(Misbehaved::Framing(e)),
            }
        };
        if failed.is_some() {
            break failed;
        }
        clock.on_read(Instant::now(), messages, framer.pending());
    };
    let _ = out.send(ConnInput::Closed(conn, why)).await;
}

/// Waits while more than [`WRITE_QUEUE_BYTES`] wait to be written to this peer, so that it
/// cannot make us answer faster than it reads; false if the queue did not drain in `within`.
async fn drained(queued: &AtomicUsize, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while queued.load(Ordering::Relaxed) > WRITE_QUEUE_BYTES {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// Moves what the socket has into the framer, through a buffer on this (synchronous) stack
/// so that an idle connection's task holds none.
fn read_into(read: &OwnedReadHalf, framer: &mut Framer) -> io::Result<usize> {
    let mut chunk = [0u8; READ_CHUNK];
    let n = read.try_read(&mut chunk)?;
    framer.push(&chunk[..n]);
    Ok(n)
}

/// Connects within [`CONNECT_TIMEOUT`], hands the read half to the driver and writes.
async fn dial_conn(
    conn: ConnId,
    to: SocketAddr,
    queue: mpsc::UnboundedReceiver<Vec<u8>>,
    queued: Arc<AtomicUsize>,
    out: mpsc::Sender<ConnInput>,
) {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(to)).await {
        Ok(Ok(stream)) => stream,
        failed => {
            let why = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => format!("no answer in {CONNECT_TIMEOUT:?}"),
            };
            tracing::info!(%to, "tcp connect failed: {why}");
            let _ = out.send(ConnInput::Closed(conn, None)).await;
            return;
        }
    };
    let (read, write) = stream.into_split();
    if out.send(ConnInput::Connected(conn, read)).await.is_err() {
        return;
    }
    write_conn(conn, write, queue, queued, out).await;
}

async fn write_conn(
    conn: ConnId,
    mut write: OwnedWriteHalf,
    mut queue: mpsc::UnboundedReceiver<Vec<u8>>,
    queued: Arc<AtomicUsize>,
    out: mpsc::Sender<ConnInput>,
) {
    while let Some(bytes) = queue.recv().await {
        if write.write_all(&bytes).await.is_err() {
            let _ = out.send(ConnInput::Closed(conn, None)).await;
            return;
        }
        queued.fetch_sub(bytes.len(), Ordering::Relaxed);
    }
}
