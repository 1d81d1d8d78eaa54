//! Voice activity detection.
//!
//! `webrtc`: a detector that reproduces the decisions of the WebRTC VAD (the one inside
//! py-webrtcvad) frame for frame, in Rust. Other engines and turn detection build on it.

pub mod webrtc;
