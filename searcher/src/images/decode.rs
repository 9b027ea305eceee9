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

/// Full-size decode with zune-jpeg (grey and CMYK converted to RGB).
pub fn decode_jpeg(bytes: &[u8], path: &Path) -> Result<Rgb8> {
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
