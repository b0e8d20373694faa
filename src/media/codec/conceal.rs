//! Packet loss concealment for codecs without their own: repeat the last good frame with a
//! fading gain, then silence. A short loss stays inaudible; a long one does not buzz.

/// Lost frames over which the repeated audio fades out to silence.
const FADE_FRAMES: usize = 3;

/// Remembers the last decoded frame and plays it back fading.
#[derive(Default)]
pub struct Concealer {
    last: Vec<i16>,
    /// Samples concealed since the last good frame.
    played: usize,
}

impl Concealer {
    /// Records a freshly decoded frame (resets the fade).
    pub fn remember(&mut self, frame: &[i16]) {
        self.last.clear();
        self.last.extend_from_slice(frame);
        self.played = 0;
    }

    /// Appends `samples` of faded repetition (or silence) to `out`.
    pub fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        let fade_len = self.last.len() * FADE_FRAMES;
        for _ in 0..samples {
            let s = if self.played < fade_len {
                let src = self.last[self.played % self.last.len()] as i64;
                let remaining = (fade_len - self.played) as i64;
                (src * remaining / fade_len as i64) as i16
            } else {
                0
            };
            out.push(s);
            self.played += 1;
        }
    }
}
