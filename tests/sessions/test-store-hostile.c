/* test-store-hostile: damaged and hostile session files on disk are refused with a clear error,
 * moved aside to *.corrupt (never loaded, never deleted), and never crash the store. */
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "tests/sessions/store-test-util.h"

static char dir[1024];
static Store *s;

static void path_of(char *buf, size_t size, uid_t uid, const char *name) {
        snprintf(buf, size, "%s/%u/%s", dir, (unsigned)uid, name);
}

static size_t file_size(const char *p) {
        struct stat st;
        CHECK(stat(p, &st) == 0);
        return (size_t)st.st_size;
}

static bool exists(const char *p) {
        return access(p, F_OK) == 0;
}

static void save(uid_t uid, const char *id, uint64_t seed) {
        SessionRecord *r = test_record(id, 5000, 100, 50, seed);
        CHECK_OK(store_save(s, uid, r, NULL));
        session_record_free(r);
}

/* The file of session id of uid. */
static void session_file(char *p, size_t n, uid_t uid, const char *id) {
        char name[128];
        snprintf(name, sizeof(name), "%s.session", id);
        path_of(p, n, uid, name);
}

/* Load must fail with EBADMSG, name the problem, and leave the file at *.corrupt. */
static void expect_corrupt(uid_t uid, const char *id, const char *why) {
        char p[4096], q[4200];
        session_file(p, sizeof(p), uid, id);
        snprintf(q, sizeof(q), "%s.corrupt", p);
        CHECK(!exists(q));
        RwkvError err = {};
        SessionRecord *r = NULL;
        CHECK_ERR(store_load(s, uid, id, NULL, &r, &err), EBADMSG);
        CHECK(!r);
        if (!strstr(err.msg, "corrupt") || (why && !strstr(err.msg, why))) {
                fprintf(stderr, "unexpected message for %s: %s\n", id, err.msg);
                exit(1);
        }
        if (getenv("SHOW_MESSAGES"))
                fprintf(stderr, "%s: %s\n", id, err.msg);
        CHECK(!exists(p));
        CHECK(exists(q));
        /* Gone from the listing, and a second load says "no such session". */
        CHECK_ERR(store_load(s, uid, id, NULL, &r, NULL), ENOENT);
}

static void patch(uid_t uid, const char *id, long off, const void *bytes, size_t n) {
        char p[4096];
        session_file(p, sizeof(p), uid, id);
        int fd = open(p, O_WRONLY | O_CLOEXEC);
        CHECK(fd >= 0);
        if (off < 0)
                off += (long)file_size(p);
        CHECK(pwrite(fd, bytes, n, off) == (ssize_t)n);
        close(fd);
}

/* Inverts the byte at off: a fixed value written over ciphertext (random bytes) left the file
 * unchanged once in 256 saves, and the test failed without a cause. */
static void flip(uid_t uid, const char *id, long off) {
        char p[4096];
        uint8_t b;
        session_file(p, sizeof(p), uid, id);
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        CHECK(fd >= 0);
        if (off < 0)
                off += (long)file_size(p);
        CHECK(pread(fd, &b, 1, off) == 1);
        close(fd);
        b ^= 0xff;
        patch(uid, id, off, &b, 1);
}

static void truncate_to(uid_t uid, const char *id, long size) {
        char p[4096];
        session_file(p, sizeof(p), uid, id);
        if (size < 0)
                size += (long)file_size(p);
        CHECK(truncate(p, size) == 0);
}

int main(void) {
        char *tmp = test_tmpdir();
        snprintf(dir, sizeof(dir), "%s/state", tmp);
        StoreOptions o = { .no_sync = true };
        CHECK_OK(store_open(dir, &o, &s, NULL));

        /* Truncated: at the end, in the middle, inside the header, to nothing. */
        save(1000, "trunc-end", 1);
        truncate_to(1000, "trunc-end", -1);
        expect_corrupt(1000, "trunc-end", "truncated");
        save(1000, "trunc-mid", 2);
        truncate_to(1000, "trunc-mid", 200);
        expect_corrupt(1000, "trunc-mid", NULL);
        save(1000, "trunc-zero", 3);
        truncate_to(1000, "trunc-zero", 0);
        expect_corrupt(1000, "trunc-zero", NULL);
        /* Grown: trailing garbage. */
        save(1000, "trailing", 4);
        {
                char p[4096];
                path_of(p, sizeof(p), 1000, "trailing.session");
                long n = (long)file_size(p);
                patch(1000, "trailing", n, "x", 1);
        }
        expect_corrupt(1000, "trailing", "trailing");

        /* Bit flips: in the payload, the sealed header, the plain prefix's uid. */
        save(1000, "flip-payload", 5);
        flip(1000, "flip-payload", -100);
        expect_corrupt(1000, "flip-payload", "authentication");
        save(1000, "flip-header", 6);
        flip(1000, "flip-header", 80);
        expect_corrupt(1000, "flip-header", "authentication");
        save(1000, "flip-magic", 7);
        patch(1000, "flip-magic", 0, "X", 1);
        expect_corrupt(1000, "flip-magic", "magic");

        /* Huge header length in the prefix. */
        save(1000, "huge-header", 8);
        patch(1000, "huge-header", 20, "\xff\xff\xff\x7f", 4);
        expect_corrupt(1000, "huge-header", "header length");

        /* Swapped between users: uid 2000's file copied into uid 1000's folder (also with the plain
         * uid rewritten, which the per-uid key still catches). */
        save(2000, "swapped", 9);
        save(2000, "swapped2", 10);
        {
                char from[4096], to[4096];
                path_of(from, sizeof(from), 2000, "swapped.session");
                path_of(to, sizeof(to), 1000, "swapped.session");
                CHECK(link(from, to) == 0);
                path_of(from, sizeof(from), 2000, "swapped2.session");
                path_of(to, sizeof(to), 1000, "swapped2.session");
                CHECK(link(from, to) == 0);
        }
        expect_corrupt(1000, "swapped", "uid 2000");
        patch(1000, "swapped2", 16, "\xe8\x03\x00\x00", 4); /* uid 1000 little-endian */
        expect_corrupt(1000, "swapped2", "authentication");
        /* uid 2000's own files still load (the copies were hard links, moved aside, not overwritten). */
        SessionRecord *r = NULL;
        CHECK_OK(store_load(s, 2000, "swapped", NULL, &r, NULL));
        session_record_free(r);

        /* Another model: EMEDIUMTYPE, a clear message, the file stays where it is. */
        save(1000, "other-model", 11);
        uint8_t hash[32] = { 1, 2, 3 };
        RwkvError err = {};
        CHECK_ERR(store_load(s, 1000, "other-model", hash, &r, &err), EMEDIUMTYPE);
        CHECK(strstr(err.msg, "another model"));
        CHECK_OK(store_load(s, 1000, "other-model", NULL, &r, NULL));
        session_record_free(r);

        /* A newer format version: refused, left in place. */
        save(1000, "future", 12);
        patch(1000, "future", 8, "\x03", 1);
        CHECK_ERR(store_load(s, 1000, "future", NULL, &r, &err), EPROTONOSUPPORT);
        CHECK(strstr(err.msg, "version"));
        {
                char p[4096];
                path_of(p, sizeof(p), 1000, "future.session");
                CHECK(exists(p));
        }

        /* Random garbage, a folder and a symlink where a file should be. */
        {
                char p[4096];
                path_of(p, sizeof(p), 1000, "garbage.session");
                int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
                CHECK(fd >= 0);
                uint64_t st = 99;
                for (int i = 0; i < 5000; i++) {
                        uint64_t v = test_rand(&st);
                        CHECK(write(fd, &v, 8) == 8);
                }
                close(fd);
                expect_corrupt(1000, "garbage", NULL);
                path_of(p, sizeof(p), 1000, "folder.session");
                CHECK(mkdir(p, 0700) == 0);
                CHECK_ERR(store_load(s, 1000, "folder", NULL, &r, &err), EBADMSG);
                path_of(p, sizeof(p), 1000, "link.session");
                CHECK(symlink("/etc/passwd", p) == 0);
                CHECK_ERR(store_load(s, 1000, "link", NULL, &r, &err), ELOOP);
        }

        /* A second corrupt file with the same name does not overwrite the first *.corrupt. */
        save(1000, "trunc-end", 13);
        truncate_to(1000, "trunc-end", 10);
        CHECK_ERR(store_load(s, 1000, "trunc-end", NULL, &r, &err), EBADMSG);
        CHECK(strstr(err.msg, ".corrupt"));
        {
                char p[4096];
                path_of(p, sizeof(p), 1000, "trunc-end.session.corrupt");
                CHECK(exists(p));
        }

        /* Listing skips (and moves aside) damaged files, and lists the good ones. */
        save(1000, "good", 14);
        save(1000, "bad-in-list", 15);
        flip(1000, "bad-in-list", 70);
        SessionMeta *v;
        size_t n;
        CHECK_OK(store_list(s, 1000, &v, &n, NULL, NULL, NULL));
        bool saw_good = false;
        for (size_t i = 0; i < n; i++) {
                CHECK(strcmp(v[i].id, "bad-in-list") != 0);
                saw_good |= !strcmp(v[i].id, "good");
        }
        CHECK(saw_good);
        free(v);
        {
                char p[4096];
                path_of(p, sizeof(p), 1000, "bad-in-list.session.corrupt");
                CHECK(exists(p));
        }

        /* Hostile imports: truncated, flipped, trailing bytes, a session file, nothing at all. */
        save(1000, "exp", 16);
        char ep[4096];
        snprintf(ep, sizeof(ep), "%s/exp.export", tmp);
        int fd = open(ep, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        CHECK(fd >= 0);
        CHECK_OK(store_export(s, 1000, "exp", fd, NULL));
        size_t esize = file_size(ep);
        uint8_t *e = malloc(esize + 1);
        CHECK(pread(fd, e, esize, 0) == (ssize_t)esize);
        close(fd);
        struct {
                size_t len;
                long flip;
        } cases[] = { { esize - 1, -1 }, { 30, -1 }, { 0, -1 }, { esize, 200 }, { esize, 40 }, { esize + 1, -1 } };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                e[esize] = 'x';
                if (cases[i].flip >= 0)
                        e[cases[i].flip] ^= 0x10;
                int p[2];
                CHECK(pipe2(p, O_CLOEXEC) == 0);
                CHECK(write(p[1], e, cases[i].len) == (ssize_t)cases[i].len);
                close(p[1]);
                char id[STORE_ID_MAX + 1];
                CHECK_ERR(store_import(s, 3000, p[0], "imp", id, &err), EBADMSG);
                close(p[0]);
                if (cases[i].flip >= 0)
                        e[cases[i].flip] ^= 0x10;
        }
        free(e);
        CHECK_ERR(store_load(s, 3000, "imp", NULL, &r, NULL), ENOENT);

        store_free(s);
        rm_rf(tmp);
        free(tmp);
        return 0;
}
