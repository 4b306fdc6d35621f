//! `save` and `load`: Docker's archive format and the OCI image layout.

use anyhow::{bail, Result};
use berth_engine::Engine;

use crate::cli::{LoadArgs, SaveArgs};

pub fn save(_e: &Engine, _a: &SaveArgs) -> Result<i32> {
    bail!("save: not implemented yet")
}

pub fn load(_e: &mut Engine, _a: &LoadArgs) -> Result<i32> {
    bail!("load: not implemented yet")
}
