//! The call plane's async shell: it feeds the [`CallPlane`] SIP events, worker reports, API
//! requests and the clock, and carries out its outputs: SIP actions through the SIP task,
//! commands to the media workers, store lookups, RTP port pairs, sounds and recorded names
//! on disk. Documents (API CRUD) and recording files are served here, from the store and
//! the disk, with the live state the plane reports.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use tokio::sync::{broadcast, mpsc};

use crate::api::events::ConferenceEvent;
use crate::api::metrics::Metrics;
use crate::api::service::{
    self as svc, ConfRef, ConferenceAction, DialArgs, EndpointResponse, ParticipantAction,
    RecordAction, Reply, Request, ServiceError,
};
use crate::api::webhooks::Webhooks;
use crate::cluster::focus::Event as FocusEvent;
use crate::cluster::registry as focus_registry;
use crate::conference::hook_verbs;
use crate::config::Config;
use crate::documents::{Kind, Owner};
use crate::media::ports::{PortPool, RtpSockets};
use crate::media::worker::{Command, Lobby, Report, Target, WorkerHandle};
use crate::sip::{CallId, Event, SipHandle};
use crate::sounds::library::{self, Library};
use crate::sounds::{Refused, Scope, Sounds};
use crate::storage::Uploads;
use crate::store::{DocumentWrite, Store, StoreError};

use super::answer::adhoc_doc;
use super::api::recording_dir;
use super::dial_order::{DialOrder, caller_id};
use super::dns::Dns;
use super::lookup::{self, LookedUp, StoreReader};
use super::output::{Caller, MediaCommand, Output, SipAction, Sound};
use super::plane::{CallPlane, Settings};
use super::{callflow_targets, dial_targets};

/// What the API side needs: where to publish, hooks to register, gauges to keep.
pub struct ApiLink {
    pub events: broadcast::Sender<ConferenceEvent>,
    pub webhooks: Webhooks,
    pub metrics: Arc<Metrics>,
    /// Conference recordings, a folder per conference.
    pub recordings: PathBuf,
}

/// Outbound legs one account may have ringing at once (each holds an RTP port pair).
const MAX_OUTBOUND_PER_ACCOUNT: usize = 64;
/// The focus registry task's ends (`crate::cluster::registry`), in a cluster.
pub struct FocusLink {
    pub requests: mpsc::Sender<focus_registry::Request>,
    pub events: mpsc::Receiver<FocusEvent>,
}

pub struct Calls {
    plane: CallPlane,
    sip: SipHandle,
    workers: Vec<WorkerHandle>,
    ports: PortPool,
    /// Port pairs bound for calls whose media has not entered a worker yet.
    sockets: HashMap<CallId, RtpSockets>,
    store: Arc<dyn Store>,
    /// The store reads of routing, on blocking threads.
    reader: StoreReader,
    /// Their answers. Bounded: a call has one read at a time, and only unanswered calls
    /// read, of which admission allows `sip.limits.unacked_global`.
    looked_up: (
        mpsc::UnboundedSender<LookedUp>,
        Option<mpsc::UnboundedReceiver<LookedUp>>,
    ),
    sounds: Sounds,
    /// Recorded names live here, a folder per account, until their call ends.
    names: PathBuf,
    api: ApiLink,
    /// Finished conference recordings go to HTTP storage through it, if configured.
    uploads: Option<Uploads>,
    /// Media that failed to load after its play was sent, from the tasks watching loads.
    failures: (
        mpsc::Sender<PlayFailure>,
        Option<mpsc::Receiver<PlayFailure>>,
    ),
    /// Enter and wait hook answers (the media of their verbs), from the tasks fetching
    /// them: a call has one fetch at a time, so the tasks waiting to send are bounded.
    hooks: (mpsc::Sender<HookAnswer>, Option<mpsc::Receiver<HookAnswer>>),
    /// Locates the servers of legs to host names (SRV, A/AAAA).
    dns: Arc<Dns>,
    /// Servers located (legs are bounded per account, so is this).
    resolved: (
        mpsc::UnboundedSender<Resolved>,
        Option<mpsc::UnboundedReceiver<Resolved>>,
    ),
    /// API dial requests waiting for their order's outcome (bounded: every waiting order
    /// holds at least one ringing leg).
    dials: HashMap<u64, Reply<Vec<EndpointResponse>>>,
    /// Requests to the focus registry; its events are taken by [`Calls::run`].
    registry: Option<mpsc::Sender<focus_registry::Request>>,
    focus_events: Option<mpsc::Receiver<FocusEvent>>,
}

/// A hook's answer for a call: the media of its verbs.
type HookAnswer = (CallId, Vec<String>);

/// A played sound that could not be had: where it played, which, and why.
type PlayFailure = (Target, String, String);

/// Failures waiting for the control plane; more are only logged.
const FAILURES: usize = 64;
/// Hook answers waiting for the control plane (their tasks wait when it is full).
const HOOK_ANSWERS: usize = 64;

impl Calls {
    pub fn new(
        config: &Config,
        sip: SipHandle,
        workers: Vec<WorkerHandle>,
        store: Arc<dyn Store>,
        names: PathBuf,
        api: ApiLink,
        focus: Option<FocusLink>,
    ) -> Self {
        let ip = config.sip.listen.ip();
        let settings = Settings {
            account: config.conferences.account.clone(),
            realms: config
                .conferences
                .realms
                .iter()
                .map(|(realm, account)| (realm.to_ascii_lowercase(), account.clone()))
                .collect(),
            adhoc: config.conferences.adhoc,
            service_number: Some(config.conferences.service_number.clone())
                .filter(|n| !n.is_empty()),
            workers: workers.len(),
            policy: crate::sdp::MediaPolicy {
                codecs: config.rtp.codecs.iter().map(|&c| c.into()).collect(),
                ptime_ms: config.rtp.ptime_ms,
                dtmf: true,
                opus_rate: config.rtp.opus_rate,
            },
            limits: config.rtp.leg_limits(),
            opus_complexity: config.rtp.opus_complexity,
            host: ip.to_string(),
            recordings: api.recordings.clone(),
            max_outbound: MAX_OUTBOUND_PER_ACCOUNT,
            cluster: focus.is_some(),
        };
        Calls {
            plane: CallPlane::new(settings, Instant::now(), SystemTime::now()),
            sip,
            workers,
            ports: PortPool::new(ip, config.rtp.ports.0.clone()),
            sockets: HashMap::new(),
            reader: StoreReader {
                store: Arc::clone(&store),
                media: Library::new(&config.data_dir.join("media")),
            },
            store,
            sounds: Sounds::new(
                &config.sounds,
                &config.conferences.prompts,
                &names,
                &config.data_dir.join("media"),
            ),
            names,
            looked_up: {
                let (tx, rx) = mpsc::unbounded_channel();
                (tx, Some(rx))
            },
            uploads: Uploads::start(&config.storage, &config.data_dir, &api.recordings),
            api,
            failures: {
                let (tx, rx) = mpsc::channel(FAILURES);
                (tx, Some(rx))
            },
            hooks: {
                let (tx, rx) = mpsc::channel(HOOK_ANSWERS);
                (tx, Some(rx))
            },
            dns: Arc::new(Dns::new(&config.sip.dns_servers, ip)),
            resolved: {
                let (tx, rx) = mpsc::unbounded_channel();
                (tx, Some(rx))
            },
            dials: HashMap::new(),
            registry: focus.as_ref().map(|f| f.requests.clone()),
            focus_events: focus.map(|f| f.events),
        }
    }

    /// Runs until `shutdown` fires, then hangs up every call and waits (bounded) for the
    /// BYEs to complete.
    pub async fn run(
        mut self,
        mut sip_events: mpsc::Receiver<Event>,
        mut reports: mpsc::UnboundedReceiver<Report>,
        mut requests: mpsc::Receiver<Request>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut failures = self.failures.1.take().expect("run once");
        let mut hooks = self.hooks.1.take().expect("run once");
        let mut resolved = self.resolved.1.take().expect("run once");
        let mut looked_up = self.looked_up.1.take().expect("run once");
        let mut focus_events = self.focus_events.take();
        loop {
            let timer = self.plane.poll_timeout();
            let far = Instant::now() + Duration::from_secs(86_400);
            let sleep = tokio::time::sleep_until(timer.unwrap_or(far).into());
            tokio::select! {
                Some(ev) = sip_events.recv() => self.plane.handle_sip(ev, Instant::now()),
                Some(r) = reports.recv() => {
                    if let (Report::RecordingDone { path, seconds, .. }, Some(u)) =
                        (&r, &self.uploads)
                    {
                        u.recorded(path, *seconds);
                    }
                    self.plane.handle_report(r, Instant::now());
                }
                Some(r) = requests.recv() => self.on_request(r),
                Some((target, media, error)) = failures.recv() => {
                    self.plane.handle_play_failed(target, media, error, Instant::now());
                }
                Some((id, answer)) = looked_up.recv() => {
                    self.plane.handle_store_answer(id, answer, Instant::now());
                }
                Some((call, addr)) = resolved.recv() => {
                    self.plane.handle_resolved(call, addr, Instant::now());
                }
                Some((call, media)) = hooks.recv() => {
                    self.plane.handle_hook(call, media, Instant::now());
                }
                Some(e) = recv_some(&mut focus_events) => self.plane.handle_focus(e, Instant::now()),
                () = sleep, if timer.is_some() => self.plane.handle_timeout(Instant::now()),
                () = &mut shutdown => break,
            }
            self.carry_out().await;
        }
        self.plane.hang_up_all(Instant::now());
        self.carry_out().await;
        let drain = async {
            while let Some(ev) = sip_events.recv().await {
                self.plane.handle_sip(ev, Instant::now());
                self.carry_out().await;
                if self.plane.is_idle() {
                    break;
                }
            }
        };
        // BYEs are retransmitted for up to 32 s; waiting for answers briefly is enough.
        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    }

    /// Carries out every output of the plane, feeding answers back, until it has none.
    async fn carry_out(&mut self) {
        while let Some(output) = self.plane.poll_output() {
            match output {
                Output::Sip(action) => send_sip(&self.sip, action).await,
                Output::Media { worker, command } => self.command(worker, command),
                Output::Store(request) => {
                    let (reader, tx) = (self.reader.clone(), self.looked_up.0.clone());
                    tokio::task::spawn_blocking(move || {
                        let answer = reader.lookup(&request.account, request.query);
                        let _ = tx.send((request.id, answer.map_err(|e| e.to_string())));
                    });
                }
                Output::Resolve {
                    call,
                    server,
                    protocol,
                } => {
                    let (dns, tx) = (Arc::clone(&self.dns), self.resolved.0.clone());
                    tokio::spawn(async move {
                        let _ = tx.send((call, dns.locate(&server, protocol).await));
                    });
                }
                Output::AllocatePorts { call } => {
                    let ports = self.ports.allocate(Instant::now()).map(|s| {
                        let local = s.local_addr();
                        self.sockets.insert(call, s);
                        local
                    });
                    self.plane
                        .handle_ports(call, ports.map_err(|e| e.to_string()), Instant::now());
                }
                Output::SaveName {
                    call,
                    account,
                    caller,
                    rate,
                    pcm,
                } => {
                    let path = self.save_name(call, &account, rate, &pcm);
                    if let Some(caller) = caller {
                        self.keep_name(&account, &caller, rate, &pcm);
                    }
                    self.plane.handle_name_saved(call, path, Instant::now());
                }
                Output::Prefetch {
                    media,
                    language,
                    account,
                } => {
                    let scope = Scope {
                        language: &language,
                        account: &account,
                        voice: None,
                    };
                    media.iter().for_each(|m| self.sounds.prefetch(m, scope));
                }
                // No subscriber is fine: events are for whoever listens.
                Output::Event(event) => drop(self.api.events.send(*event)),
                Output::Hook { account, id, hook } => {
                    self.api.webhooks.set(&account, &id, Some(hook));
                }
                Output::FetchHook { call, url, body } => self.fetch_hook(call, url, body),
                Output::Dialed { order, responses } => {
                    if let Some(reply) = self.dials.remove(&order) {
                        let _ = reply.send(Ok(responses));
                    }
                }
                Output::Focus(request) => self.ask_registry(request),
                Output::Released { call, name_file } => {
                    self.sockets.remove(&call);
                    if let Some(path) = name_file {
                        self.sounds.forget(std::path::Path::new(&path));
                        let _ = std::fs::remove_file(path);
                    }
                }
            }
        }
        let (conferences, members) = self.plane.gauges();
        let m = &self.api.metrics;
        m.conferences.store(conferences as u64, Ordering::Relaxed);
        m.members.store(members as u64, Ordering::Relaxed);
    }

    /// Passes a request to the focus registry; a claim it cannot take now (its queue is
    /// full) is refused at once, and a release it cannot take lapses with its TTL.
    fn ask_registry(&mut self, request: focus_registry::Request) {
        let Some(registry) = &self.registry else {
            return;
        };
        if let Err(e) = registry.try_send(request)
            && let focus_registry::Request::Claim { conf, .. } = e.into_inner()
        {
            let refused = FocusEvent::Unavailable(conf);
            self.plane.handle_focus(refused, Instant::now());
        }
    }

    fn command(&mut self, worker: usize, command: MediaCommand) {
        let Some(handle) = self.workers.get(worker) else {
            return;
        };
        let command = match command {
            MediaCommand::Do(command) => command,
            MediaCommand::Lobby {
                call,
                rtcp_mux,
                leg,
            } => {
                let Some(sockets) = self.sockets.remove(&CallId(call)) else {
                    return;
                };
                Command::Lobby(Box::new(Lobby {
                    call,
                    sockets,
                    rtcp_mux,
                    leg: *leg,
                }))
            }
            MediaCommand::Play { target, id, sound } => match self.open(&sound) {
                Some(source) => {
                    self.watch(target, &sound);
                    Command::Play {
                        target,
                        id,
                        sound: source,
                    }
                }
                None => {
                    let done = Report::PlaybackDone { id, stopped: false };
                    return self.plane.handle_report(done, Instant::now());
                }
            },
        };
        handle.send(command);
    }

    fn open(&self, sound: &Sound) -> Option<Box<dyn mixer::source::Source>> {
        let scope = Scope {
            language: &sound.language,
            account: &sound.account,
            voice: sound.voice.as_deref(),
        };
        let first = self.sounds.open(&sound.media, scope, sound.rate);
        let looping = sound.looping.as_ref();
        let music = looping.and_then(|m| self.sounds.looping(m, scope, sound.rate));
        match (first, music) {
            (first, None) => first,
            (None, music) => music,
            (Some(first), Some(music)) => {
                Some(Box::new(mixer::sound::Sequence::new(vec![first, music])))
            }
        }
    }

    /// Fetches a hook's verbs off the control plane; a failed fetch answers with no media,
    /// so the call goes on (into the conference, or waiting in silence).
    fn fetch_hook(&self, call: CallId, url: String, body: serde_json::Value) {
        let (webhooks, tx) = (self.api.webhooks.clone(), self.hooks.0.clone());
        tokio::spawn(async move {
            let media = match webhooks.fetch(&url, &body).await {
                Ok(verbs) => hook_verbs::media(&verbs),
                Err(why) => {
                    tracing::warn!(%url, "hook failed: {why}");
                    Vec::new()
                }
            };
            let _ = tx.send((call, media)).await;
        });
    }

    /// Reports the fetched or spoken sounds of `sound` that fail to load.
    fn watch(&self, target: Target, sound: &Sound) {
        let scope = Scope {
            language: &sound.language,
            account: &sound.account,
            voice: sound.voice.as_deref(),
        };
        let failed = self.sounds.failures(&sound.media, scope, sound.rate);
        let tx = self.failures.0.clone();
        tokio::spawn(async move {
            for (media, error) in failed.await {
                if tx.try_send((target, media.clone(), error)).is_err() {
                    tracing::warn!(%media, "play failure not reported: too many");
                }
            }
        });
    }

    fn save_name(&self, call: CallId, account: &str, rate: u32, pcm: &[i16]) -> Option<String> {
        let dir = self.names.join(account);
        let path = dir.join(format!("name-{}.wav", call.0));
        let written = std::fs::create_dir_all(&dir)
            .and_then(|()| crate::media::wav_writer::write_file(&path, rate, pcm));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "cannot keep the recorded name");
            return None;
        }
        Some(path.to_string_lossy().into_owned())
    }

    /// Keeps a recorded name as the caller's `play_name` media document (one per owner,
    /// replaced by a new recording), so their next call announces it without asking.
    fn keep_name(&self, account: &str, caller: &Caller, rate: u32, pcm: &[i16]) {
        let kept = || -> Result<(), String> {
            let id = match self.reader.kept_name_doc(account, caller) {
                Some(id) => id,
                None => {
                    let doc = json!({
                        "name": format!("play_name {}@{}", caller.user, caller.host),
                        "media_source": "recording",
                        "source_type": lookup::PLAY_NAME,
                        "owner_id": self.reader.name_owner(account, caller),
                    });
                    let write = DocumentWrite::Create(doc);
                    let owner = Owner::Account(account);
                    let saved = self
                        .store
                        .write_document(owner, Kind::Media, None, write, None);
                    saved.map_err(|e| e.to_string())?.id
                }
            };
            let pcm = mixer::wav::Pcm::from_samples(pcm, rate, library::RATE)
                .map_err(|e| e.to_string())?;
            let wav = crate::media::wav_writer::wav_bytes(library::RATE, pcm.samples())
                .map_err(|e| e.to_string())?;
            self.reader
                .media
                .save(account, &id, &wav)
                .map_err(|e| e.to_string())?;
            Ok(())
        };
        if let Err(e) = kept() {
            tracing::warn!(error = %e, "cannot keep the recorded name for next time");
        }
    }

    fn on_request(&mut self, request: Request) {
        let now = Instant::now();
        match request {
            Request::List { account, reply } => {
                let _ = reply.send(self.list(&account));
            }
            Request::Get { conf, reply } => {
                let _ = reply.send(Ok(self.get(&conf)));
            }
            Request::Create {
                account,
                doc,
                reply,
            } => {
                let r = self.store.create_conference(&account, None, doc);
                let _ = reply.send(r.map(|c| c.doc.to_api(&c.id)).map_err(store_error));
            }
            Request::Replace { conf, doc, reply } => {
                let r = self
                    .store
                    .replace_conference(&conf.account, &conf.id, doc, None);
                let _ = reply.send(r.map(|c| c.doc.to_api(&c.id)).map_err(store_error));
            }
            Request::Patch { conf, patch, reply } => {
                let r = self
                    .store
                    .patch_conference(&conf.account, &conf.id, &patch, None);
                let _ = reply.send(r.map(|c| c.doc.to_api(&c.id)).map_err(store_error));
            }
            Request::Delete { conf, reply } => {
                let r = self.store.delete_conference(&conf.account, &conf.id, None);
                let _ = reply.send(r.map(|c| c.doc.to_api(&c.id)).map_err(store_error));
            }
            Request::Conference {
                conf,
                action,
                reply,
            } => {
                let r = self
                    .prepare_conference_action(&conf, &action)
                    .and_then(|()| self.plane.conference_action(&conf, action, now));
                let _ = reply.send(r);
            }
            Request::Participants {
                conf,
                target,
                action,
                reply,
            } => {
                let checked = match &action {
                    ParticipantAction::Play { media_id } => self.check_media(&conf, media_id),
                    _ => Ok(()),
                };
                let r = checked
                    .and_then(|()| self.plane.participant_action(&conf, target, action, now));
                let _ = reply.send(r);
            }
            Request::Relate {
                conf,
                relate,
                reply,
            } => {
                let _ = reply.send(self.plane.relate(&conf, relate));
            }
            Request::Recordings { conf, reply } => {
                let _ = reply.send(Ok(self.recordings(&conf)));
            }
            Request::Recording { conf, name, reply } => {
                let path = recording_dir(&self.api.recordings, &conf).join(&name);
                let found = path.is_file().then_some(path);
                let _ = reply.send(found.ok_or(ServiceError::NotFound(name)));
            }
            Request::Dial { conf, dial, reply } => match self.dial_order(conf, dial) {
                Ok(order) => {
                    let id = self.plane.dial(order, now);
                    self.dials.insert(id, reply);
                }
                Err(e) => drop(reply.send(Err(e))),
            },
        }
    }

    /// A dial with its endpoints resolved, and the document and config the conference
    /// opens with if the first answer finds it closed.
    fn dial_order(&self, conf: ConfRef, dial: DialArgs) -> Result<DialOrder, ServiceError> {
        let wall = SystemTime::now();
        let callflow =
            |number: &str| callflow_targets::resolve(&*self.store, &conf.account, number, wall);
        let endpoints = dial_targets::resolve(&*self.store, &conf, &dial, wall, &callflow)?;
        let doc = match self.store.get_conference(&conf.account, &conf.id) {
            Ok(c) => c.doc,
            Err(StoreError::NotFound(_)) => adhoc_doc(&conf.id),
            Err(e) => return Err(store_error(e)),
        };
        let config = self
            .store
            .conferences_config(&conf.account)
            .map_err(store_error)?;
        let (caller_id_name, caller_id_number) = caller_id(&dial, &conf, &doc, &config);
        Ok(DialOrder {
            caller_id_name,
            caller_id_number,
            conf,
            doc,
            config,
            endpoints,
            timeout: dial.timeout,
            flags: dial.flags,
            outbound_call_id: dial.outbound_call_id,
        })
    }

    /// What a conference action needs from the world first: its media checked, its
    /// recording folder made.
    fn prepare_conference_action(
        &self,
        conf: &ConfRef,
        action: &ConferenceAction,
    ) -> Result<(), ServiceError> {
        self.plane.live_of(conf)?;
        match action {
            ConferenceAction::Play { media_id } => self.check_media(conf, media_id),
            ConferenceAction::Record(RecordAction::Start) => {
                let dir = recording_dir(&self.api.recordings, conf);
                std::fs::create_dir_all(&dir).map_err(|_| ServiceError::Unavailable)
            }
            _ => Ok(()),
        }
    }

    /// Whether `media` may play in the conference: a refused source is a validation error
    /// naming the field, a prompt or file that is not there is not found.
    fn check_media(&self, conf: &ConfRef, media: &str) -> Result<(), ServiceError> {
        let profile = &self.plane.live_of(conf)?.profile;
        let scope = Scope {
            language: &profile.language,
            account: &conf.account,
            voice: profile.tts_voice(),
        };
        match self.sounds.resolve(media, scope) {
            Ok(Some(_)) => Ok(()),
            Ok(None) | Err(Refused::Missing) => Err(ServiceError::NotFound(media.into())),
            Err(Refused::Invalid(message)) => Err(ServiceError::Validation(json!({
                "data.media_id": {"media": {"message": message, "value": media}}
            }))),
        }
    }

    fn list(&self, account: &str) -> Result<Vec<svc::Conference>, ServiceError> {
        let docs = self.store.list_conferences(account).map_err(store_error)?;
        Ok(docs
            .into_iter()
            .map(|c| svc::Conference {
                live: self.plane.live_state(account, &c.id),
                doc: c.doc.to_api(&c.id),
            })
            .collect())
    }

    /// Kazoo answers an unknown id with a synthetic ad-hoc document, not a 404.
    fn get(&self, conf: &ConfRef) -> svc::Conference {
        let doc = match self.store.get_conference(&conf.account, &conf.id) {
            Ok(c) => c.doc.to_api(&c.id),
            Err(_) => json!({"id": conf.id, "name": conf.id}),
        };
        svc::Conference {
            doc,
            live: self.plane.live_state(&conf.account, &conf.id),
        }
    }

    fn recordings(&self, conf: &ConfRef) -> Vec<svc::Recording> {
        let Ok(dir) = std::fs::read_dir(recording_dir(&self.api.recordings, conf)) else {
            return Vec::new();
        };
        dir.filter_map(Result::ok)
            .filter_map(|e| {
                let meta = e.metadata().ok().filter(std::fs::Metadata::is_file)?;
                Some(svc::Recording {
                    name: e.file_name().to_string_lossy().into_owned(),
                    bytes: meta.len(),
                    created: meta.modified().ok()?,
                })
            })
            .collect()
    }
}

/// A leg's server addresses in the order they are tried, or why it has none.
type Resolved = (CallId, Result<Vec<SocketAddr>, String>);

/// The next message of a channel that may be absent (then never).
async fn recv_some<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Sends a SIP action through the SIP task (only the handle is borrowed across the await:
/// the plane's queued outputs need not be `Sync`).
async fn send_sip(sip: &SipHandle, action: SipAction) {
    let result = match action {
        SipAction::Respond {
            call,
            reinvite: false,
            status,
            reason,
            body,
        } => sip.respond(call, status, reason, body).await,
        SipAction::Respond {
            call,
            reinvite: true,
            status,
            reason,
            body,
        } => sip.respond_reinvite(call, status, reason, body).await,
        SipAction::Reject {
            call,
            reinvite,
            status,
            reason,
            headers,
        } => sip.reject(call, reinvite, status, reason, headers).await,
        SipAction::Bye { call } => sip.bye(call).await,
        SipAction::Invite(dial) => sip.invite(*dial).await.map(drop),
        SipAction::Cancel { call } => sip.cancel(call).await,
    };
    if let Err(e) = result {
        tracing::debug!(error = ?e, "SIP");
    }
}

fn store_error(e: StoreError) -> ServiceError {
    match e {
        StoreError::NotFound(id) => ServiceError::NotFound(id),
        StoreError::Invalid(v) => ServiceError::Validation(v.to_json()),
        StoreError::Exists(id) => ServiceError::Validation(
            json!({"id": {"unique": {"message": "Conference already exists", "cause": id}}}),
        ),
        StoreError::Conflict { expected, stored } => ServiceError::Validation(json!({
            "revision": {"conflict": {"message": "Revision conflict", "value": expected, "target": stored}}
        })),
        e => {
            tracing::error!(error = %e, "store");
            ServiceError::Unavailable
        }
    }
}
