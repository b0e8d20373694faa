//! SDP offer/answer.
