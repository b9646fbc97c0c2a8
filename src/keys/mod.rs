//! Key ring. placeholder
