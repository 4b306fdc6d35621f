//! Output formatting for the `berth` CLI, faithful to the docker CLI:
//! human sizes and durations ([`human`]), tab-aligned tables ([`table`]) and
//! Go-template `--format` strings ([`template`]).
//!
//! Output a script may parse (`--format`, `-q`) must stay byte-for-byte
//! stable; each module's tests pin the exact strings docker prints.

pub mod human;
pub mod table;
pub mod template;

pub use human::{
    ago, command_column, ellipsis, go_quote, human_duration, human_size, human_size_with_precision,
    status_line, truncate_id,
};
pub use table::{tabwrite, TabWriter, Table};
pub use template::{Format, Template};
