//! HTTP pieces shared by the gateway and the admin listener that are not proxy logic.

pub mod bearer;
pub mod cookies;
pub mod cors;
pub mod pages;
