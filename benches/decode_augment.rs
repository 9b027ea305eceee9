//! Images per second per core for decode + augment to 224x224, on JPEGs this
//! benchmark writes itself (three sizes, quality 90), against PIL plus
//! torchvision doing the same work in the same run where they are installed
//! (`benches/pil_reference.py`; skipped with a message otherwise).
//!
//! Run: `cargo bench -p searcher --bench decode_augment`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use fast_image_resize::Resizer;
use rand::SeedableRng;
use searcher::images::augment;

const SIZES: [(u32, u32); 3] = [(500, 375), (800, 600), (1600, 1200)];
const PER_SIZE: usize = 24;
const OUT: u32 = 224;

fn photo(w: u32, h: u32, seed: u32) -> image::RgbImage {
    // Smooth gradients plus texture: JPEG sizes close to real photos.
    image::RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy, s) = (x as f32 / w as f32, y as f32 / h as f32, seed as f32);
        let n = ((x.wrapping_mul(2654435761) ^ y.wrapping_mul(40503) ^ seed) % 41) as f32;
        image::Rgb([
            (110.0 + 90.0 * (7.0 * fx + s).sin() + n) as u8,
            (110.0 + 90.0 * (5.0 * fy + 0.5 * s).cos() + n) as u8,
            (110.0 + 80.0 * (9.0 * (fx * fy) + s).sin() + n) as u8,
        ])
    })
}

fn write_set(dir: &Path) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for (k, &(w, h)) in SIZES.iter().enumerate() {
        for i in 0..PER_SIZE {
            let path = dir.join(format!("{w}x{h}_{i:02}.jpg"));
            let file = std::fs::File::create(&path).unwrap();
            image::codecs::jpeg::JpegEncoder::new_with_quality(file, 90)
                .encode_image(&photo(w, h, (k * 100 + i) as u32))
                .unwrap();
            paths.push(path);
        }
    }
    paths
}

/// Single-threaded images per second of `f` over every file, best of 3.
fn rate(paths: &[PathBuf], mut f: impl FnMut(usize, &Path)) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        for (i, p) in paths.iter().enumerate() {
            f(i, p);
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    paths.len() as f64 / best
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let paths = write_set(dir.path());
    let mut out = vec![0f32; 3 * (OUT * OUT) as usize];
    let mut resizer = Resizer::new();
    println!("decode + RandomResizedCrop + flip + ColorJitter + normalise to {OUT}x{OUT}, one core, {} JPEGs ({PER_SIZE} each of {SIZES:?}):", paths.len());

    // Decoders alone: the pipeline's (zune-jpeg), the `image` crate's, and
    // jpeg-decoder at full size and at 1/4 size in the DCT domain.
    let zune = rate(&paths, |_, p| {
        let bytes = std::fs::read(p).unwrap();
        std::hint::black_box(searcher::images::decode::decode(&bytes, p).unwrap());
    });
    let img = rate(&paths, |_, p| {
        std::hint::black_box(image::open(p).unwrap().to_rgb8());
    });
    let jpeg_decoder = |scale: u16| {
        move |_, p: &Path| {
            let bytes = std::fs::read(p).unwrap();
            let mut d = jpeg_decoder::Decoder::new(&bytes[..]);
            d.read_info().unwrap();
            let info = d.info().unwrap();
            d.scale(info.width.div_ceil(scale), info.height.div_ceil(scale))
                .unwrap();
            std::hint::black_box(d.decode().unwrap());
        }
    };
    let jd = rate(&paths, jpeg_decoder(1));
    let jd4 = rate(&paths, jpeg_decoder(4));
    println!(
        "  decode only: zune-jpeg {zune:.0}/s (used), image {img:.0}/s, jpeg-decoder {jd:.0}/s, jpeg-decoder at 1/4 size (DCT scaling) {jd4:.0}/s"
    );

    // The whole transforms.
    let mut run = |train: bool| {
        rate(&paths, |i, p| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(i as u64);
            let bytes = std::fs::read(p).unwrap();
            let img = searcher::images::decode::decode(&bytes, p).unwrap();
            let crop = if train {
                augment::random_resized_crop(img.width, img.height, &mut rng)
            } else {
                augment::center_crop(img.width, img.height, OUT)
            };
            let img = augment::resize_crop(&img, crop, OUT, &mut resizer);
            let jitter = augment::Jitter::sample(&mut rng);
            augment::to_tensor(
                &img,
                train && i % 2 == 0,
                train.then_some(&jitter),
                &mut out,
            );
        })
    };
    let ours = run(true);
    let held_out = run(false);
    println!("  training transform: {ours:.0} images/s/core; held-out transform: {held_out:.0} images/s/core");

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/pil_reference.py");
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    let python = if python.exists() {
        python
    } else {
        PathBuf::from("python3")
    };
    match Command::new(&python)
        .arg(&script)
        .arg(dir.path())
        .arg(OUT.to_string())
        .output()
    {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let pil: Option<f64> = text.lines().find_map(|l| {
                l.strip_prefix("images_per_second_per_core ")?
                    .trim()
                    .parse()
                    .ok()
            });
            match pil {
                Some(pil) => println!(
                    "  PIL + torchvision: {pil:.0} images/s/core; ratio ours/PIL = {:.2}x",
                    ours / pil
                ),
                None => println!("  PIL reference printed no rate: {text}"),
            }
        }
        Ok(o) => println!(
            "  PIL reference skipped: {}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("failed")
        ),
        Err(e) => println!(
            "  PIL reference skipped: cannot run {}: {e}",
            python.display()
        ),
    }
    println!(
        "  implied: {:.0} images/s on 16 cores at this rate",
        ours * 16.0
    );
}
