//! Chorus mixing core: pure, clock-free per-conference mixing.
//! Time comes in as an argument to `tick`; nothing here reads a clock or a socket.

pub mod goertzel;
pub mod resample;
pub mod sound;
pub mod source;
pub mod tone;
pub mod wav;
