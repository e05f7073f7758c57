/* cmd-online.c: placeholder, replaced by the owning change. */
#include "tools/rwkvctl/rwkvctl.h"
int verb_generate(int argc, char *argv[]) { return fail("%s: not built yet", argv[0]); }
int verb_chat(int argc, char *argv[]) { return fail("%s: not built yet", argv[0]); }
int verb_session(int argc, char *argv[]) { return fail("%s: not built yet", argv[0]); }
int verb_status(int argc, char *argv[]) { return fail("%s: not built yet", argv[0]); }
