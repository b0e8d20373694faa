//! The phone's RTP: a receive task that decodes everything it hears into a timeline, and a
//! send task that paces 20 ms frames in real time (queued audio, DTMF events, else silence).

use super::codec;
use super::rtp::{self, Packet};
use chorus::media::codec::{CodecKind, Decoder, Encoder};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// What the phone negotiated: where to send, in which codec, with which payload types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    pub remote: SocketAddr,
    pub codec: CodecKind,
    pub pt: u8,
    pub event_pt: Option<u8>,
    pub event_clock: u32,
}

/// Decoded audio of one received packet, stamped with its arrival time.
#[derive(Clone, Debug)]
pub struct Chunk {
    pub at: Instant,
    pub rate: u32,
    pub pcm: Vec<i16>,
}

/// Everything the phone received.
#[derive(Default)]
pub struct Heard {
    pub chunks: Vec<Chunk>,
    /// RFC 4733 keys the server sent, once per event.
    pub dtmf: Vec<(Instant, char)>,
    pub packets: u64,
    /// Packets with a payload type that was not negotiated.
    pub stray: u64,
}

impl Heard {
    /// Received audio that arrived in `[from, to)`, concatenated, with its rate.
    pub fn between(&self, from: Instant, to: Instant) -> (u32, Vec<i16>) {
        let mut rate = 8000;
        let mut pcm = Vec::new();
        for c in self.chunks.iter().filter(|c| c.at >= from && c.at < to) {
            rate = c.rate;
            pcm.extend_from_slice(&c.pcm);
        }
        (rate, pcm)
    }
}

struct Receiver {
    session: Option<Session>,
    decoder: Option<Box<dyn Decoder>>,
    last_event_ts: Option<u32>,
}

enum Item {
    Audio(VecDeque<i16>),
    Dtmf(u8),
    /// `left` telephone-events, each a new key, `per_tick` of them every 20 ms.
    Flood {
        left: u32,
        per_tick: u32,
    },
    Done(oneshot::Sender<()>),
}

enum Cmd {
    Start(Session),
    Stop,
    /// Silence suppression: nothing sent while paused, the stream carries on after.
    Pause(bool),
    Queue(Item),
}

/// The RTP side of one call; the tasks stop when it is dropped.
pub struct Media {
    pub local: SocketAddr,
    heard: Arc<Mutex<Heard>>,
    receiver: Arc<Mutex<Receiver>>,
    cmds: mpsc::UnboundedSender<Cmd>,
    tasks: [JoinHandle<()>; 2],
}

impl Media {
    /// Binds an RTP socket on `ip` and starts receiving; sending starts with `start`.
    pub async fn bind(ip: std::net::IpAddr) -> std::io::Result<Media> {
        let socket = Arc::new(UdpSocket::bind(SocketAddr::new(ip, 0)).await?);
        let local = socket.local_addr()?;
        let heard = Arc::new(Mutex::new(Heard::default()));
        let receiver = Arc::new(Mutex::new(Receiver {
            session: None,
            decoder: None,
            last_event_ts: None,
        }));
        let (cmds, rx) = mpsc::unbounded_channel();
        let tasks = [
            tokio::spawn(receive(socket.clone(), receiver.clone(), heard.clone())),
            tokio::spawn(send(socket, rx)),
        ];
        Ok(Media {
            local,
            heard,
            receiver,
            cmds,
            tasks,
        })
    }

    /// (Re)starts both directions with a negotiated session.
    pub fn start(&self, session: Session) {
        let mut rx = self.receiver.lock().unwrap();
        if rx.session.map(|s| s.codec) != Some(session.codec) {
            rx.decoder = Some(codec::decoder(session.codec));
        }
        rx.session = Some(session);
        let _ = self.cmds.send(Cmd::Start(session));
    }

    pub fn stop(&self) {
        let _ = self.cmds.send(Cmd::Stop);
    }

    pub fn pause(&self, paused: bool) {
        let _ = self.cmds.send(Cmd::Pause(paused));
    }

    /// Sends `events` RFC 4733 events, each a new key, `per_tick` per 20 ms; returns once
    /// they are all sent.
    pub async fn flood(&self, events: u32, per_tick: u32) {
        self.queue(Item::Flood {
            left: events,
            per_tick,
        })
        .await;
    }

    pub fn session(&self) -> Option<Session> {
        self.receiver.lock().unwrap().session
    }

    /// Plays PCM (at the session codec's rate) and returns once it has all been sent.
    pub async fn play(&self, pcm: Vec<i16>) {
        self.queue(Item::Audio(pcm.into())).await;
    }

    /// Sends one RFC 4733 key and returns once its end packets are out.
    pub async fn dtmf(&self, event: u8) {
        self.queue(Item::Dtmf(event)).await;
    }

    async fn queue(&self, item: Item) {
        let (done, wait) = oneshot::channel();
        let _ = self.cmds.send(Cmd::Queue(item));
        let _ = self.cmds.send(Cmd::Queue(Item::Done(done)));
        let _ = wait.await;
    }

    pub fn heard(&self) -> std::sync::MutexGuard<'_, Heard> {
        self.heard.lock().unwrap()
    }
}

impl Drop for Media {
    fn drop(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

async fn receive(socket: Arc<UdpSocket>, rx: Arc<Mutex<Receiver>>, heard: Arc<Mutex<Heard>>) {
    let mut buf = vec![0u8; 2048];
    while let Ok((n, _from)) = socket.recv_from(&mut buf).await {
        let Some(packet) = Packet::parse(&buf[..n]) else {
            continue;
        };
        let mut rx = rx.lock().unwrap();
        let mut heard = heard.lock().unwrap();
        heard.packets += 1;
        let Some(session) = rx.session else {
            heard.stray += 1;
            continue;
        };
        if Some(packet.pt) == session.event_pt {
            if rx.last_event_ts != Some(packet.ts) {
                rx.last_event_ts = Some(packet.ts);
                let key = rtp::read_event(packet.payload).and_then(|(e, _)| rtp::dtmf_key(e));
                heard.dtmf.extend(key.map(|k| (Instant::now(), k)));
            }
        } else if packet.pt == session.pt {
            let mut pcm = Vec::new();
            if let Some(decoder) = rx.decoder.as_mut() {
                decoder.decode(packet.payload, &mut pcm);
            }
            let rate = session.codec.pcm_rate();
            heard.chunks.push(Chunk {
                at: Instant::now(),
                rate,
                pcm,
            });
        } else {
            heard.stray += 1;
        }
    }
}

/// Sending state between ticks.
struct Sender {
    session: Session,
    encoder: Box<dyn Encoder>,
    seq: u16,
    ts: u32,
    ssrc: u32,
    /// Packets of the key being sent so far.
    event_sent: u16,
    first: bool,
}

const EVENT_PACKETS: u16 = 5; // 100 ms keys
const EVENT_VOLUME: u8 = 10;

async fn send(socket: Arc<UdpSocket>, mut cmds: mpsc::UnboundedReceiver<Cmd>) {
    let mut queue: VecDeque<Item> = VecDeque::new();
    let mut sender: Option<Sender> = None;
    let mut paused = false;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let ssrc = std::process::id() ^ (super::unique() as u32).rotate_left(16);
    loop {
        tick.tick().await;
        loop {
            match cmds.try_recv() {
                Ok(Cmd::Start(session)) => sender = Some(Sender::resume(sender, session, ssrc)),
                Ok(Cmd::Stop) => sender = None,
                Ok(Cmd::Pause(p)) => paused = p,
                Ok(Cmd::Queue(item)) => queue.push_back(item),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return,
            }
        }
        while let Some(Item::Done(_)) = queue.front() {
            if let Some(Item::Done(done)) = queue.pop_front() {
                let _ = done.send(());
            }
        }
        let Some(s) = sender.as_mut() else {
            continue;
        };
        if paused {
            s.skip_frame();
            continue;
        }
        for packet in s.next_packets(&mut queue) {
            let _ = socket.send_to(&packet, s.session.remote).await;
        }
    }
}

impl Sender {
    /// A re-INVITE keeps SSRC, sequence and timestamp running; only the codec may change.
    fn resume(old: Option<Sender>, session: Session, ssrc: u32) -> Sender {
        match old {
            Some(mut s) if s.session.codec == session.codec => {
                s.session = session;
                s
            }
            old => Sender {
                session,
                encoder: codec::encoder(session.codec),
                seq: old.as_ref().map_or(1, |s| s.seq),
                ts: old.as_ref().map_or(0, |s| s.ts),
                ssrc,
                event_sent: 0,
                first: true,
            },
        }
    }

    fn frame_ticks(&self) -> u32 {
        super::sdp_text::rtp_format(self.session.codec).1 / 50
    }

    /// A 20 ms frame not sent (silence suppression): time goes on, the next packet starts
    /// a talkspurt.
    fn skip_frame(&mut self) {
        self.ts = self.ts.wrapping_add(self.frame_ticks());
        self.first = true;
    }

    /// `per_tick` events, each a new key (its own timestamp) in one end packet.
    fn flood_step(&mut self, pt: u8, queue: &mut VecDeque<Item>) -> Vec<Vec<u8>> {
        let Some(Item::Flood { left, per_tick }) = queue.front_mut() else {
            return Vec::new();
        };
        let n = (*per_tick).min(*left);
        *left -= n;
        if *left == 0 {
            queue.pop_front();
        }
        let ticks = self.frame_ticks();
        let payload = rtp::event_payload(5, true, EVENT_VOLUME, ticks as u16);
        (0..n)
            .map(|_| {
                self.ts = self.ts.wrapping_add(ticks);
                self.packet(pt, true, self.ts, &payload)
            })
            .collect()
    }

    /// The packets for this 20 ms tick: a DTMF event step, or one audio frame.
    fn next_packets(&mut self, queue: &mut VecDeque<Item>) -> Vec<Vec<u8>> {
        if let (Some(Item::Flood { .. }), Some(pt)) = (queue.front(), self.session.event_pt) {
            return self.flood_step(pt, queue);
        }
        if let (Some(Item::Dtmf(event)), Some(pt)) = (queue.front(), self.session.event_pt) {
            let event = *event;
            return self.event_step(event, pt, queue);
        }
        if let Some(Item::Dtmf(_) | Item::Flood { .. }) = queue.front() {
            queue.pop_front(); // no telephone-event negotiated: nothing to send it with
        }
        let n = codec::frame_samples(self.session.codec);
        let mut pcm = Vec::with_capacity(n);
        if let Some(Item::Audio(audio)) = queue.front_mut() {
            pcm.extend(audio.drain(..n.min(audio.len())));
            if audio.is_empty() {
                queue.pop_front();
            }
        }
        pcm.resize(n, 0);
        let mut payload = Vec::new();
        self.encoder.encode(&pcm, &mut payload);
        let packet = self.packet(self.session.pt, self.first, self.ts, &payload);
        self.first = false;
        self.ts = self.ts.wrapping_add(self.frame_ticks());
        vec![packet]
    }

    /// One step of an RFC 4733 key: a growing-duration packet, and at the end three end
    /// packets; the audio timestamp then jumps past the key.
    fn event_step(&mut self, event: u8, pt: u8, queue: &mut VecDeque<Item>) -> Vec<Vec<u8>> {
        let ticks_per_packet = self.session.event_clock / 50;
        self.event_sent += 1;
        let duration = (u32::from(self.event_sent) * ticks_per_packet) as u16;
        let end = self.event_sent == EVENT_PACKETS;
        let payload = rtp::event_payload(event, end, EVENT_VOLUME, duration);
        let copies = if end { 3 } else { 1 };
        let packets = (0..copies)
            .map(|_| self.packet(pt, self.event_sent == 1, self.ts, &payload))
            .collect();
        if end {
            queue.pop_front();
            self.event_sent = 0;
            self.ts = self.ts.wrapping_add(u32::from(duration));
        }
        packets
    }

    fn packet(&mut self, pt: u8, marker: bool, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + payload.len());
        Packet {
            marker,
            pt,
            seq: self.seq,
            ts,
            ssrc: self.ssrc,
            payload,
        }
        .write(&mut out);
        self.seq = self.seq.wrapping_add(1);
        out
    }
}
