//! Turning image files into RGB pixels.
//!
//! JPEG through zune-jpeg, PNG through `image`, chosen by measurement
//! (`benches/decode_augment.rs`, 2026-11-27, one core): full-size JPEG
//! decoding ran at 197 images/s with zune-jpeg against 135/s with `image`
//! 0.25 and 135/s with jpeg-decoder. Decoding at reduced size in the DCT
//! domain (jpeg-decoder's `scale`) was slower still at every factor on
//! 1600x1200 photos (15.0, 13.0 and 12.8 ms at 1/2, 1/4 and 1/8 against
//! 10.8 ms for zune-jpeg at full size): entropy decoding, which scaling does
//! not skip, dominates. The bench still prints full size against 1/4 size,
//! in images per second (README: about 195 against 149 on the 2-core
//! machine, shared with builds, so single runs vary).

use std::path::Path;

use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;

use crate::error::{Result, SearchError};

/// Interleaved 8-bit RGB pixels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rgb8 {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
}

/// The format from the file's magic bytes, not its name.
pub fn sniff(bytes: &[u8]) -> Option<Format> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Format::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Format::Png)
    } else {
        None
    }
}

fn fail(path: &Path, message: impl ToString) -> SearchError {
    SearchError::Decode {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// Decodes `bytes` to RGB.
pub fn decode(bytes: &[u8], path: &Path) -> Result<Rgb8> {
    match sniff(bytes) {
        Some(Format::Jpeg) => decode_jpeg(bytes, path),
        Some(Format::Png) => {
            let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Png)
                .map_err(|e| fail(path, e))?
                .to_rgb8();
            let (width, height) = img.dimensions();
            Ok(Rgb8 {
                width,
                height,
                data: img.into_raw(),
            })
        }
        None => Err(fail(path, "neither JPEG nor PNG")),
    }
}

/// Whether a JPEG's last scan is followed by its end-of-image marker. A
/// file cut inside its entropy-coded data has none there, and the decoder
/// would fill the missing rows with grey without a word. Byte stuffing
/// keeps both markers out of the coded data, and an EXIF thumbnail's own
/// markers come before the main image's scans, so the last SOS must be
/// followed by an EOI.
pub fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last = |marker: u8| bytes.windows(2).rposition(|w| w == [0xFF, marker]);
    match (last(0xDA), last(0xD9)) {
        (Some(sos), Some(eoi)) => eoi > sos,
        _ => false,
    }
}

/// Full-size decode with zune-jpeg (grey and CMYK converted to RGB).
pub fn decode_jpeg(bytes: &[u8], path: &Path) -> Result<Rgb8> {
    if !jpeg_is_complete(bytes) {
        return Err(fail(
            path,
            "truncated JPEG: no end-of-image marker after its last scan",
        ));
    }
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::RGB)
        .set_strict_mode(false);
    let mut d = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    let data = d.decode().map_err(|e| fail(path, format!("{e:?}")))?;
    let (w, h) = d.dimensions().ok_or_else(|| fail(path, "no dimensions"))?;
    if data.len() != w * h * 3 {
        return Err(fail(path, "decoder returned a short frame"));
    }
    Ok(Rgb8 {
        width: w as u32,
        height: h as u32,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let pixels: Vec<u8> = (0..width * height * 3)
            .map(|i| (i * 7 % 256) as u8)
            .collect();
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90)
            .encode(&pixels, width, height, image::ExtendedColorType::Rgb8)
            .unwrap();
        bytes
    }

    #[test]
    fn a_jpeg_cut_inside_its_data_is_a_decode_error() {
        let whole = jpeg(64, 64);
        let path = Path::new("x.jpg");
        assert_eq!(decode(&whole, path).unwrap().width, 64);
        for keep in [whole.len() - 2, whole.len() * 3 / 4, whole.len() / 2] {
            let e = decode(&whole[..keep], path).unwrap_err().to_string();
            assert!(
                e.contains("x.jpg") && e.contains("truncated JPEG"),
                "{keep}: {e}"
            );
        }
        // Padding after the end-of-image marker is no truncation.
        let mut padded = whole.clone();
        padded.extend([0u8; 16]);
        assert!(decode(&padded, path).is_ok());
    }

    #[test]
    fn one_pixel_images_decode() {
        for (w, h) in [(1, 1), (1, 300), (300, 1)] {
            let img = decode(&jpeg(w, h), Path::new("tiny.jpg")).unwrap();
            assert_eq!((img.width, img.height), (w, h));
        }
    }
}
