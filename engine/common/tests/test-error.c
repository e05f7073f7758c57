/* test-error.c: RwkvError keeps the first message and prefixes context. */
#include <string.h>

#include "engine/common/error.h"
#include "tests/lib/check.h"

int main(void) {
        RwkvError e = {0};
        CHECK(error_set(&e, EINVAL, "bad %s", "thing") == -EINVAL);
        CHECK_STREQ(e.msg, "bad thing");
        CHECK(error_prefix(&e, "tensor '%s': ", "emb.weight") == -EINVAL);
        CHECK_STREQ(e.msg, "tensor 'emb.weight': bad thing");
        CHECK(error_set(NULL, ENOENT, "ignored") == -ENOENT);
        CHECK(error_set(&e, -EBADMSG, "negative errno accepted") == -EBADMSG);
        CHECK(e.errnum == EBADMSG);
        RwkvError empty = {0};
        CHECK_STREQ(error_message(&empty, -ENOENT), strerror(ENOENT));
        return 0;
}
