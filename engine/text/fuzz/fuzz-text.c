/* fuzz-text: the vocabulary parser (untrusted: it comes embedded in model files) and the byte-stream
 * consumers (UTF-8 stream, stop matcher) against hostile bytes.
 *
 * The input is parsed as vocabulary text; when it parses, the input is encoded with it and the ids
 * decoded back (round trip must be exact, whole and streamed). The input also goes through a
 * Utf8Stream (output must be valid UTF-8) and a StopMatcher whose stops are taken from its first
 * bytes (released text plus held bytes must be a prefix of the input).
 *
 * The tree's fuzz pattern (tools/run-fuzzers): linked with libFuzzer under -Dfuzz=true, else with the
 * corpus driver (engine/format/fuzz/fuzz-main.c) so the corpus in corpus-text/ runs as a test. Where
 * that driver is not available, FUZZ_TEXT_OWN_MAIN builds the small replay main() below instead. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/text/stop.h"
#include "engine/text/tokenizer.h"
#include "engine/text/utf8-stream.h"

#define FUZZ_ASSERT(x)                                                                                                 \
        do {                                                                                                           \
                if (!(x)) {                                                                                            \
                        fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #x);                      \
                        abort();                                                                                       \
                }                                                                                                      \
        } while (0)

static void fuzz_tokenizer(const uint8_t *data, size_t size) {
        Tokenizer *t = NULL;
        RwkvError err = {};
        uint32_t *ids = NULL;
        size_t n = 0, pos = 0;

        if (tokenizer_new_world((const char *)data, size, &t, &err) < 0) {
                FUZZ_ASSERT(err.msg[0] != 0);
                return;
        }
        FUZZ_ASSERT(tokenizer_encode_all(t, data, size, &ids, &n) >= 0);
        for (size_t i = 0; i < n; i++) {
                size_t l;
                const uint8_t *b = tokenizer_token_bytes(t, ids[i], &l);
                FUZZ_ASSERT(b && pos + l <= size && memcmp(b, data + pos, l) == 0);
                pos += l;
        }
        FUZZ_ASSERT(pos == size);

        /* Streamed in 7-byte feeds: the same ids. */
        uint32_t out[64];
        size_t start = 0, avail = 0, k = 0;
        for (;;) {
                size_t consumed, m;
                avail = avail + 7 < size ? avail + 7 : size;
                bool final = avail == size;
                FUZZ_ASSERT(tokenizer_encode(t, data + start, avail - start, final, out, 64, &consumed, &m) >= 0);
                for (size_t i = 0; i < m; i++)
                        FUZZ_ASSERT(k + i < n && out[i] == ids[k + i]);
                k += m;
                start += consumed;
                if (final && start == size)
                        break;
                if (final && m == 0)
                        FUZZ_ASSERT(!"no progress");
        }
        FUZZ_ASSERT(k == n);
        free(ids);
        tokenizer_free(t);
}

static void fuzz_streams(const uint8_t *data, size_t size) {
        /* UTF-8: fed in 3-byte pieces, every piece valid. */
        Utf8Stream u;
        uint8_t buf[UTF8_STREAM_OUT_MAX(3)];
        utf8_stream_init(&u);
        for (size_t i = 0; i < size; i += 3) {
                size_t k = size - i < 3 ? size - i : 3;
                size_t w = utf8_stream_feed(&u, data + i, k, buf);
                FUZZ_ASSERT(w <= sizeof(buf) && utf8_is_valid(buf, w));
        }
        FUZZ_ASSERT(utf8_stream_flush(&u, buf) <= UTF8_STREAM_FLUSH_MAX);

        /* Stops: up to 4 taken from the start, split at NULs / newlines. */
        char stops_buf[4][17];
        const char *stops[4];
        size_t ns = 0, pos = 0;
        while (ns < 4 && pos < size && pos < 64) {
                size_t l = 0;
                while (pos < size && l < 16 && data[pos] != '\n' && data[pos] != 0)
                        stops_buf[ns][l++] = (char)data[pos++];
                pos++;
                if (l == 0)
                        continue;
                stops_buf[ns][l] = 0;
                stops[ns] = stops_buf[ns];
                ns++;
        }
        StopMatcher *m = NULL;
        FUZZ_ASSERT(stop_matcher_new(stops, ns, &m, NULL) >= 0);
        uint8_t *out = malloc(size + STOP_MAX_BYTES + 16);
        size_t o = 0;
        int stopped = 0;
        FUZZ_ASSERT(out);
        for (size_t i = 0; i < size && !stopped; i += 5) {
                size_t k = size - i < 5 ? size - i : 5, w, which;
                int r = stop_matcher_feed(m, data + i, k, out + o, &w, &which);
                FUZZ_ASSERT(r >= 0);
                o += w;
                if (r == 1) {
                        stopped = 1;
                        FUZZ_ASSERT(which < ns);
                }
        }
        if (!stopped)
                o += stop_matcher_flush(m, out + o);
        FUZZ_ASSERT(o <= size && memcmp(out, data, o) == 0);
        if (!stopped)
                FUZZ_ASSERT(o == size);
        free(out);
        stop_matcher_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > (1u << 20))
                return 0;
        fuzz_tokenizer(data, size);
        fuzz_streams(data, size);
        return 0;
}

#ifdef FUZZ_TEXT_OWN_MAIN
static int run_file(const char *path) {
        FILE *f = fopen(path, "re");
        uint8_t *buf;
        long len;

        if (!f)
                return -1;
        fseek(f, 0, SEEK_END);
        len = ftell(f);
        fseek(f, 0, SEEK_SET);
        buf = malloc(len > 0 ? (size_t)len : 1);
        if (!buf || (len > 0 && fread(buf, 1, (size_t)len, f) != (size_t)len)) {
                fclose(f);
                free(buf);
                return -1;
        }
        fclose(f);
        LLVMFuzzerTestOneInput(buf, (size_t)len);
        free(buf);
        return 0;
}

int main(int argc, char *argv[]) {
        int n = 0;
        for (int i = 1; i < argc; i++) {
                struct stat st;
                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "fuzz-text: %s: %m\n", argv[i]);
                        return 1;
                }
                if (S_ISDIR(st.st_mode)) {
                        DIR *d = opendir(argv[i]);
                        struct dirent *de;
                        if (!d)
                                return 1;
                        while ((de = readdir(d))) {
                                char p[4096];
                                if (de->d_name[0] == '.')
                                        continue;
                                snprintf(p, sizeof(p), "%s/%s", argv[i], de->d_name);
                                if (run_file(p) < 0) {
                                        fprintf(stderr, "fuzz-text: %s: %m\n", p);
                                        closedir(d);
                                        return 1;
                                }
                                n++;
                        }
                        closedir(d);
                } else {
                        if (run_file(argv[i]) < 0)
                                return 1;
                        n++;
                }
        }
        fprintf(stderr, "fuzz-text: %d inputs ok\n", n);
        return n > 0 ? 0 : 1;
}
#endif
