/* cmd-model.c: placeholder, replaced by the owning change. */
#include "tools/rwkvctl/rwkvctl.h"
int verb_model(int argc, char *argv[]) { return fail("%s: not built yet", argv[0]); }
