"""The matrix-matrix products of the batched step (batched.py): the linears of n streams at
once, each weight read once for a tile of streams instead of once per stream.

Float: rn_gemm computes every output row exactly as rn_gemv does (bias first, then one
RN_MADD per k in k order), so the batched float step equals the single step bit for bit; it
only computes 4 rows per weight load, in register tiles of 4 rows x RN_NB columns, with the
columns in blocks whose weights stay in the cache while every row tile passes over them.

Int8: rq_gemm_s8 reads the same packed [N/16][K/4][16][4] weights as rq_gemv_s8 (simd.py),
per instruction set, and returns the same exact int32 sums (an integer sum is exact in any
order): rq_pack_s8 lays out each row's x once (as rq_gemv_s8's tmp), then every 64-byte
weight load feeds RQ_T rows (VNNI 8, AVX2 2, sdot 4, plain C 4).

Both read the float weights in rn_gemv's column panels (panels.py: pack_panels, rn_panel):
a tile's RN_NB columns (a multiple of RN_NB from column 0) always lie in one panel.
"""

WIDEST_TILE = 32  # RN_NB's largest value below: a linear narrower than this runs no tile

GEMM = r"""
/* ---- batched products (export/c/gemm.py) ---- */
#if defined(__AVX512F__)
#define RN_NB 32
#else
#define RN_NB 16
#endif

/* y[r][n0 .. n0 + RN_NB) = b + sum_k x[r][k] w[k][n] for rows r < 4 (four: x[r][k] is
 * xt[4 k + r], the tile's rows interleaved) or one row (x[0][k] = xt[k]), wt pointing at
 * column n0 of its panel (rows ld apart); each row's sums stay in registers, and 4 rows share
 * every weight load */
RN_INLINE void rn_gemm_tile(int four, const float *restrict xt, float *const *y,
    const float *restrict wt, const float *b, int kk, int ld, int n0)
{
    float a0[RN_NB], a1[RN_NB], a2[RN_NB], a3[RN_NB];
    float *restrict y0 = y[0] + n0;
    if (b)
        for (int c = 0; c < RN_NB; c++) a0[c] = b[n0 + c];
    else
        for (int c = 0; c < RN_NB; c++) a0[c] = 0.0f;
    if (four) {
        float *restrict y1 = y[1] + n0, *restrict y2 = y[2] + n0, *restrict y3 = y[3] + n0;
        for (int c = 0; c < RN_NB; c++) a1[c] = a2[c] = a3[c] = a0[c];
        for (int k = 0; k < kk; k++) {
            const float *wk = wt + (long)k * ld;
            const float v0 = xt[4 * k], v1 = xt[4 * k + 1], v2 = xt[4 * k + 2], v3 = xt[4 * k + 3];
            for (int c = 0; c < RN_NB; c++) {
                a0[c] = RN_MADD(a0[c], v0, wk[c]);
                a1[c] = RN_MADD(a1[c], v1, wk[c]);
                a2[c] = RN_MADD(a2[c], v2, wk[c]);
                a3[c] = RN_MADD(a3[c], v3, wk[c]);
            }
        }
        for (int c = 0; c < RN_NB; c++) y1[c] = a1[c]; /* a loop per row: they vectorise */
        for (int c = 0; c < RN_NB; c++) y2[c] = a2[c];
        for (int c = 0; c < RN_NB; c++) y3[c] = a3[c];
    } else {
        for (int k = 0; k < kk; k++) {
            const float *wk = wt + (long)k * ld;
            const float v0 = xt[k];
            for (int c = 0; c < RN_NB; c++) a0[c] = RN_MADD(a0[c], v0, wk[c]);
        }
    }
    for (int c = 0; c < RN_NB; c++) y0[c] = a0[c];
}

#if defined(__AVX512F__) && defined(__FMA__)
#include <immintrin.h>
#define RN_GEMM8 1
/* rn_gemm_tile for 8 rows x 32 columns in sixteen 512-bit registers (__m512 values of a
 * constant count stay in registers; GCC's own vectors of the tile stay 256-bit): each element
 * b, then one fused multiply-add per k in k order (fmaf's single rounding: RN_MADD under FMA),
 * so the same numbers; 8 rows per weight load, x read from the rows as they are (a broadcast
 * per row and k); wt points at column n0 of its panel */
RN_INLINE void rn_gemm_tile8(const float *const *x, float *const *y, const float *restrict wt,
    const float *b, int kk, int ld, int n0)
{
    const __m512 b0 = b ? _mm512_loadu_ps(b + n0) : _mm512_setzero_ps();
    const __m512 b1 = b ? _mm512_loadu_ps(b + n0 + 16) : _mm512_setzero_ps();
    __m512 a[8][2];
    for (int r = 0; r < 8; r++) a[r][0] = b0, a[r][1] = b1;
    for (int k = 0; k < kk; k++) {
        const float *wk = wt + (long)k * ld;
        const __m512 w0 = _mm512_loadu_ps(wk), w1 = _mm512_loadu_ps(wk + 16);
        for (int r = 0; r < 8; r++) {
            const __m512 v = _mm512_set1_ps(x[r][k]);
            a[r][0] = _mm512_fmadd_ps(v, w0, a[r][0]);
            a[r][1] = _mm512_fmadd_ps(v, w1, a[r][1]);
        }
    }
    for (int r = 0; r < 8; r++) {
        _mm512_storeu_ps(y[r] + n0, a[r][0]);
        _mm512_storeu_ps(y[r] + n0 + 16, a[r][1]);
    }
}
#endif

/* columns n0 .. nn of rn_gemm (the last nn % RN_NB, or all of a linear narrower than any
 * tile: it never reaches the tile kernels, whose 16-wide bias loads GCC's -Warray-bounds
 * flags on a bias of fewer floats even where the tiles do not run), a panel at a time */
RN_INLINE void rn_gemm_rest(const float *const *x, float *const *y, int m,
    const float *restrict wt, const float *b, int kk, int nn, int n0)
{
    for (int n = n0, ld; n < nn; n += ld) {
        const float *w = rn_panel(wt, kk, nn, n, &ld);
        for (int r = 0; r < m; r++) {
            const float *xr = x[r];
            float *yr = y[r] + n;
            for (int i = 0; i < ld; i++) yr[i] = b ? b[n + i] : 0.0f;
            if (ld < 16) { /* summed as rn_gemv sums it */
                rn_gemv_narrow(xr, w, kk, ld, yr);
                continue;
            }
            for (int k = 0; k < kk; k++)
                for (int i = 0; i < ld; i++) yr[i] = RN_MADD(yr[i], xr[k], w[(long)k * ld + i]);
        }
    }
}

/* y[r][n] = b[n] (0 without b) + sum_k x[r][k] w[k][n] for r < m, n < nn (wt in rn_gemv's
 * panels), each sum in k order with RN_MADD: row for row what rn_gemv computes. Columns go
 * in blocks of nblk (a multiple of RN_NB) whose weights stay in L2 while all m rows pass over
 * them; xt: 4 kk floats of scratch */
RN_INLINE void rn_gemm(const float *const *x, float *const *y, int m, const float *restrict wt,
    const float *b, int kk, int nn, int nblk, float *restrict xt)
{
    const int full = nn - nn % RN_NB;
    for (int n1 = 0; n1 < full; n1 += nblk) {
        const int n2 = n1 + nblk < full ? n1 + nblk : full;
        int r = 0;
#ifdef RN_GEMM8
        for (; r + 8 <= m; r += 8)
            for (int n0 = n1; n0 < n2; n0 += RN_NB) {
                int ld;
                const float *w = rn_panel(wt, kk, nn, n0, &ld);
                rn_gemm_tile8(x + r, y + r, w, b, kk, ld, n0);
            }
#endif
        for (; r + 4 <= m; r += 4) {
            for (int k = 0; k < kk; k++)
                for (int i = 0; i < 4; i++) xt[4 * k + i] = x[r + i][k];
            for (int n0 = n1; n0 < n2; n0 += RN_NB) {
                int ld;
                const float *w = rn_panel(wt, kk, nn, n0, &ld);
                rn_gemm_tile(1, xt, y + r, w, b, kk, ld, n0);
            }
        }
        for (; r < m; r++)
            for (int n0 = n1; n0 < n2; n0 += RN_NB) {
                int ld;
                const float *w = rn_panel(wt, kk, nn, n0, &ld);
                rn_gemm_tile(0, x[r], y + r, w, b, kk, ld, n0);
            }
    }
    rn_gemm_rest(x, y, m, wt, b, kk, nn, full);
}

#if defined(__AVX512VNNI__) && defined(__AVX512VL__) && defined(__AVX512BW__)
#define RQ_T 8
#elif defined(__AVX2__)
#define RQ_T 2
#else
#define RQ_T 4
#endif

/* one row's x (k values, zero padded to 4 k4) laid out as rq_gemv_s8's tmp (2 k4 int32) */
RN_INLINE void rq_pack_s8(const int8_t *x, int k, int zp, int k4, int32_t *t)
{
#if ((defined(__AVX512VNNI__) && defined(__AVX512VL__) && defined(__AVX512BW__)) \
    || (defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD))) \
    && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* 4 k per int32, k[0] in the low byte: one byte per k in k order, a loop that vectorises */
    unsigned char *tb = (unsigned char *)t;
#if defined(__aarch64__)
    const unsigned char flip = 0; /* sdot: int8 x as it is */
#else
    const unsigned char flip = 0x80; /* vpdpbusd: uint8 x + 128 */
#endif
    for (int i = 0; i < k; i++) tb[i] = (unsigned char)((unsigned char)x[i] ^ flip);
    for (int i = k; i < 4 * k4; i++) tb[i] = flip; /* padding: x = 0 (its weights are 0) */
    (void)zp;
#else
    for (int j = 0; j < k4; j++) {
        int8_t v[4];
        for (int i = 0; i < 4; i++) v[i] = 4 * j + i < k ? x[4 * j + i] : 0;
#if defined(__AVX512VNNI__) && defined(__AVX512VL__) && defined(__AVX512BW__)
        t[j] = (int32_t)((uint32_t)(uint8_t)(v[0] ^ 0x80) | (uint32_t)(uint8_t)(v[1] ^ 0x80) << 8
            | (uint32_t)(uint8_t)(v[2] ^ 0x80) << 16 | (uint32_t)(uint8_t)(v[3] ^ 0x80) << 24);
        (void)zp;
#elif defined(__AVX2__)
        t[2 * j] = (int32_t)((uint32_t)(uint16_t)(int16_t)(v[0] - zp)
            | (uint32_t)(uint16_t)(int16_t)(v[1] - zp) << 16);
        t[2 * j + 1] = (int32_t)((uint32_t)(uint16_t)(int16_t)(v[2] - zp)
            | (uint32_t)(uint16_t)(int16_t)(v[3] - zp) << 16);
#elif defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
        t[j] = (int32_t)((uint32_t)(uint8_t)v[0] | (uint32_t)(uint8_t)v[1] << 8
            | (uint32_t)(uint8_t)v[2] << 16 | (uint32_t)(uint8_t)v[3] << 24);
        (void)zp;
#else
        for (int i = 0; i < 4; i++) ((int16_t *)t)[4 * j + i] = (int16_t)(v[i] - zp);
#endif
    }
#endif
}

/* rows r < rr of one 16-output block: acc[r * as + l] = sum_k (x_r[k] - zp) w[16 b + l][k], from
 * the rows' packed x (t, ts int32 apart) and the block's weights wb ([k4][16][4]) */
RN_INLINE void rq_tile_s8(int rr, const int32_t *t, int ts, const int8_t *wb, int k4, int zp,
    const int32_t *rs, int32_t *acc, int as)
{
#if defined(__AVX512VNNI__) && defined(__AVX512VL__) && defined(__AVX512BW__)
    __m512i s[RQ_T], fix;
    for (int r = 0; r < rr; r++) s[r] = _mm512_setzero_si512();
    for (int j = 0; j < k4; j++) {
        const __m512i wv = _mm512_loadu_si512((const void *)(wb + 64 * j));
        for (int r = 0; r < rr; r++)
            s[r] = _mm512_dpbusd_epi32(s[r], _mm512_set1_epi32(t[r * ts + j]), wv);
    }
    fix = _mm512_mullo_epi32(_mm512_set1_epi32(128 + zp), _mm512_loadu_si512((const void *)rs));
    for (int r = 0; r < rr; r++)
        _mm512_storeu_si512((void *)(acc + r * as), _mm512_sub_epi32(s[r], fix));
#elif defined(__AVX2__)
    __m256i a[RQ_T][4];
    (void)zp; (void)rs;
    for (int r = 0; r < rr; r++)
        for (int i = 0; i < 4; i++) a[r][i] = _mm256_setzero_si256();
    for (int j = 0; j < k4; j++) {
        const int8_t *wj = wb + 64 * j;
        const __m256i w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)wj));
        const __m256i w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(wj + 16)));
        const __m256i w2 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(wj + 32)));
        const __m256i w3 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(wj + 48)));
        for (int r = 0; r < rr; r++) {
            const int32_t *tr = t + r * ts + 2 * j;
            const __m256i xv = _mm256_set1_epi64x(
                (long long)((uint64_t)(uint32_t)tr[1] << 32 | (uint32_t)tr[0]));
            a[r][0] = _mm256_add_epi32(a[r][0], _mm256_madd_epi16(xv, w0));
            a[r][1] = _mm256_add_epi32(a[r][1], _mm256_madd_epi16(xv, w1));
            a[r][2] = _mm256_add_epi32(a[r][2], _mm256_madd_epi16(xv, w2));
            a[r][3] = _mm256_add_epi32(a[r][3], _mm256_madd_epi16(xv, w3));
        }
    }
    for (int r = 0; r < rr; r++) {
        _mm256_storeu_si256((__m256i *)(acc + r * as),
            _mm256_permute4x64_epi64(_mm256_hadd_epi32(a[r][0], a[r][1]), 0xD8));
        _mm256_storeu_si256((__m256i *)(acc + r * as + 8),
            _mm256_permute4x64_epi64(_mm256_hadd_epi32(a[r][2], a[r][3]), 0xD8));
    }
#elif defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
    int32x4_t s[RQ_T][4];
    for (int r = 0; r < rr; r++)
        for (int i = 0; i < 4; i++) s[r][i] = vdupq_n_s32(0);
    for (int j = 0; j < k4; j++) {
        const int8x16_t w0 = vld1q_s8(wb + 64 * j), w1 = vld1q_s8(wb + 64 * j + 16);
        const int8x16_t w2 = vld1q_s8(wb + 64 * j + 32), w3 = vld1q_s8(wb + 64 * j + 48);
        for (int r = 0; r < rr; r++) {
            const int8x16_t xv = vreinterpretq_s8_s32(vdupq_n_s32(t[r * ts + j]));
            s[r][0] = vdotq_s32(s[r][0], w0, xv);
            s[r][1] = vdotq_s32(s[r][1], w1, xv);
            s[r][2] = vdotq_s32(s[r][2], w2, xv);
            s[r][3] = vdotq_s32(s[r][3], w3, xv);
        }
    }
    {
        const int32x4_t z = vdupq_n_s32(zp);
        for (int r = 0; r < rr; r++)
            for (int i = 0; i < 4; i++)
                vst1q_s32(acc + r * as + 4 * i, vmlsq_s32(s[r][i], z, vld1q_s32(rs + 4 * i)));
    }
#else
    int32_t s[RQ_T][16];
    (void)zp; (void)rs;
    for (int r = 0; r < rr; r++)
        for (int l = 0; l < 16; l++) s[r][l] = 0;
    for (int j = 0; j < k4; j++)
        for (int r = 0; r < rr; r++) {
            const int16_t *xs = (const int16_t *)(t + r * ts) + 4 * j;
            for (int l = 0; l < 16; l++)
                for (int i = 0; i < 4; i++)
                    s[r][l] += (int32_t)xs[i] * (int32_t)wb[64 * j + 4 * l + i];
        }
    for (int r = 0; r < rr; r++)
        for (int l = 0; l < 16; l++) acc[r * as + l] = s[r][l];
#endif
}

/* acc[r][n] = sum_k (x_r[k] - zp) w[n][k] for m rows (acc: m x 16 nb int32), from the rows'
 * x laid out by rq_pack_s8 (t: m x 2 k4 int32): rq_gemv_s8's sums, RQ_T rows per weight load;
 * one block's weights (64 k4 bytes) stay in L1 while every row passes */
RN_INLINE void rq_gemm_s8(const int32_t *t, int m, int zp, const int8_t *w,
    const int32_t *rowsum, int nb, int k4, int32_t *acc)
{
    const int ts = 2 * k4, as = 16 * nb;
    for (int b = 0; b < nb; b++) {
        const int8_t *wb = w + (long)b * k4 * 64;
        int r = 0;
        for (; r + RQ_T <= m; r += RQ_T)
            rq_tile_s8(RQ_T, t + (long)r * ts, ts, wb, k4, zp, rowsum + 16 * b,
                acc + (long)r * as + 16 * b, as);
        for (; r < m; r++)
            rq_tile_s8(1, t + (long)r * ts, ts, wb, k4, zp, rowsum + 16 * b,
                acc + (long)r * as + 16 * b, as);
    }
}
"""
