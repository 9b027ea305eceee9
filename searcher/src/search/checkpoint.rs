//! The search's checkpoint (docs/searcher.md, "Checkpoints and resume"):
//! one safetensors file holding everything a resume needs. Its tensors are
//! `meta` (the JSON of `CheckpointMeta` as bytes: format, identity, next
//! epoch, Adam's step count, history), per weight `w.{i}.{name}` and its
//! SGD momentum `sgd.{i}`, per architecture parameter `arch.{i}` and Adam's
//! `adam_m.{i}` and `adam_v.{i}`, and every channel mask under its own
//! name. A child of `search` so that it reaches the optimizers' state
//! without making it public.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use super::{EpochLog, Search};
use crate::error::{Result, SearchError};
use crate::identity::Identity;

#[derive(Serialize, Deserialize)]
struct CheckpointMeta {
    format: String,
    identity: Identity,
    next_epoch: usize,
    adam_steps: i64,
    history: Vec<EpochLog>,
}

// 2: the identity became fields (table content, space, settings) rather
// than one string.
const CHECKPOINT_FORMAT: &str = "tfnas-rs-search-checkpoint/2";

impl Search {
    /// Writes everything a resume needs to `path`, atomically (a temporary
    /// file renamed over the old checkpoint).
    pub fn save(&self, path: &Path) -> Result<()> {
        let meta = CheckpointMeta {
            format: CHECKPOINT_FORMAT.into(),
            identity: self.identity.clone(),
            next_epoch: self.next_epoch,
            adam_steps: self.adam.steps,
            history: self.history.clone(),
        };
        let meta = serde_json::to_vec(&meta).expect("checkpoint meta serializes");
        let mut named: Vec<(String, Tensor)> = vec![("meta".into(), Tensor::from_slice(&meta))];
        for (i, ((name, w), buf)) in self.net.weights().iter().zip(&self.sgd.buffers).enumerate() {
            named.push((format!("w.{i}.{name}"), w.shallow_clone()));
            named.push((format!("sgd.{i}"), buf.shallow_clone()));
        }
        for (i, ((a, m), v)) in self
            .net
            .arch_tensors()
            .iter()
            .zip(&self.adam.m)
            .zip(&self.adam.v)
            .enumerate()
        {
            named.push((format!("arch.{i}"), a.shallow_clone()));
            named.push((format!("adam_m.{i}"), m.shallow_clone()));
            named.push((format!("adam_v.{i}"), v.shallow_clone()));
        }
        named.extend(self.net.named_masks());
        let cpu: Vec<(String, Tensor)> = named
            .into_iter()
            .map(|(n, t)| (n, t.detach().to_device(Device::Cpu).contiguous()))
            .collect();
        // A temporary file unique to this process, synced and renamed, so a
        // crash never leaves a truncated checkpoint under the real name.
        let file = space::io::AtomicFile::new(path)?;
        Tensor::write_safetensors(&cpu, file.temp_path()).map_err(|e| SearchError::Checkpoint {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(file.commit()?)
    }

    /// Restores a checkpoint written by a search with the same identity.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let fail = |message: String| SearchError::Checkpoint {
            path: path.to_path_buf(),
            message,
        };
        check_safetensors(path).map_err(|m| {
            fail(format!(
                "is not a readable search checkpoint: {m}; move it away, or pass --restart to start the search over"
            ))
        })?;
        let named = Tensor::read_safetensors(path).map_err(|e| fail(e.to_string()))?;
        let map: std::collections::HashMap<String, Tensor> = named.into_iter().collect();
        let get = |name: &str| {
            map.get(name)
                .ok_or_else(|| fail(format!("lacks tensor '{name}'")))
        };
        let meta_bytes = Vec::<u8>::try_from(get("meta")?).map_err(|e| fail(e.to_string()))?;
        let format: serde_json::Value = serde_json::from_slice(&meta_bytes)
            .map_err(|e| fail(format!("unreadable metadata: {e}")))?;
        let format = format.get("format").and_then(|f| f.as_str()).unwrap_or("");
        if format != CHECKPOINT_FORMAT {
            return Err(fail(format!(
                "format '{format}', this build reads '{CHECKPOINT_FORMAT}'; pass --restart to start the search over"
            )));
        }
        let meta: CheckpointMeta = serde_json::from_slice(&meta_bytes)
            .map_err(|e| fail(format!("unreadable metadata: {e}")))?;
        let differences = self.identity.differences(&meta.identity);
        if !differences.is_empty() {
            return Err(fail(format!(
                "was written by another search (other settings, space, table or data): {}; rerun with the checkpoint's values to continue it, or pass --restart to start over (the checkpoint is replaced after the first epoch)",
                differences.join("; ")
            )));
        }
        let device = self.net.device;
        tch::no_grad(|| -> Result<()> {
            for (i, ((name, w), buf)) in self
                .net
                .weights()
                .iter()
                .zip(&mut self.sgd.buffers)
                .enumerate()
            {
                let mut w = w.shallow_clone();
                w.copy_(&get(&format!("w.{i}.{name}"))?.to_device(device));
                buf.copy_(&get(&format!("sgd.{i}"))?.to_device(device));
            }
            for (i, ((a, m), v)) in self
                .net
                .arch_tensors()
                .iter()
                .zip(&mut self.adam.m)
                .zip(&mut self.adam.v)
                .enumerate()
            {
                let mut a = a.shallow_clone();
                a.copy_(&get(&format!("arch.{i}"))?.to_device(device));
                m.copy_(&get(&format!("adam_m.{i}"))?.to_device(device));
                v.copy_(&get(&format!("adam_v.{i}"))?.to_device(device));
            }
            Ok(())
        })?;
        let names: Vec<String> = self.net.named_masks().into_iter().map(|(n, _)| n).collect();
        for name in names {
            let mask = get(&name)?.shallow_clone();
            let idx: Vec<usize> = name
                .split('.')
                .skip(1)
                .map(|p| p.parse().expect("our own mask name"))
                .collect();
            self.net.load_mask(idx[0], idx[1], idx[2], &mask);
        }
        self.adam.steps = meta.adam_steps;
        self.next_epoch = meta.next_epoch;
        self.history = meta.history;
        Ok(())
    }
}

/// Whether `path` looks like a whole safetensors file: its 8-byte header
/// length fits the file and the header is JSON. libtorch's own reader says
/// only `HeaderTooLarge` about a cut or foreign file.
fn check_safetensors(path: &Path) -> std::result::Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    if bytes.len() < 8 {
        return Err(format!("it has {} bytes, fewer than a header", bytes.len()));
    }
    let mut n = [0u8; 8];
    n.copy_from_slice(&bytes[..8]);
    let n = u64::from_le_bytes(n);
    let rest = (bytes.len() - 8) as u64;
    if n > rest {
        return Err(format!(
            "its header claims {n} bytes but the file has {rest} after it (cut short, or another kind of file)"
        ));
    }
    serde_json::from_slice::<serde_json::Value>(&bytes[8..8 + n as usize])
        .map(drop)
        .map_err(|e| format!("its header is not JSON ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{tiny_data, tiny_search as tiny, tiny_settings};
    use crate::settings::Settings;

    #[test]
    fn resume_repeats_the_uninterrupted_search() {
        let (data, split) = tiny_data(200);
        let mut straight = tiny(tiny_settings(3, 1));
        for _ in 0..3 {
            straight.run_epoch(&data, &split, &mut |_, _| {}).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("search.ckpt");
        let mut first = tiny(tiny_settings(3, 1));
        for _ in 0..2 {
            first.run_epoch(&data, &split, &mut |_, _| {}).unwrap();
        }
        first.save(&path).unwrap();
        drop(first);
        let mut resumed = tiny(tiny_settings(3, 1));
        resumed.load(&path).unwrap();
        assert_eq!(resumed.next_epoch, 2);
        assert_eq!(resumed.history.len(), 2);
        resumed.run_epoch(&data, &split, &mut |_, _| {}).unwrap();
        assert!(resumed.is_done());
        let strip = |h: &[EpochLog]| {
            h.iter()
                .map(|l| EpochLog {
                    seconds: 0.0,
                    ..l.clone()
                })
                .map(|l| format!("{l:?}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&resumed.history), strip(&straight.history));
        assert_eq!(resumed.derive(), straight.derive());
        assert_eq!(resumed.net.widths, straight.net.widths);
        for (a, b) in resumed
            .net
            .arch_tensors()
            .iter()
            .zip(straight.net.arch_tensors())
        {
            assert!(a.equal(&b));
        }
        for ((_, a), (_, b)) in resumed.net.weights().iter().zip(straight.net.weights()) {
            assert!(a.equal(b));
        }
        // A checkpoint of other settings is refused, saying why.
        let mut other = tiny(Settings {
            seed: 6,
            ..tiny_settings(3, 1)
        });
        let err = other.load(&path).unwrap_err().to_string();
        assert!(
            err.contains("--seed: 6 in the checkpoint, 5 now")
                || err.contains("--seed: 5 in the checkpoint, 6 now"),
            "{err}"
        );
    }
}
