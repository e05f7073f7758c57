/* main.c: rwkvd's command line; the work is in manager.c. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/log.h"
#include "daemon/manager.h"
#include "protocol/bus.h"

static void help(void) {
        printf("rwkvd [OPTIONS...]\n\n"
               "Serve an RWKV language model to local clients over D-Bus (%s).\n\n"
               "  -h --help              Show this help\n"
               "     --version           Show the version\n"
               "     --system            Serve on the system bus (default)\n"
               "     --user              Serve on the user's session bus\n"
               "     --address ADDR      Serve on the bus at ADDR (also: $%s)\n"
               "  -m --model FILE        The model file (.rwkv, rwkv.cpp .bin, PyTorch .pth)\n"
               "     --vocab FILE        World vocabulary for models that embed none\n"
               "     --state-dir DIR     Session store (default: /var/lib/rwkvd, user: $XDG_STATE_HOME/rwkvd)\n"
               "     --state-precision fp32|fp16|bf16\n"
               "                         How saved session states are stored (default: fp32, exact)\n"
               "  -t --threads N         Compute threads (default: all CPUs)\n"
               "  -c --config FILE       Configuration file (default: %s/rwkvd/rwkvd.conf,\n"
               "                         user: $XDG_CONFIG_HOME/rwkvd/rwkvd.conf)\n"
               "  -v --verbose           Debug logging\n\n"
               "See rwkvd(8) and rwkvd.conf(5).\n",
               RWKV_BUS_NAME, RWKV_BUS_ADDRESS_ENV, RWKVD_SYSCONFDIR);
}

static int set_str(char **p, const char *v) {
        char *s = strdup(v);
        if (!s)
                return log_oom();
        free(*p);
        *p = s;
        return 0;
}

static char *user_dir(const char *env, const char *fallback, const char *leaf) {
        const char *base = getenv(env), *home = getenv("HOME");
        char *p = NULL;

        if (base && base[0] == '/')
                return asprintf(&p, "%s/rwkvd%s", base, leaf) < 0 ? NULL : p;
        if (!home || home[0] != '/')
                return NULL;
        return asprintf(&p, "%s/%s/rwkvd%s", home, fallback, leaf) < 0 ? NULL : p;
}

static int parse_argv(int argc, char *argv[], Manager *m) {
        enum { ARG_VERSION = 0x100, ARG_SYSTEM, ARG_USER, ARG_ADDRESS, ARG_VOCAB, ARG_STATE_DIR, ARG_STATE_PRECISION };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "system", no_argument, NULL, ARG_SYSTEM },
                { "user", no_argument, NULL, ARG_USER },
                { "address", required_argument, NULL, ARG_ADDRESS },
                { "model", required_argument, NULL, 'm' },
                { "vocab", required_argument, NULL, ARG_VOCAB },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "state-precision", required_argument, NULL, ARG_STATE_PRECISION },
                { "threads", required_argument, NULL, 't' },
                { "config", required_argument, NULL, 'c' },
                { "verbose", no_argument, NULL, 'v' },
                {},
        };
        /* Command-line values win over the config file, which is read after parsing. */
        _cleanup_(freep) char *model = NULL, *vocab = NULL, *state_dir = NULL, *config = NULL;
        uint32_t threads = 0, precision = 0;
        bool threads_set = false, bus_set = false, precision_set = false;
        int c, r;

        const char *env = getenv(RWKV_BUS_ADDRESS_ENV);
        if (env && *env) {
                m->bus_mode = BUS_MODE_ADDRESS;
                if (set_str(&m->bus_address, env) < 0)
                        return -ENOMEM;
        }

        while ((c = getopt_long(argc, argv, "hm:t:c:v", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("rwkvd %s\n", RWKVD_VERSION);
                        return 0;
                case ARG_SYSTEM:
                case ARG_USER:
                        if (bus_set)
                                return log_error_errno(EINVAL, "Pass only one of --system, --user, --address.");
                        m->bus_mode = c == ARG_SYSTEM ? BUS_MODE_SYSTEM : BUS_MODE_USER;
                        bus_set = true;
                        break;
                case ARG_ADDRESS:
                        if (bus_set)
                                return log_error_errno(EINVAL, "Pass only one of --system, --user, --address.");
                        m->bus_mode = BUS_MODE_ADDRESS;
                        if (set_str(&m->bus_address, optarg) < 0)
                                return -ENOMEM;
                        bus_set = true;
                        break;
                case 'm':
                        if (set_str(&model, optarg) < 0)
                                return -ENOMEM;
                        break;
                case ARG_VOCAB:
                        if (set_str(&vocab, optarg) < 0)
                                return -ENOMEM;
                        break;
                case ARG_STATE_DIR:
                        if (set_str(&state_dir, optarg) < 0)
                                return -ENOMEM;
                        break;
                case ARG_STATE_PRECISION:
                        r = config_parse_precision(optarg, &precision);
                        if (r < 0)
                                return log_error_errno(EINVAL, "Invalid --state-precision \"%s\" (fp32, fp16 or bf16).", optarg);
                        precision_set = true;
                        break;
                case 't':
                        r = config_parse_u32(optarg, &threads);
                        if (r < 0 || threads > CONFIG_MAX_THREADS)
                                return log_error_errno(EINVAL, "Invalid thread count \"%s\" (0..%d).", optarg,
                                                       CONFIG_MAX_THREADS);
                        threads_set = true;
                        break;
                case 'c':
                        if (set_str(&config, optarg) < 0)
                                return -ENOMEM;
                        break;
                case 'v':
                        log_max_level = LOG_DEBUG;
                        break;
                case '?':
                        return -EINVAL;
                default:
                        return log_error_errno(EINVAL, "Unhandled option %c.", c);
                }
        }
        if (optind < argc)
                return log_error_errno(EINVAL, "Unexpected argument \"%s\"; see --help.", argv[optind]);

        bool user = m->bus_mode == BUS_MODE_USER || (m->bus_mode == BUS_MODE_ADDRESS && getuid() != 0);
        /* The config file: explicit, or the default one when it exists. */
        if (config) {
                r = config_parse_file(&m->config, config);
                if (r == -ENOENT)
                        return log_error_errno(r, "Config file \"%s\" does not exist.", config);
                if (r < 0)
                        return log_error_errno(r, "Failed to read config file \"%s\": %m", config);
        } else {
                _cleanup_(freep) char *def = NULL;
                if (user)
                        def = user_dir("XDG_CONFIG_HOME", ".config", "/rwkvd.conf");
                else if (asprintf(&def, "%s/rwkvd/rwkvd.conf", RWKVD_SYSCONFDIR) < 0)
                        def = NULL;
                if (def) {
                        r = config_parse_file(&m->config, def);
                        /* Only a file that was asked for must be read: a default path we may not
                         * look into (a user whose $HOME is not readable) means the defaults. A
                         * default file that is read but wrong stays an error. */
                        if (r == -EACCES || r == -EPERM || r == -ENOTDIR || r == -ELOOP)
                                log_warning_errno(r, "Cannot read the default config file \"%s\", using the "
                                                  "defaults: %m", def);
                        else if (r < 0 && r != -ENOENT)
                                return log_error_errno(r, "Failed to read config file \"%s\": %m", def);
                }
        }

        if (model && set_str(&m->config.model_path, model) < 0)
                return -ENOMEM;
        if (vocab && set_str(&m->config.vocab_path, vocab) < 0)
                return -ENOMEM;
        if (precision_set)
                m->config.state_precision = precision;
        if (state_dir && set_str(&m->config.state_dir, state_dir) < 0)
                return -ENOMEM;
        if (threads_set)
                m->config.threads = threads;
        if (m->config.threads == 0) {
                long n = sysconf(_SC_NPROCESSORS_ONLN);
                m->config.threads = n > 0 ? (uint32_t) n : 1;
        }
        if (!m->config.state_dir) {
                if (user)
                        m->config.state_dir = user_dir("XDG_STATE_HOME", ".local/state", "");
                else
                        m->config.state_dir = strdup("/var/lib/rwkvd");
                if (!m->config.state_dir)
                        return log_error_errno(EINVAL, "Cannot determine the state directory; pass --state-dir.");
        }
        if (!m->config.model_path)
                return log_error_errno(EINVAL, "No model: pass --model FILE or set [model] path in the config file.");
        if (m->config.limits.max_generations_per_user == 0 || m->config.limits.max_streams == 0 ||
            m->config.limits.max_sessions_per_user == 0)
                return log_error_errno(EINVAL, "Limits max_sessions_per_user, max_generations_per_user and max_streams must be at least 1.");
        return 1;
}

int main(int argc, char *argv[]) {
        _cleanup_(manager_freep) Manager *m = NULL;
        int r;

        r = manager_new(&m);
        if (r < 0) {
                log_oom();
                return EXIT_FAILURE;
        }
        r = parse_argv(argc, argv, m);
        if (r <= 0)
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;

        r = manager_startup(m);
        if (r < 0)
                return EXIT_FAILURE;
        r = manager_run(m);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
