/* test-store: the session store API on a real folder: save/load/list/stat, permissions, the key,
 * delete, rename, fork, checkpoints, export/import between uids, usage. */
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "tests/sessions/store-test-util.h"

static char *state_dir(const char *tmp) {
        char *p;
        CHECK(asprintf(&p, "%s/state", tmp) > 0);
        return p;
}

static void check_mode(const char *path, mode_t want) {
        struct stat st;
        CHECK(stat(path, &st) == 0);
        if ((st.st_mode & 07777) != want) {
                fprintf(stderr, "%s: mode %04o, want %04o\n", path, (unsigned)(st.st_mode & 07777), (unsigned)want);
                exit(1);
        }
}

static void test_basic(const char *dir) {
        Store *s = NULL;
        RwkvError err = {};
        StoreOptions o = { .no_sync = false };
        CHECK_OK(store_open(dir, &o, &s, &err));
        check_mode(dir, 0700);
        char path[4096];
        snprintf(path, sizeof(path), "%s/daemon.key", dir);
        check_mode(path, 0600);

        /* A second store on the same folder is refused: one daemon per state directory. */
        Store *s2 = NULL;
        CHECK_ERR(store_open(dir, NULL, &s2, &err), EBUSY);

        SessionRecord *a = test_record("chat-1", 10000, 300, 5000, 1);
        CHECK_OK(store_save(s, 1000, a, &err));
        snprintf(path, sizeof(path), "%s/1000", dir);
        check_mode(path, 0700);
        snprintf(path, sizeof(path), "%s/1000/chat-1.session", dir);
        check_mode(path, 0600);

        SessionRecord *b = NULL;
        CHECK_OK(store_load(s, 1000, "chat-1", a->meta.model_hash, &b, &err));
        test_check_same(a, b);
        CHECK_STREQ(b->meta.id, "chat-1");
        CHECK(b->meta.created_usec > 0 && b->meta.updated_usec >= b->meta.created_usec);
        struct stat st;
        CHECK(stat(path, &st) == 0);
        CHECK(b->meta.file_bytes == (uint64_t)st.st_size);
        /* Files smaller than the raw data they hold. */
        CHECK((uint64_t)st.st_size < a->meta.state_floats * 4 + 2 * 300 * 4 + 5000);
        session_record_free(b);

        /* Another model: clear error, file left in place. */
        uint8_t other[32] = { 9 };
        CHECK_ERR(store_load(s, 1000, "chat-1", other, &b, &err), EMEDIUMTYPE);
        CHECK(strstr(err.msg, "another model"));
        CHECK(stat(path, &st) == 0);
        /* No such session / user / bad ids. */
        CHECK_ERR(store_load(s, 1000, "nope", NULL, &b, &err), ENOENT);
        CHECK_ERR(store_load(s, 1001, "chat-1", NULL, &b, &err), ENOENT);
        CHECK_ERR(store_load(s, 1000, "../1000/chat-1", NULL, &b, &err), EINVAL);
        CHECK_ERR(store_load(s, 1000, ".hidden", NULL, &b, &err), EINVAL);
        CHECK_ERR(store_load(s, 1000, "", NULL, &b, &err), EINVAL);
        CHECK(!store_id_is_valid("a/b"));
        CHECK(!store_id_is_valid("01234567890123456789012345678901234567890123456789012345678901234"));
        CHECK(store_id_is_valid("0123456789012345678901234567890123456789012345678901234567890123"));

        /* Overwrite: the new version wins. */
        a->meta.n_tokens = 99999;
        a->state[5] = 123.0f;
        CHECK_OK(store_save(s, 1000, a, &err));
        CHECK_OK(store_load(s, 1000, "chat-1", NULL, &b, &err));
        test_check_same(a, b);
        session_record_free(b);

        /* Another model's record never replaces a stored session (nor adds checkpoints to it). */
        SessionRecord *other_model = test_record("chat-1", 100, 0, 0, 5);
        other_model->meta.model_hash[0] ^= 1;
        CHECK_ERR(store_save(s, 1000, other_model, &err), EMEDIUMTYPE);
        CHECK(strstr(err.msg, "another model"));
        CHECK_ERR(store_checkpoint_save(s, 1000, "chat-1", 1, other_model, &err), EMEDIUMTYPE);
        CHECK_OK(store_load(s, 1000, "chat-1", a->meta.model_hash, &b, &err));
        test_check_same(a, b);
        session_record_free(b);
        session_record_free(other_model);

        /* Minimal record: no logits, penalties, transcript. */
        SessionRecord *m = test_record("min", 64, 0, 0, 2);
        CHECK_OK(store_save(s, 1000, m, &err));
        CHECK_OK(store_load(s, 1000, "min", NULL, &b, &err));
        test_check_same(m, b);
        session_record_free(b);

        /* List and stat: headers only, sorted. */
        SessionMeta *v = NULL;
        size_t n = 0;
        CHECK_OK(store_list(s, 1000, &v, &n, NULL, NULL, &err));
        CHECK(n == 2);
        CHECK_STREQ(v[0].id, "chat-1");
        CHECK_STREQ(v[1].id, "min");
        CHECK(v[0].n_tokens == 99999);
        CHECK_STREQ(v[0].title, "title of chat-1");
        CHECK(v[0].uid == 1000);
        free(v);
        CHECK_OK(store_list(s, 4242, &v, &n, NULL, NULL, &err));
        CHECK(n == 0 && !v);
        SessionMeta meta;
        CHECK_OK(store_stat(s, 1000, "min", &meta, &err));
        CHECK(meta.state_floats == 64);

        /* Usage. */
        uint64_t count, bytes;
        CHECK_OK(store_usage(s, 1000, &count, &bytes));
        CHECK(count == 2 && bytes > 0);
        CHECK_OK(store_usage(s, 31337, &count, &bytes));
        CHECK(count == 0 && bytes == 0);

        /* Rename and fork. */
        CHECK_ERR(store_rename(s, 1000, "min", "chat-1", &err), EEXIST);
        CHECK_OK(store_rename(s, 1000, "min", "min2", &err));
        CHECK_ERR(store_load(s, 1000, "min", NULL, &b, &err), ENOENT);
        CHECK_OK(store_load(s, 1000, "min2", NULL, &b, &err));
        CHECK_STREQ(b->meta.id, "min2");
        test_check_same(m, b);
        session_record_free(b);
        CHECK_ERR(store_fork(s, 1000, "min2", "chat-1", &err), EEXIST);
        CHECK_ERR(store_fork(s, 1000, "absent", "x", &err), ENOENT);
        CHECK_OK(store_fork(s, 1000, "chat-1", "chat-1-fork", &err));
        CHECK_OK(store_load(s, 1000, "chat-1-fork", NULL, &b, &err));
        test_check_same(a, b);
        CHECK_STREQ(b->meta.id, "chat-1-fork");
        session_record_free(b);

        /* Delete. */
        CHECK_OK(store_delete(s, 1000, "min2", &err));
        CHECK_ERR(store_delete(s, 1000, "min2", &err), ENOENT);
        CHECK_ERR(store_load(s, 1000, "min2", NULL, &b, &err), ENOENT);
        CHECK_OK(store_usage(s, 1000, &count, &bytes));
        CHECK(count == 2);

        store_free(s);
        /* Temp files of writes a crash interrupted, in the uid folder and a checkpoint folder. */
        char tmpf[4200];
        snprintf(tmpf, sizeof(tmpf), "%s/1000/.#chat-1.session.1234abcd", dir);
        CHECK(close(open(tmpf, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) == 0);
        snprintf(path, sizeof(path), "%s/1000/chat-1.checkpoints", dir);
        CHECK(mkdir(path, 0700) == 0);
        snprintf(tmpf, sizeof(tmpf), "%s/1000/chat-1.checkpoints/.#turn-0000000001.session.1", dir);
        CHECK(close(open(tmpf, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) == 0);
        /* Reopen (a restart): same key, sessions still load, temp files gone. */
        CHECK_OK(store_open(dir, NULL, &s, &err));
        CHECK(access(tmpf, F_OK) < 0 && errno == ENOENT);
        snprintf(tmpf, sizeof(tmpf), "%s/1000/.#chat-1.session.1234abcd", dir);
        CHECK(access(tmpf, F_OK) < 0 && errno == ENOENT);
        CHECK_OK(store_load(s, 1000, "chat-1", NULL, &b, &err));
        test_check_same(a, b);
        session_record_free(b);
        store_free(s);
        session_record_free(a);
        session_record_free(m);
}

static void test_checkpoints(const char *dir) {
        Store *s = NULL;
        RwkvError err = {};
        StoreOptions o = { .max_checkpoints = 3, .no_sync = true };
        CHECK_OK(store_open(dir, &o, &s, &err));
        SessionRecord *r[6];
        for (uint32_t t = 0; t < 6; t++) {
                r[t] = test_record("ck", 2048, 50, 10 * t, 100 + t);
                r[t]->meta.n_turns = t;
                CHECK_OK(store_checkpoint_save(s, 7, "ck", t, r[t], &err));
        }
        CHECK_OK(store_save(s, 7, r[5], &err));
        uint32_t *turns;
        size_t n;
        CHECK_OK(store_checkpoint_list(s, 7, "ck", &turns, &n, &err));
        CHECK(n == 3 && turns[0] == 3 && turns[1] == 4 && turns[2] == 5);
        free(turns);
        SessionRecord *b = NULL;
        CHECK_ERR(store_checkpoint_load(s, 7, "ck", 1, NULL, &b, &err), ENOENT);
        CHECK_OK(store_checkpoint_load(s, 7, "ck", 4, r[4]->meta.model_hash, &b, &err));
        test_check_same(r[4], b);
        CHECK(b->meta.turn == 4);
        session_record_free(b);
        /* Checkpoints do not count as sessions, but their bytes do. */
        uint64_t count, bytes, bytes_main;
        CHECK_OK(store_usage(s, 7, &count, &bytes));
        CHECK(count == 1);
        SessionMeta meta;
        CHECK_OK(store_stat(s, 7, "ck", &meta, &err));
        bytes_main = meta.file_bytes;
        CHECK(bytes > 3 * bytes_main);

        /* Fork carries the checkpoints; rename moves them. */
        CHECK_OK(store_fork(s, 7, "ck", "ck2", &err));
        CHECK_OK(store_checkpoint_load(s, 7, "ck2", 3, NULL, &b, &err));
        test_check_same(r[3], b);
        session_record_free(b);
        CHECK_OK(store_rename(s, 7, "ck2", "ck3", &err));
        CHECK_OK(store_checkpoint_load(s, 7, "ck3", 5, NULL, &b, &err));
        session_record_free(b);
        CHECK_ERR(store_checkpoint_load(s, 7, "ck2", 5, NULL, &b, &err), ENOENT);

        /* Rewind: drop the turns after 3. */
        CHECK(store_checkpoint_truncate(s, 7, "ck", 3, &err) == 2);
        CHECK_OK(store_checkpoint_list(s, 7, "ck", &turns, &n, &err));
        CHECK(n == 1 && turns[0] == 3);
        free(turns);
        CHECK(store_checkpoint_truncate(s, 7, "nothing", 3, &err) == 0);

        /* Delete takes the checkpoints along. */
        CHECK_OK(store_delete(s, 7, "ck", &err));
        CHECK_OK(store_checkpoint_list(s, 7, "ck", &turns, &n, &err));
        CHECK(n == 0);
        free(turns);
        char path[4096];
        snprintf(path, sizeof(path), "%s/7/ck.checkpoints", dir);
        CHECK(access(path, F_OK) < 0 && errno == ENOENT);
        for (int t = 0; t < 6; t++)
                session_record_free(r[t]);
        store_free(s);
}

static void test_export_import(const char *dir, const char *tmp) {
        Store *s = NULL;
        RwkvError err = {};
        StoreOptions o = { .no_sync = true };
        CHECK_OK(store_open(dir, &o, &s, &err));
        SessionRecord *a = test_record("shared", 30000, 1000, 100, 77);
        CHECK_OK(store_save(s, 1000, a, &err));

        char path[4096];
        snprintf(path, sizeof(path), "%s/export.rwkvsession", tmp);
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        CHECK(fd >= 0);
        CHECK_OK(store_export(s, 1000, "shared", fd, &err));
        CHECK(lseek(fd, 0, SEEK_SET) == 0);
        char id[STORE_ID_MAX + 1];
        /* Another uid imports it: re-sealed for that uid, under the exported id. */
        CHECK_OK(store_import(s, 2000, fd, NULL, id, &err));
        CHECK_STREQ(id, "shared");
        SessionRecord *b = NULL;
        CHECK_OK(store_load(s, 2000, "shared", NULL, &b, &err));
        test_check_same(a, b);
        CHECK(b->meta.uid == 2000);
        session_record_free(b);
        /* Same id again: refused; a new id works. */
        CHECK(lseek(fd, 0, SEEK_SET) == 0);
        CHECK_ERR(store_import(s, 2000, fd, NULL, id, &err), EEXIST);
        CHECK(lseek(fd, 0, SEEK_SET) == 0);
        CHECK_OK(store_import(s, 2000, fd, "renamed", id, &err));
        CHECK_STREQ(id, "renamed");

        /* Through a pipe (how the daemon receives it over D-Bus). */
        int p[2];
        CHECK(pipe2(p, O_CLOEXEC) == 0);
        CHECK(lseek(fd, 0, SEEK_SET) == 0);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                close(p[0]);
                char buf[65536];
                ssize_t l;
                while ((l = read(fd, buf, sizeof(buf))) > 0)
                        if (write(p[1], buf, (size_t)l) != l)
                                _exit(1);
                _exit(0);
        }
        close(p[1]);
        CHECK_OK(store_import(s, 3000, p[0], "piped", id, &err));
        close(p[0]);
        CHECK(waitpid(pid, NULL, 0) == pid);
        CHECK_OK(store_load(s, 3000, "piped", NULL, &b, &err));
        test_check_same(a, b);
        session_record_free(b);

        /* A session file is not an export (and cannot be imported as one). */
        close(fd);
        snprintf(path, sizeof(path), "%s/1000/shared.session", dir);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        CHECK(fd >= 0);
        CHECK_ERR(store_import(s, 1000, fd, "x", id, &err), EBADMSG);
        close(fd);
        session_record_free(a);
        store_free(s);
}

/* A state directory whose parents do not exist yet (a fresh account: no ~/.local/state) is created
 * with them, all 0700; a parent that is a file is an error that names it. */
static void test_parents(const char *tmp) {
        char dir[4096], path[4096];
        Store *s = NULL;
        RwkvError err = {};

        snprintf(dir, sizeof(dir), "%s/home/.local/state/rwkvd", tmp);
        CHECK_OK(store_open(dir, NULL, &s, &err));
        check_mode(dir, 0700);
        snprintf(path, sizeof(path), "%s/home/.local/state", tmp);
        check_mode(path, 0700);
        snprintf(path, sizeof(path), "%s/home", tmp);
        check_mode(path, 0700);
        store_free(s);

        snprintf(path, sizeof(path), "%s/plainfile", tmp);
        FILE *f = fopen(path, "w");
        CHECK(f);
        fclose(f);
        snprintf(dir, sizeof(dir), "%s/plainfile/state/rwkvd", tmp);
        CHECK_ERR(store_open(dir, NULL, &s, &err), ENOTDIR);
        CHECK(strstr(err.msg, "plainfile/state'"));
}

int main(void) {
        char *tmp = test_tmpdir();
        char *dir = state_dir(tmp);
        test_parents(tmp);
        test_basic(dir);
        test_checkpoints(dir);
        test_export_import(dir, tmp);
        rm_rf(tmp);
        free(dir);
        free(tmp);
        return 0;
}
