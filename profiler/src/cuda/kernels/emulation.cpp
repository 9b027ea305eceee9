// A CPU emulation of the engine's CUDA kernels, for the unit test
// `kernels::tests::the_kernels_match_the_cpu_in_an_emulation`: it includes
// compute.cu (every kernel but `spin`, whose PTX timer has no CPU form) with
// the CUDA keywords defined away below; the test compiles this with g++
// -std=c++20 and runs it. Every thread of a block is a real thread, so
// `__syncthreads` and the warp shuffles behave as on the GPU; grids are kept
// small so that the grid-stride loops wrap. Each kernel's output is compared with a plain loop.
#include <barrier>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __shared__
#define __expf expf

struct Dim3 {
    long long x, y, z;
};
static Dim3 blockIdx, blockDim, gridDim;
static thread_local Dim3 threadIdx;
static float __ldg(const float* p) { return *p; }
struct float4 {
    float x, y, z, w;
};
static std::mutex atomic_mutex;
static float atomicAdd(float* p, float v) {
    std::lock_guard<std::mutex> lock(atomic_mutex);
    float old = *p;
    *p = old + v;
    return old;
}

// Dynamic shared memory (`extern __shared__ float hidden[];` and
// `extern __shared__ float smem[];` refer to these). Poisoned with NaN before
// each launch, so a kernel that reads what it did not write fails.
float hidden[1 << 14];
float smem[1 << 16];
static std::unique_ptr<std::barrier<>> block_barrier;
static std::vector<std::unique_ptr<std::barrier<>>> warp_barriers;
static float lanes[1024];

static void __syncthreads() { block_barrier->arrive_and_wait(); }

static float __shfl_down_sync(unsigned, float v, int off) {
    int t = (int)threadIdx.x, lane = t % 32, w = t / 32;
    lanes[t] = v;
    warp_barriers[w]->arrive_and_wait();
    float r = lane + off < 32 ? lanes[t + off] : v;
    warp_barriers[w]->arrive_and_wait();
    return r;
}

#include "compute.cu"

template <class F>
static void launch(long long blocks, long long threads, F f) {
    gridDim = {blocks, 1, 1};
    blockDim = {threads, 1, 1};
    for (long long b = 0; b < blocks; b++) {
        for (auto& v : smem) v = NAN;
        blockIdx = {b, 0, 0};
        block_barrier = std::make_unique<std::barrier<>>(threads);
        warp_barriers.clear();
        for (long long w = 0; w < threads / 32; w++)
            warp_barriers.push_back(std::make_unique<std::barrier<>>(32));
        std::vector<std::thread> ts;
        for (long long t = 0; t < threads; t++)
            ts.emplace_back([t, &f] {
                threadIdx = {t, 0, 0};
                f();
            });
        for (auto& th : ts) th.join();
    }
}

static float act_ref(float x, int a) {
    switch (a) {
    case 1: return fmaxf(x, 0.0f);
    case 2: return x / (1.0f + expf(-x));
    case 3: return x * fminf(fmaxf(x + 3.0f, 0.0f), 6.0f) / 6.0f;
    default: return x;
    }
}

static float rnd() { return rand() / (float)RAND_MAX - 0.5f; }

// One output of a depthwise k x k convolution ("same" padding, stride s) of
// plane (n, ch) of x (N x C x h x h), before its activation; `pb` (or null)
// is a bias and `pre_act` an activation applied to each input first.
static float dw_ref(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& b,
                    const float* pb, int pre_act, int C, int h, int k, int s, int n, int ch, int oy,
                    int ox) {
    float acc = b[ch];
    for (int ky = 0; ky < k; ky++)
        for (int kx = 0; kx < k; kx++) {
            int iy = oy * s + ky - k / 2, ix = ox * s + kx - k / 2;
            if (iy < 0 || ix < 0 || iy >= h || ix >= h) continue;
            float in = x[((n * C + ch) * h + iy) * h + ix];
            if (pb) in = act_ref(in + pb[ch], pre_act);
            acc += in * w[(ch * k + ky) * k + kx];
        }
    return acc;
}
static int bad = 0;
static void expect(const char* what, long long i, float got, float want) {
    if (!(fabsf(got - want) <= 1e-5f * (1.0f + fabsf(want)))) {
        if (bad < 10) printf("%s [%lld]: got %g, want %g\n", what, i, got, want);
        bad++;
    }
}

int main() {
    srand(1);
    // dwconv: {k, stride, h, channels, batch}; k 1 and 9 take the generic path.
    int dw[][5] = {{3, 1, 7, 3, 2}, {5, 2, 14, 5, 1}, {7, 2, 9, 4, 3},
                   {3, 2, 8, 6, 2}, {1, 1, 5, 2, 1}, {9, 1, 11, 2, 2}};
    for (auto& c : dw) {
        int k = c[0], s = c[1], h = c[2], C = c[3], N = c[4];
        int oh = (h + 2 * (k / 2) - k) / s + 1;
        std::vector<float> x(N * C * h * h), w(C * k * k), b(C), y((size_t)N * C * oh * oh);
        for (auto* v : {&x, &w, &b})
            for (auto& q : *v) q = rnd();
        for (int act = 0; act < 4; act++) {
            long long total = (long long)y.size();
            launch(3, 64, [&] {
                dwconv(x.data(), w.data(), b.data(), y.data(), C, h, oh, k, s, total, act);
            });
            for (int n = 0; n < N; n++)
                for (int ch = 0; ch < C; ch++)
                    for (int oy = 0; oy < oh; oy++)
                        for (int ox = 0; ox < oh; ox++) {
                            float acc = dw_ref(x, w, b, nullptr, 0, C, h, k, s, n, ch, oy, ox);
                            long long i = ((n * C + ch) * oh + oy) * oh + ox;
                            expect("dwconv", i, y[i], act_ref(acc, act));
                        }
        }
    }
    // dwconv_plane: {k, stride, h, channels, batch, threads}: fewer outputs
    // than threads (idle threads), more (looping), k 1 and 9 generic; each
    // with and without the prologue and the pool.
    int pl[][6] = {{3, 1, 7, 3, 2, 64}, {5, 2, 14, 2, 2, 32}, {7, 1, 9, 2, 1, 96},
                   {3, 2, 8, 3, 2, 32}, {1, 1, 5, 2, 1, 32}, {9, 1, 11, 2, 1, 64}};
    for (auto& c : pl) {
        int k = c[0], s = c[1], h = c[2], C = c[3], N = c[4], T = c[5];
        int oh = (h + 2 * (k / 2) - k) / s + 1;
        std::vector<float> x(N * C * h * h), w(C * k * k), b(C), pb(C), y((size_t)N * C * oh * oh),
            pooled(N * C);
        for (auto* v : {&x, &w, &b, &pb})
            for (auto& q : *v) q = rnd();
        for (int variant = 0; variant < 4; variant++) {
            bool pre = variant & 1, pool = variant & 2;
            int act = variant % 4, pre_act = (variant + 1) % 4;
            for (auto& q : pooled) q = NAN;
            launch(N * C, T, [&] {
                dwconv_plane(x.data(), w.data(), b.data(), y.data(), pre ? pb.data() : nullptr, pre_act,
                             pool ? pooled.data() : nullptr, C, h, oh, k, s, act);
            });
            for (int n = 0; n < N; n++)
                for (int ch = 0; ch < C; ch++) {
                    float sum = 0;
                    for (int oy = 0; oy < oh; oy++)
                        for (int ox = 0; ox < oh; ox++) {
                            float acc = dw_ref(x, w, b, pre ? pb.data() : nullptr, pre_act, C, h, k, s,
                                               n, ch, oy, ox);
                            long long i = ((n * C + ch) * oh + oy) * oh + ox;
                            float want = act_ref(acc, act);
                            expect("dwconv_plane", i, y[i], want);
                            sum += want;
                        }
                    if (pool) expect("dwconv_plane pool", n * C + ch, pooled[n * C + ch], sum / (oh * oh));
                    else if (!std::isnan(pooled[n * C + ch])) expect("dwconv_plane no pool", n * C + ch, pooled[n * C + ch], NAN);
                }
        }
    }
    // conv_direct: {cin, cout, k, stride, h, batch}; the stem's shape (3
    // input channels, 3x3, stride 2, odd and even sizes), k 5, and k 1 and
    // 7 on the generic path.
    int cd[][6] = {{3, 4, 3, 2, 9, 2}, {3, 5, 3, 2, 8, 1}, {2, 3, 5, 1, 7, 2},
                   {4, 2, 1, 1, 5, 1}, {2, 2, 7, 2, 11, 1}};
    for (auto& c : cd) {
        int I = c[0], O = c[1], k = c[2], s = c[3], h = c[4], N = c[5];
        int oh = (h + 2 * (k / 2) - k) / s + 1;
        std::vector<float> x(N * I * h * h), w(O * I * k * k), b(O), y((size_t)N * O * oh * oh);
        for (auto* v : {&x, &w, &b})
            for (auto& q : *v) q = rnd();
        for (int act = 0; act < 4; act++) {
            long long total = (long long)y.size();
            for (auto& q : y) q = NAN;
            launch(3, 64, [&] {
                conv_direct(x.data(), w.data(), b.data(), y.data(), I, O, h, oh, k, s, total, act);
            });
            for (int n = 0; n < N; n++)
                for (int o = 0; o < O; o++)
                    for (int oy = 0; oy < oh; oy++)
                        for (int ox = 0; ox < oh; ox++) {
                            float acc = b[o];
                            for (int i = 0; i < I; i++)
                                for (int ky = 0; ky < k; ky++)
                                    for (int kx = 0; kx < k; kx++) {
                                        int iy = oy * s + ky - k / 2, ix = ox * s + kx - k / 2;
                                        if (iy < 0 || ix < 0 || iy >= h || ix >= h) continue;
                                        acc += x[((n * I + i) * h + iy) * h + ix] * w[((o * I + i) * k + ky) * k + kx];
                                    }
                            long long at = ((n * O + o) * oh + oy) * oh + ox;
                            expect("conv_direct", at, y[at], act_ref(acc, act));
                        }
        }
    }
    // l2_flush: every float of the buffer read once and summed into the
    // sink, on top of what it held; fewer float4 than threads, and more
    // (the grid-stride loop wraps).
    for (long long n4 : {1LL, 37LL, 1000LL}) {
        std::vector<float4> buf(n4);
        double want = 0.25;
        for (auto& v : buf) {
            v = {rnd(), rnd(), rnd(), rnd()};
            want += (double)v.x + v.y + v.z + v.w;
        }
        float sink = 0.25f;
        launch(3, 64, [&] { l2_flush(buf.data(), n4, &sink); });
        if (!(fabs(sink - want) <= 1e-4 * (1.0 + fabs(want)))) {
            printf("l2_flush [%lld]: got %g, want %g\n", n4, sink, want);
            bad++;
        }
    }
    // bias_act, bias_residual, channel_scale.
    {
        int N = 2, C = 3, hw = 5;
        long long total = N * C * hw;
        std::vector<float> y0(total), b(C), r(total), g(N * C), y;
        for (auto* v : {&y0, &b, &r, &g})
            for (auto& q : *v) q = rnd();
        for (int act = 0; act < 4; act++) {
            y = y0;
            launch(2, 32, [&] { bias_act(y.data(), b.data(), C, hw, total, act); });
            for (long long i = 0; i < total; i++) expect("bias_act", i, y[i], act_ref(y0[i] + b[i / hw % C], act));
        }
        for (int has_res = 0; has_res < 2; has_res++) {
            y = y0;
            launch(2, 32, [&] { bias_residual(y.data(), b.data(), has_res ? r.data() : y.data(), C, hw, total, has_res); });
            for (long long i = 0; i < total; i++)
                expect("bias_residual", i, y[i], y0[i] + b[i / hw % C] + (has_res ? r[i] : 0.0f));
        }
        y = y0;
        launch(2, 32, [&] { channel_scale(y.data(), g.data(), hw, total); });
        for (long long i = 0; i < total; i++) expect("channel_scale", i, y[i], y0[i] * g[i / hw]);
    }
    // se_weights: {images, cout, cin}; the grid is smaller than the work,
    // so the loop strides.
    int sw[][3] = {{2, 3, 5}, {3, 7, 4}, {1, 16, 33}};
    for (auto& c : sw) {
        int N = c[0], O = c[1], I = c[2];
        long long total = (long long)N * O * I;
        std::vector<float> w(O * I), g(N * I), wn(total, NAN);
        for (auto* v : {&w, &g})
            for (auto& q : *v) q = rnd();
        launch(2, 32, [&] { se_weights(w.data(), g.data(), wn.data(), O, I, total); });
        for (int n = 0; n < N; n++)
            for (int o = 0; o < O; o++)
                for (int i = 0; i < I; i++) {
                    long long at = ((long long)n * O + o) * I + i;
                    expect("se_weights", at, wn[at], w[o * I + i] * g[n * I + i]);
                }
    }
    // se_fc: {images, channels, se}, one block per image.
    int se[][3] = {{2, 40, 10}, {3, 77, 5}, {1, 130, 33}};
    for (auto& c : se) {
        int N = c[0], C = c[1], S = c[2];
        std::vector<float> p(N * C), w1(S * C), b1(S), w2(C * S), b2(C), gate(N * C);
        for (auto* v : {&p, &w1, &b1, &w2, &b2})
            for (auto& q : *v) q = rnd();
        for (int act = 1; act < 4; act++) {
            launch(N, 64, [&] {
                se_fc(p.data(), w1.data(), b1.data(), w2.data(), b2.data(), gate.data(), C, S, act);
            });
            for (int n = 0; n < N; n++) {
                std::vector<float> hid(S);
                for (int j = 0; j < S; j++) {
                    float s = b1[j];
                    for (int ch = 0; ch < C; ch++) s += w1[j * C + ch] * p[n * C + ch];
                    hid[j] = act_ref(s, act);
                }
                for (int ch = 0; ch < C; ch++) {
                    float s = b2[ch];
                    for (int j = 0; j < S; j++) s += w2[ch * S + j] * hid[j];
                    expect("se_fc", n * C + ch, gate[n * C + ch], 1.0f / (1.0f + expf(-s)));
                }
            }
        }
    }
    // global_pool: one warp per (n, c), the last block partly idle.
    {
        int nc = 7, hw = 45;
        std::vector<float> x(nc * hw), out(nc);
        for (auto& q : x) q = rnd();
        launch((nc * 32 + 63) / 64, 64, [&] { global_pool(x.data(), out.data(), nc, hw); });
        for (int i = 0; i < nc; i++) {
            float s = 0;
            for (int j = 0; j < hw; j++) s += x[i * hw + j];
            expect("global_pool", i, out[i], s / hw);
        }
    }
    // fc: one warp per output.
    {
        int B = 3, I = 70, O = 11;
        std::vector<float> x(B * I), w(O * I), b(O), y(B * O);
        for (auto* v : {&x, &w, &b})
            for (auto& q : *v) q = rnd();
        launch((B * O * 32 + 63) / 64, 64, [&] { fc(x.data(), w.data(), b.data(), y.data(), B, I, O); });
        for (int n = 0; n < B; n++)
            for (int o = 0; o < O; o++) {
                float s = b[o];
                for (int i = 0; i < I; i++) s += w[o * I + i] * x[n * I + i];
                expect("fc", n * O + o, y[n * O + o], s);
            }
    }
    printf("%s: %d mismatches\n", bad ? "FAIL" : "ok", bad);
    return bad != 0;
}
