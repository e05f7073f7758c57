/* test-client-api.c: librwkv-client's public API without a daemon: argument validation, option
 * setters, NULL-safe destructors, connection errors. Uses <rwkv/client.h> only, like an application. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rwkv/client.h>

#include "tests/lib/check.h"

int main(void) {
        RwkvGenerateOptions *o = NULL;
        RwkvClient *c = NULL;

        CHECK(rwkv_client_version() && strlen(rwkv_client_version()) > 0);

        /* Destructors take NULL. */
        CHECK(rwkv_client_free(NULL) == NULL);
        CHECK(rwkv_stream_free(NULL) == NULL);
        CHECK(rwkv_info_free(NULL) == NULL);
        CHECK(rwkv_session_list_free(NULL) == NULL);
        CHECK(rwkv_generate_options_free(NULL) == NULL);

        /* Options validate their values. */
        CHECK_OK(rwkv_generate_options_new(&o));
        CHECK_OK(rwkv_generate_options_set_max_tokens(o, 10));
        CHECK_OK(rwkv_generate_options_set_temperature(o, 0));
        CHECK_ERR(rwkv_generate_options_set_temperature(o, -1), EINVAL);
        CHECK_ERR(rwkv_generate_options_set_temperature(o, NAN), EINVAL);
        CHECK_ERR(rwkv_generate_options_set_top_p(o, 0), EINVAL);
        CHECK_ERR(rwkv_generate_options_set_top_p(o, 1.5), EINVAL);
        CHECK_OK(rwkv_generate_options_set_top_p(o, 1));
        CHECK_ERR(rwkv_generate_options_set_min_p(o, 2), EINVAL);
        CHECK_ERR(rwkv_generate_options_set_min_p(o, 1), EINVAL); /* the daemon's range is [0, 1) */
        CHECK_OK(rwkv_generate_options_set_min_p(o, 0.999));
        CHECK_ERR(rwkv_generate_options_set_penalty_decay(o, INFINITY), EINVAL);
        CHECK_ERR(rwkv_generate_options_add_stop(o, "", 0), EINVAL);
        CHECK_ERR(rwkv_generate_options_add_stop(o, "a\0b", 3), EINVAL);
        for (int i = 0; i < 64; i++)
                CHECK_OK(rwkv_generate_options_add_stop(o, "\n\n", 2));
        CHECK_ERR(rwkv_generate_options_add_stop(o, "x", 1), E2BIG);
        CHECK_ERR(rwkv_generate_options_set_max_tokens(NULL, 1), EINVAL);
        rwkv_generate_options_free(o);

        /* Connections. */
        CHECK_ERR(rwkv_client_new(99, NULL, &c), EINVAL);
        unsetenv("RWKVD_BUS_ADDRESS");
        CHECK_ERR(rwkv_client_new(RWKV_BUS_ADDRESS, NULL, &c), EINVAL);
        CHECK(rwkv_client_new(RWKV_BUS_ADDRESS, "unix:path=/nonexistent/rwkvd-test-bus", &c) < 0);
        CHECK(rwkv_client_new(RWKV_BUS_ADDRESS, "not an address", &c) < 0);
        CHECK(c == NULL); /* written only on success */

        /* Calls with NULL handles fail cleanly. */
        CHECK_ERR(rwkv_session_delete(NULL, "x"), EINVAL);
        CHECK_ERR(rwkv_generate_start(NULL, NULL, "", 0, NULL, NULL), EINVAL);
        CHECK_ERR(rwkv_stream_read(NULL, 0), EINVAL);
        CHECK_ERR(rwkv_stream_cancel(NULL), EINVAL);
        CHECK(rwkv_info_get_count(NULL) == 0 && rwkv_info_get_key(NULL, 0) == NULL);
        CHECK_ERR(rwkv_info_get_string(NULL, "x", NULL), ENOENT);
        CHECK(rwkv_session_list_get_count(NULL) == 0 && rwkv_session_list_get_id(NULL, 3) == NULL);
        CHECK(strcmp(rwkv_client_get_error_message(NULL), "") == 0);
        fprintf(stderr, "client api: ok\n");
        return 0;
}
