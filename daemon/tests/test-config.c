/* test-config.c: rwkvd.conf parsing: defaults, every key, sizes, and refusals of bad input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/config.h"
#include "engine/common/macros.h"
#include "tests/lib/check.h"

static char *write_tmp(const char *text) {
        static char path[64];
        strcpy(path, "/tmp/test-config-XXXXXX");
        int fd = mkstemp(path);
        CHECK(fd >= 0);
        CHECK(write(fd, text, strlen(text)) == (ssize_t) strlen(text));
        close(fd);
        return path;
}

int main(void) {
        Config c;
        uint64_t v;
        uint32_t u;

        CHECK_OK(config_parse_size("0", &v));
        CHECK(v == 0);
        CHECK_OK(config_parse_size("64M", &v));
        CHECK(v == 64ULL << 20);
        CHECK_ERR(config_parse_size("2GiB", &v), EINVAL);
        CHECK_OK(config_parse_size("3KB", &v));
        CHECK(v == 3072);
        CHECK_ERR(config_parse_size("-1", &v), EINVAL);
        CHECK_ERR(config_parse_size("", &v), EINVAL);
        CHECK_ERR(config_parse_size("12x", &v), EINVAL);
        CHECK_ERR(config_parse_size("99999999999999999999", &v), ERANGE);
        CHECK_ERR(config_parse_size("99999999999T", &v), ERANGE);
        CHECK_OK(config_parse_u32("4294967295", &u));
        CHECK(u == UINT32_MAX);
        CHECK_ERR(config_parse_u32("4294967296", &u), ERANGE);
        CHECK_OK(config_parse_precision("fp32", &u));
        CHECK(u == 0);
        CHECK_OK(config_parse_precision("fp16", &u));
        CHECK(u == 1);
        CHECK_ERR(config_parse_precision("FP16", &u), EINVAL);
        CHECK_ERR(config_parse_precision("", &u), EINVAL);

        config_init(&c);
        CHECK(c.limits.max_sessions_per_user > 0 && c.limits.max_streams > 0);
        char *p = write_tmp("[model]\npath=/m.rwkv\nthreads=3\nvocab=/v.txt\n"
                            "[limits]\nmax_sessions_per_user=5\nmax_generations_per_user=2\n"
                            "max_prompt_bytes=1M\nmax_tokens_per_request=77\nmax_streams=9\n"
                            "[store]\nstate_dir=/s\nhot_budget_bytes=10M\ncommit_every_tokens=8\nstate_precision=bf16\n"
                            "[scheduler]\nprefill_chunk=32\nmax_batch=4\n");
        CHECK_OK(config_parse_file(&c, p));
        unlink(p);
        CHECK_STREQ(c.model_path, "/m.rwkv");
        CHECK_STREQ(c.vocab_path, "/v.txt");
        CHECK_STREQ(c.state_dir, "/s");
        CHECK(c.threads == 3);
        CHECK(c.limits.max_sessions_per_user == 5 && c.limits.max_generations_per_user == 2);
        CHECK(c.limits.max_prompt_bytes == 1 << 20 && c.limits.max_tokens_per_request == 77);
        CHECK(c.limits.max_streams == 9 && c.hot_budget_bytes == 10 << 20 && c.commit_every_tokens == 8);
        CHECK(c.prefill_chunk == 32 && c.max_batch == 4);
        CHECK(c.state_precision == 2);
        config_done(&c);

        /* [sampling]: only the keys given are marked set. */
        config_init(&c);
        CHECK(c.sampling.set == 0);
        p = write_tmp("[sampling]\ntemperature=0.7\ntop_p=0.9\npresence_penalty=0\ntop_k=40\n");
        CHECK_OK(config_parse_file(&c, p));
        unlink(p);
        CHECK(c.sampling.set == (SAMPLING_SET_TEMPERATURE | SAMPLING_SET_TOP_P | SAMPLING_SET_PRESENCE_PENALTY |
                                 SAMPLING_SET_TOP_K));
        CHECK(c.sampling.temperature == 0.7 && c.sampling.top_p == 0.9 && c.sampling.presence_penalty == 0 &&
              c.sampling.top_k == 40);
        config_done(&c);

        /* Unknown keys, bad values and syntax errors are refused (and logged). */
        const char *bad[] = {
                "[limits]\nmax_streams=lots\n",
                "[limits]\nno_such_key=1\n",
                "[nosection]\npath=x\n",
                "[model]\nthreads=99999999999\n",
                "[model\npath=x\n",
                "[sampling]\ntop_p=1.5\n",
                "[sampling]\ntemperature=nan\n",
                "[sampling]\npenalty_decay=0.5x\n",
                "[sampling]\nmin_p=1\n",
                "[sampling]\nno_such=1\n",
                "[store]\nstate_precision=fp8\n",
                /* out of the documented ranges (rwkvd.conf(5)): refused, never clamped */
                "[model]\nthreads=257\n",
                "[scheduler]\nprefill_chunk=0\n",
                "[scheduler]\nprefill_chunk=4097\n",
                "[scheduler]\nmax_batch=0\n",
                "[scheduler]\nmax_batch=257\n",
                "[limits]\nmax_sessions_per_user=0\n",
                "[limits]\nmax_generations_per_user=0\n",
                "[limits]\nmax_prompt_bytes=0\n",
                "[limits]\nmax_tokens_per_request=0\n",
                "[limits]\nmax_streams=0\n",
                "[limits]\nmax_title_bytes=0\n",
                "[limits]\nmax_stop_strings=0\n",
                "[limits]\nmax_stop_strings=17\n",
                "[limits]\nmax_stop_bytes=0\n",
                "[limits]\nmax_stop_bytes=300\n",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                config_init(&c);
                p = write_tmp(bad[i]);
                CHECK_ERR(config_parse_file(&c, p), EINVAL);
                unlink(p);
                config_done(&c);
        }
        /* the edges of those ranges are fine */
        config_init(&c);
        p = write_tmp("[model]\nthreads=256\n[scheduler]\nprefill_chunk=4096\nmax_batch=256\n"
                      "[limits]\nmax_stop_strings=16\nmax_stop_bytes=256\nmax_streams=1\n");
        CHECK_OK(config_parse_file(&c, p));
        unlink(p);
        CHECK(c.threads == 256 && c.prefill_chunk == 4096 && c.max_batch == 256 && c.limits.max_stop_strings == 16 &&
              c.limits.max_stop_bytes == 256 && c.limits.max_streams == 1);
        config_done(&c);
        config_init(&c);
        CHECK_ERR(config_parse_file(&c, "/nonexistent/rwkvd.conf"), ENOENT);
        CHECK_ERR(config_parse_file(&c, "/tmp"), EISDIR); /* a folder is not a configuration */
        config_done(&c);
        return 0;
}
