/* cmd-run.c: placeholder, replaced by the owning change. */
#include "tools/rwkvctl/rwkvctl.h"
int verb_run(int argc, char *argv[]) { return fail("%s: not built yet", argv[0]); }
int verb_perplexity(int argc, char *argv[]) { return fail("%s: not built yet", argv[0]); }
