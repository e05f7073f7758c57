/* driver.c: the driver that turns any libFuzzer target into a corpus regression test.
 *
 * Linked instead of libFuzzer in normal builds (see tools/run-fuzzers for the pattern): runs
 * LLVMFuzzerTestOneInput once on every file named on the command line, or on every regular file
 * inside each folder named. A crash, an ASan/UBSan report or an abort is the failure. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DRIVER_MAX_INPUT ((size_t)64 << 20)

static int run_file(const char *path) {
        FILE *f = fopen(path, "re");
        if (!f) {
                fprintf(stderr, "fuzz driver: cannot open %s: %s\n", path, strerror(errno));
                return -1;
        }
        uint8_t *buf = NULL;
        size_t n = 0, cap = 0;
        for (;;) {
                if (n == cap) {
                        cap = cap ? cap * 2 : 65536;
                        if (cap > DRIVER_MAX_INPUT) {
                                fprintf(stderr, "fuzz driver: %s is larger than %zu bytes\n", path, DRIVER_MAX_INPUT);
                                free(buf);
                                fclose(f);
                                return -1;
                        }
                        uint8_t *b = realloc(buf, cap);
                        if (!b) {
                                free(buf);
                                fclose(f);
                                return -1;
                        }
                        buf = b;
                }
                size_t k = fread(buf + n, 1, cap - n, f);
                if (k == 0)
                        break;
                n += k;
        }
        fclose(f);
        /* an exact-size copy so that ASan catches any read past the input */
        uint8_t *exact = malloc(n ? n : 1);
        if (!exact) {
                free(buf);
                return -1;
        }
        if (n)
                memcpy(exact, buf, n);
        free(buf);
        LLVMFuzzerTestOneInput(exact, n);
        free(exact);
        return 0;
}

int main(int argc, char **argv) {
        size_t runs = 0;
        int failed = 0;
        for (int i = 1; i < argc; i++) {
                struct stat st;
                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "fuzz driver: %s: %s\n", argv[i], strerror(errno));
                        failed = 1;
                        continue;
                }
                if (!S_ISDIR(st.st_mode)) {
                        failed |= run_file(argv[i]) < 0;
                        runs++;
                        continue;
                }
                struct dirent **list;
                int n = scandir(argv[i], &list, NULL, alphasort);
                if (n < 0) {
                        fprintf(stderr, "fuzz driver: %s: %s\n", argv[i], strerror(errno));
                        failed = 1;
                        continue;
                }
                for (int k = 0; k < n; k++) {
                        char path[4096];
                        snprintf(path, sizeof(path), "%s/%s", argv[i], list[k]->d_name);
                        if (list[k]->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                                failed |= run_file(path) < 0;
                                runs++;
                        }
                        free(list[k]);
                }
                free(list);
        }
        fprintf(stderr, "fuzz driver: %zu inputs run\n", runs);
        return failed || runs == 0 ? 1 : 0;
}
