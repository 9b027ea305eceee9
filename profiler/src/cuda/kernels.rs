//! The engine's own CUDA kernels, compiled with NVRTC when an engine opens:
//! two depthwise convolutions (cuDNN's is slow on H100, gpu-facts pitfall 4)
//! with bias and activation fused, a direct dense convolution (the stem's
//! candidate that does not depend on cuDNN), the small element-wise and SE
//! kernels around the cuDNN convolutions, and the L2 flush. fp32 NCHW.
//!
//! `act` codes: 0 none, 1 ReLU, 2 swish, 3 hard swish (`layers::act_code`).

use cudarc::nvrtc::{compile_ptx_with_opts, CompileError, CompileOptions, Ptx};

use crate::error::{ProfilerError, Result};

/// Kernel names, as `load_function` needs them.
pub const NAMES: [&str; 12] = [
    "spin",
    "l2_flush",
    "bias_act",
    "bias_residual",
    "dwconv",
    "dwconv_plane",
    "conv_direct",
    "global_pool",
    "se_fc",
    "channel_scale",
    "se_weights",
    "fc",
];

pub const SOURCE: &str = r#"
__device__ __forceinline__ float activate(float x, int act) {
    switch (act) {
    case 1: return fmaxf(x, 0.0f);
    case 2: return x / (1.0f + __expf(-x));
    case 3: return x * fminf(fmaxf(x + 3.0f, 0.0f), 6.0f) * (1.0f / 6.0f);
    default: return x;
    }
}

// Keeps the GPU busy for `ns` nanoseconds, so that the CPU has enqueued the
// start event, the graph launch and the end event before the GPU reaches
// them: the time between the events is then the GPU's alone, without the
// CPU's submission latency. %globaltimer ticks every 32 ns to 1 us depending
// on the GPU, either fine for the engine's 50 us. `max_cycles` of clock64
// bound the loop in case the timer does not advance at all (a hang would
// cost the whole GPU check).
extern "C" __global__ void spin(long long ns, long long max_cycles) {
    long long start, now;
    long long c0 = clock64();
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
    do {
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
    } while (now - start < ns && clock64() - c0 < max_cycles);
}

// Reads `n4` float4 of `buf` (twice the L2's size) and adds their sum to
// `*sink`, so that the L2 is left full of clean lines of `buf`: the workload's
// own lines are evicted (dirty ones written back here, before the timed run)
// and nothing dirty is left whose write-back would land inside the timed run,
// as filling `buf` with zeros would leave about one L2 of. The sum keeps the
// reads from being optimised away; one atomic per warp.
extern "C" __global__ void l2_flush(const float4* __restrict__ buf, long long n4,
                                    float* __restrict__ sink) {
    float s = 0.0f;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n4;
         i += (long long)gridDim.x * blockDim.x) {
        float4 v = buf[i];
        s += (v.x + v.y) + (v.z + v.w);
    }
    for (int off = 16; off > 0; off /= 2) s += __shfl_down_sync(0xffffffff, s, off);
    if (threadIdx.x % 32 == 0) atomicAdd(sink, s);
}

// y[n,c,hw] = act(y + b[c]), in place.
extern "C" __global__ void bias_act(float* __restrict__ y, const float* __restrict__ b,
                                    int channels, int hw, long long total, int act) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        int c = (int)((i / hw) % channels);
        y[i] = activate(y[i] + b[c], act);
    }
}

// y = y + b[c] + res, in place (projection conv's bias and the residual).
extern "C" __global__ void bias_residual(float* __restrict__ y, const float* __restrict__ b,
                                         const float* __restrict__ res, int channels, int hw,
                                         long long total, int has_res) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        int c = (int)((i / hw) % channels);
        float v = y[i] + b[c];
        if (has_res) v += res[i];
        y[i] = v;
    }
}

// Depthwise k x k convolution, "same" padding k/2, stride s, with bias and
// activation: one thread per output element, weights [c][k][k]. K > 0 is a
// compile-time kernel size (loops unrolled, the common 3, 5 and 7); K == 0
// reads it from `k`. 64-bit offsets: batch 32 x 1536 channels x 112^2
// elements pass 2^31.
template <int K>
__device__ __forceinline__ void dwconv_body(const float* __restrict__ x,
                                            const float* __restrict__ w,
                                            const float* __restrict__ b, float* __restrict__ y,
                                            int channels, int h, int oh, int k_rt, int stride,
                                            long long total, int act) {
    const int k = K > 0 ? K : k_rt;  // a constant where K > 0: loops unroll
    const int pad = k / 2;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        int ox = (int)(i % oh);
        int oy = (int)((i / oh) % oh);
        long long nc = i / ((long long)oh * oh);
        int c = (int)(nc % channels);
        const float* xp = x + nc * (long long)h * h;
        const float* wp = w + (long long)c * k * k;
        float acc = __ldg(b + c);
        int iy0 = oy * stride - pad, ix0 = ox * stride - pad;
#pragma unroll
        for (int ky = 0; ky < k; ++ky) {
            int iy = iy0 + ky;
            if (iy < 0 || iy >= h) continue;
#pragma unroll
            for (int kx = 0; kx < k; ++kx) {
                int ix = ix0 + kx;
                if (ix < 0 || ix >= h) continue;
                acc = fmaf(__ldg(xp + iy * h + ix), __ldg(wp + ky * k + kx), acc);
            }
        }
        y[i] = activate(acc, act);
    }
}

extern "C" __global__ void dwconv(const float* __restrict__ x, const float* __restrict__ w,
                                  const float* __restrict__ b, float* __restrict__ y,
                                  int channels, int h, int oh, int k, int stride,
                                  long long total, int act) {
    switch (k) {
    case 3: dwconv_body<3>(x, w, b, y, channels, h, oh, k, stride, total, act); break;
    case 5: dwconv_body<5>(x, w, b, y, channels, h, oh, k, stride, total, act); break;
    case 7: dwconv_body<7>(x, w, b, y, channels, h, oh, k, stride, total, act); break;
    default: dwconv_body<0>(x, w, b, y, channels, h, oh, k, stride, total, act); break;
    }
}

// Depthwise k x k convolution of whole planes through shared memory: one
// block per (n, c) plane reads it from global memory once, zero-padded, into
// shared memory, then computes every output of the plane from there. Since
// each input is read once, two more things fit in at little cost:
// - `pre_b` (or null): the previous layer's bias and activation `pre_act`
//   applied on load, so that the expansion convolution before it needs no
//   pass of its own over its (the block's largest) output; the padding stays
//   zero, as it is after that activation.
// - `pooled` (or null): the plane's mean after bias and activation, the SE
//   layer's global pool, without reading the output again.
// blockDim.x must be a multiple of 32; dynamic shared memory holds
// (h + 2*(k/2))^2 + 32 floats.
template <int K>
__device__ __forceinline__ void dwconv_plane_body(
    const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
    float* __restrict__ y, const float* __restrict__ pre_b, int pre_act,
    float* __restrict__ pooled, int channels, int h, int oh, int k_rt, int stride, int act) {
    extern __shared__ float smem[];
    const int k = K > 0 ? K : k_rt;
    const int pad = k / 2;
    const int hp = h + 2 * pad;
    const long long nc = blockIdx.x;
    const int c = (int)(nc % channels);
    const float* xp = x + nc * (long long)h * h;
    const float pb = pre_b ? __ldg(pre_b + c) : 0.0f;
    for (int i = threadIdx.x; i < hp * hp; i += blockDim.x) {
        int py = i / hp, px = i - py * hp;
        int iy = py - pad, ix = px - pad;
        float v = 0.0f;
        if (iy >= 0 && iy < h && ix >= 0 && ix < h) {
            v = __ldg(xp + iy * h + ix);
            if (pre_b) v = activate(v + pb, pre_act);
        }
        smem[i] = v;
    }
    __syncthreads();
    const float* wp = w + (long long)c * k * k;
    const float bias = __ldg(b + c);
    float* yp = y + nc * (long long)oh * oh;
    float sum = 0.0f;
    for (int o = threadIdx.x; o < oh * oh; o += blockDim.x) {
        int oy = o / oh, ox = o - oy * oh;
        const float* sp = smem + oy * stride * hp + ox * stride;
        float acc = bias;
#pragma unroll
        for (int ky = 0; ky < k; ++ky) {
#pragma unroll
            for (int kx = 0; kx < k; ++kx) {
                acc = fmaf(sp[ky * hp + kx], __ldg(wp + ky * k + kx), acc);
            }
        }
        float v = activate(acc, act);
        yp[o] = v;
        sum += v;
    }
    if (pooled) {
        // The same branch for the whole block: every lane of every warp
        // takes part in the shuffles and the barrier.
        for (int off = 16; off > 0; off /= 2) sum += __shfl_down_sync(0xffffffff, sum, off);
        float* warp_sums = smem + hp * hp;
        if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = sum;
        __syncthreads();
        if (threadIdx.x == 0) {
            float s = 0.0f;
            for (int i = 0; i < (int)(blockDim.x / 32); ++i) s += warp_sums[i];
            pooled[nc] = s / (float)(oh * oh);
        }
    }
}

extern "C" __global__ void dwconv_plane(const float* __restrict__ x, const float* __restrict__ w,
                                        const float* __restrict__ b, float* __restrict__ y,
                                        const float* __restrict__ pre_b, int pre_act,
                                        float* __restrict__ pooled, int channels, int h, int oh,
                                        int k, int stride, int act) {
    switch (k) {
    case 3: dwconv_plane_body<3>(x, w, b, y, pre_b, pre_act, pooled, channels, h, oh, k, stride, act); break;
    case 5: dwconv_plane_body<5>(x, w, b, y, pre_b, pre_act, pooled, channels, h, oh, k, stride, act); break;
    case 7: dwconv_plane_body<7>(x, w, b, y, pre_b, pre_act, pooled, channels, h, oh, k, stride, act); break;
    default: dwconv_plane_body<0>(x, w, b, y, pre_b, pre_act, pooled, channels, h, oh, k, stride, act); break;
    }
}

// Dense k x k convolution (groups 1), "same" padding k/2, stride s, with
// bias and activation: one thread per output element, weights
// [cout][cin][k][k]. The stem's candidate that needs no cuDNN (3 input
// channels, so each output is only 27 products): cuDNN's legacy API may
// fail under capture, and the stem must still have a way to run. K > 0 is
// a compile-time kernel size as in `dwconv`; neighbouring threads share
// the output channel, so the weight reads are broadcasts.
template <int K>
__device__ __forceinline__ void conv_direct_body(const float* __restrict__ x,
                                                 const float* __restrict__ w,
                                                 const float* __restrict__ b,
                                                 float* __restrict__ y, int cin, int cout, int h,
                                                 int oh, int k_rt, int stride, long long total,
                                                 int act) {
    const int k = K > 0 ? K : k_rt;
    const int pad = k / 2;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        int ox = (int)(i % oh);
        int oy = (int)((i / oh) % oh);
        long long nco = i / ((long long)oh * oh);
        int co = (int)(nco % cout);
        long long n = nco / cout;
        const float* xn = x + n * cin * (long long)h * h;
        const float* wc = w + (long long)co * cin * k * k;
        float acc = __ldg(b + co);
        int iy0 = oy * stride - pad, ix0 = ox * stride - pad;
        for (int ci = 0; ci < cin; ++ci) {
            const float* xp = xn + (long long)ci * h * h;
            const float* wp = wc + ci * k * k;
#pragma unroll
            for (int ky = 0; ky < k; ++ky) {
                int iy = iy0 + ky;
                if (iy < 0 || iy >= h) continue;
#pragma unroll
                for (int kx = 0; kx < k; ++kx) {
                    int ix = ix0 + kx;
                    if (ix < 0 || ix >= h) continue;
                    acc = fmaf(__ldg(xp + iy * h + ix), __ldg(wp + ky * k + kx), acc);
                }
            }
        }
        y[i] = activate(acc, act);
    }
}

extern "C" __global__ void conv_direct(const float* __restrict__ x, const float* __restrict__ w,
                                       const float* __restrict__ b, float* __restrict__ y,
                                       int cin, int cout, int h, int oh, int k, int stride,
                                       long long total, int act) {
    switch (k) {
    case 3: conv_direct_body<3>(x, w, b, y, cin, cout, h, oh, k, stride, total, act); break;
    case 5: conv_direct_body<5>(x, w, b, y, cin, cout, h, oh, k, stride, total, act); break;
    default: conv_direct_body<0>(x, w, b, y, cin, cout, h, oh, k, stride, total, act); break;
    }
}

// out[nc] = mean of x[nc, 0..hw): one warp per (n, c).
extern "C" __global__ void global_pool(const float* __restrict__ x, float* __restrict__ out,
                                       int nc, int hw) {
    int warp = (blockIdx.x * blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x % 32;
    if (warp >= nc) return;
    const float* p = x + (long long)warp * hw;
    float s = 0.0f;
    for (int i = lane; i < hw; i += 32) s += p[i];
    for (int off = 16; off > 0; off /= 2) s += __shfl_down_sync(0xffffffff, s, off);
    if (lane == 0) out[warp] = s / (float)hw;
}

// The two SE layers for one image per block: hidden = act(w1 pooled + b1),
// gate = sigmoid(w2 hidden + b2). Each warp computes whole dot products with
// its lanes reading consecutive weights (coalesced), then reduces them with
// shuffles; blockDim.x must be a multiple of 32. Shared memory holds `se`
// floats.
extern "C" __global__ void se_fc(const float* __restrict__ pooled, const float* __restrict__ w1,
                                 const float* __restrict__ b1, const float* __restrict__ w2,
                                 const float* __restrict__ b2, float* __restrict__ gate,
                                 int channels, int se, int act) {
    extern __shared__ float hidden[];
    const int n = blockIdx.x;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
    const float* p = pooled + (long long)n * channels;
    for (int j = warp; j < se; j += warps) {
        const float* wr = w1 + (long long)j * channels;
        float s = 0.0f;
        for (int c = lane; c < channels; c += 32) s = fmaf(wr[c], p[c], s);
        for (int off = 16; off > 0; off /= 2) s += __shfl_down_sync(0xffffffff, s, off);
        if (lane == 0) hidden[j] = activate(s + b1[j], act);
    }
    __syncthreads();
    for (int c = warp; c < channels; c += warps) {
        const float* wr = w2 + (long long)c * se;
        float s = 0.0f;
        for (int j = lane; j < se; j += 32) s = fmaf(wr[j], hidden[j], s);
        for (int off = 16; off > 0; off /= 2) s += __shfl_down_sync(0xffffffff, s, off);
        if (lane == 0) gate[(long long)n * channels + c] = 1.0f / (1.0f + __expf(-(s + b2[c])));
    }
}

// y[nc, hw] *= gate[nc], in place.
extern "C" __global__ void channel_scale(float* __restrict__ y, const float* __restrict__ gate,
                                         int hw, long long total) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        y[i] *= gate[i / hw];
    }
}

// wn[n, o, c] = w[o, c] * gate[n, c]: a 1x1 convolution's weights with
// SE's channel scale folded in, one copy per image, so that the product
// reads its input unscaled instead of a pass scaling it in place.
extern "C" __global__ void se_weights(const float* __restrict__ w, const float* __restrict__ gate,
                                      float* __restrict__ wn, int cout, int cin,
                                      long long total) {
    long long per_image = (long long)cout * cin;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        long long n = i / per_image;
        wn[i] = w[i % per_image] * gate[n * cin + i % cin];
    }
}

// y[n, o] = w[o] . x[n] + b[o]: one warp per output.
extern "C" __global__ void fc(const float* __restrict__ x, const float* __restrict__ w,
                              const float* __restrict__ b, float* __restrict__ y,
                              int batch, int in, int out) {
    long long warp = (blockIdx.x * (long long)blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x % 32;
    if (warp >= (long long)batch * out) return;
    int n = (int)(warp / out), o = (int)(warp % out);
    const float* xp = x + (long long)n * in;
    const float* wp = w + (long long)o * in;
    float s = 0.0f;
    for (int i = lane; i < in; i += 32) s = fmaf(xp[i], wp[i], s);
    for (int off = 16; off > 0; off /= 2) s += __shfl_down_sync(0xffffffff, s, off);
    if (lane == 0) y[warp] = s + b[o];
}
"#;

/// Compiles `source` with NVRTC to PTX for compute capability
/// `major.minor`; a compile error carries NVRTC's log, which names the file
/// (`profiler_kernels.cu`), the line and the problem. NVRTC needs no GPU,
/// so this runs, and is tested, anywhere the library loads.
pub fn compile(source: &str, major: i32, minor: i32) -> Result<Ptx> {
    const WHAT: &str = "the engine's kernels";
    // Safety: only tries to dlopen libnvrtc.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(ProfilerError::KernelCompile {
            block: WHAT.into(),
            log: "libnvrtc cannot be loaded".into(),
        });
    }
    let opts = CompileOptions {
        options: vec![format!("--gpu-architecture=compute_{major}{minor}")],
        name: Some("profiler_kernels.cu".into()),
        ..CompileOptions::default()
    };
    compile_ptx_with_opts(source, opts).map_err(|e| ProfilerError::KernelCompile {
        block: WHAT.into(),
        log: match &e {
            CompileError::CompileError { log, .. } => log.to_string_lossy().into_owned(),
            other => format!("{other:?}"),
        },
    })
}

/// Threads per block for the element-wise kernels.
pub const THREADS: u32 = 256;

/// Blocks for a grid-stride loop over `total` elements, capped so that a
/// launch never asks for more blocks than the GPU can use at once many
/// times over.
pub fn grid_for(total: usize) -> u32 {
    (total.div_ceil(THREADS as usize)).clamp(1, 65_535) as u32
}

/// Threads per block of `dwconv_plane` for `outputs` outputs per plane:
/// whole warps, at most 256, so that small planes (7x7) leave few threads
/// idle and large ones loop.
pub fn plane_threads(outputs: usize) -> u32 {
    (outputs.div_ceil(32) * 32).clamp(32, 256) as u32
}

/// Dynamic shared memory of `dwconv_plane` for an `h`×`h` input and a
/// `k`×`k` kernel: the zero-padded plane and 32 warp sums.
pub fn plane_shared_bytes(h: u32, k: u32) -> usize {
    let hp = (h + 2 * (k / 2)) as usize;
    (hp * hp + 32) * std::mem::size_of::<f32>()
}

/// Blocks for one warp per item.
pub fn grid_for_warps(items: usize) -> u32 {
    (items * 32).div_ceil(THREADS as usize).max(1) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_kernel_is_in_the_source_once() {
        for name in NAMES {
            let decl = format!("__global__ void {name}(");
            assert_eq!(SOURCE.matches(&decl).count(), 1, "{name}");
        }
        assert_eq!(grid_for(1), 1);
        assert_eq!(grid_for(257), 2);
        assert_eq!(grid_for(usize::MAX / 2), 65_535);
        assert_eq!(grid_for_warps(8), 1);
        assert_eq!(grid_for_warps(9), 2);
        assert_eq!(plane_threads(49), 64);
        assert_eq!(plane_threads(196), 224);
        assert_eq!(plane_threads(112 * 112), 256);
        assert_eq!(plane_threads(1), 32);
        // 7x7 input, k5: an 11x11 padded plane and the warp sums.
        assert_eq!(plane_shared_bytes(7, 5), (121 + 32) * 4);
        // The largest TF-NAS plane, 112x112 with k5, needs the opt-in
        // shared memory beyond 48 KiB.
        assert!(plane_shared_bytes(112, 5) > 48 << 10);
    }

    /// Whether NVRTC loads here. `scripts/test.sh` puts the NVRTC of the
    /// project's torch wheel (CUDA 13.0, the GPU machine's version) on the
    /// loader's path and sets `PROFILER_REQUIRE_NVRTC`, so that in CI a
    /// missing library fails instead of skipping silently.
    fn nvrtc_loads() -> bool {
        // Safety: only tries to dlopen libnvrtc.
        let present = unsafe { cudarc::nvrtc::sys::is_culib_present() };
        if !present {
            assert!(
                std::env::var_os("PROFILER_REQUIRE_NVRTC").is_none(),
                "PROFILER_REQUIRE_NVRTC is set but libnvrtc cannot be loaded"
            );
            eprintln!("skipped: libnvrtc cannot be loaded on this machine");
        }
        present
    }

    /// NVRTC needs no GPU: where the library loads, the source must compile
    /// for the H100 (compute_90). Skips where NVRTC is absent.
    #[test]
    fn the_source_compiles_with_nvrtc() {
        if !nvrtc_loads() {
            return;
        }
        let ptx =
            compile(SOURCE, 9, 0).unwrap_or_else(|e| panic!("NVRTC rejected the kernels: {e}"));
        let text = ptx.to_src();
        for name in NAMES {
            assert!(
                text.contains(&format!(".entry {name}(")),
                "{name} missing from PTX"
            );
        }
        // Each kernel's parameters, in bytes, as engine.rs passes them
        // (pointers and i64 are 8, i32 4): a mismatch would launch with
        // garbage arguments, and nothing checks that at run time.
        for (name, want) in SIGNATURES {
            assert_eq!(param_sizes(&text, name), want, "{name}");
        }
    }

    /// Issue 3: a kernel that fails to compile is a clear error naming
    /// the file and line, not a panic (the binary exits 2 on any error).
    #[test]
    fn a_kernel_that_does_not_compile_is_an_error_with_nvrtcs_log() {
        if !nvrtc_loads() {
            return;
        }
        let broken =
            "extern \"C\" __global__ void broken(float* y) {\n    y[0] = not_declared;\n}\n";
        let e = compile(broken, 9, 0).unwrap_err();
        let ProfilerError::KernelCompile { ref log, .. } = e else {
            panic!("not a compile error: {e:?}")
        };
        assert!(
            log.contains("profiler_kernels.cu(2)") && log.contains("not_declared"),
            "{log}"
        );
        let text = e.to_string();
        assert!(
            text.starts_with("a kernel for the engine's kernels failed to compile:"),
            "{text}"
        );
    }

    /// The engine loads PTX, and the driver's ptxas turns it into H100
    /// machine code only when the engine opens on the GPU. NVRTC runs that
    /// same last stage here for sm_90: the kernels must assemble, and none
    /// may spill registers to local memory or keep a stack frame, which
    /// would slow the depthwise kernels that most table entries spend
    /// their time in without failing anything.
    #[test]
    fn the_kernels_assemble_for_the_h100_without_spilling() {
        use cudarc::nvrtc::result;
        if !nvrtc_loads() {
            return;
        }
        let src = std::ffi::CString::new(SOURCE).unwrap();
        let prog = result::create_program(&src, None).unwrap();
        // Safety: `prog` was just created and is destroyed once, below.
        let (compiled, log) = unsafe {
            let compiled =
                result::compile_program(prog, &["--gpu-architecture=sm_90", "--ptxas-options=-v"]);
            let log = result::get_program_log(prog);
            result::destroy_program(prog).unwrap();
            (compiled, log.unwrap())
        };
        let log: Vec<u8> = log.iter().map(|&c| c as u8).collect();
        let log = String::from_utf8_lossy(&log);
        assert!(compiled.is_ok(), "ptxas rejected the kernels:\n{log}");
        let report = ptxas_report(&log);
        for name in NAMES {
            let r = report
                .iter()
                .find(|r| r.name == name)
                .unwrap_or_else(|| panic!("{name} missing from ptxas's report:\n{log}"));
            eprintln!(
                "{name}: {} registers, {} B stack, {} B spill stores, {} B spill loads",
                r.registers, r.stack, r.spill_stores, r.spill_loads
            );
            assert_eq!(
                (r.stack, r.spill_stores, r.spill_loads),
                (0, 0, 0),
                "{name} uses local memory"
            );
        }
    }

    /// One kernel's resources, as `ptxas -v` reports them.
    #[derive(Debug, Default, PartialEq)]
    struct PtxasEntry {
        name: String,
        registers: u32,
        stack: u32,
        spill_stores: u32,
        spill_loads: u32,
    }

    /// Parses `ptxas -v`'s log: an entry begins at "Compiling entry
    /// function 'name'", and its numbers follow on the next lines.
    fn ptxas_report(log: &str) -> Vec<PtxasEntry> {
        // The number just before `unit` in `line`.
        fn before(line: &str, unit: &str) -> Option<u32> {
            let at = line.find(unit)?;
            line[..at].split_whitespace().last()?.parse().ok()
        }
        let mut out: Vec<PtxasEntry> = Vec::new();
        for line in log.lines() {
            if let Some(rest) = line.split("Compiling entry function '").nth(1) {
                let name = rest.split('\'').next().unwrap_or_default();
                out.push(PtxasEntry {
                    name: name.to_string(),
                    ..Default::default()
                });
            } else if let Some(entry) = out.last_mut() {
                if let Some(n) = before(line, "bytes stack frame") {
                    entry.stack = n;
                }
                if let Some(n) = before(line, "bytes spill stores") {
                    entry.spill_stores = n;
                }
                if let Some(n) = before(line, "bytes spill loads") {
                    entry.spill_loads = n;
                }
                if let Some(n) = before(line, "registers") {
                    entry.registers = n;
                }
            }
        }
        out
    }

    #[test]
    fn ptxas_report_reads_a_verbose_log() {
        let log = "ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'fc' for 'sm_90'
ptxas info    : Function properties for fc
ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 30 registers, used 0 barriers
ptxas info    : Compiling entry function 'dwconv' for 'sm_90'
ptxas info    : Function properties for dwconv
ptxas         .     16 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads
ptxas info    : Used 255 registers, used 1 barriers
";
        let report = ptxas_report(log);
        assert_eq!(
            report,
            vec![
                PtxasEntry {
                    name: "fc".into(),
                    registers: 30,
                    ..Default::default()
                },
                PtxasEntry {
                    name: "dwconv".into(),
                    registers: 255,
                    stack: 16,
                    spill_stores: 8,
                    spill_loads: 4,
                },
            ]
        );
    }

    /// The kernels' index math, bounds, activations and reductions, checked
    /// on the CPU: `kernel_emulation.cpp` runs `SOURCE` as C++ with one
    /// thread per CUDA thread and compares every kernel with a plain loop.
    /// Needs g++ with C++20 `<barrier>`; skips without it.
    #[test]
    fn the_kernels_match_the_cpu_in_an_emulation() {
        use std::process::Command;
        let dir = tempfile::tempdir().unwrap();
        let probe = dir.path().join("probe.cpp");
        std::fs::write(&probe, "#include <barrier>\nint main() { return 0; }\n").unwrap();
        let probe_ok = Command::new("g++")
            .args(["-std=c++20", "-fsyntax-only"])
            .arg(&probe)
            .output()
            .is_ok_and(|o| o.status.success());
        if !probe_ok {
            eprintln!("skipped: no g++ with C++20 <barrier> on this machine");
            return;
        }
        // Everything but `spin`, whose PTX timer has no CPU form.
        let start = SOURCE.find("extern \"C\" __global__ void spin(").unwrap();
        let end = start + SOURCE[start..].find("\n}\n").unwrap() + 3;
        let kernels = format!("{}{}", &SOURCE[..start], &SOURCE[end..]);
        let harness = include_str!("kernel_emulation.cpp");
        assert!(harness.contains("// @KERNELS@"));
        let src = dir.path().join("emulation.cpp");
        std::fs::write(&src, harness.replace("// @KERNELS@", &kernels)).unwrap();
        let exe = dir.path().join("emulation");
        let build = |sanitize: bool| {
            let mut cmd = Command::new("g++");
            cmd.args(["-std=c++20", "-O1", "-pthread", "-o"])
                .arg(&exe)
                .arg(&src);
            if sanitize {
                // Out-of-bounds accesses and undefined behaviour fail the run.
                cmd.args(["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]);
            }
            cmd.output().unwrap()
        };
        // With the sanitizers where their runtimes are installed.
        let mut built = build(true);
        if !built.status.success() {
            built = build(false);
        }
        assert!(
            built.status.success(),
            "the emulation does not compile:\n{}",
            String::from_utf8_lossy(&built.stderr)
        );
        let ran = Command::new(&exe).output().unwrap();
        let out = String::from_utf8_lossy(&ran.stdout);
        assert!(
            ran.status.success(),
            "{out}\n{}",
            String::from_utf8_lossy(&ran.stderr)
        );
        assert!(out.contains("ok: 0 mismatches"), "{out}");
    }

    /// The byte sizes of the `.param`s of PTX entry `name`.
    fn param_sizes(ptx: &str, name: &str) -> Vec<usize> {
        let start = ptx
            .find(&format!(".entry {name}("))
            .unwrap_or_else(|| panic!("{name} not in PTX"));
        let rest = &ptx[start..];
        let params = &rest[..rest.find(')').expect("parameter list ends")];
        params
            .lines()
            .filter_map(|l| l.trim().strip_prefix(".param ."))
            .map(|l| match &l[..3] {
                "u64" | "s64" | "b64" | "f64" => 8,
                "u32" | "s32" | "b32" | "f32" => 4,
                other => panic!("{name}: parameter type {other}"),
            })
            .collect()
    }

    /// What engine.rs's `launch` passes to each kernel, in bytes.
    const SIGNATURES: [(&str, &[usize]); 12] = [
        ("spin", &[8, 8]),
        ("l2_flush", &[8, 8, 8]),
        ("conv_direct", &[8, 8, 8, 8, 4, 4, 4, 4, 4, 4, 8, 4]),
        ("bias_act", &[8, 8, 4, 4, 8, 4]),
        ("bias_residual", &[8, 8, 8, 4, 4, 8, 4]),
        ("dwconv", &[8, 8, 8, 8, 4, 4, 4, 4, 4, 8, 4]),
        ("dwconv_plane", &[8, 8, 8, 8, 8, 4, 8, 4, 4, 4, 4, 4, 4]),
        ("global_pool", &[8, 8, 4, 4]),
        ("se_fc", &[8, 8, 8, 8, 8, 8, 4, 4, 4]),
        ("channel_scale", &[8, 8, 4, 8]),
        ("se_weights", &[8, 8, 8, 4, 4, 8]),
        ("fc", &[8, 8, 8, 8, 4, 4, 4]),
    ];
}
