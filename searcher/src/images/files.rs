//! Which image file belongs to which class.
//!
//! Image folders (one subfolder per class, split later by
//! `data::split_per_class`) and the official split lists
//! (`wnid/file.JPEG label`, read as they are). Every problem is found before
//! training starts: an empty class, a list naming a missing file, a list
//! naming a file outside the data root.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Result, SearchError};

/// One image and its class index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    pub path: PathBuf,
    pub label: usize,
}

/// The images of the official train and val lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedSplit {
    pub classes: Vec<String>,
    pub train: Vec<Sample>,
    pub val: Vec<Sample>,
}

const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SearchError + '_ {
    move |error| SearchError::Io {
        path: path.to_path_buf(),
        error,
    }
}

fn dataset_error(path: &Path, message: impl ToString) -> SearchError {
    SearchError::Dataset {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// Classes (sorted subfolder names) and their image files (sorted).
pub fn scan_folder(root: &Path) -> Result<Vec<(String, Vec<PathBuf>)>> {
    let mut classes = Vec::new();
    for entry in std::fs::read_dir(root).map_err(io(root))? {
        let entry = entry.map_err(io(root))?;
        if entry.file_type().map_err(io(root))?.is_dir() {
            classes.push(entry.path());
        }
    }
    classes.sort();
    if classes.is_empty() {
        return Err(dataset_error(
            root,
            "no class subfolders (expected one folder of images per class)",
        ));
    }
    let mut out = Vec::with_capacity(classes.len());
    for dir in classes {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let path = entry.map_err(io(&dir))?.path();
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase);
            if ext.is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str())) {
                files.push(path);
            }
        }
        if files.is_empty() {
            return Err(dataset_error(
                &dir,
                "class folder holds no .jpg, .jpeg or .png image",
            ));
        }
        files.sort();
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        out.push((name, files));
    }
    Ok(out)
}

/// `file`, a split list's entry, under `root` (whose canonical path is
/// `canonical_root`), unless it leaves the root: an absolute path, a `..`
/// that climbs above it, or an existing file whose canonical path (every
/// symbolic link followed) is outside it. A missing file is left for the
/// missing-files check.
fn confined(
    root: &Path,
    canonical_root: &Path,
    file: &str,
) -> std::result::Result<PathBuf, String> {
    use std::path::Component;
    let outside = || {
        format!(
            "'{file}' is outside the data root {}",
            canonical_root.display()
        )
    };
    let mut depth = 0usize;
    for part in Path::new(file).components() {
        match part {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir if depth > 0 => depth -= 1,
            Component::ParentDir => return Err(format!("{}: '..' climbs above it", outside())),
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("{}: an absolute path", outside()))
            }
        }
    }
    let path = root.join(file);
    if let Ok(canonical) = std::fs::canonicalize(&path) {
        if !canonical.starts_with(canonical_root) {
            return Err(format!(
                "{}: it resolves to {} (through a symbolic link)",
                outside(),
                canonical.display()
            ));
        }
    }
    Ok(path)
}

/// Parses a split list in the official format, one `wnid/file.JPEG label`
/// per line, relative to `root`. Labels must be consistent per folder, and
/// every file must lie inside `root` ([`confined`]).
pub fn parse_list(text: &str, list: &Path, root: &Path) -> Result<Vec<Sample>> {
    let canonical_root = std::fs::canonicalize(root).map_err(io(root))?;
    let mut samples = Vec::new();
    let mut label_of: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        let err = |message: String| SearchError::SplitList {
            path: list.to_path_buf(),
            line: line_no,
            message,
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (file, label) = line
            .rsplit_once(char::is_whitespace)
            .ok_or_else(|| err(format!("expected 'folder/file label', found '{line}'")))?;
        let label: usize = label
            .parse()
            .map_err(|_| err(format!("label '{label}' is not a class index")))?;
        let file = file.trim();
        let path = confined(root, &canonical_root, file)
            .map_err(|m| err(format!("{m}; split-list paths must stay inside --data")))?;
        let folder = file.split('/').next().unwrap_or_default().to_string();
        if folder == file {
            return Err(err(format!("'{file}' has no class folder")));
        }
        if let Some(&(other, first)) = label_of.get(&folder) {
            if other != label {
                return Err(err(format!(
                    "'{folder}' has label {label} here but {other} on line {first}"
                )));
            }
        } else {
            label_of.insert(folder, (label, line_no));
        }
        samples.push(Sample { path, label });
    }
    if samples.is_empty() {
        return Err(dataset_error(list, "the split list names no image"));
    }
    Ok(samples)
}

/// Reads the official train and val lists and checks that every file they
/// name exists, reporting how many do not (and the first few) at once.
pub fn from_lists(root: &Path, train_list: &Path, val_list: &Path) -> Result<ListedSplit> {
    let read = |p: &Path| std::fs::read_to_string(p).map_err(io(p));
    let train = parse_list(&read(train_list)?, train_list, root)?;
    let val = parse_list(&read(val_list)?, val_list, root)?;
    let missing: Vec<&Sample> = train
        .iter()
        .chain(&val)
        .filter(|s| !s.path.is_file())
        .collect();
    if !missing.is_empty() {
        let first: Vec<String> = missing
            .iter()
            .take(5)
            .map(|s| s.path.display().to_string())
            .collect();
        return Err(dataset_error(
            root,
            format!(
                "{} images named by the split lists are missing, e.g. {}",
                missing.len(),
                first.join(", ")
            ),
        ));
    }
    let num_classes = train
        .iter()
        .chain(&val)
        .map(|s| s.label + 1)
        .max()
        .unwrap_or(0);
    let mut classes = vec![String::new(); num_classes];
    for s in train.iter().chain(&val) {
        if classes[s.label].is_empty() {
            let rel = s.path.strip_prefix(root).unwrap_or(&s.path);
            classes[s.label] = rel
                .iter()
                .next()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
        }
    }
    if let Some(empty) = classes.iter().position(String::is_empty) {
        return Err(dataset_error(
            train_list,
            format!("class {empty} has no image in either list"),
        ));
    }
    Ok(ListedSplit {
        classes,
        train,
        val,
    })
}
