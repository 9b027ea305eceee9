//! Opening a CUDA device without ever panicking, and describing it for the
//! fingerprint.
//!
//! cudarc loads the CUDA libraries at first use and panics when one is
//! missing (docs/gpu-facts.md: `CudaContext::new` panics on a machine without a
//! driver), so every library is probed with `is_culib_present` first, and
//! the remaining calls run under [`guard`], which turns a panic into an
//! error as a last resort.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use cudarc::driver::{sys, CudaContext};

use super::error::{driver_msg, CudaError, InBlock};
use crate::error::{ProfilerError, Result};
use crate::measure::engine::EngineInfo;

/// Runs `f`, turning a panic inside cudarc into [`ProfilerError::Cuda`].
pub fn guard<T>(block: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(ProfilerError::Cuda {
                block: block.to_string(),
                msg: format!("the CUDA library panicked: {msg}"),
            })
        }
    }
}

/// `GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, as NVML and nvidia-smi print it.
pub fn format_uuid(bytes: &[u8; 16]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "GPU-{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The driver version in `/proc/driver/nvidia/version`'s first line
/// ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.159.04  Thu ...").
pub fn kernel_module_version(text: &str) -> Option<String> {
    let line = text.lines().next()?;
    let rest = line.split("Kernel Module").nth(1)?;
    // The first word that is a dotted number ("for x86_64" may come first).
    rest.split_whitespace()
        .find(|w| w.contains('.') && w.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .map(str::to_string)
}

/// `13000` → `13.0`, as CUDA encodes versions.
pub fn cuda_version(v: i32) -> String {
    format!("{}.{}", v / 1000, v % 1000 / 10)
}

/// `91400` → `9.14.0`, as cuDNN 9 encodes versions.
pub fn cudnn_version(v: usize) -> String {
    format!("{}.{}.{}", v / 10000, v % 10000 / 100, v % 100)
}

/// Whether the CUDA driver library can be loaded at all.
pub fn driver_present() -> bool {
    // Safety: only tries to dlopen libcuda by its usual names.
    unsafe { sys::is_culib_present() }
}

/// Opens device `index`: checks the driver, the device count and the index
/// before creating the context, so each failure gets its own message.
pub fn open(index: usize) -> Result<Arc<CudaContext>> {
    const WHERE: &str = "device setup";
    if !driver_present() {
        return Err(ProfilerError::NoDriver {
            reason: "libcuda.so cannot be loaded".into(),
        });
    }
    let count = guard(WHERE, || {
        CudaContext::device_count().map_err(|e| match e.0 {
            sys::CUresult::CUDA_ERROR_NO_DEVICE => ProfilerError::NoDevice,
            sys::CUresult::CUDA_ERROR_SYSTEM_DRIVER_MISMATCH
            | sys::CUresult::CUDA_ERROR_NOT_INITIALIZED => ProfilerError::NoDriver {
                reason: driver_msg(&e),
            },
            _ => CudaError::from(e).in_block(WHERE),
        })
    })?;
    let count = usize::try_from(count).unwrap_or(0);
    if count == 0 {
        return Err(ProfilerError::NoDevice);
    }
    if index >= count {
        return Err(ProfilerError::BadDeviceIndex { index, count });
    }
    let ctx = shared(&CONTEXTS, index, || {
        guard(WHERE, || {
            let ctx = CudaContext::new(index).in_block(WHERE)?;
            // Safety: the context was just created and nothing is allocated
            // on it yet; every engine of this process orders its work on
            // its own single stream itself (docs/gpu-facts.md pitfall 2: cudarc's
            // per-buffer events break graph capture).
            unsafe { ctx.disable_event_tracking() };
            Ok(ctx)
        })
    })?;
    // cudarc binds the context where it creates it; an engine opened later
    // on another thread (a test) must find it current there too, for the
    // raw cuDNN and copy calls that use the thread's current context.
    ctx.bind_to_thread().in_block(WHERE)?;
    Ok(ctx)
}

/// Every device's context, retained once per process and never released:
/// `verify` and the GPU unit tests open several engines one after another,
/// and releasing the primary context between them (cudarc's `Drop` does
/// when the last `Arc` goes) would tear down and rebuild it, with cuDNN's
/// and cuBLAS's state for it, each time (issue 17). The driver releases it
/// when the process exits.
static CONTEXTS: Mutex<BTreeMap<usize, Arc<CudaContext>>> = Mutex::new(BTreeMap::new());

/// The value cached under `index`, made by `make` the first time; an error
/// is returned and not cached, so a later call tries again.
fn shared<T>(
    cache: &Mutex<BTreeMap<usize, Arc<T>>>,
    index: usize,
    make: impl FnOnce() -> Result<Arc<T>>,
) -> Result<Arc<T>> {
    // A poisoned lock still holds a consistent map: `make` runs under
    // `guard` and inserting cannot panic half-way.
    let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(v) = map.get(&index) {
        return Ok(Arc::clone(v));
    }
    let v = make()?;
    map.insert(index, Arc::clone(&v));
    Ok(v)
}

/// Describes the device and the libraries this process loaded.
pub fn describe(ctx: &Arc<CudaContext>, engine: &str) -> Result<EngineInfo> {
    const WHERE: &str = "device setup";
    guard(WHERE, || {
        let device_name = ctx.name().in_block(WHERE)?;
        let uuid = ctx.uuid().in_block(WHERE)?;
        let bytes: [u8; 16] = uuid.bytes.map(|b| b as u8);
        let mut driver_api = 0i32;
        // Safety: writes one int through a valid pointer.
        unsafe { sys::cuDriverGetVersion(&mut driver_api) }
            .result()
            .in_block(WHERE)?;
        // The same text whether NVML loads or not: the driver line must
        // match for a resume, so the kernel module's own file stands in.
        let driver_version = nvml_wrapper::Nvml::init()
            .and_then(|n| n.sys_driver_version())
            .ok()
            .or_else(|| {
                std::fs::read_to_string("/proc/driver/nvidia/version")
                    .ok()
                    .and_then(|text| kernel_module_version(&text))
            });
        let driver = match driver_version {
            Some(v) => format!("{v} (CUDA {})", cuda_version(driver_api)),
            None => format!("CUDA {} (driver version unknown)", cuda_version(driver_api)),
        };
        // Safety: only tries to dlopen libnvrtc.
        let cuda = if unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            let (mut major, mut minor) = (0, 0);
            // Safety: writes two ints through valid pointers.
            unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
            format!("{major}.{minor} (nvrtc)")
        } else {
            "nvrtc not found".into()
        };
        // Safety: only tries to dlopen libcudnn.
        let cudnn = if unsafe { cudarc::cudnn::sys::is_culib_present() } {
            cudnn_version(cudarc::cudnn::result::get_version())
        } else {
            "not found".into()
        };
        Ok(EngineInfo {
            device_name,
            device_uuid: format_uuid(&bytes),
            driver,
            cuda,
            cudnn,
            engine: engine.to_string(),
            extra: Vec::new(),
            resume_keys: Vec::new(),
            // Tensor cores take channels in multiples of 8 (fp16/bf16);
            // the probes measure what an unaligned width costs on top.
            // Not yet run on a GPU (docs/gpu-check.md).
            width_align: Some(8),
            // Not known to help on a GPU: its entries are timed alone over
            // many runs, and its kernels' tiles may bend a curve where a
            // line would not follow. Each entry stands until a GPU run
            // says otherwise.
            curve_fit: space::CurveFit::None,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_module_file_gives_the_driver_version() {
        let text = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.159.04  Thu Oct 30 2025\nGCC version:  gcc 12\n";
        assert_eq!(kernel_module_version(text).as_deref(), Some("580.159.04"));
        // The open kernel modules (the usual ones on an H100) put words first.
        let open = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build  (dvs-builder@U22)  Thu Oct 30 2025\n";
        assert_eq!(kernel_module_version(open).as_deref(), Some("580.159.04"));
        assert_eq!(kernel_module_version(""), None);
        assert_eq!(kernel_module_version("NVRM version: something else"), None);
    }

    #[test]
    fn versions_and_uuids_print_like_the_nvidia_tools() {
        assert_eq!(cuda_version(13000), "13.0");
        assert_eq!(cuda_version(12080), "12.8");
        assert_eq!(cudnn_version(91400), "9.14.0");
        let bytes: [u8; 16] = core::array::from_fn(|i| (i * 17) as u8);
        assert_eq!(
            format_uuid(&bytes),
            "GPU-00112233-4455-6677-8899-aabbccddeeff"
        );
    }

    #[test]
    fn a_panic_becomes_an_error_naming_the_block() {
        let err = guard::<()>("mbconv_x", || panic!("Missing symbol cuInit")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("mbconv_x") && msg.contains("Missing symbol cuInit"),
            "{msg}"
        );
    }

    #[test]
    fn a_devices_context_is_made_once_per_process_and_then_shared() {
        let cache = Mutex::new(BTreeMap::new());
        let made = std::cell::Cell::new(0);
        let make = |v: u32| {
            made.set(made.get() + 1);
            Ok(Arc::new(v))
        };
        let a = shared(&cache, 0, || make(10)).unwrap();
        let b = shared(&cache, 0, || make(20)).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "the second open made a new one");
        assert_eq!(*b, 10);
        let c = shared(&cache, 1, || make(30)).unwrap();
        assert_eq!((*c, made.get()), (30, 2));
        // Dropping every engine's handle keeps the cached one alive.
        drop((a, b));
        assert_eq!(
            Arc::strong_count(&shared(&cache, 0, || make(40)).unwrap()),
            2
        );
        assert_eq!(made.get(), 2);
        // A failure is not remembered: the next open tries again.
        let err = shared::<u32>(&cache, 2, || Err(ProfilerError::NoDevice));
        assert!(err.is_err());
        assert_eq!(*shared(&cache, 2, || make(50)).unwrap(), 50);
        assert_eq!(made.get(), 3);
    }

    /// On the GPU: a second open after the first handle is gone gets the
    /// same context, with event tracking still off.
    #[test]
    #[ignore = "needs a CUDA GPU; scripts/gpu-check.sh runs it with --ignored"]
    fn gpu_opening_again_gets_the_same_context() {
        let a = open(0).unwrap_or_else(|e| panic!("{e}"));
        let first = Arc::as_ptr(&a);
        drop(a);
        let b = open(0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first, Arc::as_ptr(&b));
        assert!(!b.is_event_tracking());
    }

    #[test]
    fn without_a_driver_opening_fails_cleanly() {
        if driver_present() {
            eprintln!("skipped: a CUDA driver is present on this machine");
            return;
        }
        let err = open(0).unwrap_err();
        assert!(matches!(err, ProfilerError::NoDriver { .. }), "{err}");
    }
}
