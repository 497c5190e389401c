/* The floors under the native step of GRU(40 -> H) + Linear(H -> 10) on an AVX-512 x86 core
 * (docs/native.md, "What bounds it"): how fast the same bytes can come from L2 and the same
 * multiply-adds can run, with nothing else in the loop.
 *
 *   cc -O3 -march=native boards/native_floor.c -o /tmp/native_floor && /tmp/native_floor 128
 *
 * (-O3: at -O2 GCC keeps the accumulator arrays in memory and every floor is 2-3x slower;
 * make bench-native builds and runs it after each hidden size)
 *
 * Rows, per step (min over interleaved windows, after warm-up; the weights stay in L2 between passes):
 *   float L2 stream      the step's float weights (40 x 3H + H x 3H + H x 10 floats) read once
 *                        in order, one 512-bit FMA per 64 bytes, 16 accumulators
 *   float L2 [K][N]      the same bytes in the layout rn_gemv read before its column panels
 *                        ([K][N] rows, 256 + 128 outputs a pass: 1.5 KB apart per k at H = 128)
 *   float L1             the same FMAs and loads from a 16 KB buffer (L1): the compute floor
 *   int8 L2 stream       the packed int8 weights (16 H x 10 head rows included), one vpdpbusd
 *                        per 64 bytes, 8 accumulators
 *   int8 L1              the same from L1
 *   64 streams, float    the step's multiply-adds at the FMA peak (registers only, 16 chains):
 *                        what 64 batched streams cost per stream-step at best
 *   64 streams, int8     the same at the vpdpbusd peak
 */
#define _POSIX_C_SOURCE 200112L
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if !defined(__AVX512F__) || !defined(__AVX512VNNI__)
#error "native_floor.c measures AVX-512 (F + VNNI) floors: build with -march=native on such a CPU"
#endif

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static volatile float sink_f;
static volatile int sink_i;

/* one pass over n floats in order: 16 FMAs per 1 KB, x broadcast per 1 KB */
static void f_stream(const float *w, long n, const float *x)
{
    __m512 a[16];
    for (int i = 0; i < 16; i++) a[i] = _mm512_setzero_ps();
    for (long j = 0; j + 256 <= n; j += 256) {
        const __m512 v = _mm512_set1_ps(x[(j >> 8) & 63]);
        for (int i = 0; i < 16; i++) a[i] = _mm512_fmadd_ps(v, _mm512_loadu_ps(w + j + 16 * i), a[i]);
    }
    for (int i = 1; i < 16; i++) a[0] = _mm512_add_ps(a[0], a[i]);
    sink_f = _mm512_reduce_add_ps(a[0]);
}

/* rn_gemv's reads before the panels: NV 16 outputs over kk rows of nn floats, from column n0
 * (a constant NV, so the accumulators stay in registers, as in rn_gemv) */
#define F_REGS(NV) \
    static void f_regs##NV(const float *wt, int kk, int nn, int n0, const float *x) \
    { \
        __m512 a[NV]; \
        for (int i = 0; i < NV; i++) a[i] = _mm512_setzero_ps(); \
        for (int k = 0; k < kk; k++) { \
            const __m512 v = _mm512_set1_ps(x[k & 63]); \
            const float *r = wt + (long)k * nn + n0; \
            for (int i = 0; i < NV; i++) \
                a[i] = _mm512_fmadd_ps(v, _mm512_loadu_ps(r + 16 * i), a[i]); \
        } \
        for (int i = 1; i < NV; i++) a[0] = _mm512_add_ps(a[0], a[i]); \
        sink_f = _mm512_reduce_add_ps(a[0]); \
    }
F_REGS(16)
F_REGS(8)
F_REGS(1)

static void f_gemv(const float *wt, int kk, int nn, const float *x)
{
    int n = 0;
    for (; n + 256 <= nn; n += 256) f_regs16(wt, kk, nn, n, x);
    for (; n + 128 <= nn; n += 128) f_regs8(wt, kk, nn, n, x);
    for (; n < nn; n += 16) f_regs1(wt, kk, nn, n, x);
}

/* one pass over n bytes: one vpdpbusd per 64 bytes, 8 chains */
static void i_stream(const signed char *w, long n, const int *x)
{
    __m512i a[8];
    for (int i = 0; i < 8; i++) a[i] = _mm512_setzero_si512();
    for (long j = 0; j + 512 <= n; j += 512) {
        const __m512i v = _mm512_set1_epi32(x[(j >> 9) & 63]);
        for (int i = 0; i < 8; i++)
            a[i] = _mm512_dpbusd_epi32(a[i], v, _mm512_loadu_si512((const void *)(w + j + 64 * i)));
    }
    for (int i = 1; i < 8; i++) a[0] = _mm512_add_epi32(a[0], a[i]);
    sink_i = _mm512_reduce_add_epi32(a[0]);
}

/* n FMAs (or vpdpbusd) from registers, 16 chains: the peak */
static void f_peak(long n)
{
    __m512 a[16], v = _mm512_set1_ps(sink_f), w = _mm512_set1_ps(1.0f);
    for (int i = 0; i < 16; i++) a[i] = _mm512_set1_ps((float)i);
    for (long j = 0; j < n; j += 16)
        for (int i = 0; i < 16; i++) a[i] = _mm512_fmadd_ps(v, w, a[i]);
    for (int i = 1; i < 16; i++) a[0] = _mm512_add_ps(a[0], a[i]);
    sink_f = _mm512_reduce_add_ps(a[0]);
}

static void i_peak(long n)
{
    __m512i a[16], v = _mm512_set1_epi32(sink_i), w = _mm512_set1_epi32(0x01010101);
    for (int i = 0; i < 16; i++) a[i] = _mm512_set1_epi32(i);
    for (long j = 0; j < n; j += 16)
        for (int i = 0; i < 16; i++) a[i] = _mm512_dpbusd_epi32(a[i], v, w);
    for (int i = 1; i < 16; i++) a[0] = _mm512_add_epi32(a[0], a[i]);
    sink_i = _mm512_reduce_add_epi32(a[0]);
}

struct job {
    int kind; /* 0 f_stream, 1 f_gemv, 2 i_stream, 3 f_peak, 4 i_peak */
    const void *w;
    long n, reps; /* per step: reps passes over n */
    int h;
};

static float xs[64];
static int xi[64];

static void run(const struct job *j)
{
    for (long r = 0; r < j->reps; r++) {
        if (j->kind == 0) f_stream((const float *)j->w, j->n, xs);
        if (j->kind == 1) {
            const float *w = (const float *)j->w;
            const int h = j->h;
            f_gemv(w, 40, 3 * h, xs);
            f_gemv(w + 120L * h, h, 3 * h, xs);
            f_gemv(w + 120L * h + 3L * h * h, h, 10, xs);
        }
        if (j->kind == 2) i_stream((const signed char *)j->w, j->n, xi);
        if (j->kind == 3) f_peak(j->n);
        if (j->kind == 4) i_peak(j->n);
    }
}

/* min over 3000 windows of 10 steps, in us per step, the jobs interleaved (a short window is
 * one the other tenants of a shared machine are less likely to interrupt) */
static void time_jobs(const struct job *js, int n, double *best)
{
    for (int i = 0; i < n; i++) {
        best[i] = 1e30;
        for (int r = 0; r < 20; r++) run(&js[i]);
    }
    for (int w = 0; w < 3000; w++)
        for (int i = 0; i < n; i++) {
            run(&js[i]); /* back into L2 after the other jobs' bytes (3.3 MB float at H = 512) */
            const double t0 = now_ns();
            for (int s = 0; s < 10; s++) run(&js[i]);
            const double t = (now_ns() - t0) / 10 / 1e3;
            best[i] = t < best[i] ? t : best[i];
        }
}

int main(int argc, char **argv)
{
    const int h = argc > 1 ? atoi(argv[1]) : 128;
    const long nf = 3L * h * (40 + h) + 10L * h; /* float weights */
    const long ni = 3L * h * 40 + 3L * h * h + 16L * h; /* packed int8 (head padded to 16) */
    const long l1f = 4096, l1i = 16384; /* 16 KB */
    void *pf, *pi;
    float *wf;
    signed char *wi;
    if (posix_memalign(&pf, 64, (nf + 256) * sizeof(float)) || posix_memalign(&pi, 64, ni + 512))
        return 1;
    wf = pf, wi = pi;
    for (long i = 0; i < nf + 256; i++) wf[i] = (float)(i % 13) * 0.01f;
    for (long i = 0; i < ni + 512; i++) wi[i] = (signed char)(i % 31 - 15);
    for (int i = 0; i < 64; i++) xs[i] = 0.01f * i, xi[i] = i * 0x01020304;
    printf("GRU(40 -> %d) + Linear(%d -> 10): float weights %.1f KB, int8 %.1f KB; us per step\n",
        h, h, nf * 4 / 1024.0, ni / 1024.0);
    {
        const struct job js[] = {
            {0, wf, nf, 1, h},
            {1, wf, nf, 1, h},
            {0, wf, l1f, (nf + l1f - 1) / l1f, h},
            {2, wi, ni, 1, h},
            {2, wi, l1i, (ni + l1i - 1) / l1i, h},
            {3, 0, nf / 16, 1, h},
            {4, 0, ni / 64, 1, h},
        };
        const char *names[] = {"float L2 stream (in order)", "float L2 [K][N] layout (before panels)",
            "float L1 (compute floor)", "int8 L2 stream (vpdpbusd)", "int8 L1 (compute floor)",
            "float FMA peak (64-stream floor)", "int8 vpdpbusd peak (64-stream floor)"};
        double best[7];
        time_jobs(js, 7, best);
        for (int i = 0; i < 7; i++) printf("  %-40s %7.3f\n", names[i], best[i]);
    }
    free(wf);
    free(wi);
    return 0;
}
