/* cmd-bench.c: placeholder, replaced by the owning change. */
#include "tools/rwkvctl/rwkvctl.h"
int verb_bench(int argc, char *argv[]) { return fail("%s: not built yet", argv[0]); }
