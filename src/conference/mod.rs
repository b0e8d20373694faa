//! Conference data and caller logic, pure and sans-IO (spec §1-§3, §6).

pub mod controls;
pub mod document;
pub mod flow;
pub mod profile;
pub mod settings;
pub mod validation;
