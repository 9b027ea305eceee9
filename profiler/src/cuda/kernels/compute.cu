// The engine's kernels that compute: activations, bias and residual, the
// depthwise and direct convolutions, SE, the classifier and the L2 flush.
// fp32 NCHW. NVRTC compiles them with spin.cu (`kernels::SOURCE`);
// kernels/emulation.cpp `#include`s this file to run them on the CPU.

__device__ __forceinline__ float activate(float x, int act) {
    switch (act) {
    case 1: return fmaxf(x, 0.0f);
    case 2: return x / (1.0f + __expf(-x));
    case 3: return x * fminf(fmaxf(x + 3.0f, 0.0f), 6.0f) * (1.0f / 6.0f);
    default: return x;
    }
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

// One output element's k x k window of one input channel (`xp`, h x h)
// under its weights (`wp`, k x k), added to `acc`; taps outside the map are
// the zero padding. K as in the convolutions below: a compile-time size
// unrolls the loops.
template <int K>
__device__ __forceinline__ float window(const float* __restrict__ xp,
                                        const float* __restrict__ wp, int h, int k_rt, int iy0,
                                        int ix0, float acc) {
    const int k = K > 0 ? K : k_rt;  // a constant where K > 0: loops unroll
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
    return acc;
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
        int iy0 = oy * stride - pad, ix0 = ox * stride - pad;
        float acc = window<K>(xp, wp, h, k, iy0, ix0, __ldg(b + c));
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
            acc = window<K>(xp, wp, h, k, iy0, ix0, acc);
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
