//! Output formatting for the `berth` CLI, faithful to the docker CLI:
//! human sizes and durations ([`human`]), tab-aligned tables ([`table`]) and
//! Go-template `--format` strings ([`template`]).
//!
//! Output a script may parse (`--format`, `-q`) must stay byte-for-byte
//! stable; each module's tests pin the exact strings docker prints.

// Some helpers (plain tables, health in status lines, Template for inspect)
// serve commands and the API service that are still to come.
#![allow(dead_code)]

pub mod human;
pub mod table;
pub mod template;
