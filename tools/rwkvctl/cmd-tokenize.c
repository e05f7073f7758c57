/* cmd-tokenize.c: placeholder, replaced by the owning change. */
#include "tools/rwkvctl/rwkvctl.h"
int verb_tokenize(int argc, char *argv[]) { return fail("%s: not built yet", argv[0]); }
int verb_detokenize(int argc, char *argv[]) { return fail("%s: not built yet", argv[0]); }
