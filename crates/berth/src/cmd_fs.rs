//! `export`, `cp`, `image prune`, `system df`, `system prune`.

use anyhow::{bail, Result};
use berth_engine::Engine;

use crate::cli::{CpArgs, ExportArgs, ImagePruneArgs, SystemDfArgs, SystemPruneArgs};

pub fn export(_e: &Engine, _a: &ExportArgs) -> Result<i32> {
    bail!("export: not implemented yet")
}

pub fn cp(_e: &Engine, _a: &CpArgs) -> Result<i32> {
    bail!("cp: not implemented yet")
}

pub fn image_prune(_e: &mut Engine, _a: &ImagePruneArgs) -> Result<i32> {
    bail!("image prune: not implemented yet")
}

pub fn system_df(_e: &Engine, _a: &SystemDfArgs) -> Result<i32> {
    bail!("system df: not implemented yet")
}

pub fn system_prune(_e: &mut Engine, _a: &SystemPruneArgs) -> Result<i32> {
    bail!("system prune: not implemented yet")
}
