/* bind.c: find a model's tensors by name, check their shapes, and derive the small f32 copies.
 *
 * Every check here guards the forward pass: after binding, the kernels may index any row of any
 * matrix without further bounds checks. Messages name the tensor, so a user can tell which file is
 * broken and how. */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine/arch/model-internal.h"

void *model_own(Model *m, size_t bytes) {
        if (m->n_owned == m->cap_owned) {
                size_t cap = m->cap_owned ? m->cap_owned * 2 : 64;
                void **o = realloc(m->owned, cap * sizeof(void *));
                if (!o)
                        return NULL;
                m->owned = o;
                m->cap_owned = cap;
        }
        /* 64-byte alignment keeps the kernels' vector loads on whole cache lines */
        void *p = NULL;
        if (posix_memalign(&p, 64, bytes ? ALIGN_UP(bytes, (size_t)64) : 64) != 0)
                return NULL;
        memset(p, 0, bytes);
        m->owned[m->n_owned++] = p;
        return p;
}

_printf_(3, 0) static const Tensor *tensor_findv(const Model *m, char name[static 128], const char *fmt, va_list ap) {
        int n = vsnprintf(name, 128, fmt, ap);
        if (n < 0 || n >= 128)
                return NULL;
        return tensor_table_get(m->table, name);
}

const Tensor *model_tensor(const Model *m, const char *fmt, ...) {
        char name[128];
        va_list ap;
        va_start(ap, fmt);
        const Tensor *t = tensor_findv(m, name, fmt, ap);
        va_end(ap);
        return t;
}

static void shape_str(const Tensor *t, char *buf, size_t len) {
        size_t o = 0;
        o += snprintf(buf + o, len - o, "(");
        for (uint32_t i = 0; i < t->n_dims && o < len; i++)
                o += snprintf(buf + o, len - o, "%s%" PRIu64, i ? ", " : "", t->shape[i]);
        if (o < len)
                snprintf(buf + o, len - o, ")");
}

static uint64_t nelem_checked(const Tensor *t) {
        uint64_t n = 1;
        for (uint32_t i = 0; i < t->n_dims && i < TENSOR_MAX_DIMS; i++)
                if (__builtin_mul_overflow(n, t->shape[i], &n))
                        return UINT64_MAX;
        return n;
}

/* Decode any tensor of n elements to f32, row by row (its last dimension is the row). */
static int tensor_to_f32(const Tensor *t, const char *name, float *out, size_t n, RwkvError *err) {
        if (!dtype_is_valid(t->dtype))
                return error_set(err, EBADMSG, "tensor '%s' has an unknown type %d", name, (int)t->dtype);
        if (t->n_dims < 1 || t->n_dims > TENSOR_MAX_DIMS)
                return error_set(err, EBADMSG, "tensor '%s' has %u dimensions", name, t->n_dims);
        uint64_t cols = tensor_cols(t);
        if (cols == 0 || n % cols != 0)
                return error_set(err, EBADMSG, "tensor '%s' has a bad shape", name);
        size_t rows = n / cols, rb = dtype_row_bytes(t->dtype, cols);
        if (rb == 0)
                return error_set(err, EBADMSG, "tensor '%s': rows of %" PRIu64 " elements do not fit type %s", name,
                                 cols, dtype_name(t->dtype));
        if (rows > t->nbytes / rb)
                return error_set(err, EBADMSG, "tensor '%s' is shorter than its shape", name);
        if (rows % dtype_group_rows(t->dtype) != 0)
                return error_set(err, EBADMSG, "tensor '%s': %zu rows are not whole groups of type %s", name, rows,
                                 dtype_name(t->dtype));
        dtype_rows_to_f32(t->dtype, t->data, cols, 0, rows, out);
        return 0;
}

static int check_finite(const float *v, size_t n, const char *name, RwkvError *err) {
        for (size_t i = 0; i < n; i++)
                if (!isfinite(v[i]))
                        return error_set(err, EBADMSG, "tensor '%s' holds a non-finite value at element %zu", name, i);
        return 0;
}

_printf_(6, 0) static int vec_common(Model *m, RwkvError *err, size_t n, size_t n_small, float **ret, const char *fmt,
                                     va_list ap) {
        char name[128];
        const Tensor *t = tensor_findv(m, name, fmt, ap);
        if (!t)
                return error_set(err, ENOENT, "missing tensor '%s'", name);

        uint64_t have = nelem_checked(t);
        if (have != n && (n_small == 0 || have != n_small)) {
                char s[96];
                shape_str(t, s, sizeof(s));
                if (n_small)
                        return error_set(err, EBADMSG, "tensor '%s' has shape %s, expected %zu or %zu elements", name,
                                         s, n_small, n);
                return error_set(err, EBADMSG, "tensor '%s' has shape %s, expected %zu elements", name, s, n);
        }

        float *v = model_own(m, n * sizeof(float));
        if (!v)
                return -ENOMEM;
        int r = tensor_to_f32(t, name, v, (size_t)have, err);
        if (r < 0)
                return r;
        r = check_finite(v, (size_t)have, name, err);
        if (r < 0)
                return r;
        if (have != n) {
                /* expand in place from the back: element i of the small vector covers n/n_small slots */
                size_t rep = n / n_small;
                for (size_t i = n_small; i-- > 0;)
                        for (size_t j = rep; j-- > 0;)
                                v[i * rep + j] = v[i];
        }
        *ret = v;
        return 0;
}

int bind_vec(Model *m, RwkvError *err, size_t n, float **ret, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = vec_common(m, err, n, 0, ret, fmt, ap);
        va_end(ap);
        return r;
}

int bind_vec_bcast(Model *m, RwkvError *err, size_t n, size_t n_small, float **ret, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = vec_common(m, err, n, n_small && n % n_small == 0 ? n_small : 0, ret, fmt, ap);
        va_end(ap);
        return r;
}

static int shape_error(const Tensor *t, const char *name, const uint64_t *want, uint32_t n_want, RwkvError *err) {
        char s[96], w[96];
        Tensor tw = { .n_dims = n_want };
        memcpy(tw.shape, want, n_want * sizeof(uint64_t));
        shape_str(t, s, sizeof(s));
        shape_str(&tw, w, sizeof(w));
        return error_set(err, EBADMSG, "tensor '%s' has shape %s, expected %s", name, s, w);
}

static bool shape_is(const Tensor *t, const uint64_t *want, uint32_t n_want) {
        if (t->n_dims != n_want)
                return false;
        for (uint32_t i = 0; i < n_want; i++)
                if (t->shape[i] != want[i])
                        return false;
        return true;
}

/* View `count` stacked (rows, cols) matrices of t, checking the bytes are there. */
static int mat_views(Model *m, const Tensor *t, const char *name, size_t count, size_t rows, size_t cols, Mat *ret,
                     RwkvError *err) {
        if (!dtype_is_valid(t->dtype))
                return error_set(err, EBADMSG, "tensor '%s' has an unknown type %d", name, (int)t->dtype);
        size_t rb = dtype_row_bytes(t->dtype, cols);
        if (rb == 0)
                return error_set(err, EBADMSG, "tensor '%s': rows of %zu elements do not fit type %s", name, cols,
                                 dtype_name(t->dtype));
        if (count * rows > t->nbytes / rb)
                return error_set(err, EBADMSG, "tensor '%s' is shorter than its shape", name);
        /* every view must start on a group of a grouped type (kernels/dtype.h) */
        if (rows % dtype_group_rows(t->dtype) != 0)
                return error_set(err, EBADMSG, "tensor '%s': matrices of %zu rows are not whole groups of type %s",
                                 name, rows, dtype_name(t->dtype));
        for (size_t i = 0; i < count; i++) {
                ret[i] = (Mat){ .t = {
                                        .dtype = t->dtype,
                                        .n_dims = 2,
                                        .shape = { rows, cols },
                                        .data = (const uint8_t *)t->data + i * rows * rb,
                                        .nbytes = (uint64_t)rows * rb,
                                } };
                m->info.weight_bytes += (uint64_t)rows * rb;
        }
        return 0;
}

int bind_mat(Model *m, RwkvError *err, size_t rows, size_t cols, Mat *ret, const char *fmt, ...) {
        char name[128];
        va_list ap;
        va_start(ap, fmt);
        const Tensor *t = tensor_findv(m, name, fmt, ap);
        va_end(ap);
        if (!t)
                return error_set(err, ENOENT, "missing tensor '%s'", name);
        uint64_t want[2] = { rows, cols };
        if (!shape_is(t, want, 2))
                return shape_error(t, name, want, 2, err);
        return mat_views(m, t, name, 1, rows, cols, ret, err);
}

/* Official checkpoints keep LoRA factors as (in, out) for `x @ W`; the kernels want (out, in). The
 * copy keeps f32/f16/bf16 as they are (a transpose only moves elements, so results stay exact) and
 * widens block types to f32. These matrices are a few percent of the model. */
static int transpose_copy(Model *m, const Tensor *t, const char *name, size_t count, size_t rows, size_t cols, Mat *ret,
                          RwkvError *err) {
        size_t per = rows * cols;
        _cleanup_(freep) float *src = malloc(count * per * sizeof(float));
        _cleanup_(freep) float *tmp = malloc(per * sizeof(float));
        if (!src || !tmp)
                return -ENOMEM;
        int r = tensor_to_f32(t, name, src, count * per, err);
        if (r < 0)
                return r;
        r = check_finite(src, count * per, name, err);
        if (r < 0)
                return r;

        DType dt = t->dtype == DTYPE_F16 || t->dtype == DTYPE_BF16 ? t->dtype : DTYPE_F32;
        size_t rb = dtype_row_bytes(dt, cols);
        for (size_t i = 0; i < count; i++) {
                const float *s = src + i * per; /* (cols, rows) */
                for (size_t o = 0; o < rows; o++)
                        for (size_t c = 0; c < cols; c++)
                                tmp[o * cols + c] = s[c * rows + o];
                uint8_t *data = model_own(m, rows * rb);
                if (!data)
                        return -ENOMEM;
                for (size_t o = 0; o < rows; o++) {
                        r = dtype_row_from_f32(dt, tmp + o * cols, data + o * rb, cols);
                        if (r < 0)
                                return error_set(err, -r, "tensor '%s': cannot store as %s", name, dtype_name(dt));
                }
                ret[i] = (Mat){ .t = {
                                        .dtype = dt,
                                        .n_dims = 2,
                                        .shape = { rows, cols },
                                        .data = data,
                                        .nbytes = (uint64_t)rows * rb,
                                } };
                m->info.weight_bytes += (uint64_t)rows * rb;
        }
        return 0;
}

int bind_lora(Model *m, RwkvError *err, size_t count, size_t rows, size_t cols, Mat *ret, const char *fmt, ...) {
        char name[128];
        va_list ap;
        va_start(ap, fmt);
        const Tensor *t = tensor_findv(m, name, fmt, ap);
        va_end(ap);
        if (!t)
                return error_set(err, ENOENT, "missing tensor '%s'", name);

        bool transposed = m->conv == PARAM_CONVENTION_PTH;
        uint64_t want[3];
        uint32_t nd = 0;
        if (count > 1)
                want[nd++] = count;
        want[nd++] = transposed ? cols : rows;
        want[nd++] = transposed ? rows : cols;
        if (!shape_is(t, want, nd))
                return shape_error(t, name, want, nd, err);
        if (transposed)
                return transpose_copy(m, t, name, count, rows, cols, ret, err);
        return mat_views(m, t, name, count, rows, cols, ret, err);
}
