//! The engine's own CUDA kernels, compiled once per process with NVRTC:
//! the depthwise convolution (cuDNN's is slow on H100, gpu-facts pitfall 4)
//! with bias and activation fused, and the small element-wise and SE
//! kernels around the cuDNN convolutions. fp32 NCHW.
//!
//! `act` codes: 0 none, 1 ReLU, 2 swish, 3 hard swish (`layers::act_code`).

/// Kernel names, as `load_function` needs them.
pub const NAMES: [&str; 8] = [
    "spin",
    "bias_act",
    "bias_residual",
    "dwconv",
    "global_pool",
    "se_fc",
    "channel_scale",
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
// CPU's submission latency.
extern "C" __global__ void spin(long long ns) {
    long long start, now;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
    do {
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
    } while (now - start < ns);
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
// activation: one thread per output element, weights [c][k][k].
extern "C" __global__ void dwconv(const float* __restrict__ x, const float* __restrict__ w,
                                  const float* __restrict__ b, float* __restrict__ y,
                                  int channels, int h, int oh, int k, int stride,
                                  long long total, int act) {
    int pad = k / 2;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        int ox = (int)(i % oh);
        int oy = (int)((i / oh) % oh);
        long long nc = i / ((long long)oh * oh);
        int c = (int)(nc % channels);
        const float* xp = x + nc * (long long)h * h;
        const float* wp = w + c * k * k;
        float acc = b[c];
        int iy0 = oy * stride - pad, ix0 = ox * stride - pad;
        for (int ky = 0; ky < k; ++ky) {
            int iy = iy0 + ky;
            if (iy < 0 || iy >= h) continue;
            for (int kx = 0; kx < k; ++kx) {
                int ix = ix0 + kx;
                if (ix < 0 || ix >= h) continue;
                acc = fmaf(__ldg(xp + iy * h + ix), __ldg(wp + ky * k + kx), acc);
            }
        }
        y[i] = activate(acc, act);
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
// gate = sigmoid(w2 hidden + b2). Shared memory holds `se` floats.
extern "C" __global__ void se_fc(const float* __restrict__ pooled, const float* __restrict__ w1,
                                 const float* __restrict__ b1, const float* __restrict__ w2,
                                 const float* __restrict__ b2, float* __restrict__ gate,
                                 int channels, int se, int act) {
    extern __shared__ float hidden[];
    int n = blockIdx.x;
    const float* p = pooled + (long long)n * channels;
    for (int j = threadIdx.x; j < se; j += blockDim.x) {
        float s = b1[j];
        for (int c = 0; c < channels; ++c) s = fmaf(w1[j * channels + c], p[c], s);
        hidden[j] = activate(s, act);
    }
    __syncthreads();
    for (int c = threadIdx.x; c < channels; c += blockDim.x) {
        float s = b2[c];
        for (int j = 0; j < se; ++j) s = fmaf(w2[c * se + j], hidden[j], s);
        gate[(long long)n * channels + c] = 1.0f / (1.0f + __expf(-s));
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

/// Threads per block for the element-wise kernels.
pub const THREADS: u32 = 256;

/// Blocks for a grid-stride loop over `total` elements, capped so that a
/// launch never asks for more blocks than the GPU can use at once many
/// times over.
pub fn grid_for(total: usize) -> u32 {
    (total.div_ceil(THREADS as usize)).clamp(1, 65_535) as u32
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
    }

    /// NVRTC needs no GPU: where the library loads, the source must compile
    /// for the H100 (compute_90). Skips where NVRTC is absent.
    #[test]
    fn the_source_compiles_with_nvrtc() {
        // Safety: only tries to dlopen libnvrtc.
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            eprintln!("skipped: libnvrtc cannot be loaded on this machine");
            return;
        }
        let opts = cudarc::nvrtc::CompileOptions {
            options: vec!["--gpu-architecture=compute_90".into()],
            ..Default::default()
        };
        let ptx = cudarc::nvrtc::compile_ptx_with_opts(SOURCE, opts)
            .unwrap_or_else(|e| panic!("NVRTC rejected the kernels: {e:?}"));
        let text = ptx.to_src();
        for name in NAMES {
            assert!(
                text.contains(&format!(".entry {name}(")),
                "{name} missing from PTX"
            );
        }
    }
}
