//! The image pipeline on small data the tests make themselves.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use searcher::data::{split_per_class, Augment, Dataset};
use searcher::images::augment::{self, Crop};
use searcher::images::cifar::CifarSet;
use searcher::images::decode;
use searcher::images::files::{self as split, Sample};
use searcher::images::loader::{Images, Loader, LoaderConfig};
use searcher::images::{ImageSet, LoaderOptions};

/// A smooth colour photo-like test image, so JPEG artefacts stay small.
fn photo(w: u32, h: u32, seed: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        let fx = x as f32 / w as f32;
        let fy = y as f32 / h as f32;
        let s = seed as f32;
        image::Rgb([
            (127.0 + 100.0 * (6.0 * fx + s).sin()) as u8,
            (127.0 + 100.0 * (5.0 * fy + 0.5 * s).cos()) as u8,
            (127.0 + 90.0 * (4.0 * (fx + fy) + s).sin()) as u8,
        ])
    })
}

fn write_jpeg(path: &Path, w: u32, h: u32, seed: u32) {
    let file = std::fs::File::create(path).unwrap();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(file, 90);
    enc.encode_image(&photo(w, h, seed)).unwrap();
}

/// `classes` folders of `per_class` JPEGs (and one PNG per class).
fn image_folder(root: &Path, classes: usize, per_class: usize) {
    for c in 0..classes {
        let dir = root.join(format!("class{c}"));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..per_class {
            write_jpeg(
                &dir.join(format!("img{i:03}.jpg")),
                96 + 8 * i as u32,
                80,
                (c * 31 + i) as u32,
            );
        }
        photo(64, 64, c as u32).save(dir.join("extra.png")).unwrap();
        std::fs::write(dir.join("notes.txt"), "not an image").unwrap();
    }
}

/// Every image of a folder data set, labelled by its class folder.
fn samples_of(root: &Path) -> Vec<Sample> {
    split::scan_folder(root)
        .unwrap()
        .into_iter()
        .enumerate()
        .flat_map(|(label, (_, paths))| paths.into_iter().map(move |path| Sample { path, label }))
        .collect()
}

fn config(train: bool) -> LoaderConfig {
    LoaderConfig {
        resolution: 32,
        train,
        seed: 7,
        prefetch: 2,
        threads: 2,
        strict: false,
    }
}

#[test]
fn folder_split_is_per_class_80_20_and_seed_stable() {
    let dir = tempfile::tempdir().unwrap();
    image_folder(dir.path(), 3, 9); // 10 images per class with the PNG
    let classes = split::scan_folder(dir.path()).unwrap();
    assert_eq!(classes.len(), 3);
    assert!(classes.iter().all(|(_, files)| files.len() == 10));
    let set = ImageSet::folder(dir.path(), 16, 1, LoaderOptions::default()).unwrap();
    assert_eq!((set.len(), set.num_classes()), (30, 3));
    let a = split_per_class(&set, 0.8, 2);
    for label in 0..3 {
        assert_eq!(
            a.train.iter().filter(|&&i| set.label(i) == label).count(),
            8
        );
        assert_eq!(
            a.held_out
                .iter()
                .filter(|&&i| set.label(i) == label)
                .count(),
            2
        );
    }
    assert!(a.train.iter().all(|t| !a.held_out.contains(t)));
    assert_eq!(a, split_per_class(&set, 0.8, 2));
    assert_ne!(a, split_per_class(&set, 0.8, 3));
}

#[test]
fn empty_class_and_empty_root_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = split::scan_folder(dir.path()).unwrap_err().to_string();
    assert!(err.contains("no class subfolders"), "{err}");
    image_folder(dir.path(), 2, 2);
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    let err = split::scan_folder(dir.path()).unwrap_err().to_string();
    assert!(err.contains("empty") && err.contains("no .jpg"), "{err}");
}

#[test]
fn official_lists_parse_and_missing_files_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    image_folder(root, 2, 3);
    let train = root.join("train.txt");
    let val = root.join("val.txt");
    std::fs::write(
        &train,
        "class0/img000.jpg 0\nclass0/img001.jpg 0\nclass1/img000.jpg 1\n",
    )
    .unwrap();
    std::fs::write(&val, "class0/img002.jpg 0\nclass1/img002.jpg 1\n").unwrap();
    let s = split::from_lists(root, &train, &val).unwrap();
    assert_eq!(s.classes, ["class0", "class1"]);
    assert_eq!(s.train.len(), 3);
    assert_eq!(
        s.val[1],
        Sample {
            path: root.join("class1/img002.jpg"),
            label: 1
        }
    );

    std::fs::write(
        &val,
        "class0/img002.jpg 0\nclass1/gone.JPEG 1\nclass1/lost.JPEG 1\n",
    )
    .unwrap();
    let err = split::from_lists(root, &train, &val)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("2 images") && err.contains("gone.JPEG"),
        "{err}"
    );

    std::fs::write(&val, "class0/img002.jpg 0\nclass0/img001.jpg 1\n").unwrap();
    let err = split::from_lists(root, &train, &val)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("val.txt:2") && err.contains("label 1 here but 0 on line 1"),
        "{err}"
    );

    std::fs::write(&val, "class0/img002.jpg zero\n").unwrap();
    let err = split::from_lists(root, &train, &val)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("val.txt:1") && err.contains("not a class index"),
        "{err}"
    );
}

#[test]
fn cifar_records_parse_and_bad_files_are_refused() {
    let mut bytes = Vec::new();
    for (label, value) in [(3u8, 10u8), (9, 200)] {
        bytes.push(label);
        bytes.extend(std::iter::repeat_n(value, 1024)); // red
        bytes.extend(std::iter::repeat_n(value / 2, 1024)); // green
        bytes.extend(std::iter::repeat_n(255 - value, 1024)); // blue
    }
    let mut set = CifarSet::default();
    set.push_batch(&bytes, Path::new("data_batch_1.bin"))
        .unwrap();
    assert_eq!(set.len(), 2);
    assert_eq!((set.label(0), set.label(1)), (3, 9));
    let img = set.image(1);
    assert_eq!((img.width, img.height), (32, 32));
    assert_eq!(&img.data[..6], &[200, 100, 55, 200, 100, 55]);

    let err = CifarSet::default()
        .push_batch(&bytes[..3000], Path::new("short.bin"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("short.bin") && err.contains("whole number"),
        "{err}"
    );
    let mut bad_label = bytes.clone();
    bad_label[3073] = 12;
    let err = CifarSet::default()
        .push_batch(&bad_label, Path::new("b.bin"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("record 1 has label 12"), "{err}");
}

#[test]
fn crops_follow_torchvision_geometry() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    for _ in 0..500 {
        let c = augment::random_resized_crop(500, 375, &mut rng);
        assert!(c.left >= 0.0 && c.top >= 0.0);
        assert!(c.left + c.width <= 500.0 && c.top + c.height <= 375.0);
        let area = c.width * c.height / (500.0 * 375.0);
        assert!((0.07..=1.0).contains(&area), "area {area}");
        let aspect = c.width / c.height;
        assert!((0.74..=1.35).contains(&aspect), "aspect {aspect}");
    }
    // Resize(256) + CenterCrop(224) of a 500x375 image: the crop side on the
    // original is 224 · 375 / 256.
    let c = augment::center_crop(500, 375, 224);
    assert!((c.width - 224.0 * 375.0 / 256.0).abs() < 1e-9);
    assert!((c.left - (500.0 - c.width) / 2.0).abs() < 1e-9);
}

#[test]
fn jpeg_decode_matches_the_image_crate_and_resizes_smoothly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.jpg");
    write_jpeg(&path, 1024, 768, 3);
    let bytes = std::fs::read(&path).unwrap();
    let ours = decode::decode(&bytes, &path).unwrap();
    assert_eq!((ours.width, ours.height), (1024, 768));
    let reference = image::open(&path).unwrap().to_rgb8();
    let mad = |a: &[u8], b: &[u8]| {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| (f64::from(x) - f64::from(y)).abs())
            .sum::<f64>()
            / a.len() as f64
    };
    assert!(mad(&ours.data, reference.as_raw()) < 1.0);
    // Cropping then resizing 800x600 to 64x64 stays close to the photo.
    let crop = Crop {
        left: 100.0,
        top: 50.0,
        width: 800.0,
        height: 600.0,
    };
    let mut r = fast_image_resize::Resizer::new();
    let small = augment::resize_crop(&ours, crop, 64, &mut r);
    assert_eq!(
        (small.width, small.height, small.data.len()),
        (64, 64, 64 * 64 * 3)
    );
    let centre = |img: &decode::Rgb8, x: u32, y: u32| img.data[((y * img.width + x) * 3) as usize];
    let expected = centre(&ours, 100 + 400, 50 + 300);
    assert!((i32::from(centre(&small, 32, 32)) - i32::from(expected)).abs() < 12);
    // PNG too; anything else is refused by its bytes, not its name.
    let png = dir.path().join("x.png");
    photo(30, 20, 1).save(&png).unwrap();
    let p = decode::decode(&std::fs::read(&png).unwrap(), &png).unwrap();
    assert_eq!((p.width, p.height), (30, 20));
    let err = decode::decode(b"GIF89a....", Path::new("fake.jpg"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("fake.jpg") && err.contains("neither JPEG nor PNG"),
        "{err}"
    );
}

#[test]
fn batches_have_the_right_shape_range_and_are_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    image_folder(dir.path(), 2, 5);
    let images = Arc::new(Images::Files(samples_of(dir.path())));
    let order: Vec<Vec<usize>> = (0..images.len())
        .rev()
        .collect::<Vec<_>>()
        .chunks(4)
        .map(<[usize]>::to_vec)
        .collect();
    let run = |epoch, train| -> Vec<_> {
        Loader::start(images.clone(), order.clone(), epoch, config(train))
            .map(|b| b.unwrap())
            .collect()
    };
    let a = run(0, true);
    assert_eq!(
        a.iter().map(|b| b.labels.len()).sum::<usize>(),
        images.len()
    );
    let (lo, hi) = (-0.485 / 0.229 - 1e-4, (1.0 - 0.406) / 0.225 + 1e-4);
    for b in &a {
        assert_eq!(b.images.len(), b.labels.len() * 3 * 32 * 32);
        assert!(b
            .images
            .iter()
            .all(|v| v.is_finite() && (lo..=hi).contains(&(*v as f64))));
        for (&i, &l) in b.indices.iter().zip(&b.labels) {
            assert_eq!(images.label(i) as i64, l);
        }
    }
    assert_eq!(a, run(0, true), "same seed and epoch");
    assert_ne!(a, run(1, true), "another epoch draws other augmentations");
    let e1 = run(0, false);
    assert_eq!(e1, run(5, false), "held-out transforms are not random");
}

#[test]
fn corrupt_images_are_skipped_and_counted_or_fail_with_strict() {
    let dir = tempfile::tempdir().unwrap();
    image_folder(dir.path(), 1, 6);
    let bad = dir.path().join("class0/img002.jpg");
    let bytes = std::fs::read(&bad).unwrap();
    std::fs::write(&bad, &bytes[..200]).unwrap(); // truncated JPEG
    std::fs::write(dir.path().join("class0/img003.jpg"), b"garbage, not a JPEG").unwrap();
    let samples = samples_of(dir.path());
    let n = samples.len();
    let images = Arc::new(Images::Files(samples));
    let order: Vec<Vec<usize>> = (0..n)
        .collect::<Vec<_>>()
        .chunks(4)
        .map(<[usize]>::to_vec)
        .collect();
    let mut loader = Loader::start(images.clone(), order.clone(), 0, config(true));
    let total: usize = loader.by_ref().map(|b| b.unwrap().labels.len()).sum();
    assert_eq!(loader.skipped(), 2);
    assert_eq!(total, n - 2);

    let strict = LoaderConfig {
        strict: true,
        ..config(true)
    };
    let results: Vec<_> = Loader::start(images, order, 0, strict).collect();
    let err = results
        .iter()
        .find_map(|r| r.as_ref().err())
        .expect("strict mode fails");
    assert!(err.to_string().contains("img00"), "{err}");
}

#[test]
fn the_queue_never_holds_more_than_its_bound() {
    let mut bytes = Vec::new();
    for i in 0..64u8 {
        bytes.push(i % 10);
        bytes.extend(std::iter::repeat_n(i, 3072));
    }
    let mut set = CifarSet::default();
    set.push_batch(&bytes, Path::new("mem")).unwrap();
    let images = Arc::new(Images::Cifar(set));
    let cfg = LoaderConfig {
        prefetch: 3,
        ..config(true)
    };
    let pairs: Vec<Vec<usize>> = (0..64)
        .collect::<Vec<_>>()
        .chunks(2)
        .map(<[usize]>::to_vec)
        .collect();
    let mut loader = Loader::start(images, pairs, 0, cfg);
    let mut batches = 0;
    for b in loader.by_ref() {
        b.unwrap();
        batches += 1;
        std::thread::sleep(Duration::from_millis(5)); // a slow training step
    }
    assert_eq!(batches, 32);
    let max = loader
        .stats()
        .max_queued
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!((1..=3).contains(&max), "max queued {max}");
}

#[test]
fn dropping_a_loader_midway_stops_its_producer() {
    let dir = tempfile::tempdir().unwrap();
    image_folder(dir.path(), 1, 8);
    let samples = samples_of(dir.path());
    let n = samples.len();
    let singles: Vec<Vec<usize>> = (0..n).map(|i| vec![i]).collect();
    let mut loader = Loader::start(Arc::new(Images::Files(samples)), singles, 0, config(true));
    assert!(loader.next().unwrap().is_ok());
    drop(loader); // must return, not hang
    let _: PathBuf = dir.path().into();
}

#[test]
fn prefetched_batches_equal_synchronous_ones() {
    let dir = tempfile::tempdir().unwrap();
    image_folder(dir.path(), 2, 7);
    let opts = LoaderOptions {
        threads: 2,
        prefetch: 2,
        strict: false,
    };
    let set = ImageSet::folder(dir.path(), 24, 5, opts).unwrap();
    let plan: Vec<Vec<usize>> = vec![vec![3, 0, 9], vec![12, 1], vec![7, 8, 2, 4]];
    let aug = Augment::Train { epoch: 3 };
    let sync: Vec<_> = plan.iter().map(|b| set.batch(b, aug).unwrap()).collect();
    set.prefetch(&plan, aug);
    for (b, (x, y)) in plan.iter().zip(&sync) {
        let (px, py) = set.batch(b, aug).unwrap();
        assert!(
            px.equal(x) && py.equal(y),
            "batch {b:?} differs when prefetched"
        );
        assert_eq!(px.size(), [b.len() as i64, 3, 24, 24]);
    }
    // Asking off-plan is still answered; held-out batches are not random.
    set.prefetch(&plan, aug);
    let (h1, _) = set.batch(&[5, 6], Augment::HeldOut).unwrap();
    let (h2, _) = set.batch(&[5, 6], Augment::HeldOut).unwrap();
    assert!(h1.equal(&h2));
    let (off, _) = set.batch(&[1, 2], aug).unwrap();
    assert_eq!(off.size(), [2, 3, 24, 24]);
}

#[test]
fn image_sets_refuse_bad_data_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = ImageSet::folder(&missing, 16, 1, LoaderOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("nope"), "{err}");
    std::fs::create_dir(dir.path().join("cat")).unwrap();
    std::fs::create_dir(dir.path().join("dog")).unwrap();
    std::fs::write(dir.path().join("cat/a.jpg"), b"not a jpeg").unwrap();
    let err = ImageSet::folder(dir.path(), 16, 1, LoaderOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("dog") && err.contains("no .jpg"), "{err}");
    photo(20, 20, 1).save(dir.path().join("dog/b.png")).unwrap();
    let err = ImageSet::folder(dir.path(), 16, 1, LoaderOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("class 'cat'") && err.contains("a.jpg"),
        "{err}"
    );
}

#[test]
fn cifar_folders_open_as_image_sets() {
    let dir = tempfile::tempdir().unwrap();
    for b in 1..=5u8 {
        let mut bytes = Vec::new();
        for label in 0..10u8 {
            bytes.push(label);
            bytes.extend((0..3072).map(|p| (p as u8).wrapping_mul(b).wrapping_add(label)));
        }
        std::fs::write(dir.path().join(format!("data_batch_{b}.bin")), bytes).unwrap();
    }
    let set = ImageSet::open(dir.path(), 32, 1, LoaderOptions::default()).unwrap();
    assert_eq!((set.len(), set.num_classes()), (50, 10));
    let split = split_per_class(&set, 0.8, 1);
    assert_eq!((split.train.len(), split.held_out.len()), (40, 10));
    let (x, y) = set.batch(&split.held_out, Augment::HeldOut).unwrap();
    assert_eq!(x.size(), [10, 3, 32, 32]);
    assert_eq!(y.size(), [10]);
    std::fs::write(dir.path().join("data_batch_3.bin"), b"short").unwrap();
    let err = ImageSet::open(dir.path(), 32, 1, LoaderOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("data_batch_3.bin") && err.contains("whole number"),
        "{err}"
    );
}

#[test]
fn official_lists_open_as_image_sets_with_their_split() {
    let dir = tempfile::tempdir().unwrap();
    image_folder(dir.path(), 2, 3);
    let (train, val) = (dir.path().join("train.txt"), dir.path().join("val.txt"));
    std::fs::write(
        &train,
        "class0/img000.jpg 0\nclass0/img001.jpg 0\nclass1/img000.jpg 1\nclass1/img001.jpg 1\n",
    )
    .unwrap();
    std::fs::write(&val, "class0/img002.jpg 0\nclass1/img002.jpg 1\n").unwrap();
    let (set, split) =
        ImageSet::lists(dir.path(), &train, &val, 16, 1, LoaderOptions::default()).unwrap();
    assert_eq!((set.len(), set.num_classes()), (6, 2));
    assert_eq!(
        (split.train, split.held_out),
        (vec![0, 1, 2, 3], vec![4, 5])
    );
    assert_eq!(set.label(5), 1);
}
