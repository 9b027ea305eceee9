//! The method's transforms (docs/method.md §5), after torchvision:
//! training: RandomResizedCrop, horizontal flip, ColorJitter(0.4, 0.4, 0.4,
//! 0.2), normalisation; held out: resize to 256/224 of the output, centre
//! crop. The crop is decided on the original size and applied together with
//! the resize, in one resample.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use rand::seq::SliceRandom;
use rand::Rng;

use super::decode::Rgb8;

/// ImageNet mean and std, per RGB channel, for inputs in [0, 1].
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// A crop of the source image in its own pixel coordinates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Crop {
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
}

/// torchvision's `RandomResizedCrop.get_params` with scale (0.08, 1) and
/// ratio (3/4, 4/3): ten tries at a random area and aspect, then a centre
/// crop clamped to the allowed aspect.
pub fn random_resized_crop(width: u32, height: u32, rng: &mut impl Rng) -> Crop {
    let (w0, h0) = (f64::from(width), f64::from(height));
    let area = w0 * h0;
    let (lo, hi) = ((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln());
    for _ in 0..10 {
        let target = area * rng.gen_range(0.08..1.0);
        let aspect = rng.gen_range(lo..hi).exp();
        let w = (target * aspect).sqrt().round();
        let h = (target / aspect).sqrt().round();
        if w > 0.0 && h > 0.0 && w <= w0 && h <= h0 {
            let top = rng.gen_range(0..=(h0 - h) as u32);
            let left = rng.gen_range(0..=(w0 - w) as u32);
            return Crop {
                left: f64::from(left),
                top: f64::from(top),
                width: w,
                height: h,
            };
        }
    }
    let ratio = w0 / h0;
    let (w, h) = if ratio < 3.0 / 4.0 {
        (w0, (w0 / (3.0 / 4.0)).round())
    } else if ratio > 4.0 / 3.0 {
        ((h0 * 4.0 / 3.0).round(), h0)
    } else {
        (w0, h0)
    };
    let (w, h) = (w.min(w0), h.min(h0));
    Crop {
        left: ((w0 - w) / 2.0).floor(),
        top: ((h0 - h) / 2.0).floor(),
        width: w,
        height: h,
    }
}

/// Resize(out·256/224) of the shorter side, then CenterCrop(out), as one
/// crop of the original.
pub fn center_crop(width: u32, height: u32, out: u32) -> Crop {
    let resize_to = (f64::from(out) * 256.0 / 224.0).round();
    let short = f64::from(width.min(height));
    // At least one pixel: an image with a 1-pixel side still gives one.
    let side = (f64::from(out) * short / resize_to).clamp(1.0, short);
    Crop {
        left: (f64::from(width) - side) / 2.0,
        top: (f64::from(height) - side) / 2.0,
        width: side,
        height: side,
    }
}

/// Crops and resizes to `out`×`out` with an antialiased bilinear filter
/// (torchvision's `antialias=True`).
pub fn resize_crop(img: &Rgb8, crop: Crop, out: u32, resizer: &mut Resizer) -> Rgb8 {
    let src = ImageRef::new(img.width, img.height, &img.data, PixelType::U8x3)
        .expect("buffer matches its dimensions");
    let mut dst = Image::new(out, out, PixelType::U8x3);
    let crop = inside(crop, img.width, img.height);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
        .crop(crop.left, crop.top, crop.width, crop.height);
    resizer
        .resize(&src, &mut dst, &options)
        .expect("same pixel types and a crop inside the image");
    Rgb8 {
        width: out,
        height: out,
        data: dst.into_vec(),
    }
}

/// `crop` made at least one pixel wide and high and moved inside a
/// `width`×`height` image, whatever its size: a crop widened to one pixel
/// on a 1-pixel side must move back inside, not hang over the edge.
pub fn inside(crop: Crop, width: u32, height: u32) -> Crop {
    let fit = |start: f64, len: f64, side: u32| {
        let side = f64::from(side);
        let len = len.clamp(1.0, side);
        (start.clamp(0.0, side - len), len)
    };
    let (left, width) = fit(crop.left, crop.width, width);
    let (top, height) = fit(crop.top, crop.height, height);
    Crop {
        left,
        top,
        width,
        height,
    }
}

/// ColorJitter factors, drawn as torchvision draws them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Jitter {
    pub brightness: f32,
    pub contrast: f32,
    pub saturation: f32,
    pub hue: f32,
    /// The order the four adjustments apply in (0 b, 1 c, 2 s, 3 h).
    pub order: [u8; 4],
}

impl Jitter {
    /// ColorJitter(0.4, 0.4, 0.4, 0.2).
    pub fn sample(rng: &mut impl Rng) -> Jitter {
        let mut order = [0u8, 1, 2, 3];
        order.shuffle(rng);
        Jitter {
            brightness: rng.gen_range(0.6..1.4),
            contrast: rng.gen_range(0.6..1.4),
            saturation: rng.gen_range(0.6..1.4),
            hue: rng.gen_range(-0.2..0.2),
            order,
        }
    }
}

fn gray(p: [f32; 3]) -> f32 {
    0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]
}

fn blend(a: f32, b: f32, factor: f32) -> f32 {
    (factor * a + (1.0 - factor) * b).clamp(0.0, 1.0)
}

fn shift_hue(p: [f32; 3], shift: f32) -> [f32; 3] {
    let [r, g, b] = p;
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let delta = max - min;
    if delta <= 0.0 {
        return p;
    }
    let h = if max == r {
        ((g - b) / delta).rem_euclid(6.0)
    } else if max == g {
        (b - r) / delta + 2.0
    } else {
        (r - g) / delta + 4.0
    } / 6.0;
    let h = (h + shift).rem_euclid(1.0) * 6.0;
    let (s, v) = (delta / max, max);
    let i = h.floor();
    let f = h - i;
    let (p_, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    match i as u32 % 6 {
        0 => [v, t, p_],
        1 => [q, v, p_],
        2 => [p_, v, t],
        3 => [p_, q, v],
        4 => [t, p_, v],
        _ => [v, p_, q],
    }
}

/// Writes `img` as normalised CHW floats into `out` (3·w·h values), flipped
/// and jittered as asked.
pub fn to_tensor(img: &Rgb8, flip: bool, jitter: Option<&Jitter>, out: &mut [f32]) {
    let (w, h) = (img.width as usize, img.height as usize);
    assert_eq!(out.len(), 3 * w * h, "output slice has the wrong size");
    let mut px: Vec<[f32; 3]> = img
        .data
        .chunks_exact(3)
        .map(|c| [0, 1, 2].map(|i| f32::from(c[i]) / 255.0))
        .collect();
    if let Some(j) = jitter {
        for op in j.order {
            match op {
                0 => px
                    .iter_mut()
                    .flatten()
                    .for_each(|v| *v = (*v * j.brightness).clamp(0.0, 1.0)),
                1 => {
                    let mean = px.iter().map(|&p| gray(p)).sum::<f32>() / px.len() as f32;
                    px.iter_mut()
                        .flatten()
                        .for_each(|v| *v = blend(*v, mean, j.contrast));
                }
                2 => px.iter_mut().for_each(|p| {
                    let g = gray(*p);
                    *p = p.map(|v| blend(v, g, j.saturation));
                }),
                _ => px.iter_mut().for_each(|p| *p = shift_hue(*p, j.hue)),
            }
        }
    }
    let plane = w * h;
    for y in 0..h {
        for x in 0..w {
            let sx = if flip { w - 1 - x } else { x };
            let p = px[y * w + sx];
            for c in 0..3 {
                out[c * plane + y * w + x] = (p[c] - MEAN[c]) / STD[c];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn image(width: u32, height: u32) -> Rgb8 {
        Rgb8 {
            width,
            height,
            data: (0..width * height * 3).map(|i| (i % 251) as u8).collect(),
        }
    }

    #[test]
    fn every_image_size_down_to_one_pixel_crops_and_resizes() {
        let mut resizer = Resizer::new();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let sizes = [
            (1, 1),
            (1, 300),
            (300, 1),
            (2, 2),
            (3, 1),
            (1, 2),
            (7, 5),
            (48, 48),
        ];
        for (w, h) in sizes {
            let img = image(w, h);
            for out in [1, 16, 48] {
                let crops = [center_crop(w, h, out), random_resized_crop(w, h, &mut rng)];
                for crop in crops {
                    let c = inside(crop, w, h);
                    assert!(
                        c.left >= 0.0 && c.left + c.width <= f64::from(w),
                        "{w}x{h}: {c:?}"
                    );
                    assert!(
                        c.top >= 0.0 && c.top + c.height <= f64::from(h),
                        "{w}x{h}: {c:?}"
                    );
                    let resized = resize_crop(&img, crop, out, &mut resizer);
                    assert_eq!(resized.data.len(), (3 * out * out) as usize);
                }
            }
        }
    }
}
