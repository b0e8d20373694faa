//! Running many conferences on a few threads from one timer.
//!
//! [`Scheduler`] is sans-IO: it holds conferences, says when the next one is
//! due ([`Scheduler::poll_timeout`]) and ticks the due ones
//! ([`Scheduler::run_due`]). Each conference keeps its own grid: the next
//! deadline is the previous deadline plus the interval, never "now plus
//! interval", so nothing drifts. An idle conference (no members, no
//! playback) is not scheduled at all and costs nothing.
//!
//! [`Driver`] owns a few threads, each with a `Scheduler`; the embedder
//! talks to it over crossbeam channels and hooks in through [`Hooks`].
//! Only the driver threads read the clock.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::conference::Conference;
use crate::events::Event;
use crate::output::TickOutput;
use crate::profile::Profile;

/// Ticks a late conference runs back to back before it skips missed ones.
pub const MAX_CATCH_UP: u32 = 5;

/// The embedder's id for a conference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConferenceId(pub u64);

/// Called around every tick: feed inputs before, encode and send after.
pub trait TickHandler {
    fn before_tick(&mut self, _id: ConferenceId, _conf: &mut Conference) {}
    fn after_tick(&mut self, id: ConferenceId, conf: &mut Conference, out: &TickOutput);
}

impl<F: FnMut(ConferenceId, &mut Conference, &TickOutput)> TickHandler for F {
    fn after_tick(&mut self, id: ConferenceId, conf: &mut Conference, out: &TickOutput) {
        self(id, conf, out)
    }
}

struct Entry {
    conf: Conference,
    out: TickOutput,
    deadline: Option<Instant>,
    generation: u64,
}

/// Conferences and their deadlines; see the module docs.
#[derive(Default)]
pub struct Scheduler {
    entries: HashMap<ConferenceId, Entry>,
    /// Deadlines; entries whose generation no longer matches are stale.
    queue: BinaryHeap<Reverse<(Instant, ConferenceId, u64)>>,
}

impl Scheduler {
    pub fn new() -> Self {
        Scheduler::default()
    }

    /// Adds (or replaces) a conference; it is due at `now` unless idle.
    pub fn insert(&mut self, id: ConferenceId, conf: Conference, now: Instant) {
        let entry = Entry {
            conf,
            out: TickOutput::default(),
            deadline: None,
            generation: 0,
        };
        let generation = self.entries.get(&id).map_or(0, |e| e.generation + 1);
        self.entries.insert(
            id,
            Entry {
                generation,
                ..entry
            },
        );
        self.wake(id, now);
    }

    pub fn remove(&mut self, id: ConferenceId) -> Option<Conference> {
        self.entries.remove(&id).map(|e| e.conf)
    }

    pub fn get(&self, id: ConferenceId) -> Option<&Conference> {
        self.entries.get(&id).map(|e| &e.conf)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Runs `f` on a conference (member ops, play...), scheduling it from
    /// `now` if that made an idle conference active.
    pub fn update<R>(
        &mut self,
        id: ConferenceId,
        now: Instant,
        f: impl FnOnce(&mut Conference) -> R,
    ) -> Option<R> {
        let r = f(&mut self.entries.get_mut(&id)?.conf);
        self.wake(id, now);
        Some(r)
    }

    /// When the next conference is due; `None` when all are idle.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, id, generation))) = self.queue.peek().copied() {
            if self.is_current(id, generation, at) {
                return Some(at);
            }
            self.queue.pop();
        }
        None
    }

    /// Ticks every conference due by `now`, catching up at most
    /// [`MAX_CATCH_UP`] missed ticks each (older ones are skipped, on grid).
    pub fn run_due(&mut self, now: Instant, handler: &mut impl TickHandler) {
        while let Some(Reverse((at, id, generation))) = self.queue.peek().copied() {
            if at > now {
                break;
            }
            self.queue.pop();
            if !self.is_current(id, generation, at) {
                continue;
            }
            if let Some(e) = self.entries.get_mut(&id) {
                let next = run_entry(id, e, at, now, handler);
                e.deadline = next;
                if let Some(t) = next {
                    self.queue.push(Reverse((t, id, e.generation)));
                }
            }
        }
    }

    fn is_current(&self, id: ConferenceId, generation: u64, at: Instant) -> bool {
        self.entries
            .get(&id)
            .is_some_and(|e| e.generation == generation && e.deadline == Some(at))
    }

    fn wake(&mut self, id: ConferenceId, now: Instant) {
        if let Some(e) = self.entries.get_mut(&id)
            && e.deadline.is_none()
            && !e.conf.is_idle()
        {
            e.deadline = Some(now);
            self.queue.push(Reverse((now, id, e.generation)));
        }
    }
}

/// Ticks one conference from deadline `at` up to `now`; returns its next
/// deadline, or `None` once it is idle.
fn run_entry(
    id: ConferenceId,
    e: &mut Entry,
    mut at: Instant,
    now: Instant,
    handler: &mut impl TickHandler,
) -> Option<Instant> {
    let interval = e.conf.profile().interval();
    let missed = (now - at).as_nanos() / interval.as_nanos().max(1);
    if missed > MAX_CATCH_UP as u128 {
        at += interval * (missed - MAX_CATCH_UP as u128) as u32;
    }
    while at <= now && !e.conf.is_idle() {
        handler.before_tick(id, &mut e.conf);
        e.conf.tick_into(at, &mut e.out);
        handler.after_tick(id, &mut e.conf, &e.out);
        at += interval;
    }
    (!e.conf.is_idle()).then_some(at)
}

type ConferenceFn = Box<dyn FnOnce(&mut Conference) + Send>;

enum Command {
    Create(ConferenceId, Box<Profile>),
    Destroy(ConferenceId),
    With(ConferenceId, ConferenceFn),
    Shutdown,
}

/// Lets [`Hooks::wait`] sleep until the next tick or the next command.
pub struct Inbox<'a> {
    rx: &'a Receiver<Command>,
    pending: &'a mut Vec<Command>,
}

impl Inbox<'_> {
    /// Blocks until `deadline` (forever if `None`) or a command arrives.
    pub fn wait(&mut self, deadline: Option<Instant>) {
        let got = match deadline {
            Some(d) => self.rx.recv_deadline(d),
            None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match got {
            Ok(cmd) => self.pending.push(cmd),
            Err(RecvTimeoutError::Disconnected) => self.pending.push(Command::Shutdown),
            Err(RecvTimeoutError::Timeout) => {}
        }
    }

    /// Whether commands are waiting (for a `wait` that polls sockets).
    pub fn has_commands(&self) -> bool {
        !self.pending.is_empty() || !self.rx.is_empty()
    }
}

/// The embedder's side of a driver thread.
pub trait Hooks: TickHandler + Send + 'static {
    /// Waits until `deadline`; a server polls its sockets here. The default
    /// sleeps on the command queue, waking early for commands.
    fn wait(&mut self, deadline: Option<Instant>, inbox: &mut Inbox<'_>) {
        inbox.wait(deadline);
    }
}

/// Forwards each conference's events after every tick and command.
struct Forward<'a, H> {
    hooks: &'a mut H,
    events: &'a Sender<(ConferenceId, Event)>,
}

impl<H: Hooks> TickHandler for Forward<'_, H> {
    fn before_tick(&mut self, id: ConferenceId, conf: &mut Conference) {
        self.hooks.before_tick(id, conf);
    }

    fn after_tick(&mut self, id: ConferenceId, conf: &mut Conference, out: &TickOutput) {
        self.hooks.after_tick(id, conf, out);
        forward_events(id, conf, self.events);
    }
}

fn forward_events(id: ConferenceId, conf: &mut Conference, events: &Sender<(ConferenceId, Event)>) {
    while let Some(ev) = conf.poll_event() {
        // A dropped receiver means nobody listens; the mixer goes on.
        let _ = events.send((id, ev));
    }
}

/// Conferences spread over a few threads (by id), driven by the clock.
pub struct Driver {
    commands: Vec<Sender<Command>>,
    threads: Vec<JoinHandle<()>>,
    events: Receiver<(ConferenceId, Event)>,
}

impl Driver {
    /// Starts `threads` (at least 1) threads, each with hooks from `hooks(i)`.
    pub fn start<H: Hooks>(threads: usize, hooks: impl Fn(usize) -> H) -> std::io::Result<Driver> {
        let (ev_tx, events) = crossbeam_channel::unbounded();
        let mut driver = Driver {
            commands: Vec::new(),
            threads: Vec::new(),
            events,
        };
        for i in 0..threads.max(1) {
            let (tx, rx) = crossbeam_channel::unbounded();
            let (h, ev_tx) = (hooks(i), ev_tx.clone());
            let thread = std::thread::Builder::new()
                .name(format!("mixer-{i}"))
                .spawn(move || run_thread(rx, h, ev_tx))?;
            driver.commands.push(tx);
            driver.threads.push(thread);
        }
        Ok(driver)
    }

    /// Events of all conferences, tagged with their id.
    pub fn events(&self) -> &Receiver<(ConferenceId, Event)> {
        &self.events
    }

    pub fn create(&self, id: ConferenceId, profile: Profile) {
        self.send(id, Command::Create(id, Box::new(profile)));
    }

    pub fn destroy(&self, id: ConferenceId) {
        self.send(id, Command::Destroy(id));
    }

    /// Runs `f` on the conference's thread (add members, play, ...);
    /// results go back through channels `f` captures.
    pub fn with(&self, id: ConferenceId, f: impl FnOnce(&mut Conference) + Send + 'static) {
        self.send(id, Command::With(id, Box::new(f)));
    }

    fn send(&self, id: ConferenceId, cmd: Command) {
        let n = self.commands.len() as u64;
        // A stopped thread has nothing left to do with the command.
        let _ = self.commands[(id.0 % n) as usize].send(cmd);
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        for tx in &self.commands {
            let _ = tx.send(Command::Shutdown);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn run_thread<H: Hooks>(
    rx: Receiver<Command>,
    mut hooks: H,
    events: Sender<(ConferenceId, Event)>,
) {
    let mut sched = Scheduler::new();
    let mut pending = Vec::new();
    loop {
        pending.extend(rx.try_iter());
        let now = Instant::now();
        for cmd in pending.drain(..) {
            match cmd {
                Command::Shutdown => return,
                Command::Create(id, profile) => sched.insert(id, Conference::new(*profile), now),
                Command::Destroy(id) => {
                    sched.remove(id);
                }
                Command::With(id, f) => {
                    sched.update(id, now, |c| {
                        f(c);
                        forward_events(id, c, &events);
                    });
                }
            }
        }
        let mut forward = Forward {
            hooks: &mut hooks,
            events: &events,
        };
        sched.run_due(Instant::now(), &mut forward);
        let deadline = sched.poll_timeout();
        hooks.wait(
            deadline,
            &mut Inbox {
                rx: &rx,
                pending: &mut pending,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::MemberConfig;
    use std::time::Duration;

    fn conference() -> Conference {
        Conference::new(Profile::page())
    }

    const MS20: Duration = Duration::from_millis(20);

    #[test]
    fn an_idle_conference_is_not_scheduled() {
        let mut s = Scheduler::new();
        let t0 = Instant::now();
        s.insert(ConferenceId(1), conference(), t0);
        assert_eq!(s.poll_timeout(), None);
        let mut ticks = 0;
        s.run_due(
            t0 + MS20 * 10,
            &mut |_: ConferenceId, _: &mut Conference, _: &TickOutput| ticks += 1,
        );
        assert_eq!(ticks, 0);
    }

    #[test]
    fn ticks_stay_on_the_grid_and_stop_when_idle() {
        let mut s = Scheduler::new();
        let t0 = Instant::now();
        let id = ConferenceId(7);
        s.insert(id, conference(), t0);
        let m = s.update(id, t0, |c| c.add_member(MemberConfig::default()).unwrap().0);
        assert_eq!(s.poll_timeout(), Some(t0));
        let at = std::cell::RefCell::new(Vec::new());
        let mut record = |_: ConferenceId, c: &mut Conference, out: &TickOutput| {
            at.borrow_mut().push(c.last_tick().unwrap());
            assert_eq!(out.routes().len(), 1);
        };
        // Woken late (3.5 intervals): catches up on grid, no drift.
        s.run_due(t0 + MS20 * 7 / 2, &mut record);
        s.run_due(t0 + MS20 * 4 + Duration::from_millis(3), &mut record);
        assert_eq!(
            *at.borrow(),
            (0..5).map(|k| t0 + MS20 * k).collect::<Vec<_>>()
        );
        assert_eq!(s.poll_timeout(), Some(t0 + MS20 * 5));
        s.update(id, t0, |c| c.remove_member(m.unwrap()).unwrap());
        s.run_due(t0 + MS20 * 5, &mut record);
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn a_long_stall_skips_missed_ticks_on_grid() {
        let mut s = Scheduler::new();
        let t0 = Instant::now();
        let id = ConferenceId(1);
        s.insert(id, conference(), t0);
        let _input = s.update(id, t0, |c| c.add_member(MemberConfig::default()));
        let mut n = 0;
        s.run_due(
            t0 + MS20 * 100,
            &mut |_: ConferenceId, _: &mut Conference, _: &TickOutput| n += 1,
        );
        assert_eq!(n, MAX_CATCH_UP + 1);
        assert_eq!(s.poll_timeout(), Some(t0 + MS20 * 101));
    }

    struct Probe(Sender<usize>);

    impl TickHandler for Probe {
        fn after_tick(&mut self, _: ConferenceId, _: &mut Conference, out: &TickOutput) {
            let _ = self.0.send(out.routes().len());
        }
    }

    impl Hooks for Probe {}

    #[test]
    fn the_driver_runs_conferences_and_forwards_events() {
        let (tick_tx, ticks) = crossbeam_channel::unbounded();
        let driver = Driver::start(2, |_| Probe(tick_tx.clone())).unwrap();
        let id = ConferenceId(3);
        driver.create(id, Profile::page());
        let (in_tx, inputs) = crossbeam_channel::bounded(1);
        driver.with(id, move |c| {
            let _ = in_tx.send(c.add_member(MemberConfig {
                rate: 8000,
                ..MemberConfig::default()
            }));
        });
        let (member, mut input) = inputs
            .recv_timeout(Duration::from_secs(2))
            .unwrap()
            .unwrap();
        input.push(&[3000; 160 * 4]);
        let (cid, ev) = driver
            .events()
            .recv_timeout(Duration::from_secs(2))
            .unwrap();
        assert_eq!(cid, id);
        assert!(matches!(ev, Event::StartTalking { member: m, .. } if m == member));
        assert_eq!(ticks.recv_timeout(Duration::from_secs(2)).unwrap(), 1);
        driver.with(id, move |c| {
            let _ = c.remove_member(member);
        });
        let (_, ev) = driver
            .events()
            .recv_timeout(Duration::from_secs(2))
            .unwrap();
        assert!(matches!(ev, Event::StopTalking { .. }));
    }
}
