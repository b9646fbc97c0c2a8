//! CLI. placeholder
