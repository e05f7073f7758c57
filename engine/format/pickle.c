/* pickle.c: a restricted pickle machine for torch state dicts.
 *
 * Values live in an arena freed at the end; the memo and the stack hold pointers into it, so BINGET
 * shares rather than copies (dicts are the only mutable values). Every count is bounded by the input
 * size: each opcode allocates at most one value plus one pointer per stack item it consumes. */
#include <inttypes.h>
#include <string.h>

#include "engine/format/pickle.h"
#include "engine/format/tensor-table-private.h"

#define STACK_MAX 65536
#define MEMO_MAX (1u << 20)

typedef enum ValueKind {
        V_MARK,
        V_NONE,
        V_BOOL,
        V_INT,
        V_STR,
        V_TUPLE,
        V_DICT,
        V_GLOBAL,
        V_STORAGE,
        V_TENSOR,
} ValueKind;

typedef enum GlobalKind {
        G_ORDERED_DICT,
        G_REBUILD_TENSOR_V2,
        G_STORAGE_FLOAT,
        G_STORAGE_HALF,
        G_STORAGE_BF16,
} GlobalKind;

typedef struct Value Value;
struct Value {
        ValueKind kind;
        union {
                int64_t i; /* INT, BOOL */
                struct {
                        const char *p;
                        size_t len;
                } s;
                struct {
                        Value **items;
                        size_t n;
                } tuple;
                struct {
                        Value **kv; /* key, value, key, value, ... */
                        size_t n, cap;
                } dict;
                GlobalKind global;
                struct {
                        DType dtype;
                        const Value *key;
                        uint64_t numel;
                } storage;
                PickleTensor tensor;
        };
};

/* Arena: a chain of blocks; nothing is freed before the end. */
typedef struct Block {
        struct Block *next;
        size_t used, cap;
        max_align_t data[];
} Block;

typedef struct Machine {
        const uint8_t *p, *end;
        Block *arena;
        Value **stack;
        size_t sp, stack_cap;
        Value **memo;
        size_t memo_cap, memo_len; /* memo_len: slots set, the index MEMOIZE uses next */
        RwkvError *err;
} Machine;

static void *arena_alloc(Machine *m, size_t n) {
        n = ALIGN_UP(n, sizeof(max_align_t));
        if (!m->arena || m->arena->cap - m->arena->used < n) {
                size_t cap = MAX(n, (size_t)64 * 1024);
                Block *b = malloc(sizeof(Block) + cap);
                if (!b)
                        return NULL;
                *b = (Block){ .next = m->arena, .cap = cap };
                m->arena = b;
        }
        void *r = (uint8_t *)m->arena->data + m->arena->used;
        m->arena->used += n;
        return r;
}

static Value *value_new(Machine *m, ValueKind kind) {
        Value *v = arena_alloc(m, sizeof(Value));
        if (v)
                *v = (Value){ .kind = kind };
        return v;
}

static int push(Machine *m, Value *v) {
        if (!v)
                return -ENOMEM;
        if (m->sp == m->stack_cap) {
                if (m->stack_cap >= STACK_MAX)
                        return error_set(m->err, E2BIG, "pickle: stack deeper than %d", STACK_MAX);
                size_t cap = m->stack_cap ? m->stack_cap * 2 : 256;
                Value **st = reallocarray(m->stack, cap, sizeof(Value *));
                if (!st)
                        return -ENOMEM;
                m->stack = st;
                m->stack_cap = cap;
        }
        m->stack[m->sp++] = v;
        return 0;
}

static int pop(Machine *m, Value **ret) {
        if (m->sp == 0 || m->stack[m->sp - 1]->kind == V_MARK)
                return error_set(m->err, EBADMSG, "pickle: stack underflow");
        *ret = m->stack[--m->sp];
        return 0;
}

/* Index of the topmost MARK. */
static int find_mark(Machine *m, size_t *ret) {
        for (size_t i = m->sp; i > 0; i--)
                if (m->stack[i - 1]->kind == V_MARK) {
                        *ret = i - 1;
                        return 0;
                }
        return error_set(m->err, EBADMSG, "pickle: no MARK on the stack");
}

static int need(Machine *m, size_t n) {
        if ((size_t)(m->end - m->p) < n)
                return error_set(m->err, EBADMSG, "pickle: truncated");
        return 0;
}

static int make_tuple(Machine *m, size_t from) {
        size_t n = m->sp - from;
        Value *t = value_new(m, V_TUPLE);
        if (!t)
                return -ENOMEM;
        t->tuple.items = arena_alloc(m, (n ? n : 1) * sizeof(Value *));
        if (!t->tuple.items)
                return -ENOMEM;
        if (n > 0) /* the stack may still be unallocated */
                memcpy(t->tuple.items, m->stack + from, n * sizeof(Value *));
        t->tuple.n = n;
        m->sp = from;
        return push(m, t);
}

static int memo_put(Machine *m, uint64_t idx) {
        if (m->sp == 0 || m->stack[m->sp - 1]->kind == V_MARK)
                return error_set(m->err, EBADMSG, "pickle: memoizing an empty stack");
        if (idx >= MEMO_MAX)
                return error_set(m->err, E2BIG, "pickle: memo index %" PRIu64 " too large", idx);
        if (idx >= m->memo_cap) {
                size_t cap = MAX((size_t)idx + 1, m->memo_cap * 2);
                Value **memo = reallocarray(m->memo, cap, sizeof(Value *));
                if (!memo)
                        return -ENOMEM;
                memset(memo + m->memo_cap, 0, (cap - m->memo_cap) * sizeof(Value *));
                m->memo = memo;
                m->memo_cap = cap;
        }
        if (!m->memo[idx])
                m->memo_len++;
        m->memo[idx] = m->stack[m->sp - 1];
        return 0;
}

static int memo_get(Machine *m, uint64_t idx) {
        if (idx >= m->memo_cap || !m->memo[idx])
                return error_set(m->err, EBADMSG, "pickle: memo %" PRIu64 " is unset", idx);
        return push(m, m->memo[idx]);
}

static int op_global(Machine *m) {
        static const struct {
                const char *module, *name;
                GlobalKind kind;
        } allowed[] = {
                { "collections", "OrderedDict", G_ORDERED_DICT },
                { "torch._utils", "_rebuild_tensor_v2", G_REBUILD_TENSOR_V2 },
                { "torch", "FloatStorage", G_STORAGE_FLOAT },
                { "torch", "HalfStorage", G_STORAGE_HALF },
                { "torch", "BFloat16Storage", G_STORAGE_BF16 },
        };
        const uint8_t *nl1 = memchr(m->p, '\n', m->end - m->p);
        const uint8_t *nl2 = nl1 ? memchr(nl1 + 1, '\n', m->end - nl1 - 1) : NULL;
        if (!nl2)
                return error_set(m->err, EBADMSG, "pickle: truncated GLOBAL");
        const char *mod = (const char *)m->p, *name = (const char *)nl1 + 1;
        size_t mod_len = nl1 - m->p, name_len = nl2 - nl1 - 1;
        m->p = nl2 + 1;
        for (size_t i = 0; i < ELEMENTSOF(allowed); i++)
                if (strlen(allowed[i].module) == mod_len && memcmp(allowed[i].module, mod, mod_len) == 0 &&
                    strlen(allowed[i].name) == name_len && memcmp(allowed[i].name, name, name_len) == 0) {
                        Value *v = value_new(m, V_GLOBAL);
                        if (!v)
                                return -ENOMEM;
                        v->global = allowed[i].kind;
                        return push(m, v);
                }
        return error_set(m->err, EPERM,
                         "pickle: refusing global '%.*s.%.*s' (only PyTorch tensor state dicts are accepted)",
                         (int)MIN(mod_len, 100u), mod, (int)MIN(name_len, 100u), name);
}

static int int_tuple(Machine *m, const Value *t, const char *what, uint32_t *ret_n, int64_t out[PICKLE_MAX_DIMS]) {
        if (t->kind != V_TUPLE)
                return error_set(m->err, EBADMSG, "pickle: tensor %s is not a tuple", what);
        if (t->tuple.n > PICKLE_MAX_DIMS)
                return error_set(m->err, EBADMSG, "pickle: tensor with %zu dimensions (at most %d)", t->tuple.n,
                                 PICKLE_MAX_DIMS);
        for (size_t i = 0; i < t->tuple.n; i++) {
                if (t->tuple.items[i]->kind != V_INT)
                        return error_set(m->err, EBADMSG, "pickle: tensor %s holds a non-integer", what);
                out[i] = t->tuple.items[i]->i;
        }
        *ret_n = (uint32_t)t->tuple.n;
        return 0;
}

/* _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]) */
static int rebuild_tensor(Machine *m, const Value *args) {
        if (args->kind != V_TUPLE || args->tuple.n < 6 || args->tuple.n > 7)
                return error_set(m->err, EBADMSG, "pickle: _rebuild_tensor_v2 needs 6 or 7 arguments");
        Value *const *a = args->tuple.items;
        if (a[0]->kind != V_STORAGE)
                return error_set(m->err, EBADMSG, "pickle: _rebuild_tensor_v2 without a storage");
        if (a[1]->kind != V_INT || a[1]->i < 0)
                return error_set(m->err, EBADMSG, "pickle: bad storage offset");
        if (a[4]->kind != V_BOOL && a[4]->kind != V_INT)
                return error_set(m->err, EBADMSG, "pickle: bad requires_grad");
        if (a[5]->kind != V_DICT && a[5]->kind != V_NONE)
                return error_set(m->err, EBADMSG, "pickle: bad backward hooks");
        if (a[5]->kind == V_DICT && a[5]->dict.n > 0)
                return error_set(m->err, EPERM, "pickle: tensors with backward hooks are refused");

        Value *v = value_new(m, V_TENSOR);
        if (!v)
                return -ENOMEM;
        PickleTensor *t = &v->tensor;
        int64_t shape[PICKLE_MAX_DIMS];
        uint32_t n_stride;
        int r = int_tuple(m, a[2], "size", &t->n_dims, shape);
        if (r < 0)
                return r;
        r = int_tuple(m, a[3], "stride", &n_stride, t->stride);
        if (r < 0)
                return r;
        if (n_stride != t->n_dims)
                return error_set(m->err, EBADMSG, "pickle: size and stride differ in length");
        for (uint32_t i = 0; i < t->n_dims; i++) {
                if (shape[i] < 0)
                        return error_set(m->err, EBADMSG, "pickle: negative dimension");
                t->shape[i] = (uint64_t)shape[i];
        }
        t->dtype = a[0]->storage.dtype;
        t->storage_key = a[0]->storage.key->s.p;
        t->storage_key_len = a[0]->storage.key->s.len;
        t->storage_numel = a[0]->storage.numel;
        t->offset = (uint64_t)a[1]->i;
        return push(m, v);
}

static int op_reduce(Machine *m) {
        Value *args, *fn;
        int r = pop(m, &args);
        if (r < 0)
                return r;
        r = pop(m, &fn);
        if (r < 0)
                return r;
        if (fn->kind != V_GLOBAL || args->kind != V_TUPLE)
                return error_set(m->err, EPERM, "pickle: REDUCE of something other than an allowed global");
        switch (fn->global) {
        case G_ORDERED_DICT:
                if (args->tuple.n != 0)
                        return error_set(m->err, EBADMSG, "pickle: OrderedDict with arguments");
                return push(m, value_new(m, V_DICT));
        case G_REBUILD_TENSOR_V2:
                return rebuild_tensor(m, args);
        default:
                return error_set(m->err, EPERM, "pickle: a storage type is not callable");
        }
}

/* ('storage', storage_type, key, location, numel) */
static int op_binpersid(Machine *m) {
        Value *pid;
        int r = pop(m, &pid);
        if (r < 0)
                return r;
        if (pid->kind != V_TUPLE || pid->tuple.n != 5)
                return error_set(m->err, EBADMSG, "pickle: persistent id is not a 5-tuple");
        Value *const *a = pid->tuple.items;
        if (a[0]->kind != V_STR || a[0]->s.len != 7 || memcmp(a[0]->s.p, "storage", 7) != 0)
                return error_set(m->err, EPERM, "pickle: persistent id other than a storage");
        if (a[1]->kind != V_GLOBAL || a[1]->global < G_STORAGE_FLOAT)
                return error_set(m->err, EBADMSG, "pickle: storage of an unknown type");
        if (a[2]->kind != V_STR || a[3]->kind != V_STR || a[4]->kind != V_INT || a[4]->i < 0)
                return error_set(m->err, EBADMSG, "pickle: malformed storage reference");
        Value *v = value_new(m, V_STORAGE);
        if (!v)
                return -ENOMEM;
        v->storage.dtype = a[1]->global == G_STORAGE_FLOAT  ? DTYPE_F32
                           : a[1]->global == G_STORAGE_HALF ? DTYPE_F16
                                                            : DTYPE_BF16;
        v->storage.key = a[2];
        v->storage.numel = (uint64_t)a[4]->i;
        return push(m, v);
}

static int dict_add(Machine *m, Value *d, Value *k, Value *v) {
        if (d->dict.n + 2 > d->dict.cap) {
                size_t cap = d->dict.cap ? d->dict.cap * 2 : 64;
                Value **kv = arena_alloc(m, cap * sizeof(Value *));
                if (!kv)
                        return -ENOMEM;
                if (d->dict.n)
                        memcpy(kv, d->dict.kv, d->dict.n * sizeof(Value *));
                d->dict.kv = kv;
                d->dict.cap = cap;
        }
        d->dict.kv[d->dict.n++] = k;
        d->dict.kv[d->dict.n++] = v;
        return 0;
}

static int op_setitems(Machine *m, bool one) {
        size_t from = 0;
        if (one) {
                if (m->sp < 3)
                        return error_set(m->err, EBADMSG, "pickle: stack underflow");
                from = m->sp - 2;
        } else {
                int r = find_mark(m, &from);
                if (r < 0)
                        return r;
        }
        size_t n = m->sp - from - (one ? 0 : 1);
        size_t first = one ? from : from + 1;
        size_t dict_at = one ? from - 1 : from - 1;
        if (from == 0 || n % 2 != 0)
                return error_set(m->err, EBADMSG, "pickle: SETITEMS with an odd item count");
        Value *d = m->stack[dict_at];
        if (d->kind != V_DICT)
                return error_set(m->err, EBADMSG, "pickle: SETITEMS on a non-dict");
        for (size_t i = first; i < m->sp; i += 2) {
                if (m->stack[i]->kind == V_MARK || m->stack[i + 1]->kind == V_MARK)
                        return error_set(m->err, EBADMSG, "pickle: stray MARK");
                int r = dict_add(m, d, m->stack[i], m->stack[i + 1]);
                if (r < 0)
                        return r;
        }
        m->sp = from;
        return 0;
}

static int run(Machine *m, Value **ret) {
        int r;
        for (;;) {
                r = need(m, 1);
                if (r < 0)
                        return r;
                uint8_t op = *m->p++;
                switch (op) {
                case 0x80: /* PROTO */
                        if ((r = need(m, 1)) < 0)
                                return r;
                        if (*m->p < 2 || *m->p > 5)
                                return error_set(m->err, EPROTONOSUPPORT, "pickle: protocol %u", *m->p);
                        m->p++;
                        break;
                case 0x95: /* FRAME: a length hint only */
                        if ((r = need(m, 8)) < 0)
                                return r;
                        m->p += 8;
                        break;
                case '}': /* EMPTY_DICT */
                        r = push(m, value_new(m, V_DICT));
                        break;
                case ')': /* EMPTY_TUPLE */
                        r = make_tuple(m, m->sp);
                        break;
                case '(': /* MARK */
                        r = push(m, value_new(m, V_MARK));
                        break;
                case 'N':
                        r = push(m, value_new(m, V_NONE));
                        break;
                case 0x88: /* NEWTRUE */
                case 0x89: /* NEWFALSE */ {
                        Value *v = value_new(m, V_BOOL);
                        if (v)
                                v->i = op == 0x88;
                        r = push(m, v);
                        break;
                }
                case 'J': /* BININT */
                case 'K': /* BININT1 */
                case 'M': /* BININT2 */ {
                        size_t n = op == 'J' ? 4 : op == 'K' ? 1 : 2;
                        if ((r = need(m, n)) < 0)
                                return r;
                        Value *v = value_new(m, V_INT);
                        if (v)
                                v->i = op == 'J'   ? (int64_t)(int32_t)read_le32(m->p)
                                       : op == 'K' ? m->p[0]
                                                   : read_le16(m->p);
                        m->p += n;
                        r = push(m, v);
                        break;
                }
                case 0x8a: /* LONG1: little-endian two's complement of n bytes */ {
                        if ((r = need(m, 1)) < 0)
                                return r;
                        size_t n = *m->p++;
                        if (n > 8)
                                return error_set(m->err, EOVERFLOW, "pickle: integer of %zu bytes", n);
                        if ((r = need(m, n)) < 0)
                                return r;
                        uint64_t u = 0;
                        for (size_t i = 0; i < n; i++)
                                u |= (uint64_t)m->p[i] << (8 * i);
                        if (n > 0 && n < 8 && (m->p[n - 1] & 0x80))
                                u |= ~UINT64_C(0) << (8 * n);
                        m->p += n;
                        Value *v = value_new(m, V_INT);
                        if (v)
                                v->i = (int64_t)u;
                        r = push(m, v);
                        break;
                }
                case 'X': /* BINUNICODE */
                case 0x8c: /* SHORT_BINUNICODE */ {
                        size_t lb = op == 'X' ? 4 : 1;
                        if ((r = need(m, lb)) < 0)
                                return r;
                        size_t n = op == 'X' ? read_le32(m->p) : m->p[0];
                        m->p += lb;
                        if ((r = need(m, n)) < 0)
                                return r;
                        Value *v = value_new(m, V_STR);
                        if (v)
                                v->s.p = (const char *)m->p, v->s.len = n;
                        m->p += n;
                        r = push(m, v);
                        break;
                }
                case 'q': /* BINPUT */
                case 'r': /* LONG_BINPUT */
                case 'h': /* BINGET */
                case 'j': /* LONG_BINGET */ {
                        bool lng = op == 'r' || op == 'j';
                        if ((r = need(m, lng ? 4 : 1)) < 0)
                                return r;
                        uint64_t idx = lng ? read_le32(m->p) : m->p[0];
                        m->p += lng ? 4 : 1;
                        r = op == 'q' || op == 'r' ? memo_put(m, idx) : memo_get(m, idx);
                        break;
                }
                case 0x94: /* MEMOIZE: the index is the memo's current size */
                        r = memo_put(m, m->memo_len);
                        break;
                case 'c': /* GLOBAL */
                        r = op_global(m);
                        break;
                case 't': /* TUPLE */ {
                        size_t mark = 0;
                        if ((r = find_mark(m, &mark)) < 0)
                                return r;
                        /* drop the MARK itself: shift the items down by one */
                        memmove(m->stack + mark, m->stack + mark + 1, (m->sp - mark - 1) * sizeof(Value *));
                        m->sp--;
                        r = make_tuple(m, mark);
                        break;
                }
                case 0x85: /* TUPLE1 */
                case 0x86: /* TUPLE2 */
                case 0x87: /* TUPLE3 */ {
                        size_t n = op - 0x84;
                        if (m->sp < n)
                                return error_set(m->err, EBADMSG, "pickle: stack underflow");
                        for (size_t i = m->sp - n; i < m->sp; i++)
                                if (m->stack[i]->kind == V_MARK)
                                        return error_set(m->err, EBADMSG, "pickle: stray MARK");
                        r = make_tuple(m, m->sp - n);
                        break;
                }
                case 'Q': /* BINPERSID */
                        r = op_binpersid(m);
                        break;
                case 'R': /* REDUCE */
                        r = op_reduce(m);
                        break;
                case 's': /* SETITEM */
                        r = op_setitems(m, true);
                        break;
                case 'u': /* SETITEMS */
                        r = op_setitems(m, false);
                        break;
                case 'b': /* BUILD: OrderedDict state such as _metadata; kept out of the tensors */ {
                        Value *state;
                        if ((r = pop(m, &state)) < 0)
                                return r;
                        if (m->sp == 0 || m->stack[m->sp - 1]->kind != V_DICT)
                                return error_set(m->err, EPERM, "pickle: BUILD of something other than a dict");
                        break;
                }
                case '.': /* STOP */
                        if (m->sp != 1 || m->stack[0]->kind == V_MARK)
                                return error_set(m->err, EBADMSG, "pickle: STOP with %zu stack items", m->sp);
                        *ret = m->stack[0];
                        return 0;
                default:
                        if (op >= 0x20 && op < 0x7f)
                                return error_set(m->err, EPERM, "pickle: refusing opcode '%c' (0x%02x)", op, op);
                        return error_set(m->err, EPERM, "pickle: refusing opcode 0x%02x", op);
                }
                if (r < 0)
                        return r;
        }
}

int pickle_load_state_dict(const uint8_t *data, size_t size, PickleTensor **ret_tensors, size_t *ret_n,
                           RwkvError *err) {
        Machine m = { .p = data, .end = data + size, .err = err };

        Value *root = NULL;
        int r = run(&m, &root);
        if (r >= 0 && root->kind != V_DICT)
                r = error_set(err, EBADMSG, "pickle: the top-level object is not a dict");
        PickleTensor *out = NULL;
        size_t n = 0;
        if (r >= 0) {
                n = root->dict.n / 2;
                out = calloc(n ? n : 1, sizeof(PickleTensor));
                if (!out)
                        r = -ENOMEM;
        }
        for (size_t i = 0; r >= 0 && i < n; i++) {
                const Value *k = root->dict.kv[2 * i], *v = root->dict.kv[2 * i + 1];
                if (k->kind != V_STR)
                        r = error_set(err, EBADMSG, "pickle: state dict key %zu is not a string", i);
                else if (v->kind != V_TENSOR)
                        r = error_set(err, EBADMSG, "pickle: state dict entry '%.*s' is not a tensor",
                                      (int)MIN(k->s.len, 200u), k->s.p);
                else {
                        out[i] = v->tensor;
                        out[i].name = k->s.p;
                        out[i].name_len = k->s.len;
                }
        }

        while (m.arena) {
                Block *next = m.arena->next;
                free(m.arena);
                m.arena = next;
        }
        free(m.stack);
        free(m.memo);
        if (r < 0) {
                free(out);
                return r;
        }
        *ret_tensors = out;
        *ret_n = n;
        return 0;
}
