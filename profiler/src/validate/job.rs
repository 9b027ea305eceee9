//! What a validation is asked ([`Request`]) and what it runs ([`Job`]): the
//! table, its settings and the sampled networks, each predicted before an
//! engine is opened.

use std::path::{Path, PathBuf};

use space::{meta, Architecture, BlockSpec, LatencyTable, Metadata, SearchSpaceConfig};

use crate::analysis::rows::{self, sha256_16};
use crate::error::{bail, Context, ProfilerError, Result};
use crate::measure::engine::{Engine, EngineConfig, EngineInfo};
use crate::measure::speed;
use crate::measure::timing::{TimingFlags, TimingRule};

/// What `validate` is asked to do besides the table and the engine
/// settings, which each engine's command line resolves from the table
/// ([`resolve_settings`](super::resolve_settings) for the settings every
/// engine has).
#[derive(Clone, Debug)]
pub struct Request {
    /// How many networks to sample and measure.
    pub samples: usize,
    /// How many sweeps over the networks ([`Job::passes`]).
    pub passes: u32,
    /// Seed of the network sampler; network i of a seed is always the same.
    pub seed: u64,
    /// Sample widths on multiples of this; the table's width step if `None`
    /// ([`Sampling::new`]).
    pub width_multiple: Option<u32>,
    /// Where the rows go, one per network and pass (resumed when the file
    /// exists).
    pub out: Option<PathBuf>,
    /// Where the predicted-against-measured plot goes (.svg or .png).
    pub plot: Option<PathBuf>,
    /// Architecture files (or folders of them) to time instead of sampled
    /// networks: the networks the searcher derives, say. Empty: sample.
    pub archs: Vec<PathBuf>,
    pub timing: TimingFlags,
    /// Gauge the machine's speed by the table's speed standard instead of
    /// each run's fixed parts ([`speed::Gauge`]).
    pub standard: bool,
    /// The command line, for the rows' header.
    pub command: String,
}

impl Request {
    /// Checks what needs neither the table nor an engine: the sample count
    /// and the output paths.
    pub fn check_paths(&self) -> Result<()> {
        if self.archs.is_empty() && !(1..=MAX_SAMPLES).contains(&self.samples) {
            bail!(
                "--samples must be a number in [1, {MAX_SAMPLES}], got {}",
                self.samples
            );
        }
        if let Some(p) = &self.plot {
            crate::analysis::plot::check_plot_path(p)?;
        }
        if let Some(p) = &self.out {
            crate::files::resume::check_out_folder("--out", p)?;
        }
        Ok(())
    }

    /// The job on `table` (read by [`read_table`], with its hash) under
    /// `config`: every network sampled and predicted, so that the caller
    /// opens an engine only for a job that can run.
    pub fn job(
        &self,
        table: &LatencyTable,
        table_sha256: String,
        space: SearchSpaceConfig,
        config: EngineConfig,
    ) -> Result<Job> {
        let timing = self.timing.rule()?;
        let job = if self.archs.is_empty() {
            let sampling = Sampling::new(table, self.seed, self.samples, self.width_multiple);
            Job::new(
                table,
                table_sha256,
                space,
                config,
                sampling,
                timing,
                self.command.clone(),
            )?
        } else {
            let command = self.command.clone();
            let mut job = Job::of_table(table, table_sha256, space, config, timing, command)?;
            job.given(table, read_archs(&self.archs)?)?;
            job
        };
        let gauge = speed::Gauge::of(table, self.standard)?;
        Ok(Job {
            gauge,
            ..job.with_passes(self.passes)?
        })
    }
}

/// The architectures of `paths`, each a file or a folder whose `.json`
/// files are read in name order, named by their paths.
pub fn read_archs(paths: &[PathBuf]) -> Result<Vec<(String, Architecture)>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("--arch {}: cannot list the folder", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            found.sort();
            if found.is_empty() {
                bail!(
                    "--arch {}: the folder holds no .json architecture",
                    path.display()
                );
            }
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    files
        .into_iter()
        .map(|f| Ok((f.display().to_string(), Architecture::from_path(&f)?)))
        .collect()
}

/// The table at `path` and the hash of its bytes, from one read, so that
/// the rows name exactly the table they were predicted with.
pub fn read_table(path: &Path) -> Result<(LatencyTable, String)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let table = LatencyTable::parse(&text, &path.display().to_string())?;
    Ok((table, sha256_16(text.as_bytes())))
}

/// One sampled network, predicted.
#[derive(Clone, Debug)]
pub struct Network {
    pub index: u64,
    pub code: String,
    pub blocks: Vec<BlockSpec>,
    pub predicted_ms: f64,
    /// The same network priced by linear interpolation, when the table's
    /// width model is another (the report shows what the model changed,
    /// on the same measurements).
    pub linear_ms: Option<f64>,
    /// The same network with every measured width at its own entry, when
    /// the table prices measured widths on their curves' lines (what the
    /// fit changed, on the same measurements).
    pub unfitted_ms: Option<f64>,
}

/// The table under other pricing rules than its header's, to price each
/// network both ways.
struct Twins {
    /// Under linear interpolation, when the width model is another.
    linear: Option<LatencyTable>,
    /// Every measured width at its entry, when the table has a curve fit.
    unfitted: Option<LatencyTable>,
}

impl Twins {
    fn of(table: &LatencyTable) -> Twins {
        Twins {
            linear: (table.width_model() != space::WidthModel::Linear)
                .then(|| table.with_width_model(space::WidthModel::Linear)),
            unfitted: (table.curve_fit() != space::CurveFit::None)
                .then(|| table.with_curve_fit(space::CurveFit::None)),
        }
    }

    /// `table`'s prediction for `blocks` as network `index`, with what
    /// each twin predicts for it.
    fn network(
        &self,
        index: u64,
        code: String,
        blocks: Vec<BlockSpec>,
        predicted_ms: f64,
    ) -> Network {
        let ms = |twin: &Option<LatencyTable>| {
            twin.as_ref()
                .and_then(|t| t.predict_blocks(&blocks).ok())
                .map(|p| p.total_ms)
        };
        Network {
            index,
            code,
            linear_ms: ms(&self.linear),
            unfitted_ms: ms(&self.unfitted),
            blocks,
            predicted_ms,
        }
    }
}

/// Everything a validation run needs except the engine: the table's
/// identity, the settings, and the sampled networks with their predictions.
#[derive(Clone, Debug)]
pub struct Job {
    pub table_origin: String,
    /// The table's header, summarised into the rows file.
    pub table_header: Metadata,
    pub table_entries: usize,
    pub table_sha256: String,
    pub space: SearchSpaceConfig,
    pub config: EngineConfig,
    pub seed: u64,
    /// Every sampled width is a multiple of this (1: any width).
    pub width_multiple: u32,
    pub timing: TimingRule,
    /// Sweeps over the networks: each network is timed once per pass under
    /// `timing`, its passes far apart in time, and its time is their mean
    /// ([`rows::combine`]). On a machine whose speed wanders over tens of
    /// seconds (a VM's core) one long measurement of a network shares one
    /// stretch of that wandering; passes spread it, and their spread is the
    /// measurement's noise ([`rows::pass_noise`]). 1 unless set.
    pub passes: u32,
    pub command: String,
    pub networks: Vec<Network>,
    /// The files of given networks ([`Job::given`]), by index; `None` for
    /// sampled ones.
    pub given: Option<Vec<String>>,
    /// The table's `correction` line. Rows always hold the table's
    /// prediction without it (what `fit` fits); the report adds the
    /// corrected statistics.
    pub correction: Option<space::Correction>,
    /// The table's boundary (`space::LatencyTable::boundary_ms`), already
    /// in the rows' predictions; the report also says how they fare
    /// without it.
    pub boundary_ms: f64,
    /// The table's speed gauge ([`crate::measure::speed`]): when it has a
    /// speed reference, every run of a network is brought to its speed.
    pub gauge: Option<speed::Gauge>,
}

/// Which networks a validation samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sampling {
    /// Network i of a seed is always the same.
    pub seed: u64,
    pub samples: usize,
    /// Every width a multiple of this; 1 draws any width.
    pub width_multiple: u32,
}

impl Sampling {
    /// `--width-multiple` when given, else the table's `width_step` (the
    /// searcher's default: the networks it derives from this table), else 1.
    pub fn new(
        table: &LatencyTable,
        seed: u64,
        samples: usize,
        width_multiple: Option<u32>,
    ) -> Self {
        let from_table = table.width_step();
        Sampling {
            seed,
            samples,
            width_multiple: width_multiple.or(from_table).unwrap_or(1).max(1),
        }
    }
}

/// More networks than anyone times on a GPU; the cap keeps a typo from
/// sampling and predicting for minutes before failing.
pub const MAX_SAMPLES: usize = 100_000;

impl Job {
    /// Samples `samples` networks of `space` with `seed` and predicts each
    /// with `table`; refuses a table of another space and one that cannot
    /// predict every sampled network (naming the missing keys).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        table: &LatencyTable,
        table_sha256: String,
        space: SearchSpaceConfig,
        config: EngineConfig,
        sampling: Sampling,
        timing: TimingRule,
        command: String,
    ) -> Result<Job> {
        let Sampling {
            seed,
            samples,
            width_multiple,
        } = sampling;
        if !(1..=MAX_SAMPLES).contains(&samples) {
            bail!("--samples must be a number in [1, {MAX_SAMPLES}], got {samples}");
        }
        let mut job = Job::of_table(table, table_sha256, space, config, timing, command)?;
        job.seed = seed;
        job.width_multiple = width_multiple;
        job.networks = job.sample(table, samples)?;
        Ok(job)
    }

    /// A job on `table` with no networks yet; refuses a table of another
    /// space.
    fn of_table(
        table: &LatencyTable,
        table_sha256: String,
        space: SearchSpaceConfig,
        config: EngineConfig,
        timing: TimingRule,
        command: String,
    ) -> Result<Job> {
        if let Some(digest) = table.metadata().get(meta::SPACE_DIGEST) {
            if digest != space.digest() {
                bail!(
                    "{}: the table was built for space digest {digest}, but the space '{}' has digest {}; pass the table's space with --space",
                    table.origin(),
                    space.name,
                    space.digest()
                );
            }
        }
        Ok(Job {
            table_origin: table.origin().to_string(),
            table_header: table.metadata().clone(),
            table_entries: table.len(),
            table_sha256,
            space,
            config,
            seed: 0,
            width_multiple: 1,
            timing,
            passes: 1,
            command,
            networks: Vec::new(),
            given: None,
            correction: table.correction(),
            boundary_ms: table.boundary_ms(),
            gauge: speed::Gauge::of(table, false)?,
        })
    }

    /// The first `samples` networks of the job's seed, each predicted with
    /// `table`; refuses a table that cannot predict every one, naming the
    /// missing keys.
    fn sample(&self, table: &LatencyTable, samples: usize) -> Result<Vec<Network>> {
        let (space, seed, width_multiple) = (&self.space, self.seed, self.width_multiple);
        let mut networks = Vec::with_capacity(samples);
        let mut missing: Vec<String> = Vec::new();
        let mut unpredictable = 0;
        let twins = Twins::of(table);
        for index in 0..samples as u64 {
            let arch = Architecture::sample_nth_on(space, seed, index, width_multiple)?;
            let blocks = arch.block_specs()?;
            match table.predict_blocks(&blocks) {
                Ok(p) => networks.push(twins.network(index, arch.code(), blocks, p.total_ms)),
                Err(space::SpaceError::MissingEntries { keys }) => {
                    unpredictable += 1;
                    for k in keys {
                        if !missing.contains(&k) {
                            missing.push(k);
                        }
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        if !missing.is_empty() {
            const SHOWN: usize = 20;
            bail!(
                "{}: the table cannot predict {unpredictable} of the {samples} sampled networks; it lacks {} entr{}: {}{} (build the whole table first; nothing was measured)",
                table.origin(),
                missing.len(),
                if missing.len() == 1 { "y" } else { "ies" },
                missing[..missing.len().min(SHOWN)].join(", "),
                if missing.len() > SHOWN { ", ..." } else { "" }
            );
        }
        Ok(networks)
    }

    /// Replaces the sampled networks with `archs` (named by their files),
    /// each predicted with `table`; refuses an architecture of another space
    /// or one the table cannot predict, naming its file.
    pub fn given(
        &mut self,
        table: &LatencyTable,
        archs: Vec<(String, Architecture)>,
    ) -> Result<()> {
        let mut networks = Vec::with_capacity(archs.len());
        let twins = Twins::of(table);
        for (index, (name, arch)) in archs.iter().enumerate() {
            if arch.space.digest() != self.space.digest() {
                bail!(
                    "{name}: an architecture of space '{}' (digest {}), not of the table's space '{}' (digest {}); pass its space with --space",
                    arch.space.name,
                    arch.space.digest(),
                    self.space.name,
                    self.space.digest()
                );
            }
            let blocks = arch.block_specs()?;
            let predicted = table
                .predict_blocks(&blocks)
                .with_context(|| format!("{name}: the table cannot predict it"))?;
            networks.push(twins.network(index as u64, arch.code(), blocks, predicted.total_ms));
        }
        self.networks = networks;
        self.given = Some(archs.into_iter().map(|(name, _)| name).collect());
        Ok(())
    }

    /// The code of network `index` of this job: the given one, or the one
    /// its seed samples there (the check of a resumed row).
    pub fn expected_code(&self, index: u64) -> Result<String> {
        match &self.given {
            Some(_) => match usize::try_from(index)
                .ok()
                .and_then(|i| self.networks.get(i))
            {
                Some(n) => Ok(n.code.clone()),
                None => bail!(
                    "row {index} is beyond the {} given networks",
                    self.networks.len()
                ),
            },
            None => Ok(Architecture::sample_nth_on(
                &self.space,
                self.seed,
                index,
                self.width_multiple,
            )?
            .code()),
        }
    }

    /// Network `net`'s name in messages: its file, or its sample.
    pub fn name_of(&self, net: &Network) -> String {
        let given = self.given.as_ref().and_then(|g| g.get(net.index as usize));
        match given {
            Some(name) => name.clone(),
            None => format!("sample {} of seed {}", net.index, self.seed),
        }
    }

    /// The job with [`Job::passes`] set, refused outside 1 to
    /// [`rows::MAX_PASSES`].
    pub fn with_passes(self, passes: u32) -> Result<Job> {
        if !(1..=rows::MAX_PASSES).contains(&passes) {
            bail!(
                "--passes must be a number in [1, {}], got {passes}",
                rows::MAX_PASSES
            );
        }
        Ok(Job { passes, ..self })
    }

    /// The rows file's header: the table's identity and fingerprint summary,
    /// the measuring device and the settings.
    pub fn header(&self, info: &EngineInfo, started: &str) -> Metadata {
        use rows::keys;
        let t = |k: &str| self.table_header.get(k).unwrap_or("(unknown)").to_string();
        let c = &self.config;
        let mut m = Metadata::new();
        m.set(meta::FORMAT, rows::FORMAT)
            .set(keys::TABLE, &self.table_origin)
            .set(keys::TABLE_SHA256, &self.table_sha256)
            .set(keys::TABLE_DEVICE_NAME, t(meta::DEVICE_NAME))
            .set(keys::TABLE_DEVICE_UUID, t(meta::DEVICE_UUID))
            .set(keys::TABLE_ENGINE, t(meta::ENGINE))
            .set(keys::TABLE_STARTED, t(meta::STARTED))
            .set(keys::TABLE_FINISHED, t(meta::FINISHED))
            .set(keys::TABLE_ENTRIES, self.table_entries);
        crate::measure::engine::set_measurement_lines(&mut m, info, c)
            .set(meta::SPACE, &self.space.name)
            .set(meta::SPACE_DIGEST, self.space.digest())
            .set(keys::SEED, self.seed)
            .set(keys::WIDTH_MULTIPLE, self.width_multiple)
            .set(
                keys::NETWORKS,
                self.given
                    .as_ref()
                    .map_or("sampled".into(), |g| g.join(", ")),
            )
            .set(keys::TIMING, self.timing.describe())
            .set(meta::PROFILER_VERSION, env!("CARGO_PKG_VERSION"))
            .set(meta::COMMAND, &self.command)
            .set(meta::STARTED, started);
        if let Some(g) = &self.gauge {
            m.set(speed::REFERENCE_KEY, format!("{:.6}", g.reference_ms()))
                .set(speed::REFERENCE_NOTE_KEY, g.describe());
        }
        m
    }
}

/// What the engine runs with, against what the job needs; refuses any
/// difference, naming the keys.
pub(super) fn check_engine(job: &Job, engine: &dyn Engine) -> Result<()> {
    let (want, got) = (&job.config, engine.config());
    let pairs = [
        (meta::BATCH, want.batch.to_string(), got.batch.to_string()),
        (
            meta::LAUNCH,
            want.launch.to_string(),
            got.launch.to_string(),
        ),
        (meta::L2, want.l2.to_string(), got.l2.to_string()),
        (meta::DTYPE, want.dtype.to_string(), got.dtype.to_string()),
        (
            meta::LAYOUT,
            want.layout.to_string(),
            got.layout.to_string(),
        ),
    ];
    let diffs: Vec<String> = pairs
        .iter()
        .filter(|(_, w, g)| w != g)
        .map(|(k, w, g)| format!("{k}: table '{w}', engine '{g}'"))
        .collect();
    if !diffs.is_empty() {
        return Err(ProfilerError::FlagsDisagreeWithTable {
            table: job.table_origin.clone(),
            diffs: diffs.join("; "),
        });
    }
    Ok(())
}
