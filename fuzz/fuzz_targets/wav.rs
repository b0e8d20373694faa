//! The WAV reader (`mixer::wav`): any file contents decode to bounded mono PCM at the asked
//! rate or give an error; none panics or allocates beyond the 20-minute cap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mixer::wav::Pcm;

fuzz_target!(|data: &[u8]| {
    let rate = [8000, 16000, 48000][data.len() % 3];
    if let Ok(pcm) = Pcm::from_wav_bytes(data, rate) {
        assert!(pcm.samples().len() as u64 <= 20 * 60 * u64::from(rate) + 1);
    }
});
