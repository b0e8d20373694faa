//! A caller's decoded input captured for the control plane (a name, a voicemail-style
//! message): real time is kept, so gaps in the stream are recorded as silence.

use std::time::Duration;

pub struct CallRecording {
    pub id: u64,
    pub rate: u32,
    max: usize,
    pub pcm: Vec<i16>,
}

impl CallRecording {
    pub fn new(id: u64, rate: u32, max: Duration) -> Self {
        let max = (max.as_millis() * u128::from(rate) / 1000) as usize;
        CallRecording {
            id,
            rate,
            max,
            // Bounded by `max`; reserving it all up front would let a bad `max` allocate.
            pcm: Vec::new(),
        }
    }

    /// Appends one interval: `pcm`, then `missing` samples of silence; stops at `max`.
    pub fn push(&mut self, pcm: &[i16], missing: usize) {
        let room = self.max - self.pcm.len();
        let take = pcm.len().min(room);
        self.pcm.extend_from_slice(&pcm[..take]);
        let silence = missing.min(room - take);
        self.pcm.resize(self.pcm.len() + silence, 0);
    }

    pub fn is_full(&self) -> bool {
        self.pcm.len() >= self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_time_and_stops_at_max() {
        let mut r = CallRecording::new(1, 8000, Duration::from_millis(50));
        r.push(&[5; 160], 0);
        r.push(&[7; 100], 60);
        assert!(!r.is_full());
        r.push(&[9; 160], 0);
        assert!(r.is_full());
        assert_eq!(r.pcm.len(), 400);
        assert_eq!(&r.pcm[260..320], &[0; 60]);
        assert_eq!(&r.pcm[320..], &[9; 80]);
    }
}
