//! `diff`, `commit`, `history`, `images --tree` / `--format dot`.

use anyhow::{bail, Result};
use berth_engine::Engine;

use crate::cli::{CommitArgs, DiffArgs, HistoryArgs, ImagesArgs};

pub fn diff(_e: &Engine, _a: &DiffArgs) -> Result<i32> {
    bail!("diff: not implemented yet")
}

pub fn commit(_e: &mut Engine, _a: &CommitArgs) -> Result<i32> {
    bail!("commit: not implemented yet")
}

pub fn history(_e: &Engine, _a: &HistoryArgs) -> Result<i32> {
    bail!("history: not implemented yet")
}

pub fn image_graph(_e: &Engine, _a: &ImagesArgs) -> Result<i32> {
    bail!("images --tree: not implemented yet")
}
