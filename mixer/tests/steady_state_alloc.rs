//! A conference in steady state allocates nothing per tick.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;

use mixer::{Conference, MemberConfig, MemberFlags, PlaybackId, PlaybackTarget, Profile, Relation};

struct Counting;

// Per thread: the tests run in parallel.
thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.with(|a| a.get()) {
            ALLOCS.with(|n| n.set(n.get() + 1));
        }
        // SAFETY: forwards the caller's layout contract to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct Endless;

impl mixer::source::Source for Endless {
    fn fill(&mut self, out: &mut [i16]) -> usize {
        out.fill(100);
        out.len()
    }
}

/// Six members at `rates` in a 48 kHz profile: talkers, a relation, a
/// listen volume, a deaf member, member and conference playback.
fn allocates_nothing_in_steady_state(rates: [u32; 6], mix_rate: u32) {
    let mut c = Conference::new(Profile::default());
    let cfg = |rate| MemberConfig {
        rate,
        ..MemberConfig::default()
    };
    let mut inputs = Vec::new();
    for rate in rates {
        inputs.push(c.add_member(cfg(rate)).unwrap());
    }
    let (a, b) = (inputs[0].0, inputs[2].0);
    c.relate(
        a,
        b,
        Relation {
            hear: false,
            speak: true,
        },
    )
    .unwrap();
    c.set_listen_volume(inputs[4].0, 2).unwrap();
    let deaf = MemberFlags {
        hear: false,
        ..MemberFlags::default()
    };
    c.set_flags(inputs[5].0, deaf).unwrap();
    c.play(
        PlaybackId(1),
        PlaybackTarget::Member(inputs[3].0),
        Box::new(Endless),
    )
    .unwrap();
    c.play(PlaybackId(2), PlaybackTarget::All, Box::new(Endless))
        .unwrap();
    assert_eq!(c.mix_rate(), mix_rate);
    let frames: Vec<Vec<i16>> = rates
        .iter()
        .map(|r| vec![3000; c.profile().frame_len_at(*r)])
        .collect();
    let now = Instant::now();
    let mut run = |c: &mut Conference, ticks: usize| {
        for _ in 0..ticks {
            for ((_, input), f) in inputs.iter_mut().zip(&frames).take(3) {
                input.push(f);
            }
            ARMED.with(|a| a.set(true));
            let routes = c.tick(now).routes().len();
            ARMED.with(|a| a.set(false));
            assert_eq!(routes, 5);
        }
    };
    run(&mut c, 5);
    while c.poll_event().is_some() {}
    assert!(
        ALLOCS.with(|n| n.get()) > 0,
        "the first ticks build the buffers"
    );
    ALLOCS.with(|n| n.set(0));
    run(&mut c, 50);
    assert_eq!(ALLOCS.with(|n| n.get()), 0);
}

#[test]
fn ticking_allocates_nothing_in_steady_state() {
    allocates_nothing_in_steady_state([48000, 48000, 8000, 16000, 48000, 8000], 48000);
}

#[test]
fn ticking_below_the_profile_rate_allocates_nothing() {
    // Playback is resampled from the profile rate to the 8 kHz mix.
    allocates_nothing_in_steady_state([8000; 6], 8000);
}
