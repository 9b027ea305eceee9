//! The search's checkpoint (docs/searcher.md, "Checkpoints and resume"):
//! one safetensors file holding everything a resume needs. Its tensors are
//! `meta` (the JSON of `CheckpointMeta` as bytes: format, identity, next
//! epoch, Adam's step count, history), per weight `w.{i}.{name}` and its
//! SGD momentum `sgd.{i}`, per architecture parameter `arch.{i}` and Adam's
//! `adam_m.{i}` and `adam_v.{i}`, every channel mask under its own name,
//! and `sha256`, the hex SHA-256 of all the others ([`checksum`]), checked
//! before anything is resumed. A child of `search` so that it reaches the
//! optimizers' state without making it public.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
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
// than one string. 3: the `sha256` tensor, a checksum of all the others.
const CHECKPOINT_FORMAT: &str = "tfnas-rs-search-checkpoint/3";

/// The name of the checksum tensor.
pub(crate) const CHECKSUM: &str = "sha256";

/// The hex SHA-256 of `tensors` but the checksum itself, in name order:
/// each one's name, kind, shape and bytes, every part length-prefixed so
/// that no two different sets hash alike. Finite or not, any changed value
/// changes it.
pub(crate) fn checksum<'a>(
    tensors: impl IntoIterator<Item = (&'a str, &'a Tensor)>,
) -> std::result::Result<String, tch::TchError> {
    let mut order: Vec<(&str, &Tensor)> = tensors
        .into_iter()
        .filter(|(name, _)| *name != CHECKSUM)
        .collect();
    order.sort_by_key(|(name, _)| *name);
    let mut hasher = Sha256::new();
    let mut part = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    let mut buf = Vec::new();
    for (name, tensor) in order {
        let tensor = tensor.f_to_device(Device::Cpu)?.f_contiguous()?;
        let numel = tensor.numel();
        buf.resize(numel * tensor.f_kind()?.elt_size_in_bytes(), 0);
        tensor.f_copy_data_u8(&mut buf, numel)?;
        part(name.as_bytes());
        part(format!("{:?} {:?}", tensor.f_kind()?, tensor.size()).as_bytes());
        part(&buf);
    }
    let digest = hasher.finalize();
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

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
        write_checked(path, named)
    }

    /// Restores a checkpoint written by a search with the same identity,
    /// after [`read_checked`] found it whole.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let (meta, map) = read_checked(path)?;
        let differences = self.identity.differences(&meta.identity);
        if !differences.is_empty() {
            return Err(fail(path, format!(
                "was written by another search (other settings, space, table or data): {}; rerun with the checkpoint's values to continue it, or pass --restart to start over (the checkpoint is replaced after the first epoch)",
                differences.join("; ")
            )));
        }
        let get = |name: &str| {
            map.get(name)
                .ok_or_else(|| fail(path, format!("lacks tensor '{name}'")))
        };
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

/// The advice for a checkpoint that is not whole.
const DAMAGED: &str = "move it away (or delete it), or pass --restart to start the search over";

/// A checkpoint's metadata and tensors, once it is known to be whole: its
/// structure fits its length ([`check_safetensors`]), libtorch reads it, it
/// is of this build's format, and its checksum matches. Any damage (cut
/// short, a changed byte, a foreign file) is one message naming the file.
fn read_checked(path: &Path) -> Result<(CheckpointMeta, HashMap<String, Tensor>)> {
    let damaged = |m: String| {
        fail(
            path,
            format!("is not a readable search checkpoint: {m}; {DAMAGED}"),
        )
    };
    let read = read_verified(path, damaged)?;
    // Only a whole file, or one without a checksum, gets this far: a format
    // that is not this build's is an older search's, not damage.
    let value: serde_json::Value = serde_json::from_slice(&read.meta)
        .map_err(|e| damaged(format!("its metadata is not JSON ({e})")))?;
    let format = value.get("format").and_then(|f| f.as_str()).unwrap_or("");
    if format != CHECKPOINT_FORMAT {
        return Err(fail(path, format!(
            "format '{format}', this build reads '{CHECKPOINT_FORMAT}'; pass --restart to start the search over"
        )));
    }
    if !read.has_checksum {
        return Err(damaged(format!(
            "it lacks its checksum tensor '{CHECKSUM}'"
        )));
    }
    let meta = serde_json::from_slice(&read.meta)
        .map_err(|e| damaged(format!("its metadata is unreadable ({e})")))?;
    Ok((meta, read.tensors))
}

/// The error for the checkpoint at `path`, the search's or the training's.
pub(crate) fn fail(path: &Path, message: String) -> SearchError {
    SearchError::Checkpoint {
        path: path.to_path_buf(),
        message,
    }
}

/// Writes the tensors `named` (its `meta` among them) to `path` with their
/// checksum: each copied to the CPU, the [`CHECKSUM`] tensor added, then
/// through a temporary file unique to this process, synced and renamed, so
/// a crash never leaves a truncated checkpoint under the real name. The
/// search's checkpoints and the training's are written by this.
pub(crate) fn write_checked(path: &Path, named: Vec<(String, Tensor)>) -> Result<()> {
    let torch = |e: tch::TchError| fail(path, e.to_string());
    let mut cpu: Vec<(String, Tensor)> = named
        .into_iter()
        .map(|(n, t)| (n, t.detach().to_device(Device::Cpu).contiguous()))
        .collect();
    let sum = checksum(cpu.iter().map(|(n, t)| (n.as_str(), t))).map_err(torch)?;
    cpu.push((CHECKSUM.into(), Tensor::from_slice(sum.as_bytes())));
    let file = space::io::AtomicFile::new(path)?;
    Tensor::write_safetensors(&cpu, file.temp_path()).map_err(torch)?;
    Ok(file.commit()?)
}

/// A checkpoint file read whole ([`read_verified`]).
pub(crate) struct Verified {
    /// The `meta` tensor's bytes (JSON, not yet parsed).
    pub meta: Vec<u8>,
    pub tensors: HashMap<String, Tensor>,
    /// Whether it carries a [`CHECKSUM`] tensor (which matched, if so).
    pub has_checksum: bool,
}

/// Reads `path` once its structure fits its length ([`check_safetensors`]),
/// with a `meta` tensor and, where it carries one, a checksum that matches
/// its contents; every failure is `damaged(what is wrong)`. What a missing
/// checksum or another format means is the caller's to say.
pub(crate) fn read_verified(
    path: &Path,
    damaged: impl Fn(String) -> SearchError,
) -> Result<Verified> {
    check_safetensors(path).map_err(&damaged)?;
    let named = Tensor::read_safetensors(path)
        .map_err(|e| damaged(format!("libtorch cannot read it ({e})")))?;
    let tensors: HashMap<String, Tensor> = named.into_iter().collect();
    let bytes = |name: &str| tensors.get(name).and_then(|t| Vec::<u8>::try_from(t).ok());
    let meta = bytes("meta").ok_or_else(|| damaged("it has no metadata".into()))?;
    let stored = bytes(CHECKSUM);
    let actual = checksum(tensors.iter().map(|(n, t)| (n.as_str(), t)))
        .map_err(|e| damaged(format!("its tensors cannot be read ({e})")))?;
    if stored.as_deref().is_some_and(|s| s != actual.as_bytes()) {
        return Err(damaged(
            "its checksum does not match its contents (the file was changed or damaged after it was written)".into(),
        ));
    }
    Ok(Verified {
        meta,
        has_checksum: stored.is_some(),
        tensors,
    })
}

/// Whether `path` is a whole safetensors file, reading only its header:
/// the 8-byte header length fits the file, the header is a JSON object,
/// and its tensors' data ends exactly where the file does. libtorch's own
/// reader says only `HeaderTooLarge` or `MetadataIncompleteBuffer` about a
/// cut or foreign file.
pub(crate) fn check_safetensors(path: &Path) -> std::result::Result<(), String> {
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    if len < 8 {
        return Err(format!("it has {len} bytes, fewer than a header"));
    }
    let mut n = [0u8; 8];
    file.read_exact(&mut n).map_err(|e| e.to_string())?;
    let n = u64::from_le_bytes(n);
    let rest = len - 8;
    if n > rest {
        return Err(format!(
            "its header claims {n} bytes but the file has {rest} after it (cut short, or another kind of file)"
        ));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header).map_err(|e| e.to_string())?;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| format!("its header is not a JSON object ({e})"))?;
    let data_end = header
        .iter()
        .filter(|(name, _)| *name != "__metadata__")
        .filter_map(|(_, t)| t.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    let data = rest - n;
    if data_end != data {
        return Err(format!(
            "its header places tensor data up to byte {data_end} but the file holds {data} (cut short, or extended)"
        ));
    }
    Ok(())
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
