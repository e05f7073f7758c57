/* rwkvctl.h: the verbs of rwkvctl and the global options they share.
 * Online verbs (cmd-online.c) go through librwkv-client only; offline verbs use the engine in-process. */
#pragma once

#include <stdbool.h>

typedef enum BusKind {
        BUS_SYSTEM,
        BUS_USER,
        BUS_ADDRESS,
} BusKind;

/* Global options, set by the dispatcher from options before the verb (verbs may accept them too). */
extern bool arg_json;
extern BusKind arg_bus;
extern const char *arg_address;

/* Each verb gets argv[0] = "rwkvctl: VERB" (the name getopt's messages start with) and returns the
 * process exit status. */
int verb_generate(int argc, char *argv[]);
int verb_chat(int argc, char *argv[]);
int verb_session(int argc, char *argv[]);
int verb_status(int argc, char *argv[]);
int verb_model(int argc, char *argv[]);
int verb_eval(int argc, char *argv[]);
int verb_run(int argc, char *argv[]);
int verb_tokenize(int argc, char *argv[]);
int verb_detokenize(int argc, char *argv[]);
int verb_bench(int argc, char *argv[]);
int verb_perplexity(int argc, char *argv[]);

/* Print "rwkvctl: <message>" to stderr; returns the exit status 1 for "return fail(...)". */
int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same for invalid usage (an option, an argument, their number: what the command line alone
 * shows to be wrong); returns the exit status 2. Errors from files, the daemon or the model are
 * fail()'s. */
int fail_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
