/* placeholder.c: removed when the kernels land. */
int kernels_placeholder_(void);
int kernels_placeholder_(void) { return 0; }
