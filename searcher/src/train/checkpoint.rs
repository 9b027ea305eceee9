//! The training checkpoint: one safetensors file with `meta` (the JSON of
//! [`TrainMeta`] as bytes), per variable `w.{name}` (weights and batch-norm
//! statistics under their TF-NAS names), per parameter its SGD momentum
//! `sgd.{name}`, and `sha256`, the checksum the search's checkpoints carry
//! (`search::checkpoint::checksum`), checked before anything is resumed.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::{EpochLog, TrainIdentity, Trainer};
use crate::error::Result;
use crate::search::checkpoint::{fail, read_verified, write_checked, CHECKSUM};

const FORMAT: &str = "tfnas-rs-train-checkpoint/1";

#[derive(Serialize, Deserialize)]
struct TrainMeta {
    format: String,
    identity: TrainIdentity,
    next_epoch: usize,
    history: Vec<EpochLog>,
}

impl Trainer {
    /// Writes everything a resume needs to `path`, through a temporary
    /// file renamed over the old checkpoint.
    pub fn save(&self, path: &Path) -> Result<()> {
        let meta = TrainMeta {
            format: FORMAT.into(),
            identity: self.identity.clone(),
            next_epoch: self.next_epoch,
            history: self.history.clone(),
        };
        let meta = serde_json::to_vec(&meta).expect("checkpoint meta serializes");
        let mut named: Vec<(String, Tensor)> = vec![("meta".into(), Tensor::from_slice(&meta))];
        for (name, t) in self.net.named_variables() {
            named.push((format!("w.{name}"), t));
        }
        for ((name, _), buf) in self.params.iter().zip(&self.sgd.buffers) {
            named.push((format!("sgd.{name}"), buf.shallow_clone()));
        }
        write_checked(path, named)
    }

    /// Restores a checkpoint of the same run (the same architecture, data
    /// and recipe), once it is known to be whole.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let (meta, map) = read_checked(path)?;
        let differences = self.identity.differences(&meta.identity);
        if !differences.is_empty() {
            return Err(fail(path, format!(
                "was written by another training run: {}; rerun with the checkpoint's values to continue it, or pass --restart to start over (the checkpoint is replaced after the first epoch)",
                differences.join("; ")
            )));
        }
        let get = |name: &str| {
            map.get(name)
                .ok_or_else(|| fail(path, format!("lacks tensor '{name}'")))
        };
        let device = self.net.device();
        tch::no_grad(|| -> Result<()> {
            for (name, mut t) in self.net.named_variables() {
                t.f_copy_(&get(&format!("w.{name}"))?.to_device(device))?;
            }
            for ((name, _), buf) in self.params.iter().zip(&mut self.sgd.buffers) {
                buf.f_copy_(&get(&format!("sgd.{name}"))?.to_device(device))?;
            }
            Ok(())
        })?;
        self.next_epoch = meta.next_epoch;
        self.history = meta.history;
        Ok(())
    }
}

/// The metadata and tensors of a whole checkpoint of this format; any
/// damage is one message naming the file and what to do.
fn read_checked(path: &Path) -> Result<(TrainMeta, HashMap<String, Tensor>)> {
    let damaged = |m: String| {
        fail(path, format!(
            "is not a readable training checkpoint: {m}; move it away (or delete it), or pass --restart to start the training over"
        ))
    };
    let read = read_verified(path, damaged)?;
    if !read.has_checksum {
        return Err(damaged(format!(
            "it lacks its checksum tensor '{CHECKSUM}'"
        )));
    }
    let value: serde_json::Value = serde_json::from_slice(&read.meta)
        .map_err(|e| damaged(format!("its metadata is not JSON ({e})")))?;
    let format = value.get("format").and_then(|f| f.as_str()).unwrap_or("");
    if format != FORMAT {
        return Err(fail(path, format!(
            "format '{format}', this build reads '{FORMAT}' (a search checkpoint is not a training one); pass --restart or another --checkpoint"
        )));
    }
    let meta = serde_json::from_value(value)
        .map_err(|e| damaged(format!("its metadata is unreadable ({e})")))?;
    Ok((meta, read.tensors))
}
