/* rwkvctl.c: command-line front end of rwkvd: global options and verb dispatch. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "protocol/bus.h"
#include "tools/rwkvctl/rwkvctl.h"

bool arg_json = false;
BusKind arg_bus = BUS_SYSTEM;
const char *arg_address = NULL;

static __attribute__((format(printf, 1, 0))) void vfail(const char *fmt, va_list ap) {
        fputs("rwkvctl: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
}

int fail(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vfail(fmt, ap);
        va_end(ap);
        return 1;
}

int fail_usage(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vfail(fmt, ap);
        va_end(ap);
        return 2;
}

static const struct {
        const char *name;
        int (*run)(int argc, char *argv[]);
        const char *summary;
} verbs[] = {
        { "generate", verb_generate, "stream a generation from the daemon (prompt from argument or stdin)" },
        { "chat", verb_chat, "interactive chat in a session" },
        { "session", verb_session, "list | show ID | fork ID [NEWID] | delete ID | export ID FILE | import FILE [ID]" },
        { "status", verb_status, "daemon status: model, threads, sessions, memory, tokens/s" },
        { "model", verb_model, "info FILE | convert IN OUT | random ... OUT (offline)" },
        { "eval", verb_eval, "--model FILE --tokens LIST --logits: print final logits (offline)" },
        { "run", verb_run, "--model FILE [PROMPT]: generate in-process, no daemon (offline)" },
        { "tokenize", verb_tokenize, "stdin text -> token ids (offline)" },
        { "detokenize", verb_detokenize, "token ids -> text on stdout (offline)" },
        { "bench", verb_bench, "--model FILE: prefill/decode speed (offline)" },
        { "perplexity", verb_perplexity, "--model FILE < text: bits per token and byte (offline)" },
};

static void help(void) {
        printf("rwkvctl [--system|--user|--address ADDR] [--json] COMMAND ...\n\n"
               "Talk to rwkvd, the RWKV language-model daemon, or use the engine offline.\n\n"
               "Commands:\n");
        for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
                printf("  %-11s %s\n", verbs[i].name, verbs[i].summary);
        printf("\nOptions:\n"
               "  --system        the system bus (default)\n"
               "  --user          the session bus\n"
               "  --address ADDR  any other bus (also $" RWKV_BUS_ADDRESS_ENV ")\n"
               "  --json          print data as JSON\n"
               "  -h --help       this help\n"
               "  --version       print the version\n\n"
               "See rwkvctl(1).\n");
}

int main(int argc, char *argv[]) {
        enum { OPT_VERSION = 0x100, OPT_SYSTEM, OPT_USER, OPT_ADDRESS, OPT_JSON };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, OPT_VERSION },
                { "system", no_argument, NULL, OPT_SYSTEM },
                { "user", no_argument, NULL, OPT_USER },
                { "address", required_argument, NULL, OPT_ADDRESS },
                { "json", no_argument, NULL, OPT_JSON },
                {},
        };

        const char *env = getenv(RWKV_BUS_ADDRESS_ENV);
        if (env && *env) {
                arg_bus = BUS_ADDRESS;
                arg_address = env;
        }

        /* getopt's messages start with argv[0]: "rwkvctl: unrecognized option", not the path. */
        argv[0] = (char *)"rwkvctl";
        /* '+': stop at the verb, so each verb parses its own options. */
        int c;
        while ((c = getopt_long(argc, argv, "+h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case OPT_VERSION:
                        printf("rwkvctl %s\n", RWKVD_VERSION);
                        return 0;
                case OPT_SYSTEM:
                        arg_bus = BUS_SYSTEM;
                        break;
                case OPT_USER:
                        arg_bus = BUS_USER;
                        break;
                case OPT_ADDRESS:
                        arg_bus = BUS_ADDRESS;
                        arg_address = optarg;
                        break;
                case OPT_JSON:
                        arg_json = true;
                        break;
                default:
                        return 2;
                }

        if (optind >= argc) {
                help();
                return 2;
        }
        const char *verb = argv[optind];
        for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
                if (strcmp(verb, verbs[i].name) == 0) {
                        int idx = optind;
                        optind = 0; /* glibc: 0 re-initializes getopt for the verb's own parsing */
                        /* getopt names the program by argv[0] in its messages ("X: unrecognized
                         * option"): "rwkvctl: VERB" makes them look like every other error line. */
                        char name[32];
                        snprintf(name, sizeof(name), "rwkvctl: %s", verbs[i].name);
                        argv[idx] = name;
                        return verbs[i].run(argc - idx, argv + idx);
                }
        return fail_usage("unknown command '%s' (see rwkvctl --help)", verb);
}
