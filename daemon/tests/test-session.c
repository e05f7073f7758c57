/* test-session.c: session ids, "UID/ID" names, turns/checkpoints, rewind, fork and the table. */
#include <stdlib.h>
#include <string.h>

#include "daemon/session.h"
#include "tests/lib/check.h"

#define NF 5
#define NV 4

static void feed(Session *s, float v) {
        for (size_t i = 0; i < NF; i++)
                s->state[i] += v;
        for (size_t i = 0; i < NV; i++)
                s->logits[i] = v;
        s->has_logits = true;
        s->tokens += 1;
}

int main(void) {
        uid_t uid;
        const char *id;
        char name[80];

        CHECK(session_id_valid("a"));
        CHECK(session_id_valid("chat-1.v2_x"));
        CHECK(!session_id_valid(""));
        CHECK(!session_id_valid(".hidden"));
        CHECK(!session_id_valid("a/b"));
        CHECK(!session_id_valid("a b"));
        CHECK(!session_id_valid("\xc3\xa9"));
        memset(name, 'x', 64);
        name[64] = 0;
        CHECK(session_id_valid(name));
        name[64] = 'x';
        name[65] = 0;
        CHECK(!session_id_valid(name));

        CHECK_OK(session_name_parse("abc", 1000, &uid, &id));
        CHECK(uid == 1000);
        CHECK_STREQ(id, "abc");
        CHECK_OK(session_name_parse("1000/abc", 0, &uid, &id));
        CHECK(uid == 1000);
        CHECK_STREQ(id, "abc");
        CHECK_OK(session_name_parse("1000/abc", 1000, &uid, &id)); /* one's own uid is fine */
        CHECK_ERR(session_name_parse("1001/abc", 1000, &uid, &id), EPERM);
        CHECK_ERR(session_name_parse("/abc", 0, &uid, &id), EINVAL);
        CHECK_ERR(session_name_parse("-1/abc", 0, &uid, &id), EINVAL);
        CHECK_ERR(session_name_parse("99999999999/abc", 0, &uid, &id), EINVAL);
        CHECK_ERR(session_name_parse("4294967295/abc", 0, &uid, &id), EINVAL);
        CHECK_ERR(session_name_parse("1/a/b", 0, &uid, &id), EINVAL);
        CHECK_ERR(session_name_parse("1/", 0, &uid, &id), EINVAL);

        float fresh[NF] = { 1, 2, 3, 4, 5 };
        Session *s = NULL;
        CHECK_OK(session_new("s1", 1000, fresh, NF, NV, &s));
        CHECK(s->state[2] == 3 && !s->has_logits && s->turns == 0);

        /* Three turns, each opening with a checkpoint. */
        for (int t = 1; t <= 3; t++) {
                CHECK_OK(session_begin_turn(s, "p", 1));
                feed(s, (float) t);
        }
        CHECK(s->turns == 3 && s->n_checkpoints == 3 && s->tokens == 3);
        CHECK(session_checkpoint(s, 0) == NULL && session_checkpoint(s, 4) == NULL);

        Session *f = NULL;
        CHECK_OK(session_fork(s, "f", 2, &f)); /* the state at the start of turn 2 */
        CHECK(f->turns == 1 && f->n_checkpoints == 1 && f->tokens == 1);
        CHECK(f->state[0] == 2 && f->logits[0] == 1 && f->has_logits);
        CHECK_ERR(session_fork(s, "g", 9, &f), ENOENT);
        Session *g = NULL;
        CHECK_OK(session_fork(s, "g", 0, &g)); /* the current point */
        CHECK(g->tokens == 3 && g->state[0] == 7 && g->turns == 3);

        CHECK_OK(session_rewind(s, 2));
        CHECK(s->turns == 1 && s->tokens == 1 && s->state[0] == 2 && s->n_checkpoints == 1);
        CHECK_ERR(session_rewind(s, 2), ENOENT);
        CHECK_OK(session_rewind(s, 1));
        CHECK(s->turns == 0 && s->tokens == 0 && s->state[0] == 1 && !s->has_logits);

        /* Only the newest SESSION_CHECKPOINTS_MAX turns stay rewindable. */
        for (int t = 0; t < SESSION_CHECKPOINTS_MAX + 3; t++) {
                CHECK_OK(session_begin_turn(s, "q", 1));
                feed(s, 1);
        }
        CHECK(s->n_checkpoints == SESSION_CHECKPOINTS_MAX);
        CHECK(session_checkpoint(s, 3) == NULL && session_checkpoint(s, 4) != NULL);
        CHECK_ERR(session_rewind(s, 1), ENOENT);
        CHECK_OK(session_rewind(s, 4));
        CHECK(s->tokens == 3);

        /* Rewind from a checkpoint read back from disk: RAM checkpoints go, turns = turn - 1. */
        float *st = calloc(NF, sizeof(float)), *pen = calloc(NV, sizeof(float));
        CHECK(st && pen);
        st[0] = 42;
        Rng rng = { { 1, 2, 3, 4 } };
        uint32_t turns_before = s->turns;
        CHECK_OK(session_rewind_to(s, 2, st, NULL, pen, 9, rng));
        CHECK(s->turns == 1 && s->n_checkpoints == 0 && s->tokens == 9 && s->state[0] == 42 && !s->has_logits);
        CHECK(s->rng.s[3] == 4 && turns_before > 2);
        CHECK_ERR(session_rewind_to(s, 5, malloc(NF * sizeof(float)), NULL, NULL, 0, rng), EINVAL);

        /* Cool drops the RAM copy, warm takes buffers back. */
        session_cool(s);
        CHECK(!s->hot && !s->state && s->n_checkpoints == 0);
        CHECK_ERR(session_warm(s, NULL, NULL, NULL), EINVAL);
        CHECK_OK(session_warm(s, calloc(NF, sizeof(float)), NULL, NULL));
        CHECK(s->hot && s->state && s->logits && s->penalties && !s->has_logits);

        CHECK_OK(session_set_title(s, "hello"));
        CHECK_STREQ(s->title, "hello");

        SessionTable t = {};
        session_table_add(&t, s);
        session_table_add(&t, f);
        g->owner = 1001;
        session_table_add(&t, g);
        CHECK(t.n == 3);
        CHECK(session_table_find(&t, 1000, "s1") == s);
        CHECK(session_table_find(&t, 1001, "s1") == NULL);
        CHECK(session_table_find(&t, 1001, "g") == g);
        CHECK(session_table_count_uid(&t, 1000) == 2);
        /* serials are distinct (forks and cold sessions included) and survive a change of id */
        CHECK(s->serial != 0 && s->serial != f->serial && s->serial != g->serial && f->serial != g->serial);
        uint64_t fs = f->serial;
        snprintf(f->id, sizeof(f->id), "%s", "renamed");
        CHECK(session_table_find_serial(&t, fs) == f && session_table_find(&t, 1000, "renamed") == f);
        CHECK(session_table_find_serial(&t, UINT64_MAX) == NULL);
        char pick[SESSION_ID_MAX + 1];
        CHECK_OK(session_table_pick_id(&t, 1000, pick));
        CHECK(session_id_valid(pick) && !session_table_find(&t, 1000, pick));
        session_table_remove(&t, f);
        session_free(f);
        CHECK(t.n == 2 && session_table_find(&t, 1000, "renamed") == NULL && session_table_find_serial(&t, fs) == NULL);
        session_table_clear(&t);
        CHECK(t.n == 0 && t.head == NULL);
        return 0;
}
