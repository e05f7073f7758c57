/* bench-store: session store speed and size for RWKV-7 state shapes. Not a test.
 *
 *   bench-store [--dir DIR] [--iters N] [--codecs] [--delta] [--json] [--prefill-tps T|0.1B=T,...]
 *
 * States are synthetic but shaped like the real thing: per layer two token-shift vectors and, per
 * head, a 64x64 wkv matrix produced by running the RWKV-7 recurrence
 *   S = S (diag(w) - k^T (a*k)) + v^T k
 * over 64 random tokens (mixed magnitudes, decayed history), plus 65536 pending logits and penalty
 * counts as a World-vocabulary session carries. --codecs first compares zstd levels with and without
 * the byte-plane shuffle on the 0.1B state (in memory, sealed: what a load costs minus the disk).
 * --prefill-tps: prefill tokens/s of the engine for the resume-vs-re-prefill ratio (run.sh measures
 * it with `rwkvctl bench` on a random model of each shape when the engine is built). */
#include <fcntl.h>
#include <malloc.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_c_literalCompressionMode, as daemon/store-format.c */
#include <zstd.h>

#include "daemon/store-format.h"
#include "daemon/store.h"

typedef struct Shape {
        const char *name;
        uint32_t n_layer, n_embd;
} Shape;

static const Shape shapes[] = {
        { "0.1B", 12, 768 },
        { "0.4B", 24, 1024 },
        { "1.5B", 24, 2048 },
};

static uint64_t rs = 0x9e3779b97f4a7c15ull;
static double urand(void) {
        rs ^= rs << 13;
        rs ^= rs >> 7;
        rs ^= rs << 17;
        return (double)(rs >> 11) / 9007199254740992.0;
}
static float nrand(void) {
        double u = urand() + 1e-12, v = urand();
        return (float)(sqrt(-2 * log(u)) * cos(2 * M_PI * v));
}

/* Run `tokens` steps of the RWKV-7 wkv recurrence on every head's 64x64 matrix of state x. */
static void state_advance(const Shape *sh, float *x, int tokens) {
        size_t C = sh->n_embd, hs = 64, H = C / hs;
        float k[64], v[64], w[64], a[64], sk[64];
        float *p = x;
        for (uint32_t l = 0; l < sh->n_layer; l++) {
                for (size_t i = 0; i < 2 * C; i++) /* token shift: the last token's normalized input */
                        *p++ = nrand() * 0.5f;
                for (size_t h = 0; h < H; h++, p += hs * hs) {
                        float *S = p; /* S[i][j]: value i, key j */
                        for (int t = 0; t < tokens; t++) {
                                float norm = 0;
                                for (size_t j = 0; j < hs; j++) {
                                        k[j] = nrand();
                                        norm += k[j] * k[j];
                                        v[j] = nrand();
                                        w[j] = expf(-expf(nrand() * 0.5f - 1.0f));
                                        a[j] = (float) urand();
                                }
                                norm = 1.0f / sqrtf(norm);
                                for (size_t j = 0; j < hs; j++)
                                        k[j] *= norm;
                                for (size_t i = 0; i < hs; i++) {
                                        float acc = 0;
                                        for (size_t j = 0; j < hs; j++)
                                                acc += S[i * hs + j] * k[j];
                                        sk[i] = acc;
                                }
                                for (size_t i = 0; i < hs; i++)
                                        for (size_t j = 0; j < hs; j++)
                                                S[i * hs + j] = S[i * hs + j] * w[j] - sk[i] * a[j] * k[j] +
                                                                v[i] * k[j];
                        }
                }
        }
}

static float *make_state(const Shape *sh, size_t *ret_n) {
        size_t C = sh->n_embd;
        size_t n = (size_t) sh->n_layer * (2 * C + C * 64);
        float *x = calloc(n, sizeof(float));
        state_advance(sh, x, 64);
        *ret_n = n;
        return x;
}

static void to_planes(const float *x, uint8_t *o, size_t n) {
        const uint8_t *b = (const uint8_t *) x;
        for (size_t i = 0; i < n; i++)
                for (size_t p = 0; p < 4; p++)
                        o[p * n + i] = b[4 * i + p];
}

/* Would a checkpoint stored as a zstd delta against the previous one be smaller? Compress the
 * 0.1B state's 512 KiB plane blocks alone, and with the previous checkpoint's block as prefix. */
static void delta(void) {
        const Shape *sh = &shapes[0];
        size_t n;
        float *prev = make_state(sh, &n), *cur = malloc(n * sizeof(float));
        size_t bytes = n * 4, block = 512 * 1024;
        uint8_t *pp = malloc(bytes), *pc = malloc(bytes), *out = malloc(ZSTD_compressBound(block));
        ZSTD_CCtx *c = ZSTD_createCCtx();
        printf("checkpoint deltas, %s state, zstd 1 on 512 KiB plane blocks:\n", sh->name);
        for (int extra = 1; extra <= 64; extra *= 8) {
                memcpy(cur, prev, bytes);
                state_advance(sh, cur, extra);
                size_t alone = 0, with_prev = 0;
                for (size_t off = 0; off < bytes; off += block) {
                        size_t bs = MIN(block, bytes - off), fl = bs / 4;
                        to_planes(prev + off / 4, pp + off, fl);
                        to_planes(cur + off / 4, pc + off, fl);
                        alone += ZSTD_compressCCtx(c, out, ZSTD_compressBound(bs), pc + off, bs, 1);
                        ZSTD_CCtx_reset(c, ZSTD_reset_session_and_parameters);
                        ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 1);
                        ZSTD_CCtx_refPrefix(c, pp + off, bs);
                        with_prev += ZSTD_compress2(c, out, ZSTD_compressBound(bs), pc + off, bs);
                }
                printf("  %2d tokens later: alone %.4f of raw, delta %.4f of raw\n", extra, (double) alone / bytes,
                       (double) with_prev / bytes);
        }
        ZSTD_freeCCtx(c);
        free(prev);
        free(cur);
        free(pp);
        free(pc);
        free(out);
}

static double now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* CPU time of this thread: on a loaded machine, wall time measures the neighbours too. */
static double cpu_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int dcmp(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p) {
        qsort(v, (size_t)n, sizeof(double), dcmp);
        int i = (int)(p * (n - 1) + 0.5);
        return v[i];
}

static SessionRecord *make_record(const Shape *sh) {
        SessionRecord *r = calloc(1, sizeof(*r));
        size_t n;
        r->state = make_state(sh, &n);
        snprintf(r->meta.id, sizeof(r->meta.id), "bench-%s", sh->name);
        r->meta.arch = 70;
        r->meta.n_layer = sh->n_layer;
        r->meta.n_embd = sh->n_embd;
        r->meta.head_size = 64;
        r->meta.n_head = sh->n_embd / 64;
        r->meta.state_floats = n;
        r->meta.n_vocab = 65536;
        r->logits = malloc(65536 * sizeof(float));
        r->penalties = calloc(65536, sizeof(float));
        for (int i = 0; i < 65536; i++)
                r->logits[i] = nrand() * 3.0f - 5.0f;
        for (int i = 0; i < 300; i++) /* a few hundred generated tokens, decayed */
                r->penalties[(size_t)(urand() * 65536)] += (float)urand();
        r->sampler = (SamplerParams){ 1.0f, 0.3f, 0, 0, 0.5f, 0.5f, 0.996f };
        r->rng = (Rng){ { 1, 2, 3, 4 } };
        return r;
}

static void codecs(bool json, uint32_t block_log2) {
        const Shape *sh = &shapes[0];
        SessionRecord *r = make_record(sh);
        free(r->logits);
        free(r->penalties);
        r->logits = r->penalties = NULL; /* the state alone */
        double mb = r->meta.state_floats * 4 / 1e6;
        uint8_t key[32];
        randombytes_buf(key, sizeof(key));
        static const int levels[] = { 0, -1024, -256, -64, -10, -1, 1, 3 };
        if (!json)
                printf("codecs, %s state alone (%.2f MB), sealed, in memory, CPU time (median of 15):\n"
                       "  %-7s %-6s %7s %10s %10s %9s\n",
                       sh->name, mb, "shuffle", "level", "ratio", "save MB/s", "load MB/s", "load ms");
        for (int shuffle = 0; shuffle < 2; shuffle++)
                for (size_t li = 0; li < sizeof(levels) / sizeof(levels[0]); li++) {
                        SfEncodeParams p = { .kind = SF_KIND_SESSION,
                                             .uid = 1,
                                             .key = key,
                                             .zstd_level = levels[li],
                                             .shuffle = shuffle,
                                             .block_log2 = block_log2 };
                        double te[15], td[15];
                        size_t size = 0;
                        for (int it = 0; it < 15; it++) {
                                uint8_t *buf;
                                double t0 = cpu_ms();
                                if (sf_encode(r, &p, &buf, &size, NULL) < 0)
                                        abort();
                                double t1 = cpu_ms();
                                SessionRecord *b;
                                if (sf_decode(buf, size, key, SF_KIND_SESSION, 1, &b, NULL) < 0)
                                        abort();
                                double t2 = cpu_ms();
                                if (memcmp(b->state, r->state, r->meta.state_floats * 4))
                                        abort();
                                te[it] = t1 - t0;
                                td[it] = t2 - t1;
                                session_record_free(b);
                                free(buf);
                        }
                        double e = pct(te, 15, 0.5), d = pct(td, 15, 0.5);
                        char lv[16];
                        if (levels[li])
                                snprintf(lv, sizeof(lv), "%d", levels[li]);
                        else
                                snprintf(lv, sizeof(lv), "raw");
                        if (json)
                                printf("{\"bench\":\"codec\",\"shape\":\"%s\",\"shuffle\":%d,\"level\":\"%s\","
                                       "\"ratio\":%.4f,"
                                       "\"save_mbps\":%.0f,\"load_mbps\":%.0f,\"load_ms\":%.3f}\n",
                                       sh->name, shuffle, lv, (double)size / (mb * 1e6), mb / e * 1e3, mb / d * 1e3, d);
                        else
                                printf("  %-7s %-6s %7.3f %10.0f %10.0f %9.3f\n", shuffle ? "yes" : "no", lv,
                                       (double)size / (mb * 1e6), mb / e * 1e3, mb / d * 1e3, d);
                }
        session_record_free(r);
}


/* --stages: where a 0.1B commit's CPU time goes, stage by stage, on the same record the store
 * saves (state + logits + penalty counts), each variant measured alone (median CPU ms of 31):
 * byte planes, zstd on whole blocks of planes and plane by plane (Huffman literals forced on), the
 * store's encoder as a whole, sealing, the write into the page cache. Levels: 1 (the v1 default),
 * negative fast levels. */
static double stage_med(double *v, int n) {
        return pct(v, n, 0.5);
}

static void stages(void) {
        const Shape *sh = &shapes[0];
        SessionRecord *r = make_record(sh);
        const float *secs[3] = { r->state, r->logits, r->penalties };
        size_t nfl[3] = { r->meta.state_floats, 65536, 65536 };
        const char *sec_name[3] = { "state", "logits", "penalties" };
        size_t block = 512 * 1024, total = 0;
        for (int k = 0; k < 3; k++)
                total += nfl[k] * 4;
        uint8_t *planes = malloc(total), *comp = malloc(2 * total + (1 << 20));
        ZSTD_CCtx *c = ZSTD_createCCtx();
        enum { N = 31 };
        double t[N];
        printf("stages, %s record (%.2f MB raw: state %.2f, logits %.2f, penalties %.2f), CPU ms median of %d:\n",
               sh->name, total / 1e6, nfl[0] * 4 / 1e6, nfl[1] * 4 / 1e6, nfl[2] * 4 / 1e6, N);
        /* 1. byte planes, 512 KiB blocks */
        for (int it = 0; it < N; it++) {
                double t0 = cpu_ms();
                size_t off = 0;
                for (int k = 0; k < 3; k++)
                        for (size_t b = 0; b < nfl[k] * 4; b += block) {
                                size_t bs = MIN(block, nfl[k] * 4 - b);
                                to_planes(secs[k] + b / 4, planes + off, bs / 4);
                                off += bs;
                        }
                t[it] = cpu_ms() - t0;
        }
        printf("  byte planes (scalar reference loop, the store uses SSE2): %.3f\n", stage_med(t, N));
        /* 2. zstd per section and level, all planes vs high planes only (low two raw) */
        static const int levels[] = { 1, -1, -3, -5, -10 };
        for (size_t li = 0; li < sizeof(levels) / sizeof(levels[0]); li++)
                for (int high_only = 0; high_only < 1; high_only++) {
                        double ts[3][N];
                        size_t out[3] = { 0, 0, 0 };
                        for (int it = 0; it < N; it++) {
                                size_t off = 0;
                                for (int k = 0; k < 3; k++) {
                                        double t0 = cpu_ms();
                                        size_t o = 0;
                                        for (size_t b = 0; b < nfl[k] * 4; b += block) {
                                                size_t bs = MIN(block, nfl[k] * 4 - b), q = bs / 4;
                                                size_t from = high_only ? 2 * q : 0;
                                                size_t z = ZSTD_compressCCtx(c, comp, ZSTD_compressBound(bs),
                                                                             planes + off + from, bs - from, levels[li]);
                                                o += MIN(z, bs - from) + from;
                                                off += bs;
                                        }
                                        ts[k][it] = cpu_ms() - t0;
                                        out[k] = o;
                                }
                        }
                        printf("  zstd %3d %-10s", levels[li], high_only ? "high only" : "all planes");
                        for (int k = 0; k < 3; k++)
                                printf("  %s %.3f ms (%.3f)", sec_name[k], stage_med(ts[k], N),
                                       (double)out[k] / (nfl[k] * 4));
                        printf("\n");
                }
        /* 2b. fast levels with Huffman literals forced on (negative levels turn them off), per plane */
        static const int flevels[] = { 1, -4, -16, -64, -256, -1024 };
        for (size_t li = 0; li < sizeof(flevels) / sizeof(flevels[0]); li++) {
                double tp[4][N];
                size_t out[4] = { 0, 0, 0, 0 }, in[4] = { 0, 0, 0, 0 };
                ZSTD_CCtx_reset(c, ZSTD_reset_session_and_parameters);
                ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, flevels[li]);
                ZSTD_CCtx_setParameter(c, ZSTD_c_literalCompressionMode, ZSTD_ps_enable);
                for (int it = 0; it < N; it++) {
                        for (int pl = 0; pl < 4; pl++)
                                tp[pl][it] = 0;
                        size_t off = 0;
                        for (size_t b = 0; b < nfl[0] * 4; b += block) {
                                size_t bs = MIN(block, nfl[0] * 4 - b), q = bs / 4;
                                for (int pl = 0; pl < 4; pl++) {
                                        double t0 = cpu_ms();
                                        size_t z = ZSTD_compress2(c, comp, ZSTD_compressBound(q), planes + off + pl * q, q);
                                        tp[pl][it] += cpu_ms() - t0;
                                        if (it == 0) {
                                                out[pl] += MIN(z, q);
                                                in[pl] += q;
                                        }
                                }
                                off += bs;
                        }
                }
                printf("  zstd %3d +huffman literals, state plane by plane:", flevels[li]);
                double sum = 0;
                size_t so = 0;
                for (int pl = 0; pl < 4; pl++) {
                        printf("  p%d %.3f ms (%.3f)", pl, stage_med(tp[pl], N), (double)out[pl] / in[pl]);
                        sum += stage_med(tp[pl], N);
                        so += out[pl];
                }
                printf("  = %.3f ms (%.3f)\n", sum, (double)so / (nfl[0] * 4));
        }
        ZSTD_CCtx_reset(c, ZSTD_reset_session_and_parameters);
        /* 2c. the store's encoder, everything but the write (its default level: plane-coded blocks) */
        for (int it = 0; it < N; it++) {
                SfEncodeParams p = { .kind = SF_KIND_SESSION, .uid = 1, .key = comp, .zstd_level = -256,
                                     .shuffle = true };
                uint8_t *buf;
                size_t size;
                double t0 = cpu_ms();
                if (sf_encode(r, &p, &buf, &size, NULL) < 0)
                        abort();
                t[it] = cpu_ms() - t0;
                free(buf);
        }
        printf("  sf_encode, level -256 (planes, zstd where skewed, sealing): %.3f ms\n", stage_med(t, N));
        /* 3. sealing: secretstream over the whole record in 512 KiB messages (raw size: the worst) */
        uint8_t key[32], hdr[crypto_secretstream_xchacha20poly1305_HEADERBYTES];
        randombytes_buf(key, sizeof(key));
        for (size_t msg = 64 * 1024; msg <= 4 * 1024 * 1024; msg *= 4) {
                for (int it = 0; it < N; it++) {
                        crypto_secretstream_xchacha20poly1305_state st;
                        double t0 = cpu_ms();
                        crypto_secretstream_xchacha20poly1305_init_push(&st, hdr, key);
                        for (size_t off = 0; off < total; off += msg) {
                                size_t n = MIN(msg, total - off);
                                crypto_secretstream_xchacha20poly1305_push(&st, planes + off, NULL, planes + off, n,
                                                                           NULL, 0, 0);
                        }
                        t[it] = cpu_ms() - t0;
                }
                printf("  seal %.2f MB in %zu KiB messages: %.3f ms\n", total / 1e6, msg / 1024, stage_med(t, N));
        }
        /* 4. write into the page cache: a new file each time, as the store does */
        char path[] = "/var/tmp/rwkvd-stage-XXXXXX";
        int fd = mkstemp(path);
        if (fd >= 0) {
                for (int prealloc = 0; prealloc < 2; prealloc++) {
                        for (int it = 0; it < N; it++) {
                                double t0 = cpu_ms();
                                int w = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
                                if (prealloc)
                                        (void)!posix_fallocate(w, 0, (off_t)total);
                                for (size_t off = 0; off < total;) {
                                        ssize_t l = write(w, planes + off, total - off);
                                        if (l <= 0)
                                                break;
                                        off += (size_t)l;
                                }
                                close(w);
                                t[it] = cpu_ms() - t0;
                        }
                        printf("  write %.2f MB (truncate%s): %.3f ms\n", total / 1e6,
                               prealloc ? " + fallocate" : "", stage_med(t, N));
                }
                close(fd);
                unlink(path);
        }
        ZSTD_freeCCtx(c);
        free(planes);
        free(comp);
        session_record_free(r);
}

static void drop_cache(const char *dir, uid_t uid, const char *id) {
        char p[4200];
        snprintf(p, sizeof(p), "%s/%u/%s.session", dir, (unsigned)uid, id);
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
                (void)fdatasync(fd);
                (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
                close(fd);
        }
}

int main(int argc, char **argv) {
        const char *dir = NULL;
        int iters = 50;
        bool do_codecs = false, do_delta = false, do_stages = false, json = false;
        double prefill[3] = { 0, 0, 0 }; /* tokens/s per shape */
        uint32_t block_log2 = 0;
        for (int i = 1; i < argc; i++) {
                if (!strcmp(argv[i], "--dir") && i + 1 < argc)
                        dir = argv[++i];
                else if (!strcmp(argv[i], "--iters") && i + 1 < argc)
                        iters = atoi(argv[++i]);
                else if (!strcmp(argv[i], "--prefill-tps") && i + 1 < argc) {
                        /* T (every shape) or 0.1B=T,0.4B=T,1.5B=T */
                        char *spec = argv[++i];
                        if (!strchr(spec, '='))
                                prefill[0] = prefill[1] = prefill[2] = atof(spec);
                        for (char *tok = strtok(spec, ","); tok; tok = strtok(NULL, ",")) {
                                char *eq = strchr(tok, '=');
                                for (size_t k = 0; eq && k < 3; k++)
                                        if (!strncmp(tok, shapes[k].name, (size_t) (eq - tok)))
                                                prefill[k] = atof(eq + 1);
                        }
                }
                else if (!strcmp(argv[i], "--block-log2") && i + 1 < argc)
                        block_log2 = (uint32_t)atoi(argv[++i]);
                else if (!strcmp(argv[i], "--delta"))
                        do_delta = true;
                else if (!strcmp(argv[i], "--stages"))
                        do_stages = true;
                else if (!strcmp(argv[i], "--codecs"))
                        do_codecs = true;
                else if (!strcmp(argv[i], "--json"))
                        json = true;
                else {
                        fprintf(stderr, "usage: %s [--dir DIR] [--iters N] [--codecs] [--json] [--prefill-tps T]\n",
                                argv[0]);
                        return 2;
                }
        }
        if (getenv("BENCH_MALLOPT")) {
                mallopt(M_MMAP_THRESHOLD, 256 << 20);
                mallopt(M_TRIM_THRESHOLD, 512 << 20);
        }
        if (sodium_init() < 0 || iters < 2)
                return 1;
        if (do_codecs)
                codecs(json, block_log2);
        if (do_delta)
                delta();
        if (do_stages) {
                stages();
                return 0;
        }

        char tmpl[] = "/var/tmp/rwkvd-bench-XXXXXX";
        char path[1024];
        if (!dir) {
                if (!mkdtemp(tmpl)) {
                        perror("mkdtemp");
                        return 1;
                }
                snprintf(path, sizeof(path), "%s/state", tmpl);
                dir = path;
        }
        Store *s = NULL;
        RwkvError err = {};
        /* BENCH_NO_SYNC=1: without fsync, to separate the store's CPU work from the disk's. */
        StoreOptions so = { .no_sync = getenv("BENCH_NO_SYNC") != NULL };
        if (store_open(dir, &so, &s, &err) < 0) {
                fprintf(stderr, "store_open: %s\n", err.msg);
                return 1;
        }
        if (!json)
                printf("store (default options: fp32, zstd default level, shuffle, fsync %s), %d iterations, in %s\n"
                       "  %-5s %8s %8s %7s | %-23s | %-23s | %-15s | %9s\n",
                       so.no_sync ? "off" : "on", iters, dir, "shape", "state MB", "file MB", "ratio", "save ms p50 p99 cpu50",
                       "load ms p50 p99 cpu50", "evicted p50 p99", "cpu MB/s");
        for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++) {
                SessionRecord *r = make_record(&shapes[si]);
                double *ts = calloc((size_t)iters, sizeof(double)), *tl = calloc((size_t)iters, sizeof(double)),
                       *tc = calloc((size_t)iters, sizeof(double)), *cs = calloc((size_t)iters, sizeof(double)),
                       *cl = calloc((size_t)iters, sizeof(double));
                uint64_t file_bytes = 0;
                for (int it = 0; it < iters; it++) {
                        r->meta.n_tokens = (uint64_t)it;
                        double c0 = cpu_ms(), t0 = now_ms();
                        if (store_save(s, 1000, r, &err) < 0) {
                                fprintf(stderr, "save: %s\n", err.msg);
                                return 1;
                        }
                        double c1 = cpu_ms(), t1 = now_ms();
                        SessionRecord *b;
                        if (store_load(s, 1000, r->meta.id, NULL, &b, &err) < 0) {
                                fprintf(stderr, "load: %s\n", err.msg);
                                return 1;
                        }
                        double c2 = cpu_ms(), t2 = now_ms();
                        cs[it] = c1 - c0;
                        cl[it] = c2 - c1;
                        if (memcmp(b->state, r->state, r->meta.state_floats * 4) != 0)
                                abort();
                        file_bytes = b->meta.file_bytes;
                        session_record_free(b);
                        drop_cache(dir, 1000, r->meta.id);
                        double t3 = now_ms();
                        if (store_load(s, 1000, r->meta.id, NULL, &b, &err) < 0)
                                return 1;
                        double t4 = now_ms();
                        session_record_free(b);
                        ts[it] = t1 - t0;
                        tl[it] = t2 - t1;
                        tc[it] = t4 - t3;
                }
                double state_mb = r->meta.state_floats * 4 / 1e6;
                double raw_mb = state_mb + 2 * 65536 * 4 / 1e6;
                double s50 = pct(ts, iters, 0.5), s99 = pct(ts, iters, 0.99);
                double l50 = pct(tl, iters, 0.5), l99 = pct(tl, iters, 0.99);
                double c50 = pct(tc, iters, 0.5), c99 = pct(tc, iters, 0.99);
                double cs50 = pct(cs, iters, 0.5), cl50 = pct(cl, iters, 0.5);
                if (json)
                        printf("{\"bench\":\"store\",\"shape\":\"%s\",\"state_mb\":%.3f,\"raw_mb\":%.3f,\"file_mb\":%."
                               "3f,"
                               "\"save_p50_ms\":%.3f,\"save_p99_ms\":%.3f,\"load_p50_ms\":%.3f,\"load_p99_ms\":%.3f,"
                               "\"evicted_p50_ms\":%.3f,\"evicted_p99_ms\":%.3f,\"save_cpu_p50_ms\":%.3f,"
                               "\"load_cpu_p50_ms\":%.3f}\n",
                               shapes[si].name, state_mb, raw_mb, file_bytes / 1e6, s50, s99, l50, l99, c50, c99, cs50,
                               cl50);
                else
                        printf("  %-5s %8.2f %8.2f %7.3f | %7.2f %7.2f %7.2f | %7.2f %7.2f %7.2f | %7.2f %7.2f | "
                               "%9.0f\n",
                               shapes[si].name, state_mb, file_bytes / 1e6, file_bytes / 1e6 / raw_mb, s50, s99, cs50,
                               l50, l99, cl50, c50, c99, raw_mb / cl50 * 1e3);
                double prefill_tps = prefill[si];
                if (prefill_tps > 0 && !json)
                        for (int k = 2; k <= 32; k *= 4) {
                                double pre_ms = k * 1024 / prefill_tps * 1e3;
                                printf("        re-prefill %2dk tokens at %.0f tok/s: %.0f ms = %.0fx the resume (p50 "
                                       "wall)\n",
                                       k, prefill_tps, pre_ms, pre_ms / l50);
                        }
                store_delete(s, 1000, r->meta.id, NULL);
                free(ts);
                free(tl);
                free(tc);
                free(cs);
                free(cl);
                session_record_free(r);
        }
        store_free(s);
        if (dir == path) {
                char cmd[4200];
                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpl);
                if (system(cmd) != 0)
                        fprintf(stderr, "could not remove %s\n", tmpl);
        }
        return 0;
}
