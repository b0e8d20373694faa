//! Tokio driver: one UDP socket and one TCP listener on the same address feed a single
//! [`Endpoint`] in one task; it moves bytes, runs the endpoint's clock and relays commands.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};

use super::endpoint::{
    CallId, ConnId, Dial, Endpoint, EndpointConfig, Event, RequestId, SipError, Transmit, Transport,
};
use super::framer::Framer;
use super::message::Body;

const EVENT_QUEUE: usize = 1024;

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
}

/// Sends application commands into the SIP task. Cheap to clone.
#[derive(Clone)]
pub struct SipHandle {
    commands: mpsc::UnboundedSender<Command>,
}

impl SipHandle {
    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, SipError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
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
    mut config: EndpointConfig,
) -> io::Result<(SipHandle, mpsc::Receiver<Event>, SocketAddr)> {
    let udp = UdpSocket::bind(bind).await?;
    let bound = udp.local_addr()?;
    let tcp = TcpListener::bind(bound).await?;
    for port in [&mut config.udp_port, &mut config.tcp_port] {
        if *port == 0 {
            *port = bound.port();
        }
    }
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (event_tx, event_rx) = mpsc::channel(EVENT_QUEUE);
    let (conn_tx, conn_rx) = mpsc::unbounded_channel();
    let driver = Driver {
        endpoint: Endpoint::new(config),
        udp,
        tcp,
        conns: HashMap::new(),
        conn_tx,
        next_conn: 0,
        pending: VecDeque::new(),
    };
    tokio::spawn(driver.run(cmd_rx, conn_rx, event_tx));
    Ok((SipHandle { commands: cmd_tx }, event_rx, bound))
}

/// What the per-connection reader tasks report.
enum ConnInput {
    Message(ConnId, SocketAddr, Vec<u8>),
    Closed(ConnId),
}

struct Conn {
    writer: mpsc::UnboundedSender<Vec<u8>>,
    peer: SocketAddr,
}

struct Driver {
    endpoint: Endpoint,
    udp: UdpSocket,
    tcp: TcpListener,
    conns: HashMap<ConnId, Conn>,
    conn_tx: mpsc::UnboundedSender<ConnInput>,
    next_conn: u64,
    /// Events the application has not had room for yet: kept, never dropped.
    pending: VecDeque<Event>,
}

impl Driver {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut conn_rx: mpsc::UnboundedReceiver<ConnInput>,
        events: mpsc::Sender<Event>,
    ) {
        let mut buf = vec![0u8; 65_536];
        loop {
            self.flush().await;
            let deadline = self.endpoint.poll_timeout();
            let sleep = tokio::time::sleep_until(deadline.map_or_else(far_future, Into::into));
            tokio::select! {
                r = self.udp.recv_from(&mut buf) => match r {
                    Ok((n, from)) => self.endpoint.handle_input(Instant::now(), from, Transport::Udp, &buf[..n]),
                    Err(e) => tracing::debug!("udp receive: {e}"),
                },
                accepted = self.tcp.accept() => match accepted {
                    Ok((stream, peer)) => self.adopt(stream, peer),
                    Err(e) => tracing::warn!("tcp accept: {e}"),
                },
                Some(input) = conn_rx.recv() => match input {
                    ConnInput::Message(conn, from, bytes) => {
                        self.endpoint.handle_input(Instant::now(), from, Transport::Tcp(conn), &bytes)
                    }
                    ConnInput::Closed(conn) => self.close(conn),
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
                let sent = self
                    .conns
                    .get(&conn)
                    .is_some_and(|c| c.writer.send(t.bytes).is_ok());
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
        }
    }

    fn adopt(&mut self, stream: TcpStream, peer: SocketAddr) {
        self.next_conn += 1;
        let conn = ConnId(self.next_conn);
        let (read, write) = stream.into_split();
        let (writer, queue) = mpsc::unbounded_channel();
        tokio::spawn(read_conn(conn, peer, read, self.conn_tx.clone()));
        tokio::spawn(write_conn(conn, write, queue, self.conn_tx.clone()));
        self.conns.insert(conn, Conn { writer, peer });
    }

    fn close(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            tracing::debug!("tcp connection from {} closed", c.peer);
            self.endpoint.handle_transport_closed(Instant::now(), conn);
        }
    }
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + std::time::Duration::from_secs(3600)
}

async fn read_conn(
    conn: ConnId,
    peer: SocketAddr,
    mut read: OwnedReadHalf,
    out: mpsc::UnboundedSender<ConnInput>,
) {
    let mut framer = Framer::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => framer.push(&buf[..n]),
        }
        loop {
            match framer.next_message() {
                Ok(Some(msg)) => {
                    if out.send(ConnInput::Message(conn, peer, msg)).is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::info!("closing tcp connection from {peer}: {e}");
                    let _ = out.send(ConnInput::Closed(conn));
                    return;
                }
            }
        }
    }
    let _ = out.send(ConnInput::Closed(conn));
}

async fn write_conn(
    conn: ConnId,
    mut write: OwnedWriteHalf,
    mut queue: mpsc::UnboundedReceiver<Vec<u8>>,
    out: mpsc::UnboundedSender<ConnInput>,
) {
    while let Some(bytes) = queue.recv().await {
        if write.write_all(&bytes).await.is_err() {
            let _ = out.send(ConnInput::Closed(conn));
            return;
        }
    }
}
