//! A scripted SIP phone for integration tests: dials, talks, listens, keys DTMF, holds and
//! hangs up, with RTP and the answering of server requests running in the background.

use super::dialog::{Dialog, Outgoing, Transport};
use super::media::{Heard, Media, Session};
use super::rtp;
use super::sdp_text::{self, Direction, Sdp};
use super::sip_text::Message;
use super::transport::Link;
use chorus::media::codec::CodecKind;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// How the phone keys DTMF given in `DialOpts::pin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtmf {
    Rfc4733,
    Info,
}

#[derive(Clone, Debug)]
pub struct DialOpts {
    pub transport: Transport,
    /// Offered in this order.
    pub codecs: Vec<CodecKind>,
    /// INVITE without SDP: the server offers in its 200 and the phone answers in the ACK.
    pub late_offer: bool,
    /// Keys sent once answered, after `pin_delay`, e.g. "1234#".
    pub pin: Option<String>,
    pub pin_dtmf: Dtmf,
    pub pin_delay: Duration,
    /// User part of From and Contact.
    pub user: String,
    /// How long to wait for the final response to the INVITE.
    pub answer_timeout: Duration,
    /// The phone's address (any of 127/8 on Linux), for tests with several sources; `None`:
    /// the server's.
    pub local_ip: Option<std::net::IpAddr>,
    /// Extra INVITE headers (`X-...`), as (name, value).
    pub headers: Vec<(String, String)>,
    /// The Request-URI's host (a domain the server serves); `None`: the server's address.
    pub domain: Option<String>,
}

impl Default for DialOpts {
    fn default() -> Self {
        DialOpts {
            transport: Transport::Udp,
            codecs: vec![CodecKind::Pcmu],
            late_offer: false,
            pin: None,
            pin_dtmf: Dtmf::Rfc4733,
            pin_delay: Duration::from_millis(500),
            user: "phone".to_string(),
            answer_timeout: Duration::from_secs(10),
            local_ip: None,
            headers: Vec::new(),
            domain: None,
        }
    }
}

#[derive(Debug)]
pub enum CallError {
    /// A final response of 300 or more; the whole response, for status, reason and Warning.
    Rejected(Message),
    Timeout(&'static str),
    Io(std::io::Error),
    /// The server sent something the phone cannot use (no common codec, bad SDP...).
    Protocol(String),
}

impl CallError {
    pub fn status(&self) -> Option<u16> {
        match self {
            CallError::Rejected(response) => response.status(),
            _ => None,
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Rejected(r) => write!(
                f,
                "rejected with {:?} (Warning: {:?})",
                r.start,
                r.header("Warning")
            ),
            CallError::Timeout(what) => write!(f, "timed out waiting for {what}"),
            CallError::Io(e) => write!(f, "I/O: {e}"),
            CallError::Protocol(what) => write!(f, "protocol: {what}"),
        }
    }
}

impl std::error::Error for CallError {}

impl From<std::io::Error> for CallError {
    fn from(e: std::io::Error) -> Self {
        CallError::Io(e)
    }
}

pub type Result<T> = std::result::Result<T, CallError>;

const IN_DIALOG_TIMEOUT: Duration = Duration::from_secs(5);

/// What the background request handler and the phone share.
struct Shared {
    link: Arc<Link>,
    dialog: Mutex<Dialog>,
    media: Media,
    codecs: Vec<CodecKind>,
    state: Mutex<CallState>,
    bye: watch::Sender<bool>,
}

#[derive(Default)]
struct CallState {
    /// Bumped for every SDP the phone writes.
    sdp_version: u32,
    direction: Option<Direction>,
    /// ACKs sent, by INVITE CSeq: resent when a 2xx is retransmitted.
    acks: Vec<(u32, String)>,
    /// Every request the server sent, in order.
    requests: Vec<Message>,
}

/// The signalling half shared by a ringing call and an answered one.
struct Leg {
    shared: Arc<Shared>,
    responses: mpsc::UnboundedReceiver<Message>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Leg {
    fn drop(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

/// An INVITE sent and not yet answered.
pub struct Calling {
    leg: Leg,
    invite: Outgoing,
    opts: DialOpts,
    provisional: Vec<Message>,
}

/// An answered call.
pub struct Phone {
    leg: Leg,
    answer: Message,
}

impl Phone {
    /// Dials `number` and waits for the answer (ACKed, media running, PIN keyed if given).
    pub async fn dial(server: SocketAddr, number: &str, opts: DialOpts) -> Result<Phone> {
        Phone::call(server, number, opts).await?.answered().await
    }

    /// Sends the INVITE and returns at once, so a test can wait for ringing or CANCEL.
    pub async fn call(server: SocketAddr, number: &str, opts: DialOpts) -> Result<Calling> {
        let local_ip = opts.local_ip.unwrap_or(server.ip());
        let (link, incoming, reader) = Link::open_from(server, local_ip, opts.transport).await?;
        let media = Media::bind(link.local.ip()).await?;
        let mut dialog = Dialog::new(link.local, server, number, &opts.user, opts.transport);
        if let Some(domain) = &opts.domain {
            dialog.address_to(number, domain);
        }
        let (bye, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            link,
            dialog: Mutex::new(dialog),
            media,
            codecs: opts.codecs.clone(),
            state: Mutex::new(CallState::default()),
            bye,
        });
        let (responses_tx, responses) = mpsc::unbounded_channel();
        let dispatcher = tokio::spawn(dispatch(shared.clone(), incoming, responses_tx));
        let leg = Leg {
            shared,
            responses,
            tasks: vec![reader, dispatcher],
        };
        let offer = (!opts.late_offer).then(|| leg.shared.offer(Direction::SendRecv));
        let mut invite = leg.shared.dialog.lock().unwrap().request(
            "INVITE",
            offer.as_deref().map(|sdp| ("application/sdp", sdp)),
        );
        let extra: String = opts
            .headers
            .iter()
            .map(|(n, v)| format!("\r\n{n}: {v}"))
            .collect();
        invite.text = invite.text.replacen("\r\n", &format!("{extra}\r\n"), 1);
        leg.send(&invite.text).await?;
        Ok(Calling {
            leg,
            invite,
            opts,
            provisional: Vec::new(),
        })
    }
}

impl Calling {
    /// Waits for the next provisional response (100 Trying counts) and returns its status.
    pub async fn wait_provisional(&mut self, timeout: Duration) -> Result<u16> {
        let deadline = Instant::now() + timeout;
        let retransmit = self.provisional.is_empty();
        let response = self
            .leg
            .next_response(&self.invite, retransmit, deadline)
            .await?;
        let status = response.status().unwrap_or_default();
        if status >= 200 {
            return Err(CallError::Protocol(format!(
                "final {status} while waiting for a provisional"
            )));
        }
        self.early_media(&response);
        self.provisional.push(response);
        Ok(status)
    }

    /// Level of `freq_hz` in the early media heard over the last `window` (see
    /// [`Phone::hear_level`]).
    pub fn hear_level(&self, freq_hz: f64, window: Duration) -> f64 {
        self.leg.hear_level(freq_hz, window)
    }

    /// The provisional responses so far.
    pub fn provisional(&self) -> &[Message] {
        &self.provisional
    }

    /// Waits for the final response; a 2xx gives an answered phone.
    pub async fn answered(mut self) -> Result<Phone> {
        let deadline = Instant::now() + self.opts.answer_timeout;
        loop {
            let retransmit = self.provisional.is_empty();
            let response = self
                .leg
                .next_response(&self.invite, retransmit, deadline)
                .await?;
            match response.status().unwrap_or_default() {
                100..=199 => {
                    self.early_media(&response);
                    self.provisional.push(response);
                }
                200..=299 => return self.establish(response).await,
                _ => return Err(self.fail(response).await),
            }
        }
    }

    /// CANCELs the INVITE (after a provisional, as RFC 3261 9.1 requires) and returns the
    /// INVITE's final status: 487 normally; a call answered meanwhile is hung up.
    pub async fn cancel(mut self) -> Result<u16> {
        let deadline = Instant::now() + self.opts.answer_timeout;
        if self.provisional.is_empty() {
            let response = self.leg.next_response(&self.invite, true, deadline).await?;
            if response.status().unwrap_or_default() >= 200 {
                return self.settle(response).await;
            }
            self.provisional.push(response);
        }
        let cancel = self.leg.shared.dialog.lock().unwrap().cancel(&self.invite);
        self.leg.send(&cancel).await?;
        loop {
            let response = self
                .leg
                .next_response(&self.invite, false, deadline)
                .await?;
            if response.status().unwrap_or_default() >= 200 {
                return self.settle(response).await;
            }
        }
    }

    async fn settle(self, response: Message) -> Result<u16> {
        let status = response.status().unwrap_or_default();
        if status < 300 {
            let mut phone = self.establish(response).await?;
            phone.hangup().await?;
        } else {
            self.fail(response).await;
        }
        Ok(status)
    }

    fn early_media(&self, response: &Message) {
        if self.opts.late_offer || response.body.is_empty() {
            return;
        }
        if let Ok(sdp) = Sdp::parse(&response.body)
            && let Some(session) = session_for(&sdp, &self.opts.codecs)
        {
            self.leg.shared.media.start(session);
        }
    }

    /// ACKs a failure response and turns it into the error.
    async fn fail(&self, response: Message) -> CallError {
        let ack = self
            .leg
            .shared
            .dialog
            .lock()
            .unwrap()
            .ack_failure(&self.invite, &response);
        if let Err(e) = self.leg.send(&ack).await {
            return e;
        }
        CallError::Rejected(response)
    }

    /// The session a 2xx gives, and for a late offer the answer to put in the ACK.
    fn negotiate(&self, body: &str) -> Result<(Session, Option<String>)> {
        let sdp = Sdp::parse(body).map_err(|e| CallError::Protocol(format!("2xx SDP: {e}")))?;
        if self.opts.late_offer {
            let (session, answer) =
                self.leg.shared.answer_offer(&sdp).ok_or_else(|| {
                    CallError::Protocol("no common codec in the 2xx offer".into())
                })?;
            return Ok((session, Some(answer)));
        }
        let session = session_for(&sdp, &self.opts.codecs)
            .ok_or_else(|| CallError::Protocol("2xx answer has none of our codecs".into()))?;
        Ok((session, None))
    }

    async fn establish(self, answer: Message) -> Result<Phone> {
        let shared = self.leg.shared.clone();
        shared.dialog.lock().unwrap().establish(&answer);
        let negotiated = self.negotiate(&answer.body);
        // The 2xx is ACKed even when its SDP is unusable, so the server stops resending it.
        let ack_body = negotiated.as_ref().ok().and_then(|(_, sdp)| sdp.clone());
        let ack = shared.dialog.lock().unwrap().ack_2xx(
            self.invite.cseq,
            ack_body.as_deref().map(|sdp| ("application/sdp", sdp)),
        );
        shared.remember_ack(self.invite.cseq, &ack.text);
        self.leg.send(&ack.text).await?;
        shared.media.start(negotiated?.0);
        let mut phone = Phone {
            leg: self.leg,
            answer,
        };
        if let Some(pin) = &self.opts.pin {
            tokio::time::sleep(self.opts.pin_delay).await;
            for key in pin.chars() {
                match self.opts.pin_dtmf {
                    Dtmf::Rfc4733 => phone.send_dtmf_rfc4733(key).await?,
                    Dtmf::Info => phone.send_info_dtmf(key).await.map(drop)?,
                }
            }
        }
        Ok(phone)
    }
}

impl Phone {
    /// The 2xx that answered the INVITE.
    pub fn answer(&self) -> &Message {
        &self.answer
    }

    /// The negotiated codec, payload types and the server's RTP address.
    pub fn session(&self) -> Option<Session> {
        self.leg.shared.media.session()
    }

    /// The phone's RTP address, as offered in its SDP.
    pub fn rtp_addr(&self) -> SocketAddr {
        self.leg.shared.media.local
    }

    /// The RTP socket: after `stop_media`, a test can send its own packets from the address
    /// the server latched.
    pub fn rtp_socket(&self) -> Arc<tokio::net::UdpSocket> {
        self.leg.shared.media.socket.clone()
    }

    /// Sends `pcm` (at the codec's PCM rate) in real time; returns when it is all sent.
    pub async fn send_pcm(&self, pcm: Vec<i16>) {
        self.leg.shared.media.play(pcm).await;
    }

    /// Sends a sine at -10 dBFS for `duration`, in real time.
    pub async fn send_tone(&self, freq_hz: f64, duration: Duration) {
        let rate = self.session().map_or(8000, |s| s.codec.pcm_rate());
        self.send_pcm(tone(freq_hz, duration, rate)).await;
    }

    /// Keys one DTMF digit as RFC 4733 telephone-events (100 ms).
    pub async fn send_dtmf_rfc4733(&self, key: char) -> Result<()> {
        let event = rtp::dtmf_event(key)
            .ok_or_else(|| CallError::Protocol(format!("no DTMF key {key:?}")))?;
        if self.session().and_then(|s| s.event_pt).is_none() {
            return Err(CallError::Protocol(
                "telephone-event was not negotiated".into(),
            ));
        }
        self.leg.shared.media.dtmf(event).await;
        Ok(())
    }

    /// Keys one DTMF digit as SIP INFO (application/dtmf-relay); returns the response status.
    pub async fn send_info_dtmf(&mut self, key: char) -> Result<u16> {
        let body = format!("Signal={key}\r\nDuration=100\r\n");
        let response = self
            .leg
            .transact("INFO", Some(("application/dtmf-relay", &body)))
            .await?;
        Ok(response.status().unwrap_or_default())
    }

    /// Re-INVITE with a=sendonly; returns the direction of the server's answer (recvonly).
    pub async fn hold(&mut self) -> Result<Direction> {
        self.reinvite(Direction::SendOnly).await
    }

    /// Re-INVITE with a=sendrecv.
    pub async fn unhold(&mut self) -> Result<Direction> {
        self.reinvite(Direction::SendRecv).await
    }

    async fn reinvite(&mut self, direction: Direction) -> Result<Direction> {
        let shared = self.leg.shared.clone();
        let offer = shared.offer(direction);
        let invite = shared
            .dialog
            .lock()
            .unwrap()
            .request("INVITE", Some(("application/sdp", &offer)));
        self.leg.send(&invite.text).await?;
        let deadline = Instant::now() + IN_DIALOG_TIMEOUT;
        let mut retransmit = true;
        let response = loop {
            let response = self
                .leg
                .next_response(&invite, retransmit, deadline)
                .await?;
            if response.status().unwrap_or_default() >= 200 {
                break response;
            }
            retransmit = false;
        };
        if response.status().unwrap_or_default() >= 300 {
            let ack = shared
                .dialog
                .lock()
                .unwrap()
                .ack_failure(&invite, &response);
            self.leg.send(&ack).await?;
            return Err(CallError::Rejected(response));
        }
        let ack = shared.dialog.lock().unwrap().ack_2xx(invite.cseq, None);
        shared.remember_ack(invite.cseq, &ack.text);
        self.leg.send(&ack.text).await?;
        let sdp = Sdp::parse(&response.body)
            .map_err(|e| CallError::Protocol(format!("re-INVITE answer: {e}")))?;
        if let Some(session) = session_for(&sdp, &shared.codecs) {
            shared.media.start(session);
        }
        Ok(sdp.direction)
    }

    /// Stops sending RTP (the call stays up), as a phone whose network died would.
    pub fn stop_media(&self) {
        self.leg.shared.media.stop();
    }

    /// Pauses or resumes sending, as a phone with silence suppression does: its stream
    /// (SSRC, sequence numbers, timestamps) carries on when it resumes.
    pub fn pause_media(&self, paused: bool) {
        self.leg.shared.media.pause(paused);
    }

    /// Sends `events` RFC 4733 events in its RTP stream, each a new key, `per_tick` of
    /// them every 20 ms; returns once they are all sent.
    pub async fn flood_dtmf(&self, events: u32, per_tick: u32) -> Result<()> {
        if self.session().and_then(|s| s.event_pt).is_none() {
            return Err(CallError::Protocol(
                "telephone-event was not negotiated".into(),
            ));
        }
        self.leg.shared.media.flood(events, per_tick).await;
        Ok(())
    }

    /// Sends BYE and returns the status of its response.
    pub async fn hangup(&mut self) -> Result<u16> {
        self.leg.shared.media.stop();
        let response = self.leg.transact("BYE", None).await?;
        Ok(response.status().unwrap_or_default())
    }

    /// Waits for the server to hang up (the phone answers its BYE with 200).
    pub async fn wait_bye(&self, timeout: Duration) -> bool {
        let mut bye = self.leg.shared.bye.subscribe();
        tokio::time::timeout(timeout, bye.wait_for(|b| *b))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Every request the server sent in this call (BYE, OPTIONS, re-INVITE, ...).
    pub fn server_requests(&self) -> Vec<Message> {
        self.leg.shared.state.lock().unwrap().requests.clone()
    }

    /// What the phone has received so far: decoded audio chunks with arrival times, DTMF.
    pub fn heard(&self) -> std::sync::MutexGuard<'_, Heard> {
        self.leg.shared.media.heard()
    }

    /// Level (dB relative to a full-scale sine) of `freq_hz` in the audio received over
    /// the last `window`; about -120 when nothing arrived.
    pub fn hear_level(&self, freq_hz: f64, window: Duration) -> f64 {
        self.leg.hear_level(freq_hz, window)
    }

    /// Polls until `freq_hz` is at least `min_db` over a `window`, or `timeout` passes.
    pub async fn wait_hear(
        &self,
        freq_hz: f64,
        min_db: f64,
        window: Duration,
        timeout: Duration,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.hear_level(freq_hz, window) >= min_db {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

impl Leg {
    fn hear_level(&self, freq_hz: f64, window: Duration) -> f64 {
        let now = Instant::now();
        let (rate, pcm) = self.shared.media.heard().between(now - window, now);
        mixer::goertzel::level_db(&pcm, rate, freq_hz)
    }

    async fn send(&self, text: &str) -> Result<()> {
        Ok(self.shared.link.send(text).await?)
    }

    /// A non-INVITE request in the dialog, retransmitted over UDP until a final response.
    async fn transact(&mut self, method: &str, body: Option<(&str, &str)>) -> Result<Message> {
        let request = self.shared.dialog.lock().unwrap().request(method, body);
        self.send(&request.text).await?;
        let deadline = Instant::now() + IN_DIALOG_TIMEOUT;
        loop {
            let response = self.next_response(&request, true, deadline).await?;
            if response.status().unwrap_or_default() >= 200 {
                return Ok(response);
            }
        }
    }

    /// The next response to `request`, skipping stale ones; over UDP the request is resent
    /// with doubling intervals while `retransmit` holds and nothing has come back.
    async fn next_response(
        &mut self,
        request: &Outgoing,
        retransmit: bool,
        deadline: Instant,
    ) -> Result<Message> {
        let retransmit = retransmit && self.shared.link.transport == Transport::Udp;
        let mut interval = Duration::from_millis(500);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(CallError::Timeout("a response"));
            }
            let wait = if retransmit { interval.min(left) } else { left };
            match tokio::time::timeout(wait, self.responses.recv()).await {
                Ok(Some(response))
                    if response.cseq() == Some((request.cseq, request.method.as_str())) =>
                {
                    return Ok(response);
                }
                Ok(Some(_stale)) => {}
                Ok(None) => return Err(CallError::Protocol("connection closed".into())),
                Err(_) if retransmit => {
                    self.send(&request.text).await?;
                    interval = (interval * 2).min(Duration::from_secs(4));
                }
                Err(_) => {}
            }
        }
    }
}

impl Shared {
    /// The phone's SDP offer: all its codecs at first, the negotiated one in re-INVITEs.
    fn offer(&self, direction: Direction) -> String {
        let version = self.next_sdp_version(direction);
        match self.media.session() {
            Some(s) => {
                let events: Vec<(u8, u32)> = s
                    .event_pt
                    .map(|pt| (pt, s.event_clock))
                    .into_iter()
                    .collect();
                sdp_text::write(
                    self.media.local,
                    &[(s.codec, s.pt)],
                    &events,
                    direction,
                    version,
                )
            }
            None => sdp_text::offer(self.media.local, &self.codecs, direction, version),
        }
    }

    /// Picks the first codec of the server's offer the phone has and writes the answer.
    fn answer_offer(&self, offer: &Sdp) -> Option<(Session, String)> {
        let session = session_for(offer, &self.codecs)?;
        let direction = offer.direction.answer();
        let version = self.next_sdp_version(direction);
        let events: Vec<(u8, u32)> = session
            .event_pt
            .map(|pt| (pt, session.event_clock))
            .into_iter()
            .collect();
        let sdp = sdp_text::write(
            self.media.local,
            &[(session.codec, session.pt)],
            &events,
            direction,
            version,
        );
        Some((session, sdp))
    }

    fn next_sdp_version(&self, direction: Direction) -> u32 {
        let mut state = self.state.lock().unwrap();
        state.sdp_version += 1;
        state.direction = Some(direction);
        state.sdp_version
    }

    /// Answers what the server asks within the call.
    async fn answer_request(&self, request: Message) {
        self.state.lock().unwrap().requests.push(request.clone());
        let method = request.method().unwrap_or_default().to_string();
        let reply = match method.as_str() {
            "ACK" => {
                self.apply_answer(&request.body);
                return;
            }
            "BYE" => {
                self.media.stop();
                self.bye.send_replace(true);
                self.respond(&request, 200, "OK", None)
            }
            "INVITE" => self.answer_reinvite(&request),
            _ => self.respond(&request, 200, "OK", None),
        };
        let _ = self.link.send(&reply).await;
    }

    fn answer_reinvite(&self, request: &Message) -> String {
        if request.body.is_empty() {
            // The server asks for an offer; its answer comes in the ACK.
            let direction = self
                .state
                .lock()
                .unwrap()
                .direction
                .unwrap_or(Direction::SendRecv);
            let offer = self.offer(direction);
            return self.respond(request, 200, "OK", Some(("application/sdp", &offer)));
        }
        let answer = Sdp::parse(&request.body)
            .ok()
            .and_then(|offer| self.answer_offer(&offer));
        match answer {
            Some((session, sdp)) => {
                self.media.start(session);
                self.respond(request, 200, "OK", Some(("application/sdp", &sdp)))
            }
            None => self.respond(request, 488, "Not Acceptable Here", None),
        }
    }

    fn apply_answer(&self, body: &str) {
        if let Some(session) = Sdp::parse(body)
            .ok()
            .and_then(|sdp| session_for(&sdp, &self.codecs))
        {
            self.media.start(session);
        }
    }

    fn respond(
        &self,
        request: &Message,
        status: u16,
        reason: &str,
        body: Option<(&str, &str)>,
    ) -> String {
        self.dialog
            .lock()
            .unwrap()
            .respond(request, status, reason, body)
    }

    fn remember_ack(&self, invite_cseq: u32, ack: &str) {
        let mut state = self.state.lock().unwrap();
        state.acks.push((invite_cseq, ack.to_string()));
    }

    /// A retransmitted 2xx of an INVITE already ACKed gets the same ACK again.
    fn ack_again(&self, response: &Message) -> Option<String> {
        let (cseq, method) = response.cseq()?;
        if method != "INVITE" || response.status()? / 100 != 2 {
            return None;
        }
        let state = self.state.lock().unwrap();
        state
            .acks
            .iter()
            .find(|(n, _)| *n == cseq)
            .map(|(_, ack)| ack.clone())
    }
}

/// Routes what arrives: responses to the phone, requests answered here.
async fn dispatch(
    shared: Arc<Shared>,
    mut incoming: mpsc::UnboundedReceiver<Message>,
    responses: mpsc::UnboundedSender<Message>,
) {
    while let Some(message) = incoming.recv().await {
        if message.status().is_none() {
            shared.answer_request(message).await;
        } else if let Some(ack) = shared.ack_again(&message) {
            let _ = shared.link.send(&ack).await;
        } else if responses.send(message).is_err() {
            return;
        }
    }
}

/// The session an SDP (offer or answer) gives with the phone's codecs.
fn session_for(sdp: &Sdp, codecs: &[CodecKind]) -> Option<Session> {
    let (codec, pt) = sdp.first_codec(codecs)?;
    let event_clock = sdp_text::rtp_format(codec).1;
    Some(Session {
        remote: sdp.rtp,
        codec,
        pt,
        event_pt: sdp.telephone_event(event_clock),
        event_clock,
    })
}

/// A sine at -10 dBFS.
pub fn tone(freq_hz: f64, duration: Duration, rate: u32) -> Vec<i16> {
    let amplitude = 32767.0 * 10f64.powf(-10.0 / 20.0);
    let n = (duration.as_secs_f64() * f64::from(rate)) as usize;
    (0..n)
        .map(|i| {
            (amplitude * (std::f64::consts::TAU * freq_hz * i as f64 / f64::from(rate)).sin())
                as i16
        })
        .collect()
}
