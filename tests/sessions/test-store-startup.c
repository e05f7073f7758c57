/* test-store-startup: what the daemon's scan at startup relies on. A daemon key that is not the
 * one the sessions were sealed with is refused by store_open and moves nothing; a damaged file is
 * reported by store_list (id, reason, where it went) and its id stays reported, across reopening,
 * until store_delete; store_session_usage counts a session's file and checkpoints. */
#include <fcntl.h>
#include <sys/stat.h>

#include "tests/sessions/store-test-util.h"

static char dir[1024];

static void path_of(char *buf, size_t size, const char *name) {
        snprintf(buf, size, "%s/%s", dir, name);
}

static bool exists(const char *name) {
        char p[2048];
        path_of(p, sizeof(p), name);
        return access(p, F_OK) == 0;
}

static uint64_t size_of(const char *name) {
        char p[2048];
        struct stat st;
        path_of(p, sizeof(p), name);
        CHECK(stat(p, &st) == 0);
        return (uint64_t)st.st_size;
}

static void save(Store *s, uid_t uid, const char *id, uint64_t seed) {
        SessionRecord *r = test_record(id, 5000, 100, 50, seed);
        CHECK_OK(store_save(s, uid, r, NULL));
        session_record_free(r);
}

static void read_key(uint8_t key[32]) {
        char p[2048];
        path_of(p, sizeof(p), "daemon.key");
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        CHECK(fd >= 0);
        CHECK(read(fd, key, 32) == 32);
        close(fd);
}

static void write_key(const uint8_t key[32]) {
        char p[2048];
        path_of(p, sizeof(p), "daemon.key");
        int fd = open(p, O_WRONLY | O_TRUNC | O_CLOEXEC);
        CHECK(fd >= 0);
        CHECK(write(fd, key, 32) == 32);
        close(fd);
}

static void list(Store *s, uid_t uid, size_t *ret_n, StoreBadFile **ret_bad, size_t *ret_n_bad) {
        SessionMeta *v = NULL;
        RwkvError err = {};
        CHECK_OK(store_list(s, uid, &v, ret_n, ret_bad, ret_n_bad, &err));
        free(v);
}

int main(void) {
        char *tmp = test_tmpdir();
        snprintf(dir, sizeof(dir), "%s/state", tmp);
        StoreOptions o = { .no_sync = true };
        RwkvError err = {};
        Store *s;
        uint8_t key[32], other[32];

        /* A store with no sessions opens with any key. */
        CHECK_OK(store_open(dir, &o, &s, &err));
        store_free(s);
        read_key(key);
        memcpy(other, key, 32);
        other[0] ^= 0x5a;
        write_key(other);
        CHECK_OK(store_open(dir, &o, &s, &err));
        store_free(s);
        write_key(key);

        CHECK_OK(store_open(dir, &o, &s, &err));
        save(s, 1000, "a", 1);
        save(s, 1000, "b", 2);
        save(s, 1001, "c", 3);
        SessionRecord *r = test_record("a", 5000, 100, 50, 4);
        CHECK_OK(store_checkpoint_save(s, 1000, "a", 1, r, NULL));
        CHECK_OK(store_checkpoint_save(s, 1000, "a", 2, r, NULL));
        session_record_free(r);
        store_free(s);

        /* Another key (a backup restored with the wrong daemon.key): refused, nothing moved. */
        write_key(other);
        CHECK_ERR(store_open(dir, &o, &s, &err), EKEYREJECTED);
        if (!strstr(err.msg, "daemon.key") || !strstr(err.msg, "does not match")) {
                fprintf(stderr, "unexpected message: %s\n", err.msg);
                return 1;
        }
        if (getenv("SHOW_MESSAGES"))
                fprintf(stderr, "wrong key: %s\n", err.msg);
        CHECK(exists("1000/a.session") && exists("1000/b.session") && exists("1001/c.session"));
        CHECK(!exists("1000/a.session.corrupt") && !exists("1000/b.session.corrupt"));
        /* The right key back: everything is there. */
        write_key(key);
        CHECK_OK(store_open(dir, &o, &s, &err));
        size_t n, n_bad;
        StoreBadFile *bad;
        list(s, 1000, &n, &bad, &n_bad);
        CHECK(n == 2 && n_bad == 0);
        free(bad);

        /* Per-session usage: the file and its checkpoints. */
        StoreSessionUsage u;
        CHECK_OK(store_session_usage(s, 1000, "a", &u));
        CHECK(u.file_bytes == size_of("1000/a.session"));
        CHECK(u.checkpoints == 2);
        CHECK(u.checkpoint_bytes == size_of("1000/a.checkpoints/turn-0000000001.session") +
                                            size_of("1000/a.checkpoints/turn-0000000002.session"));
        CHECK_OK(store_session_usage(s, 1000, "nope", &u));
        CHECK(u.file_bytes == 0 && u.checkpoints == 0 && u.checkpoint_bytes == 0);

        /* One damaged file among good ones: the key is right, the file is reported and moved. */
        char p[2048];
        path_of(p, sizeof(p), "1000/b.session");
        CHECK(truncate(p, 1000) == 0);
        store_free(s);
        CHECK_OK(store_open(dir, &o, &s, &err));
        list(s, 1000, &n, &bad, &n_bad);
        CHECK(n == 1 && n_bad == 1);
        CHECK(!strcmp(bad[0].id, "b") && bad[0].error == -EBADMSG);
        if (!strstr(bad[0].message, "'b'") || !strstr(bad[0].message, "b.session.corrupt") ||
            !strstr(bad[0].message, "1000 bytes")) {
                fprintf(stderr, "unexpected message: %s\n", bad[0].message);
                return 1;
        }
        free(bad);
        CHECK(exists("1000/b.session.corrupt") && !exists("1000/b.session"));
        /* Moved aside earlier: the id is still reported at the next listing (the next start). */
        store_free(s);
        CHECK_OK(store_open(dir, &o, &s, &err));
        list(s, 1000, &n, &bad, &n_bad);
        CHECK(n == 1 && n_bad == 1 && !strcmp(bad[0].id, "b") && bad[0].error == -EBADMSG);
        CHECK(strstr(bad[0].message, "b.session.corrupt"));
        free(bad);
        /* Deleting the session frees the id: its copy moved aside goes too. */
        CHECK_OK(store_delete(s, 1000, "b", &err));
        CHECK(!exists("1000/b.session.corrupt"));
        list(s, 1000, &n, &bad, &n_bad);
        CHECK(n == 1 && n_bad == 0);
        free(bad);
        CHECK_ERR(store_delete(s, 1000, "b", NULL), ENOENT);
        store_free(s);

        /* The only session's header damaged, with a checkpoint that authenticates: the key is
         * right, so the store opens (the damaged file is a listing's business). */
        char q[2048];
        path_of(p, sizeof(p), "1001/c.session");
        path_of(q, sizeof(q), "c.session.keep");
        CHECK(rename(p, q) == 0);
        path_of(p, sizeof(p), "1000/a.session");
        {
                int fd = open(p, O_RDWR | O_CLOEXEC);
                uint8_t b;
                CHECK(fd >= 0 && pread(fd, &b, 1, 100) == 1);
                b ^= 0xff;
                CHECK(pwrite(fd, &b, 1, 100) == 1);
                close(fd);
        }
        CHECK_OK(store_open(dir, &o, &s, &err));
        store_free(s);
        /* Without the checkpoints, nothing authenticates: refused, as a wrong key would be. */
        path_of(p, sizeof(p), "1000/a.checkpoints");
        rm_rf(p);
        CHECK_ERR(store_open(dir, &o, &s, &err), EKEYREJECTED);
        CHECK(exists("1000/a.session"));

        rm_rf(tmp);
        free(tmp);
        return 0;
}
