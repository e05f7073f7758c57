/* store.c: the session store (see store.h): per-uid folders of sealed session files. */
#include <dirent.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "protocol/bus.h"
#include "daemon/keys.h"
#include "daemon/store-format.h"
#include "daemon/store-io.h"
#include "daemon/store.h"

#define KEY_FILE "daemon.key"
#define SESSION_SUFFIX ".session"
#define CHECKPOINT_SUFFIX ".checkpoints"
/* bench/sessions: a fast level with Huffman-coded literals (see store-format.c) compresses the
 * byte planes as well as level 1 did at about half the CPU time, and loads faster. */
#define DEFAULT_ZSTD_LEVEL (-256)
#define DEFAULT_MAX_CHECKPOINTS 32

struct Store {
        int dir_fd;
        DaemonKey *key;
        StoreOptions opts;
};

Store *store_free(Store *s) {
        if (!s)
                return NULL;
        safe_close(s->dir_fd);
        daemon_key_free(s->key);
        free(s);
        return NULL;
}

_Static_assert(STORE_ID_MAX == RWKV_SESSION_ID_MAX, "session ids are protocol/bus.h's");

bool store_id_is_valid(const char *id) {
        return rwkv_session_id_valid(id);
}

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int mkdir_private(int dir_fd, const char *name) {
        if (mkdirat(dir_fd, name, 0700) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

/* The folders above dir that do not exist yet (a fresh account has no ~/.local/state): created
 * 0700 like the XDG base directories; existing ones are left as they are. */
static int mkdir_parents(const char *dir, RwkvError *err) {
        _cleanup_(freep) char *p = strdup(dir);
        if (!p)
                return error_set(err, ENOMEM, "out of memory");
        for (char *slash = strchr(p + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
                if (slash[1] == '/' || slash[1] == 0)
                        continue;
                *slash = 0;
                if (mkdir(p, 0700) < 0 && errno != EEXIST)
                        return error_set(err, errno, "cannot create state directory '%s': cannot create '%s': %m", dir,
                                         p);
                *slash = '/';
        }
        return 0;
}

static void closedirp(DIR **d);
static DIR *opendir_at(int dir_fd);

/* Temp files a crash left in a uid folder and in its checkpoint folders. */
static void sweep_uid_dir(int ufd) {
        io_sweep_temps(ufd);
        _cleanup_(closedirp) DIR *d = opendir_at(ufd);
        if (!d)
                return;
        struct dirent *de;
        size_t sl = strlen(CHECKPOINT_SUFFIX);
        while ((de = readdir(d))) {
                size_t n = strlen(de->d_name);
                if (de->d_name[0] == '.' || n <= sl || strcmp(de->d_name + n - sl, CHECKPOINT_SUFFIX) != 0)
                        continue;
                _cleanup_(closep) int cfd = openat(ufd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                if (cfd >= 0)
                        io_sweep_temps(cfd);
        }
}

typedef struct KeyCheck {
        unsigned rejected;  /* files whose header fails authentication */
        bool authenticated; /* one file's header authenticates: the key is right */
} KeyCheck;

/* The session files of one uid folder (and, with checkpoints, of its checkpoint folders) until
 * one authenticates. Files that cannot tell (too short, not a session file, unreadable) are
 * skipped: only the key decides here, the checks of each file come when it is listed or loaded. */
static void key_check_dir(Store *s, uid_t uid, int dir_fd, bool checkpoints, KeyCheck *kc) {
        _cleanup_(closedirp) DIR *d = opendir_at(dir_fd);
        if (!d)
                return;
        uint8_t key[DAEMON_KEY_BYTES];
        daemon_key_derive_uid(s->key, uid, key);
        struct dirent *de;
        size_t sl = strlen(SESSION_SUFFIX), cl = strlen(CHECKPOINT_SUFFIX);
        while (!kc->authenticated && (de = readdir(d))) {
                size_t n = strlen(de->d_name);
                if (de->d_name[0] == '.')
                        continue;
                if (checkpoints && n > cl && strcmp(de->d_name + n - cl, CHECKPOINT_SUFFIX) == 0) {
                        _cleanup_(closep) int cfd =
                                openat(dir_fd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                        if (cfd >= 0)
                                key_check_dir(s, uid, cfd, false, kc);
                        continue;
                }
                if (n <= sl || strcmp(de->d_name + n - sl, SESSION_SUFFIX) != 0)
                        continue;
                uint8_t head[SF_PREFIX_BYTES + SF_HEADER_MAX + 64];
                int l = io_read_head(dir_fd, de->d_name, head, sizeof(head), NULL);
                int a = l >= 0 ? sf_header_authenticates(head, (size_t)l, key) : l;
                if (a > 0)
                        kc->authenticated = true;
                else if (a == 0)
                        kc->rejected++;
        }
        sodium_memzero(key, sizeof(key));
}

int store_open(const char *dir, const StoreOptions *opts, Store **ret, RwkvError *err) {
        if (!dir || !ret)
                return error_set(err, EINVAL, "no state directory given");
        if (sodium_init() < 0)
                return error_set(err, EIO, "libsodium initialization failed");
        _cleanup_(store_freep) Store *s = calloc(1, sizeof(*s));
        if (!s)
                return error_set(err, ENOMEM, "out of memory");
        s->dir_fd = -EBADF;
        if (opts)
                s->opts = *opts;
        if ((unsigned)s->opts.state_precision > STORE_PRECISION_BF16)
                return error_set(err, EINVAL, "unknown state precision %d", (int)s->opts.state_precision);
        if (s->opts.zstd_level == 0)
                s->opts.zstd_level = DEFAULT_ZSTD_LEVEL;
        if (s->opts.zstd_level > ZSTD_maxCLevel() || s->opts.zstd_level < ZSTD_minCLevel())
                return error_set(err, EINVAL, "zstd level %d out of range (%d..%d; negative: fast levels)",
                                 s->opts.zstd_level, ZSTD_minCLevel(), ZSTD_maxCLevel());
        if (s->opts.max_checkpoints == 0)
                s->opts.max_checkpoints = DEFAULT_MAX_CHECKPOINTS;

        int r = mkdir_parents(dir, err);
        if (r < 0)
                return r;
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return error_set(err, errno, "cannot create state directory '%s': %m", dir);
        s->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (s->dir_fd < 0)
                return error_set(err, errno, "cannot open state directory '%s': %m", dir);
        /* One daemon per state directory: two would race on the same files. */
        if (flock(s->dir_fd, LOCK_EX | LOCK_NB) < 0)
                return error_set(err, errno == EWOULDBLOCK ? EBUSY : errno,
                                 "state directory '%s' is in use by another process", dir);
        r = daemon_key_load(s->dir_fd, KEY_FILE, true, &s->key, err);
        if (r < 0)
                return error_prefix(err, "state directory '%s': ", dir), r;

        /* Temp files of writes a crash interrupted. */
        io_sweep_temps(s->dir_fd);
        _cleanup_(closep) int fd = openat(s->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        if (d) {
                TAKE_FD(fd);
                struct dirent *de;
                KeyCheck kc = {};
                while ((de = readdir(d))) {
                        if (de->d_name[0] < '0' || de->d_name[0] > '9')
                                continue;
                        _cleanup_(closep) int ufd =
                                openat(s->dir_fd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                        if (ufd < 0)
                                continue;
                        sweep_uid_dir(ufd);
                        char *end;
                        errno = 0;
                        unsigned long uid = strtoul(de->d_name, &end, 10);
                        if (!kc.authenticated && !errno && !*end && uid < UINT32_MAX)
                                key_check_dir(s, (uid_t)uid, ufd, true, &kc);
                }
                closedir(d);
                if (kc.rejected > 0 && !kc.authenticated)
                        return error_set(err, EKEYREJECTED,
                                         "the daemon key '%s/" KEY_FILE "' does not match the stored sessions: "
                                         "none of the %u session files checked authenticates with it (nothing "
                                         "was moved aside). Restore the key they were sealed with, or move the "
                                         "numbered uid folders out of '%s' to start without them",
                                         dir, kc.rejected, dir);
        }
        *ret = TAKE_PTR(s);
        return 0;
}

static int uid_dir(Store *s, uid_t uid, bool create) {
        char name[32];
        snprintf(name, sizeof(name), "%u", (unsigned)uid);
        if (create) {
                int r = mkdir_private(s->dir_fd, name);
                if (r < 0)
                        return r;
        }
        int fd = openat(s->dir_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        return fd >= 0 ? fd : -errno;
}

static int checkpoint_dir(int ufd, const char *id, bool create) {
        char name[STORE_ID_MAX + 32];
        snprintf(name, sizeof(name), "%s" CHECKPOINT_SUFFIX, id);
        if (create) {
                int r = mkdir_private(ufd, name);
                if (r < 0)
                        return r;
        }
        int fd = openat(ufd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        return fd >= 0 ? fd : -errno;
}

static void session_name(char *buf, size_t size, const char *id) {
        snprintf(buf, size, "%s" SESSION_SUFFIX, id);
}

static void checkpoint_name(char *buf, size_t size, uint32_t turn) {
        snprintf(buf, size, "turn-%010u" SESSION_SUFFIX, turn);
}

static int write_error(RwkvError *err, int r, const char *what, const char *id) {
        return error_set(err, -r, "cannot write %s '%s': %s (the previous version is intact)", what, id, strerror(-r));
}

static void uid_key(Store *s, uid_t uid, uint8_t key[DAEMON_KEY_BYTES]) {
        daemon_key_derive_uid(s->key, uid, key);
}

/* rec as it is written: a record that was never stamped gets the current time. */
static SessionRecord record_stamped(const SessionRecord *rec) {
        SessionRecord copy = *rec;
        uint64_t now = now_usec();
        if (copy.meta.created_usec == 0)
                copy.meta.created_usec = now;
        if (copy.meta.updated_usec == 0)
                copy.meta.updated_usec = now;
        return copy;
}

/* Seal rec for uid and write it atomically as dir_fd/name. */
static int save_sealed(Store *s, uid_t uid, int dir_fd, const char *name, const SessionRecord *rec, bool checkpoint,
                       bool noreplace, const char *what, RwkvError *err) {
        SessionRecord copy = record_stamped(rec);
        uint8_t key[DAEMON_KEY_BYTES];
        uid_key(s, uid, key);
        SfEncodeParams p = {
                .kind = SF_KIND_SESSION,
                .uid = uid,
                .key = key,
                .precision = s->opts.state_precision,
                .zstd_level = s->opts.zstd_level,
                .shuffle = true,
                .checkpoint = checkpoint,
        };
        _cleanup_(freep) uint8_t *buf = NULL;
        size_t size;
        int r = sf_encode(&copy, &p, &buf, &size, err);
        sodium_memzero(key, sizeof(key));
        if (r < 0)
                return r;
        r = io_write_atomic(dir_fd, name, buf, size, noreplace, !s->opts.no_sync);
        if (r == -EEXIST && noreplace)
                return error_set(err, EEXIST, "%s '%s' already exists", what, rec->meta.id);
        if (r < 0)
                return write_error(err, r, what, rec->meta.id);
        return 0;
}

static int stat_sealed(Store *s, uid_t uid, int dir_fd, const char *name, const char *id, SessionMeta *ret,
                       RwkvError *err);

/* A session file of another model is never replaced (it would be lost without a word): its owner
 * deletes it first. A damaged one is moved aside by the header check and may then be replaced. */
static int check_replace(Store *s, uid_t uid, int ufd, const char *id, const SessionRecord *rec, RwkvError *err) {
        char name[STORE_ID_MAX + 32];
        session_name(name, sizeof(name), id);
        SessionMeta old;
        int r = stat_sealed(s, uid, ufd, name, id, &old, NULL);
        if (r == -ENOENT || r == -EBADMSG)
                return 0;
        if (r < 0)
                return error_set(err, -r, "cannot check the stored session '%s': %s", id, strerror(-r));
        if (memcmp(old.model_hash, rec->meta.model_hash, 32) != 0)
                return error_set(err, EMEDIUMTYPE,
                                 "session '%s' on disk belongs to another model; delete it first to reuse the id", id);
        return 0;
}

int store_save(Store *s, uid_t uid, const SessionRecord *rec, RwkvError *err) {
        if (!s || !rec)
                return error_set(err, EINVAL, "no record");
        if (!store_id_is_valid(rec->meta.id))
                return error_set(err, EINVAL, "invalid session id");
        _cleanup_(closep) int ufd = uid_dir(s, uid, true);
        if (ufd < 0)
                return write_error(err, ufd, "session", rec->meta.id);
        int r = check_replace(s, uid, ufd, rec->meta.id, rec, err);
        if (r < 0)
                return r;
        char name[STORE_ID_MAX + 32];
        session_name(name, sizeof(name), rec->meta.id);
        return save_sealed(s, uid, ufd, name, rec, false, false, "session", err);
}

/* Load and authenticate dir_fd/name; a hostile or damaged file is moved aside, never loaded. The file
 * is streamed block by block: no buffer the size of the file is ever allocated. */
static int load_sealed(Store *s, uid_t uid, int dir_fd, const char *name, const char *id, const uint8_t *model_hash,
                       SessionRecord **ret, RwkvError *err) {
        _cleanup_(closep) int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0 && errno == ENOENT)
                return error_set(err, ENOENT, "no session '%s'", id);
        if (fd < 0)
                return error_set(err, errno, "cannot open session '%s': %m", id);
        struct stat st;
        if (fstat(fd, &st) < 0)
                return error_set(err, errno, "cannot stat session '%s': %m", id);

        _cleanup_(session_record_freep) SessionRecord *rec = NULL;
        int r;
        if (!S_ISREG(st.st_mode))
                r = error_set(err, EBADMSG, "not a regular file");
        else {
                (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
                uint8_t key[DAEMON_KEY_BYTES];
                uid_key(s, uid, key);
                r = sf_decode_fd(fd, key, SF_KIND_SESSION, uid, &rec, err);
                sodium_memzero(key, sizeof(key));
        }
        if (r == -EBADMSG) {
                char moved[300];
                int q = io_quarantine(dir_fd, name, moved, sizeof(moved));
                if (err && q >= 0)
                        error_prefix(err, "session '%s' is corrupt and was moved aside to '%s': ", id, moved);
                else if (err)
                        error_prefix(err, "session '%s' is corrupt (could not move it aside: %s): ", id, strerror(-q));
                return -EBADMSG;
        }
        if (r < 0)
                return r;
        if (model_hash && memcmp(model_hash, rec->meta.model_hash, 32) != 0)
                return error_set(err, EMEDIUMTYPE, "session '%s' was made by another model", id);
        /* The file name is authoritative (a fork is a byte copy of its origin). */
        snprintf(rec->meta.id, sizeof(rec->meta.id), "%s", id);
        *ret = TAKE_PTR(rec);
        return 0;
}

int store_load(Store *s, uid_t uid, const char *id, const uint8_t model_hash[32], SessionRecord **ret, RwkvError *err) {
        if (!s || !ret || !store_id_is_valid(id))
                return error_set(err, EINVAL, "invalid session id");
        _cleanup_(closep) int ufd = uid_dir(s, uid, false);
        if (ufd == -ENOENT)
                return error_set(err, ENOENT, "no session '%s'", id);
        if (ufd < 0)
                return error_set(err, -ufd, "cannot open the sessions of uid %u: %s", (unsigned)uid, strerror(-ufd));
        char name[STORE_ID_MAX + 32];
        session_name(name, sizeof(name), id);
        return load_sealed(s, uid, ufd, name, id, model_hash, ret, err);
}

/* Header only: prefix + sealed header (at most SF_HEADER_MAX plus overhead). */
static int stat_sealed(Store *s, uid_t uid, int dir_fd, const char *name, const char *id, SessionMeta *ret,
                       RwkvError *err) {
        uint8_t head[SF_PREFIX_BYTES + SF_HEADER_MAX + 64];
        uint64_t file_size;
        int n = io_read_head(dir_fd, name, head, sizeof(head), &file_size);
        if (n == -ENOENT)
                return error_set(err, ENOENT, "no session '%s'", id);
        if (n < 0 && n != -EBADMSG)
                return error_set(err, -n, "cannot read session '%s': %s", id, strerror(-n));
        int r = n;
        SessionMeta meta;
        uint64_t total;
        if (r >= 0) {
                uint8_t key[DAEMON_KEY_BYTES];
                uid_key(s, uid, key);
                r = sf_decode_header(head, (size_t)n, key, SF_KIND_SESSION, uid, &meta, &total, err);
                sodium_memzero(key, sizeof(key));
                if (r >= 0 && total != file_size)
                        r = error_set(err, EBADMSG, "file is %llu bytes, its header says %llu",
                                      (unsigned long long)file_size, (unsigned long long)total);
        } else
                error_set(err, EBADMSG, "not a regular file");
        if (r == -EBADMSG) {
                char moved[300];
                if (io_quarantine(dir_fd, name, moved, sizeof(moved)) >= 0 && err)
                        error_prefix(err, "session '%s' is corrupt and was moved aside to '%s': ", id, moved);
                return -EBADMSG;
        }
        if (r < 0)
                return r;
        snprintf(meta.id, sizeof(meta.id), "%s", id);
        meta.file_bytes = file_size;
        *ret = meta;
        return 0;
}

int store_stat(Store *s, uid_t uid, const char *id, SessionMeta *ret, RwkvError *err) {
        if (!s || !ret || !store_id_is_valid(id))
                return error_set(err, EINVAL, "invalid session id");
        _cleanup_(closep) int ufd = uid_dir(s, uid, false);
        if (ufd < 0)
                return error_set(err, -ufd, "no session '%s'", id);
        char name[STORE_ID_MAX + 32];
        session_name(name, sizeof(name), id);
        return stat_sealed(s, uid, ufd, name, id, ret, err);
}

/* Session ids found in a uid folder (names "<id>.session"), or turns in a checkpoint folder. */
static bool name_to_id(const char *name, char id[STORE_ID_MAX + 1]) {
        size_t n = strlen(name), sl = strlen(SESSION_SUFFIX);
        if (n <= sl || n - sl > STORE_ID_MAX || strcmp(name + n - sl, SESSION_SUFFIX) != 0)
                return false;
        memcpy(id, name, n - sl);
        id[n - sl] = 0;
        return store_id_is_valid(id);
}

static int meta_cmp(const void *a, const void *b) {
        return strcmp(((const SessionMeta *)a)->id, ((const SessionMeta *)b)->id);
}

static DIR *opendir_at(int dir_fd) {
        int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return NULL;
        DIR *d = fdopendir(fd);
        if (!d)
                safe_close(fd);
        return d;
}

static void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}

/* "<id>.session.corrupt" or "<id>.session.<usec>.corrupt" (io_quarantine): a file of id moved aside. */
static bool corrupt_name_to_id(const char *name, char id[STORE_ID_MAX + 1]) {
        static const char suffix[] = ".corrupt";
        size_t n = strlen(name), cl = sizeof(suffix) - 1;
        if (n <= cl || strcmp(name + n - cl, suffix) != 0 || n - cl >= STORE_ID_MAX + 64)
                return false;
        char base[STORE_ID_MAX + 64];
        memcpy(base, name, n - cl);
        base[n - cl] = 0;
        char *dot = strrchr(base, '.');
        if (dot && dot[1] && strspn(dot + 1, "0123456789") == strlen(dot + 1))
                *dot = 0; /* the <usec> of a second copy */
        return name_to_id(base, id);
}

static int grow(void **v, size_t *cap, size_t n, size_t size) {
        if (n < *cap)
                return 0;
        size_t ncap = *cap ? *cap * 2 : 16;
        void *nv = realloc(*v, ncap * size);
        if (!nv)
                return -ENOMEM;
        *v = nv;
        *cap = ncap;
        return 0;
}

static int bad_cmp(const void *a, const void *b) {
        return strcmp(((const StoreBadFile *)a)->id, ((const StoreBadFile *)b)->id);
}

static bool bad_has(const StoreBadFile *v, size_t n, const char *id) {
        for (size_t i = 0; i < n; i++)
                if (!strcmp(v[i].id, id))
                        return true;
        return false;
}

int store_list(Store *s, uid_t uid, SessionMeta **ret, size_t *ret_n, StoreBadFile **ret_bad, size_t *ret_n_bad,
               RwkvError *err) {
        if (!s || !ret || !ret_n || (ret_bad && !ret_n_bad))
                return error_set(err, EINVAL, "invalid arguments");
        _cleanup_(closep) int ufd = uid_dir(s, uid, false);
        if (ufd == -ENOENT) {
                *ret = NULL;
                *ret_n = 0;
                if (ret_bad) {
                        *ret_bad = NULL;
                        *ret_n_bad = 0;
                }
                return 0;
        }
        if (ufd < 0)
                return error_set(err, -ufd, "cannot open the sessions of uid %u: %s", (unsigned)uid, strerror(-ufd));
        _cleanup_(closedirp) DIR *d = opendir_at(ufd);
        if (!d)
                return error_set(err, errno, "cannot list sessions: %m");
        _cleanup_(freep) SessionMeta *v = NULL;
        _cleanup_(freep) StoreBadFile *bad = NULL;
        _cleanup_(freep) StoreBadFile *earlier = NULL; /* copies moved aside before this listing */
        size_t n = 0, cap = 0, n_bad = 0, cap_bad = 0, n_earlier = 0, cap_earlier = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                char id[STORE_ID_MAX + 1];
                if (corrupt_name_to_id(de->d_name, id)) {
                        if (bad_has(earlier, n_earlier, id))
                                continue;
                        if (grow((void **)&earlier, &cap_earlier, n_earlier, sizeof(*earlier)) < 0)
                                return error_set(err, ENOMEM, "out of memory");
                        StoreBadFile *b = &earlier[n_earlier++];
                        *b = (StoreBadFile){ .error = -EBADMSG };
                        snprintf(b->id, sizeof(b->id), "%s", id);
                        snprintf(b->message, sizeof(b->message),
                                 "session '%s' failed its checks earlier and was moved aside to '%s'", id, de->d_name);
                        continue;
                }
                if (!name_to_id(de->d_name, id))
                        continue;
                SessionMeta m;
                RwkvError e = {};
                int r = stat_sealed(s, uid, ufd, de->d_name, id, &m, &e);
                if (r == -ENOENT)
                        continue; /* vanished */
                if (r < 0) {
                        if (grow((void **)&bad, &cap_bad, n_bad, sizeof(*bad)) < 0)
                                return error_set(err, ENOMEM, "out of memory");
                        StoreBadFile *b = &bad[n_bad++];
                        *b = (StoreBadFile){ .error = r };
                        snprintf(b->id, sizeof(b->id), "%s", id);
                        snprintf(b->message, sizeof(b->message), "%s", error_message(&e, r));
                        continue;
                }
                if (grow((void **)&v, &cap, n, sizeof(*v)) < 0)
                        return error_set(err, ENOMEM, "out of memory");
                v[n++] = m;
        }
        if (ret_bad) {
                /* An id whose file was moved aside is not free while no session has it again. */
                for (size_t i = 0; i < n_earlier; i++) {
                        bool listed = bad_has(bad, n_bad, earlier[i].id);
                        for (size_t j = 0; j < n && !listed; j++)
                                listed = !strcmp(v[j].id, earlier[i].id);
                        if (listed)
                                continue;
                        if (grow((void **)&bad, &cap_bad, n_bad, sizeof(*bad)) < 0)
                                return error_set(err, ENOMEM, "out of memory");
                        bad[n_bad++] = earlier[i];
                }
                if (n_bad > 1)
                        qsort(bad, n_bad, sizeof(*bad), bad_cmp);
                *ret_bad = TAKE_PTR(bad);
                *ret_n_bad = n_bad;
        }
        if (n > 1)
                qsort(v, n, sizeof(*v), meta_cmp);
        *ret = TAKE_PTR(v);
        *ret_n = n;
        return (int)MIN(n, (size_t)INT32_MAX);
}

/* Remove every file in a checkpoint folder, then the folder. */
static int checkpoints_remove(int ufd, const char *id, bool secure, bool sync) {
        _cleanup_(closep) int cfd = checkpoint_dir(ufd, id, false);
        if (cfd == -ENOENT)
                return 0;
        if (cfd < 0)
                return cfd;
        _cleanup_(closedirp) DIR *d = opendir_at(cfd);
        if (!d)
                return -errno;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                if (secure)
                        (void)io_unlink_secure(cfd, de->d_name, false);
                else
                        (void)unlinkat(cfd, de->d_name, 0);
        }
        char name[STORE_ID_MAX + 32];
        snprintf(name, sizeof(name), "%s" CHECKPOINT_SUFFIX, id);
        if (unlinkat(ufd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
                return -errno;
        if (sync)
                (void)fsync(ufd);
        return 0;
}

/* id's copies moved aside (*.corrupt) in the uid folder: how many, the name of the first in first
 * (size bytes, when not NULL), each unlinked when unlink_them; or a negative errno. */
static int corrupt_copies(int ufd, const char *id, bool unlink_them, bool sync, char *first, size_t size) {
        _cleanup_(closedirp) DIR *d = opendir_at(ufd);
        if (!d)
                return -errno;
        int n = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                char cid[STORE_ID_MAX + 1];
                if (!corrupt_name_to_id(de->d_name, cid) || strcmp(cid, id) != 0)
                        continue;
                if (n == 0 && first)
                        snprintf(first, size, "%s", de->d_name);
                if (unlink_them) {
                        int r = io_unlink_secure(ufd, de->d_name, sync);
                        if (r < 0 && r != -ENOENT)
                                return r;
                }
                n++;
        }
        return n;
}

int store_delete(Store *s, uid_t uid, const char *id, RwkvError *err) {
        if (!s || !store_id_is_valid(id))
                return error_set(err, EINVAL, "invalid session id");
        _cleanup_(closep) int ufd = uid_dir(s, uid, false);
        if (ufd < 0)
                return error_set(err, ENOENT, "no session '%s'", id);
        char name[STORE_ID_MAX + 32];
        session_name(name, sizeof(name), id);
        int r = io_unlink_secure(ufd, name, !s->opts.no_sync);
        if (r < 0 && r != -ENOENT)
                return error_set(err, -r, "cannot delete session '%s': %s", id, strerror(-r));
        int k = checkpoints_remove(ufd, id, true, !s->opts.no_sync);
        /* Copies moved aside keep the id reserved (store_list): deleting the session frees it. */
        int q = corrupt_copies(ufd, id, true, !s->opts.no_sync, NULL, 0);
        if (q < 0)
                return error_set(err, -q, "cannot delete the copies of session '%s' moved aside: %s", id, strerror(-q));
        if (r == -ENOENT && q == 0)
                return error_set(err, ENOENT, "no session '%s'", id);
        if (k < 0)
                return error_set(err, -k, "session '%s' deleted, but not all its checkpoints: %s", id, strerror(-k));
        return 0;
}

int store_rename(Store *s, uid_t uid, const char *id, const char *new_id, RwkvError *err) {
        if (!s || !store_id_is_valid(id) || !store_id_is_valid(new_id))
                return error_set(err, EINVAL, "invalid session id");
        _cleanup_(closep) int ufd = uid_dir(s, uid, false);
        if (ufd < 0)
                return error_set(err, ENOENT, "no session '%s'", id);
        char from[STORE_ID_MAX + 32], to[STORE_ID_MAX + 32];
        session_name(from, sizeof(from), id);
        session_name(to, sizeof(to), new_id);
        if (renameat2(ufd, from, ufd, to, RENAME_NOREPLACE) < 0) {
                if (errno == EEXIST)
                        return error_set(err, EEXIST, "session '%s' already exists", new_id);
                if (errno == ENOENT)
                        return error_set(err, ENOENT, "no session '%s'", id);
                return error_set(err, errno, "cannot rename session '%s': %m", id);
        }
        /* Stale checkpoints under the new name (a session deleted uncleanly) must not be adopted. */
        (void)checkpoints_remove(ufd, new_id, false, false);
        snprintf(from, sizeof(from), "%s" CHECKPOINT_SUFFIX, id);
        snprintf(to, sizeof(to), "%s" CHECKPOINT_SUFFIX, new_id);
        if (renameat(ufd, from, ufd, to) < 0 && errno != ENOENT)
                return error_set(err, errno, "session renamed, but its checkpoints could not follow: %m");
        if (!s->opts.no_sync)
                (void)fsync(ufd);
        return 0;
}

int store_fork(Store *s, uid_t uid, const char *id, const char *new_id, RwkvError *err) {
        if (!s || !store_id_is_valid(id) || !store_id_is_valid(new_id))
                return error_set(err, EINVAL, "invalid session id");
        if (!strcmp(id, new_id))
                return error_set(err, EEXIST, "session '%s' already exists", new_id);
        _cleanup_(closep) int ufd = uid_dir(s, uid, false);
        if (ufd < 0)
                return error_set(err, ENOENT, "no session '%s'", id);
        bool sync = !s->opts.no_sync;
        char from[STORE_ID_MAX + 32], to[STORE_ID_MAX + 32];
        session_name(from, sizeof(from), id);
        session_name(to, sizeof(to), new_id);
        /* Files are sealed per uid, not per id: a byte copy is a valid session under any name. */
        int r = io_copy_file(ufd, from, ufd, to, true, sync);
        if (r == -EEXIST)
                return error_set(err, EEXIST, "session '%s' already exists", new_id);
        if (r == -ENOENT)
                return error_set(err, ENOENT, "no session '%s'", id);
        if (r < 0)
                return write_error(err, r, "session", new_id);

        (void)checkpoints_remove(ufd, new_id, false, false);
        _cleanup_(closep) int src = checkpoint_dir(ufd, id, false);
        if (src == -ENOENT)
                return 0;
        _cleanup_(closep) int dst = checkpoint_dir(ufd, new_id, true);
        _cleanup_(closedirp) DIR *d = src >= 0 && dst >= 0 ? opendir_at(src) : NULL;
        if (!d) {
                r = src < 0 ? src : dst < 0 ? dst : -errno;
                return error_set(err, -r, "session forked, but not its checkpoints: %s", strerror(-r));
        }
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                r = io_copy_file(src, de->d_name, dst, de->d_name, false, sync);
                if (r < 0)
                        return error_set(err, -r, "session forked, but not all its checkpoints: %s", strerror(-r));
        }
        return 0;
}

/* ---- checkpoints ---- */

static bool name_to_turn(const char *name, uint32_t *ret) {
        unsigned t;
        int end = 0;
        if (strncmp(name, "turn-", 5) != 0 || sscanf(name, "turn-%10u" SESSION_SUFFIX "%n", &t, &end) != 1 ||
            name[end] != 0 || strlen(name) != 5 + 10 + strlen(SESSION_SUFFIX))
                return false;
        *ret = t;
        return true;
}

static int u32_cmp(const void *a, const void *b) {
        uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
        return x < y ? -1 : x > y;
}

static int turns_list(int cfd, uint32_t **ret, size_t *ret_n) {
        _cleanup_(closedirp) DIR *d = opendir_at(cfd);
        if (!d)
                return -errno;
        _cleanup_(freep) uint32_t *v = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                uint32_t t;
                if (!name_to_turn(de->d_name, &t))
                        continue;
                if (n == cap) {
                        size_t ncap = cap ? cap * 2 : 16;
                        uint32_t *nv = realloc(v, ncap * sizeof(*v));
                        if (!nv)
                                return -ENOMEM;
                        v = nv;
                        cap = ncap;
                }
                v[n++] = t;
        }
        if (n > 1)
                qsort(v, n, sizeof(*v), u32_cmp);
        *ret = TAKE_PTR(v);
        *ret_n = n;
        return 0;
}

int store_checkpoint_save(Store *s, uid_t uid, const char *id, uint32_t turn, const SessionRecord *rec,
                          RwkvError *err) {
        if (!s || !rec || !store_id_is_valid(id))
                return error_set(err, EINVAL, "invalid session id");
        _cleanup_(closep) int ufd = uid_dir(s, uid, true);
        if (ufd < 0)
                return write_error(err, ufd, "checkpoint of", id);
        int r = check_replace(s, uid, ufd, id, rec, err);
        if (r < 0)
                return r;
        _cleanup_(closep) int cfd = checkpoint_dir(ufd, id, true);
        if (cfd < 0)
                return write_error(err, cfd, "checkpoint of", id);
        if (!s->opts.no_sync)
                (void)fsync(ufd); /* the folder itself may be new */
        SessionRecord copy = *rec;
        snprintf(copy.meta.id, sizeof(copy.meta.id), "%s", id);
        copy.meta.turn = turn;
        char name[64];
        checkpoint_name(name, sizeof(name), turn);
        r = save_sealed(s, uid, cfd, name, &copy, true, false, "checkpoint of", err);
        if (r < 0)
                return r;

        /* Keep the newest max_checkpoints turns. */
        _cleanup_(freep) uint32_t *turns = NULL;
        size_t n;
        if (turns_list(cfd, &turns, &n) >= 0)
                for (size_t i = 0; i + s->opts.max_checkpoints < n; i++) {
                        checkpoint_name(name, sizeof(name), turns[i]);
                        (void)unlinkat(cfd, name, 0);
                }
        return 0;
}

int store_checkpoint_load(Store *s, uid_t uid, const char *id, uint32_t turn, const uint8_t model_hash[32],
                          SessionRecord **ret, RwkvError *err) {
        if (!s || !ret || !store_id_is_valid(id))
                return error_set(err, EINVAL, "invalid session id");
        _cleanup_(closep) int ufd = uid_dir(s, uid, false);
        _cleanup_(closep) int cfd = ufd >= 0 ? checkpoint_dir(ufd, id, false) : -ENOENT;
        if (cfd < 0)
                return error_set(err, ENOENT, "session '%s' has no checkpoint at turn %u", id, turn);
        char name[64];
        checkpoint_name(name, sizeof(name), turn);
        int r = load_sealed(s, uid, cfd, name, id, model_hash, ret, err);
        if (r == -ENOENT)
                return error_set(err, ENOENT, "session '%s' has no checkpoint at turn %u", id, turn);
        return r;
}

int store_checkpoint_truncate(Store *s, uid_t uid, const char *id, uint32_t after_turn, RwkvError *err) {
        if (!s || !store_id_is_valid(id))
                return error_set(err, EINVAL, "invalid session id");
        _cleanup_(closep) int ufd = uid_dir(s, uid, false);
        _cleanup_(closep) int cfd = ufd >= 0 ? checkpoint_dir(ufd, id, false) : -ENOENT;
        if (cfd == -ENOENT)
                return 0;
        if (cfd < 0)
                return error_set(err, -cfd, "cannot open checkpoints of '%s': %s", id, strerror(-cfd));
        _cleanup_(freep) uint32_t *turns = NULL;
        size_t n;
        int r = turns_list(cfd, &turns, &n);
        if (r < 0)
                return error_set(err, -r, "cannot list checkpoints of '%s': %s", id, strerror(-r));
        int removed = 0;
        for (size_t i = 0; i < n; i++) {
                if (turns[i] <= after_turn)
                        continue;
                char name[64];
                checkpoint_name(name, sizeof(name), turns[i]);
                if (unlinkat(cfd, name, 0) < 0 && errno != ENOENT)
                        return error_set(err, errno, "cannot remove checkpoint %u of '%s': %m", turns[i], id);
                removed++;
        }
        if (removed && !s->opts.no_sync)
                (void)fsync(cfd);
        return removed;
}

int store_checkpoint_list(Store *s, uid_t uid, const char *id, uint32_t **ret, size_t *ret_n, RwkvError *err) {
        if (!s || !ret || !ret_n || !store_id_is_valid(id))
                return error_set(err, EINVAL, "invalid session id");
        _cleanup_(closep) int ufd = uid_dir(s, uid, false);
        _cleanup_(closep) int cfd = ufd >= 0 ? checkpoint_dir(ufd, id, false) : -ENOENT;
        if (cfd == -ENOENT) {
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }
        if (cfd < 0)
                return error_set(err, -cfd, "cannot open checkpoints of '%s': %s", id, strerror(-cfd));
        int r = turns_list(cfd, ret, ret_n);
        if (r < 0)
                return error_set(err, -r, "cannot list checkpoints of '%s': %s", id, strerror(-r));
        return 0;
}

/* ---- export / import ---- */

int store_export(Store *s, uid_t uid, const char *id, int fd, RwkvError *err) {
        if (!s || fd < 0)
                return error_set(err, EINVAL, "invalid arguments");
        _cleanup_(session_record_freep) SessionRecord *rec = NULL;
        int r = store_load(s, uid, id, NULL, &rec, err);
        if (r < 0)
                return r;
        return store_export_record(s, uid, rec, fd, err);
}

int store_export_record(Store *s, uid_t uid, const SessionRecord *rec, int fd, RwkvError *err) {
        if (!s || !rec || fd < 0)
                return error_set(err, EINVAL, "invalid arguments");
        SessionRecord copy = record_stamped(rec);
        uint8_t key[DAEMON_KEY_BYTES];
        daemon_key_derive_export(s->key, key);
        SfEncodeParams p = {
                .kind = SF_KIND_EXPORT,
                .uid = uid,
                .key = key,
                .precision = copy.meta.precision, /* never lose precision on the way out */
                .zstd_level = s->opts.zstd_level,
                .shuffle = true,
        };
        _cleanup_(freep) uint8_t *buf = NULL;
        size_t size;
        int r = sf_encode(&copy, &p, &buf, &size, err);
        sodium_memzero(key, sizeof(key));
        if (r < 0)
                return r;
        r = io_write_all(fd, buf, size);
        if (r < 0)
                return error_set(err, -r, "cannot write the export: %s", strerror(-r));
        return 0;
}

int store_import(Store *s, uid_t uid, int fd, const char *new_id, char ret_id[STORE_ID_MAX + 1], RwkvError *err) {
        if (!s || fd < 0 || (new_id && !store_id_is_valid(new_id)))
                return error_set(err, EINVAL, "invalid session id");
        /* Streamed from fd (a pipe is fine): every block is authenticated as it arrives, and the
         * session is written only once the FINAL block and the end of the stream were seen. */
        uint8_t key[DAEMON_KEY_BYTES];
        daemon_key_derive_export(s->key, key);
        _cleanup_(session_record_freep) SessionRecord *rec = NULL;
        int r = sf_decode_fd(fd, key, SF_KIND_EXPORT, (uid_t)-1, &rec, err);
        sodium_memzero(key, sizeof(key));
        if (r < 0)
                return error_prefix(err, "import: "), r;

        if (new_id)
                snprintf(rec->meta.id, sizeof(rec->meta.id), "%s", new_id);
        if (!store_id_is_valid(rec->meta.id))
                return error_set(err, EINVAL, "import: the export names no session id; give one");
        _cleanup_(closep) int ufd = uid_dir(s, uid, true);
        if (ufd < 0)
                return write_error(err, ufd, "session", rec->meta.id);
        /* The id stays reserved while a copy that failed its checks is kept (until DeleteSession): the
         * manager checks an id given with the call, this one an id learned from the export. */
        char kept[NAME_MAX + 1];
        if (corrupt_copies(ufd, rec->meta.id, false, false, kept, sizeof(kept)) > 0)
                return error_set(err, EBADMSG,
                                 "session '%s' cannot be used: a stored copy that failed its checks is kept as '%s'; "
                                 "delete the session to reuse its id",
                                 rec->meta.id, kept);
        char name[STORE_ID_MAX + 32];
        session_name(name, sizeof(name), rec->meta.id);
        /* Re-sealed with the importing uid's key: the file now belongs to uid alone. */
        r = save_sealed(s, uid, ufd, name, rec, false, true, "session", err);
        if (r < 0)
                return r;
        (void)checkpoints_remove(ufd, rec->meta.id, false, false);
        if (ret_id)
                snprintf(ret_id, STORE_ID_MAX + 1, "%s", rec->meta.id);
        return 0;
}

/* ---- quotas ---- */

int store_session_usage(Store *s, uid_t uid, const char *id, StoreSessionUsage *ret) {
        if (!s || !ret || !store_id_is_valid(id))
                return -EINVAL;
        StoreSessionUsage u = {};
        _cleanup_(closep) int ufd = uid_dir(s, uid, false);
        if (ufd == -ENOENT) {
                *ret = u;
                return 0;
        }
        if (ufd < 0)
                return ufd;
        char name[STORE_ID_MAX + 32];
        session_name(name, sizeof(name), id);
        struct stat st;
        if (fstatat(ufd, name, &st, AT_SYMLINK_NOFOLLOW) >= 0 && S_ISREG(st.st_mode))
                u.file_bytes = (uint64_t)st.st_size;
        else if (errno != ENOENT)
                return -errno;
        _cleanup_(closep) int cfd = checkpoint_dir(ufd, id, false);
        _cleanup_(closedirp) DIR *d = cfd >= 0 ? opendir_at(cfd) : NULL;
        if (cfd >= 0 && !d)
                return -errno;
        if (cfd < 0 && cfd != -ENOENT)
                return cfd;
        struct dirent *de;
        while (d && (de = readdir(d))) {
                uint32_t turn;
                if (!name_to_turn(de->d_name, &turn) || fstatat(cfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
                    !S_ISREG(st.st_mode))
                        continue;
                u.checkpoints++;
                u.checkpoint_bytes += (uint64_t)st.st_size;
        }
        *ret = u;
        return 0;
}

static void dir_usage(int dir_fd, uint64_t *count, uint64_t *bytes, bool count_sessions) {
        _cleanup_(closedirp) DIR *d = opendir_at(dir_fd);
        if (!d)
                return;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                struct stat st;
                if (fstatat(dir_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                if (S_ISDIR(st.st_mode)) {
                        if (!count_sessions)
                                continue;
                        _cleanup_(closep) int cfd =
                                openat(dir_fd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                        if (cfd >= 0)
                                dir_usage(cfd, count, bytes, false);
                        continue;
                }
                if (!S_ISREG(st.st_mode))
                        continue;
                *bytes += (uint64_t)st.st_size;
                char id[STORE_ID_MAX + 1];
                if (count_sessions && name_to_id(de->d_name, id))
                        (*count)++;
        }
}

int store_usage(Store *s, uid_t uid, uint64_t *ret_count, uint64_t *ret_bytes) {
        if (!s)
                return -EINVAL;
        uint64_t count = 0, bytes = 0;
        _cleanup_(closep) int ufd = uid_dir(s, uid, false);
        if (ufd >= 0)
                dir_usage(ufd, &count, &bytes, true);
        else if (ufd != -ENOENT)
                return ufd;
        if (ret_count)
                *ret_count = count;
        if (ret_bytes)
                *ret_bytes = bytes;
        return 0;
}
