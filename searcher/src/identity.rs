//! What a checkpoint must share with the search that resumes it: the
//! content of its inputs (the table's SHA-256, not its path), the space, and
//! every setting, compared field by field so a refusal names each field
//! that differs with both values.

use serde::{Deserialize, Serialize};

use crate::settings::Settings;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// `(what, fingerprint)` of each input, e.g. `("table", "sha256:…")`.
    pub inputs: Vec<(String, String)>,
    pub space_digest: String,
    pub settings: Settings,
}

impl Identity {
    /// One line per difference, `what: <checkpoint's> in the checkpoint,
    /// <ours> now`; empty when the checkpoint belongs to this search.
    pub fn differences(&self, checkpoint: &Identity) -> Vec<String> {
        let mut out = Vec::new();
        let line = |what: &str, then: &str, now: &str| {
            format!(
                "{what}: {} in the checkpoint, {} now",
                clip(then),
                clip(now)
            )
        };
        let names = checkpoint
            .inputs
            .iter()
            .chain(&self.inputs)
            .map(|(k, _)| k.as_str());
        let mut seen: Vec<&str> = Vec::new();
        for name in names {
            if seen.contains(&name) {
                continue;
            }
            seen.push(name);
            let get = |id: &Identity| {
                id.inputs
                    .iter()
                    .find(|(k, _)| k == name)
                    .map_or("nothing".to_string(), |(_, v)| v.clone())
            };
            let (then, now) = (get(checkpoint), get(self));
            if then != now {
                out.push(line(name, &then, &now));
            }
        }
        if checkpoint.space_digest != self.space_digest {
            out.push(line(
                "space digest",
                &checkpoint.space_digest,
                &self.space_digest,
            ));
        }
        for (flag, then, now) in checkpoint.settings.differences(&self.settings) {
            out.push(line(&flag, &then, &now));
        }
        out
    }
}

/// A value cut to a readable length for a message.
fn clip(text: &str) -> String {
    const MAX: usize = 120;
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}… ({} bytes)", &text[..at], text.len()),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_inputs_space_and_settings_with_both_values() {
        let ours = Identity {
            inputs: vec![("table".into(), "sha256:aa".into())],
            space_digest: "s1".into(),
            settings: Settings::default(),
        };
        let theirs = Identity {
            inputs: vec![("table".into(), "sha256:bb".into())],
            space_digest: "s1".into(),
            settings: Settings {
                seed: 6,
                ..Settings::default()
            },
        };
        assert!(ours.differences(&ours.clone()).is_empty());
        let d = ours.differences(&theirs);
        assert_eq!(
            d,
            [
                "table: sha256:bb in the checkpoint, sha256:aa now",
                "--seed: 6 in the checkpoint, 2 now"
            ]
        );
    }
}
