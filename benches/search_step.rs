//! One weight step (bi-sampled, two single paths) and one architecture step
//! (all ops mixed, latency loss) of the searcher, on the default TF-NAS space
//! against the MAC-count proxy table. By default on the CPU at a small size
//! (batch 8 of 16x16 embedded images); `SEARCH_STEP_DEVICE=cuda:0`,
//! `SEARCH_STEP_BATCH` and `SEARCH_STEP_RESOLUTION` change that, to compare
//! with `benches/pytorch_search_step.py` at the same settings. Every step
//! reads its loss back, so GPU timings include the synchronisation.
//!
//! `cargo bench -p searcher --bench search_step`

use criterion::{criterion_group, criterion_main, Criterion};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use searcher::data::{Augment, Dataset, Patterns};
use searcher::latency::LatencyModel;
use searcher::proxy::proxy_table;
use searcher::search::{Search, Settings};
use space::SearchSpaceConfig;
use tch::Device;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn steps(c: &mut Criterion) {
    let device = match std::env::var("SEARCH_STEP_DEVICE").as_deref() {
        Ok("cpu") | Err(_) => Device::Cpu,
        Ok(other) => Device::Cuda(
            other
                .trim_start_matches("cuda")
                .trim_start_matches(':')
                .parse()
                .unwrap_or(0),
        ),
    };
    let batch: usize = env_or("SEARCH_STEP_BATCH", 8);
    let resolution: u32 = env_or("SEARCH_STEP_RESOLUTION", 16);
    let space = SearchSpaceConfig::default();
    let table = proxy_table(&space, 32).expect("proxy table");
    let model = LatencyModel::new(&space, &table).expect("proxy covers the space");
    let settings = Settings {
        batch_size: batch,
        ..Settings::default()
    };
    let mut search = Search::new(settings, &space, model, 10, device, &[("bench", "bench")])
        .expect("search builds");
    let data = Patterns::new(batch.max(20), resolution, 0.3, 1).expect("embedded data");
    let idx: Vec<usize> = (0..batch).collect();
    let (x, y) = data.batch(&idx, Augment::HeldOut).expect("a batch");
    let (x, y) = (x.to_device(device), y.to_device(device));
    let what = format!("default space, {batch}x3x{resolution}x{resolution}, {device:?}");
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    c.bench_function(&format!("weight step, bi-sampled ({what})"), |b| {
        b.iter(|| search.weight_step(&x, &y, false, 0.01, &mut rng, batch))
    });
    c.bench_function(&format!("arch step, all ops mixed ({what})"), |b| {
        b.iter(|| search.arch_step(&x, &y, 1.0, &mut rng, batch))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = steps
}
criterion_main!(benches);
