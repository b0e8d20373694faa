//! SIP over UDP or TCP to one server: send text, receive parsed messages on a channel.

use super::dialog::Transport;
use super::sip_text::{self, Message};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

enum Writer {
    Udp(Arc<UdpSocket>),
    Tcp(Mutex<OwnedWriteHalf>),
}

/// The sending half; cheap to share between the phone and its request handler.
pub struct Link {
    pub local: SocketAddr,
    pub server: SocketAddr,
    pub transport: Transport,
    writer: Writer,
}

impl Link {
    /// Connects (TCP) or binds (UDP) on the server's address and starts a task that parses
    /// what arrives into `incoming`.
    pub async fn open(
        server: SocketAddr,
        transport: Transport,
    ) -> io::Result<(Arc<Link>, mpsc::UnboundedReceiver<Message>, JoinHandle<()>)> {
        Link::open_from(server, server.ip(), transport).await
    }

    /// [`Link::open`] from `local_ip` (any of 127/8 on Linux), for tests with several sources.
    pub async fn open_from(
        server: SocketAddr,
        local_ip: IpAddr,
        transport: Transport,
    ) -> io::Result<(Arc<Link>, mpsc::UnboundedReceiver<Message>, JoinHandle<()>)> {
        let (tx, rx) = mpsc::unbounded_channel();
        let unspecified = SocketAddr::new(local_ip, 0);
        let (link, reader) = match transport {
            Transport::Udp => {
                let socket = Arc::new(UdpSocket::bind(unspecified).await?);
                let local = socket.local_addr()?;
                let reader = tokio::spawn(read_udp(socket.clone(), tx));
                (
                    Link {
                        local,
                        server,
                        transport,
                        writer: Writer::Udp(socket),
                    },
                    reader,
                )
            }
            Transport::Tcp => {
                let stream = connect_from(local_ip, server).await?;
                let local = stream.local_addr()?;
                let (read, write) = stream.into_split();
                let reader = tokio::spawn(read_tcp(read, tx));
                let writer = Writer::Tcp(Mutex::new(write));
                (
                    Link {
                        local,
                        server,
                        transport,
                        writer,
                    },
                    reader,
                )
            }
        };
        Ok((Arc::new(link), rx, reader))
    }

    pub async fn send(&self, text: &str) -> io::Result<()> {
        match &self.writer {
            Writer::Udp(socket) => socket.send_to(text.as_bytes(), self.server).await.map(drop),
            Writer::Tcp(stream) => stream.lock().await.write_all(text.as_bytes()).await,
        }
    }
}

/// A TCP connection to `server` from `local_ip` (any free port).
pub async fn connect_from(local_ip: IpAddr, server: SocketAddr) -> io::Result<TcpStream> {
    let socket = match local_ip {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(local_ip, 0))?;
    socket.connect(server).await
}

async fn read_udp(socket: Arc<UdpSocket>, tx: mpsc::UnboundedSender<Message>) {
    let mut buf = vec![0u8; 65536];
    while let Ok((n, _)) = socket.recv_from(&mut buf).await {
        // Keep-alives and garbage are dropped: the server's bugs show up as missing responses.
        if let Ok(message) = Message::parse(&buf[..n])
            && tx.send(message).is_err()
        {
            return;
        }
    }
}

async fn read_tcp(mut stream: OwnedReadHalf, tx: mpsc::UnboundedSender<Message>) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16384];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        loop {
            let blank = buf
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
            buf.drain(..blank);
            let Some(len) = sip_text::frame_len(&buf) else {
                break;
            };
            let frame: Vec<u8> = buf.drain(..len).collect();
            if let Ok(message) = Message::parse(&frame)
                && tx.send(message).is_err()
            {
                return;
            }
        }
    }
}
