//! Inner mixing loops: wide accumulation and a soft limiter.
//!
//! Sums are accumulated in i32 so they never wrap (i32 holds 65 535
//! full-scale talkers; the ops wrap rather than panic beyond that). Every output mix is
//! limited on its own from its own wide sum, so clipping in one mix (say
//! the listeners' full mix) cannot distort another (a talker's N-1 mix).
//!
//! The limiter is a memoryless soft knee: samples up to [`KNEE`] pass
//! unchanged; above it the excess `e` follows `e - e²/(4R)` until it
//! reaches the remaining headroom `R` at `e = 2R`, then stays at full
//! scale. That curve is continuous with slope 1 at the knee and slope 0 at
//! the ceiling, monotonic, and needs no division, so it vectorizes. Being
//! memoryless, it needs no per-mix state: mixes may come and go each tick.

/// Level where soft limiting starts (-2.5 dBFS), chosen so `4R = 2^15`.
pub const KNEE: i32 = 24575;
const ROOM: i32 = i16::MAX as i32 - KNEE;

/// The soft knee in branch-free i32 arithmetic, so every loop over it
/// vectorizes and no below-knee fast path is needed (it is exact there).
#[inline(always)]
fn soft(x: i32) -> i16 {
    // `unsigned_abs` is one instruction (saturating_abs is five) and needs
    // no special case: |i32::MIN| is above the ceiling too.
    let a = x.unsigned_abs().min((KNEE + 2 * ROOM) as u32) as i32;
    let e = (a - KNEE).max(0);
    // `a` is the knee plus the excess `e` (or below it, with `e` = 0).
    let mag = a - ((e * e) >> 15);
    (if x < 0 { -mag } else { mag }) as i16
}

/// `dst = limit(src)`.
pub fn limit(src: &[i32], dst: &mut [i16]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = soft(*s);
    }
}

/// Runs `f` compiled for AVX2 when the CPU has it, for the loops that run
/// once per talker (the sum and the N-1 mixes): twice the lanes of
/// baseline x86-64. `f` must be a closure over `#[inline(always)]` loops so
/// it is compiled inside the AVX2 function.
#[inline(always)]
fn wide(f: impl FnOnce()) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        fn avx2(f: impl FnOnce()) {
            f()
        }
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { avx2(f) };
    }
    f()
}

/// `dst = limit(acc - own)`: a talker's N-1 mix in one pass.
pub fn limit_minus(acc: &[i32], own: &[i16], dst: &mut [i16]) {
    wide(|| limit_minus_portable(acc, own, dst));
}

#[inline(always)]
fn limit_minus_portable(acc: &[i32], own: &[i16], dst: &mut [i16]) {
    for ((d, a), o) in dst.iter_mut().zip(acc).zip(own) {
        *d = soft(a.wrapping_sub(*o as i32));
    }
}

/// A frame given in place as runs of samples at their offsets in it; the
/// rest of the frame is silence.
pub type Runs<'a> = [(usize, &'a [i16]); 2];

/// [`limit_minus`] with `own` given as runs: one pass over `dst`, with no
/// copy of `own` into a frame buffer first.
pub fn limit_minus_runs(acc: &[i32], own: Runs<'_>, dst: &mut [i16]) {
    let mut pos = 0;
    for (at, run) in own {
        let end = at + run.len();
        limit(&acc[pos..at], &mut dst[pos..at]);
        limit_minus(&acc[at..end], run, &mut dst[at..end]);
        pos = end;
    }
    limit(&acc[pos..], &mut dst[pos..]);
}

/// `dst = limit(src * gain)` for a listen volume applied to a shared mix.
pub fn limit_scaled(src: &[i16], gain: f32, dst: &mut [i16]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = soft((*s as f32 * gain) as i32);
    }
}

/// `acc += src`.
pub fn add<T: Copy + Into<i32>>(acc: &mut [i32], src: &[T]) {
    wide(|| add_portable(acc, src));
}

#[inline(always)]
fn add_portable<T: Copy + Into<i32>>(acc: &mut [i32], src: &[T]) {
    for (a, s) in acc.iter_mut().zip(src) {
        *a = a.wrapping_add((*s).into());
    }
}

/// `acc -= src`.
pub fn sub(acc: &mut [i32], src: &[i16]) {
    for (a, s) in acc.iter_mut().zip(src) {
        *a = a.wrapping_sub(*s as i32);
    }
}

/// `acc *= gain`.
pub fn scale(acc: &mut [i32], gain: f32) {
    for a in acc.iter_mut() {
        *a = (*a as f32 * gain) as i32;
    }
}

/// `pcm *= gain`, saturating (FreeSWITCH's input volume).
pub fn scale_pcm(pcm: &mut [i16], gain: f32) {
    for s in pcm.iter_mut() {
        *s = (*s as f32 * gain).clamp(i16::MIN as f32, i16::MAX as f32) as i16;
    }
}

/// FreeSWITCH's volume step table (`switch_change_sln_volume`): steps
/// -4..=4, clamped.
pub fn volume_gain(step: i8) -> f32 {
    const UP: [f32; 4] = [1.3, 2.3, 3.3, 4.3];
    const DOWN: [f32; 4] = [0.8, 0.6, 0.4, 0.2];
    let i = (step.unsigned_abs().min(4) as usize).saturating_sub(1);
    match step {
        0 => 1.0,
        s if s > 0 => UP[i],
        _ => DOWN[i],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_knee_is_exact_and_above_is_monotonic_and_bounded() {
        let src: Vec<i32> = (-400_000..400_000).step_by(97).collect();
        let mut dst = vec![0; src.len()];
        limit(&src, &mut dst);
        for (s, d) in src.iter().zip(&dst) {
            if s.abs() <= KNEE {
                assert_eq!(*s, *d as i32);
            }
            assert_eq!(s.signum(), (*d as i32).signum(), "{s} wrapped to {d}");
        }
        assert!(dst.windows(2).all(|w| w[0] <= w[1]));
        assert!(dst.iter().all(|d| *d != i16::MIN));
        let knee_slope = soft(KNEE + 100) as i32 - soft(KNEE) as i32;
        assert!((99..=100).contains(&knee_slope), "smooth at the knee");
    }

    #[test]
    fn n_minus_one_subtracts_before_limiting() {
        let acc = [3 * 30000, -3 * 30000];
        let own = [30000, -30000];
        let mut dst = [0; 2];
        limit_minus(&acc, &own, &mut dst);
        assert!(dst[0] > KNEE as i16 && dst[1] < -KNEE as i16);
    }

    #[test]
    fn volume_steps_match_freeswitch() {
        assert_eq!(volume_gain(0), 1.0);
        assert_eq!(volume_gain(1), 1.3);
        assert_eq!(volume_gain(-4), 0.2);
        assert_eq!(volume_gain(9), 4.3);
        assert_eq!(volume_gain(i8::MIN), 0.2);
    }
}
