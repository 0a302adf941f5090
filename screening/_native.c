/*
 * The screening hot path in C: the base look-up of screening/compact.py, and
 * the per-call tally of screening/metrics.py.
 *
 * Profiles of a loaded server showed the look-up's Python steps (a dict, a
 * tuple, memoryview reads, bisect, int() and shifts, then formatting a UUID)
 * costing several times their warm cost, because per-call gRPC work evicts
 * the caches they need. Here the same steps read the same arrays, so a
 * look-up is a handful of loads and no allocation until the answer.
 *
 * compact.Base keeps a pure-Python path with the same results; the tests run
 * every look-up test against both (tests/test_compact_index.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define FLAG_BITS 8 /* compact.FLAG_BITS */
#define ENABLED 0x4
#define EXPIRES 0x8
#define CALL_TYPE_MASK 0x3
#define MAX_DIGITS 15
/* Why an entry that has the number does not qualify, as screening/index/rules.py ranks it. */
#define MISS_EXPIRED 1
#define MISS_DISABLED 2
#define MISS_OTHER_DIRECTION 3

/* float("inf"): the expiry of an entry that never expires (compact.NEVER). */
static PyObject *never;

/* A tenant's part of the look-up table: four int64 in the slices array. */
typedef struct {
    int64_t shift;
    int64_t base;
    int64_t buckets;
    int64_t offset;
} Slice;

#define NVIEWS 6

typedef struct {
    PyObject_HEAD
    Py_buffer keys, table, ids, exp_pos, exp_at, slices; /* ids: (high, low) of each key's UUID */
    int views; /* how many of the buffers above are held */
    PyObject *tenants; /* dict: tenant id -> index into slices */
    Py_ssize_t nslices;
} Searcher;

static void
Searcher_dealloc(Searcher *self)
{
    Py_buffer *views[] = {&self->keys, &self->table, &self->ids, &self->exp_pos, &self->exp_at, &self->slices};
    for (int i = 0; i < self->views; i++) {
        PyBuffer_Release(views[i]);
    }
    Py_XDECREF(self->tenants);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
get_view(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize, const char *name)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS) < 0) {
        return -1;
    }
    if (view->itemsize != itemsize) {
        PyErr_Format(PyExc_TypeError, "%s: items of %zd bytes expected, got %zd", name, itemsize, view->itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* Searcher(keys, table, ids, exp_pos, exp_at, tenants, slices)
 * tenants: {tenant id: ordinal}; slices: int64 (shift, base, buckets, offset) of each ordinal in turn,
 * as compact.Base holds them (built without an object per tenant). */
static PyObject *
Searcher_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *arrays[NVIEWS];
    PyObject *tenants;
    if (kwds != NULL && PyDict_GET_SIZE(kwds) != 0) {
        PyErr_SetString(PyExc_TypeError, "Searcher takes positional arguments only");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "OOOOOO!O:Searcher", &arrays[0], &arrays[1], &arrays[2], &arrays[3], &arrays[4],
                          &PyDict_Type, &tenants, &arrays[5])) {
        return NULL;
    }
    Searcher *self = (Searcher *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    Py_buffer *views[] = {&self->keys, &self->table, &self->ids, &self->exp_pos, &self->exp_at, &self->slices};
    static const Py_ssize_t sizes[] = {8, 4, 8, 4, 8, 8};
    static const char *names[] = {"keys", "table", "ids", "exp_pos", "exp_at", "slices"};
    for (int i = 0; i < NVIEWS; i++) {
        if (get_view(arrays[i], views[i], sizes[i], names[i]) < 0) {
            Py_DECREF(self);
            return NULL;
        }
        self->views++;
    }
    if (self->ids.len != 2 * self->keys.len) {
        PyErr_SetString(PyExc_ValueError, "ids: two 64-bit halves for each key expected");
        Py_DECREF(self);
        return NULL;
    }
    self->nslices = self->slices.len / (Py_ssize_t)sizeof(Slice);
    if (self->slices.len % (Py_ssize_t)sizeof(Slice) != 0 || PyDict_GET_SIZE(tenants) != self->nslices) {
        PyErr_SetString(PyExc_ValueError, "slices: four int64 for each tenant expected");
        Py_DECREF(self);
        return NULL;
    }
    const Slice *slices = (const Slice *)self->slices.buf;
    for (Py_ssize_t i = 0; i < self->nslices; i++) {
        const Slice *s = &slices[i];
        if (s->shift < 0 || s->shift > 63 || s->buckets < 0 || s->offset < 0 ||
            (s->offset + s->buckets + 1) * 4 > self->table.len) {
            PyErr_Format(PyExc_ValueError, "slice %zd is outside the table", i);
            Py_DECREF(self);
            return NULL;
        }
    }
    PyObject *name, *ordinal;
    Py_ssize_t at = 0;
    while (PyDict_Next(tenants, &at, &name, &ordinal)) {
        Py_ssize_t i = PyLong_AsSsize_t(ordinal);
        if (i < 0 || i >= self->nslices) {
            if (!PyErr_Occurred()) {
                PyErr_Format(PyExc_ValueError, "tenant %R has no slice", name);
            }
            Py_DECREF(self);
            return NULL;
        }
    }
    self->tenants = Py_NewRef(tenants);
    return (PyObject *)self;
}

/* number_key() of compact.py, or -1 when the number is not encodable. */
static int64_t
number_key(PyObject *number)
{
    if (!PyUnicode_Check(number) || !PyUnicode_IS_ASCII(number)) {
        return -1;
    }
    Py_ssize_t len = PyUnicode_GET_LENGTH(number);
    const char *s = (const char *)PyUnicode_1BYTE_DATA(number);
    int plus = len > 0 && s[0] == '+';
    Py_ssize_t digits = len - plus;
    if (digits < 1 || digits > MAX_DIGITS) {
        return -1;
    }
    int64_t value = 0;
    for (Py_ssize_t i = plus; i < len; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9) {
            return -1;
        }
        value = value * 10 + d;
    }
    return ((value << 4 | digits) << 1 | plus) << FLAG_BITS;
}

/* The UUID of the entry at key position pos, as canonical text; NULL with IndexError outside the base. */
static PyObject *
format_id(Searcher *self, Py_ssize_t pos)
{
    if (pos < 0 || pos >= self->keys.len / 8) {
        PyErr_Format(PyExc_IndexError, "position %zd is outside the base", pos);
        return NULL;
    }
    const uint64_t *halves = (const uint64_t *)self->ids.buf + 2 * pos;
    static const char hex[] = "0123456789abcdef";
    PyObject *text = PyUnicode_New(36, 127);
    if (text == NULL) {
        return NULL;
    }
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(text);
    int nibble = 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            out[i] = '-';
            continue;
        }
        uint64_t half = halves[nibble >> 4];
        out[i] = (Py_UCS1)hex[(half >> (60 - 4 * (nibble & 15))) & 0xF];
        nibble++;
    }
    return text;
}

/* The position of the key with this number (flags ignored) in the slice of the tenant whose
 * ordinal this is (a value of self->tenants); -1 when no entry of the tenant has the number. */
static Py_ssize_t
find_key(Searcher *self, PyObject *ordinal, int64_t key)
{
    const Slice *s = &((const Slice *)self->slices.buf)[PyLong_AsSsize_t(ordinal)];
    int64_t bucket = (key >> s->shift) - s->base;
    if (bucket < 0 || bucket >= s->buckets) {
        return -1;
    }
    const uint32_t *table = (const uint32_t *)self->table.buf;
    const int64_t *keys = (const int64_t *)self->keys.buf;
    Py_ssize_t lo = table[s->offset + bucket], hi = table[s->offset + bucket + 1];
    Py_ssize_t end = hi;
    while (lo < hi) { /* bisect_left */
        Py_ssize_t mid = (lo + hi) >> 1;
        if (keys[mid] < key) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo == end || (keys[lo] >> FLAG_BITS) != (key >> FLAG_BITS)) {
        return -1;
    }
    return lo;
}

/* hit(tenant_id, number, direction, now, shadowed) -> (entry id, call type, expires_at) of the
 * tenant's qualifying entry for the number; the rank of a near miss (an entry with the number
 * that does not qualify) as an int; else None. An entry whose id is in `shadowed` (a set) is
 * not there. */
static PyObject *
Searcher_hit(Searcher *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "hit(tenant_id, number, direction, now, shadowed)");
        return NULL;
    }
    PyObject *ordinal = PyDict_GetItemWithError(self->tenants, args[0]);
    if (ordinal == NULL) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    long direction = PyLong_AsLong(args[2]);
    if (direction == -1 && PyErr_Occurred()) {
        return NULL;
    }
    double now = PyFloat_AsDouble(args[3]);
    if (now == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *shadowed = args[4];
    if (!PyAnySet_Check(shadowed)) {
        PyErr_SetString(PyExc_TypeError, "hit(): shadowed must be a set");
        return NULL;
    }
    int64_t key = number_key(args[1]);
    if (key < 0) {
        Py_RETURN_NONE;
    }
    Py_ssize_t lo = find_key(self, ordinal, key);
    if (lo < 0) {
        Py_RETURN_NONE; /* the common miss: no entry has the number */
    }
    int64_t found = ((const int64_t *)self->keys.buf)[lo];
    double expires_at = 0.0; /* read only when EXPIRES is set */
    int has_expiry = 0;
    if (found & EXPIRES) {
        const uint32_t *exp_pos = (const uint32_t *)self->exp_pos.buf;
        const double *exp_at = (const double *)self->exp_at.buf;
        Py_ssize_t a = 0, b = self->exp_pos.len / 4;
        while (a < b) {
            Py_ssize_t mid = (a + b) >> 1;
            if (exp_pos[mid] < (uint64_t)lo) {
                a = mid + 1;
            } else {
                b = mid;
            }
        }
        if (a == self->exp_pos.len / 4 || exp_pos[a] != (uint64_t)lo) {
            Py_RETURN_NONE;
        }
        expires_at = exp_at[a];
        has_expiry = 1;
    }
    /* A near miss: the number has an entry that does not qualify; its rank says why (rules.py). */
    int missed = !(found & ENABLED) ? MISS_DISABLED
                 : (has_expiry && !(now < expires_at)) ? MISS_EXPIRED
                 : !(found & direction) ? MISS_OTHER_DIRECTION
                 : 0;
    PyObject *entry_id = format_id(self, lo);
    if (entry_id == NULL) {
        return NULL;
    }
    int is_shadowed = PySet_Contains(shadowed, entry_id);
    if (is_shadowed != 0) {
        Py_DECREF(entry_id);
        if (is_shadowed < 0) {
            return NULL;
        }
        Py_RETURN_NONE; /* changed or gone since the base was built: the overlay answers for it */
    }
    if (missed) {
        Py_DECREF(entry_id);
        return PyLong_FromLong(missed);
    }
    PyObject *expires = has_expiry ? PyFloat_FromDouble(expires_at) : Py_NewRef(never);
    if (expires == NULL) {
        Py_DECREF(entry_id);
        return NULL;
    }
    PyObject *call_type = PyLong_FromLong((long)(found & CALL_TYPE_MASK));
    if (call_type == NULL) {
        Py_DECREF(entry_id);
        Py_DECREF(expires);
        return NULL;
    }
    PyObject *result = PyTuple_Pack(3, entry_id, call_type, expires);
    Py_DECREF(entry_id);
    Py_DECREF(call_type);
    Py_DECREF(expires);
    return result;
}

/* id_at(position) -> the entry's UUID as canonical text. */
static PyObject *
Searcher_id_at(Searcher *self, PyObject *arg)
{
    Py_ssize_t pos = PyLong_AsSsize_t(arg);
    if (pos == -1 && PyErr_Occurred()) {
        return NULL;
    }
    return format_id(self, pos);
}

static PyMethodDef Searcher_methods[] = {
    {"hit", (PyCFunction)(void (*)(void))Searcher_hit, METH_FASTCALL,
     "hit(tenant_id, number, direction, now, shadowed) -> (entry id, call type, expires_at), a near miss's rank, or None"},
    {"id_at", (PyCFunction)Searcher_id_at, METH_O, "id_at(position) -> the entry's id"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject SearcherType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "screening._native.Searcher",
    .tp_doc = "Look-ups over the arrays of one compact.Base.",
    .tp_basicsize = sizeof(Searcher),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Searcher_new,
    .tp_dealloc = (destructor)Searcher_dealloc,
    .tp_methods = Searcher_methods,
};

/*
 * Tally: metrics.ScreenTally in C, the per-call count of ScreenCall.
 *
 * Its Python add() was about 2,800 instructions a call (callgrind): nested
 * list indexing, a bisect over float objects and a new float for the sum;
 * in a loaded server that is about 1% of ScreenCall's throughput. Here it is
 * a few integer and float operations. Only the event loop thread adds; a
 * scrape reads under the GIL, so it never sees half an add.
 */
#define TALLY_VERDICTS 3
#define TALLY_DIRECTIONS 3

typedef struct {
    PyObject_HEAD
    double *bounds;
    Py_ssize_t nbounds;
    unsigned long long *buckets; /* nbounds + 1: the last counts calls above every bound */
    unsigned long long calls[TALLY_VERDICTS][TALLY_DIRECTIONS];
    double seconds;
} Tally;

static void
Tally_dealloc(Tally *self)
{
    PyMem_Free(self->bounds);
    PyMem_Free(self->buckets);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Tally_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *bounds;
    if (kwds != NULL && PyDict_GET_SIZE(kwds) != 0) {
        PyErr_SetString(PyExc_TypeError, "Tally(bounds) takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O!:Tally", &PyTuple_Type, &bounds)) {
        return NULL;
    }
    Tally *self = (Tally *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(bounds);
    self->nbounds = n;
    self->bounds = PyMem_Calloc(n ? n : 1, sizeof(double));
    self->buckets = PyMem_Calloc(n + 1, sizeof(unsigned long long));
    if (self->bounds == NULL || self->buckets == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        double bound = PyFloat_AsDouble(PyTuple_GET_ITEM(bounds, i));
        if (bound == -1.0 && PyErr_Occurred()) {
            Py_DECREF(self);
            return NULL;
        }
        if (i > 0 && !(bound > self->bounds[i - 1])) {
            PyErr_SetString(PyExc_ValueError, "Tally(bounds): bounds must be increasing");
            Py_DECREF(self);
            return NULL;
        }
        self->bounds[i] = bound;
    }
    return (PyObject *)self;
}

/* One screened call; verdict in 0..TALLY_VERDICTS - 1, a direction outside 1..2 counts as 0. */
static void
tally_count(Tally *self, long verdict, long direction, double seconds)
{
    self->calls[verdict][0 < direction && direction < TALLY_DIRECTIONS ? direction : 0]++;
    Py_ssize_t lo = 0, hi = self->nbounds; /* bisect_left */
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) >> 1;
        if (self->bounds[mid] < seconds) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    self->buckets[lo]++;
    self->seconds += seconds;
}

/* add(verdict, direction, seconds): one screened call; a direction outside 1..2 counts as 0. */
static PyObject *
Tally_add(Tally *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "add(verdict, direction, seconds)");
        return NULL;
    }
    long verdict = PyLong_AsLong(args[0]);
    if (verdict == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (verdict < 0 || verdict >= TALLY_VERDICTS) {
        PyErr_Format(PyExc_IndexError, "verdict %ld is outside 0..%d", verdict, TALLY_VERDICTS - 1);
        return NULL;
    }
    int overflow;
    long direction = PyLong_AsLongAndOverflow(args[1], &overflow);
    if (direction == -1 && PyErr_Occurred()) {
        return NULL;
    }
    double seconds = PyFloat_AsDouble(args[2]);
    if (seconds == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    tally_count(self, verdict, direction, seconds);
    Py_RETURN_NONE;
}

/* counts as a new list of ints */
static PyObject *
count_list(const unsigned long long *counts, Py_ssize_t n)
{
    PyObject *list = PyList_New(n);
    if (list == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *count = PyLong_FromUnsignedLongLong(counts[i]);
        if (count == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, count);
    }
    return list;
}

static PyObject *
Tally_get_calls(Tally *self, void *Py_UNUSED(closure))
{
    PyObject *rows = PyList_New(TALLY_VERDICTS);
    if (rows == NULL) {
        return NULL;
    }
    for (int v = 0; v < TALLY_VERDICTS; v++) {
        PyObject *row = count_list(self->calls[v], TALLY_DIRECTIONS);
        if (row == NULL) {
            Py_DECREF(rows);
            return NULL;
        }
        PyList_SET_ITEM(rows, v, row);
    }
    return rows;
}

static PyObject *
Tally_get_buckets(Tally *self, void *Py_UNUSED(closure))
{
    return count_list(self->buckets, self->nbounds + 1);
}

static PyObject *
Tally_get_seconds(Tally *self, void *Py_UNUSED(closure))
{
    return PyFloat_FromDouble(self->seconds);
}

static PyMethodDef Tally_methods[] = {
    {"add", (PyCFunction)(void (*)(void))Tally_add, METH_FASTCALL,
     "add(verdict, direction, seconds): one screened call"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Tally_getset[] = {
    {"calls", (getter)Tally_get_calls, NULL, "calls[verdict][direction], a new list of lists", NULL},
    {"buckets", (getter)Tally_get_buckets, NULL, "calls per latency bucket, a new list", NULL},
    {"seconds", (getter)Tally_get_seconds, NULL, "the sum of the calls' seconds", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject TallyType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "screening._native.Tally",
    .tp_basicsize = sizeof(Tally),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Tally(bounds): screened calls by verdict and direction, and their latency in buckets",
    .tp_new = Tally_new,
    .tp_dealloc = (destructor)Tally_dealloc,
    .tp_methods = Tally_methods,
    .tp_getset = Tally_getset,
};

/* Whether a str is '+' and 1-15 ASCII digits: E.164 as normalize() writes it. */
static int
e164_text(PyObject *text)
{
    if (!PyUnicode_IS_ASCII(text)) {
        return 0;
    }
    Py_ssize_t len = PyUnicode_GET_LENGTH(text);
    const char *s = (const char *)PyUnicode_1BYTE_DATA(text);
    if (len < 2 || len > MAX_DIGITS + 1 || s[0] != '+') {
        return 0;
    }
    for (Py_ssize_t i = 1; i < len; i++) {
        if ((unsigned)((unsigned char)s[i] - '0') > 9u) {
            return 0;
        }
    }
    return 1;
}

/* is_e164(text) -> whether text is '+' and 1-15 ASCII digits: normalize()'s fast path. */
static PyObject *
is_e164(PyObject *Py_UNUSED(module), PyObject *arg)
{
    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "is_e164() takes a str");
        return NULL;
    }
    return PyBool_FromLong(e164_text(arg));
}

/* number_keys(numbers, out): out[i] = number_key(numbers[i]) of compact.py, or -1 where the number
 * is not encodable. ScreenNumbers keys a batch once for the tenant and each of its lists; in Python that
 * was a regex match and an int() a number, most of the batch's cost. */
static PyObject *
number_keys(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "number_keys(numbers: list[str], out: int64 buffer)");
        return NULL;
    }
    Py_buffer out;
    if (PyObject_GetBuffer(args[1], &out, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0) {
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(args[0]);
    if (out.itemsize != 8 || out.len != 8 * n) {
        PyBuffer_Release(&out);
        PyErr_SetString(PyExc_ValueError, "number_keys(): out must hold one int64 per number");
        return NULL;
    }
    int64_t *keys = (int64_t *)out.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        keys[i] = number_key(PyList_GET_ITEM(args[0], i));
    }
    PyBuffer_Release(&out);
    Py_RETURN_NONE;
}


/* ScreenCallResponse on the wire: screening/api/wire.py. Building the message through protobuf's
 * Python API cost about 7,000 instructions a call (every keyword looked up in the descriptor, then
 * serialized); the same bytes written here cost a few hundred. The field numbers and kinds are
 * screening.proto's; tests/test_wire.py checks the bytes against protobuf's for generated values. */
#define RESPONSE_FIELDS 13
/* 'v': a varint (enum, int64), 's': a length-delimited UTF-8 string; by field number - 1. */
static const char response_kinds[RESPONSE_FIELDS + 1] = "vsssvsvvssvvs";

static char *
put_varint(char *out, uint64_t value)
{
    while (value >= 0x80) {
        *out++ = (char)(value | 0x80);
        value >>= 7;
    }
    *out++ = (char)value;
    return out;
}

/* The response's bytes from its fields by field number - 1: text and size of the strings, the
 * varints' values (negative int32 and int64 values as ten-byte varints, as protobuf writes them). */
static PyObject *
write_response(const char *const *text, const Py_ssize_t *size, const uint64_t *number)
{
    Py_ssize_t total = 0;
    for (int i = 0; i < RESPONSE_FIELDS; i++) {
        if (response_kinds[i] == 's') {
            total += size[i] ? 1 + 10 + size[i] : 0;
        } else {
            total += number[i] ? 1 + 10 : 0;
        }
    }
    PyObject *bytes = PyBytes_FromStringAndSize(NULL, total);
    if (bytes == NULL) {
        return NULL;
    }
    char *start = PyBytes_AS_STRING(bytes), *out = start;
    for (int i = 0; i < RESPONSE_FIELDS; i++) {
        if (response_kinds[i] == 's') {
            if (size[i]) {
                *out++ = (char)(((i + 1) << 3) | 2);
                out = put_varint(out, (uint64_t)size[i]);
                memcpy(out, text[i], (size_t)size[i]);
                out += size[i];
            }
        } else if (number[i]) {
            *out++ = (char)((i + 1) << 3);
            out = put_varint(out, number[i]);
        }
    }
    if (_PyBytes_Resize(&bytes, out - start) < 0) {
        return NULL;
    }
    return bytes;
}

static PyObject *
screen_response(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != RESPONSE_FIELDS) {
        PyErr_SetString(PyExc_TypeError, "screen_response() takes the response's 13 fields, in field order");
        return NULL;
    }
    const char *text[RESPONSE_FIELDS];
    Py_ssize_t size[RESPONSE_FIELDS];
    uint64_t number[RESPONSE_FIELDS];
    for (int i = 0; i < RESPONSE_FIELDS; i++) {
        PyObject *value = args[i];
        if (response_kinds[i] == 's') {
            if (!PyUnicode_Check(value)) {
                PyErr_Format(PyExc_TypeError, "screen_response(): field %d must be a str", i + 1);
                return NULL;
            }
            text[i] = PyUnicode_AsUTF8AndSize(value, &size[i]);
            if (text[i] == NULL) {
                return NULL;
            }
        } else {
            long long v = PyLong_AsLongLong(value);
            if (v == -1 && PyErr_Occurred()) {
                return NULL;
            }
            number[i] = (uint64_t)v;
        }
    }
    return write_response(text, size, number);
}

/* ScreenCallRequest from the wire, into a ScreenRequest (a struct sequence with the message's field
 * names): reading five fields of a protobuf message cost about a thousand instructions each.
 * Decoded as protobuf's own parser (upb) decodes: fields in any order, the last of a repeated scalar
 * wins, unknown fields (and known ones of another wire type) skipped, groups skipped whole, strings
 * valid UTF-8, the enum an int32 and the bool any non-zero varint; anything else is malformed
 * (ValueError). tests/test_wire.py compares both on generated and random bytes. */
static PyTypeObject *ScreenRequestType;

static PyStructSequence_Field request_fields[] = {
    {"tenant_id", NULL}, {"number", NULL}, {"direction", NULL}, {"call_id", NULL}, {"caller_withheld", NULL},
    {NULL, NULL},
};

static PyStructSequence_Desc request_desc = {
    "screening._native.ScreenRequest",
    "A ScreenCallRequest's fields, decoded by screen_request()",
    request_fields,
    5,
};

#define GROUP_DEPTH 100 /* upb's default limit on nesting */

/* A varint of at most `most` bytes at *at (< end); -1 when malformed. */
static int
get_varint_of(const unsigned char **at, const unsigned char *end, uint64_t *value, int most)
{
    uint64_t v = 0;
    const unsigned char *p = *at;
    for (int i = 0; i < most; i++) {
        if (p >= end) {
            return -1;
        }
        unsigned char byte = *p++;
        v |= (uint64_t)(byte & 0x7f) << (7 * i);
        if (!(byte & 0x80)) {
            *at = p;
            *value = v;
            return 0;
        }
    }
    return -1;
}

static int
get_varint(const unsigned char **at, const unsigned char *end, uint64_t *value)
{
    return get_varint_of(at, end, value, 10);
}

/* A tag: a varint of at most five bytes, as upb reads one. */
static int
get_tag(const unsigned char **at, const unsigned char *end, uint64_t *tag)
{
    return get_varint_of(at, end, tag, 5) < 0 || *tag > UINT32_MAX ? -1 : 0;
}

/* A length-delimited field's size: a varint of at most five bytes, as upb reads one, within the data. */
static int
get_size(const unsigned char **at, const unsigned char *end, uint64_t *size)
{
    return get_varint_of(at, end, size, 5) < 0 || *size > (uint64_t)(end - *at) ? -1 : 0;
}

/* Skips one field's value of wire type `wire` (the tag read); for a group, up to its end-group tag. */
static int
skip_field(const unsigned char **at, const unsigned char *end, uint32_t field, int wire, int depth)
{
    uint64_t v;
    switch (wire) {
    case 0:
        return get_varint(at, end, &v);
    case 1:
        if (end - *at < 8) {
            return -1;
        }
        *at += 8;
        return 0;
    case 2:
        if (get_size(at, end, &v) < 0) {
            return -1;
        }
        *at += v;
        return 0;
    case 5:
        if (end - *at < 4) {
            return -1;
        }
        *at += 4;
        return 0;
    case 3:
        if (depth >= GROUP_DEPTH) {
            return -1;
        }
        for (;;) {
            uint64_t tag;
            /* Inside a skipped group upb takes field number 0 too (it does not at the top level). */
            if (get_tag(at, end, &tag) < 0) {
                return -1;
            }
            if ((tag & 7) == 4) {
                return (tag >> 3) == field ? 0 : -1;
            }
            if (skip_field(at, end, (uint32_t)(tag >> 3), (int)(tag & 7), depth + 1) < 0) {
                return -1;
            }
        }
    default: /* 4: an end-group with no group open; 6 and 7: no such wire type */
        return -1;
    }
}

static PyObject *
screen_request(PyObject *Py_UNUSED(module), PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const unsigned char *at = view.buf, *end = at + view.len;
    /* Each string field's last occurrence; every occurrence is decoded (and so checked) as it comes. */
    PyObject *text[5] = {NULL};
    int64_t direction = 0;
    int withheld = 0;
    PyObject *request = NULL;
    while (at < end) {
        uint64_t tag, v;
        if (get_tag(&at, end, &tag) < 0 || (tag >> 3) == 0) {
            goto malformed;
        }
        uint32_t field = (uint32_t)(tag >> 3);
        int wire = (int)(tag & 7);
        if (wire == 2 && (field == 1 || field == 2 || field == 4)) {
            if (get_size(&at, end, &v) < 0) {
                goto malformed;
            }
            PyObject *value = PyUnicode_DecodeUTF8((const char *)at, (Py_ssize_t)v, NULL);
            if (value == NULL) {
                PyErr_Clear();
                goto malformed;
            }
            Py_XSETREF(text[field], value);
            at += v;
        } else if (wire == 0 && (field == 3 || field == 5)) {
            if (get_varint(&at, end, &v) < 0) {
                goto malformed;
            }
            if (field == 3) {
                direction = (int32_t)(uint32_t)v;
            } else {
                withheld = v != 0;
            }
        } else if (skip_field(&at, end, field, wire, 0) < 0) {
            goto malformed;
        }
    }
    request = PyStructSequence_New(ScreenRequestType);
    if (request == NULL) {
        goto failed;
    }
    static const int slot[5] = {-1, 0, 1, -1, 3}; /* field number -> struct sequence position */
    for (int field = 1; field <= 4; field++) {
        if (field == 3) {
            continue;
        }
        if (text[field] == NULL && (text[field] = PyUnicode_New(0, 0)) == NULL) {
            goto failed;
        }
        PyStructSequence_SET_ITEM(request, slot[field], text[field]);
        text[field] = NULL;
    }
    PyObject *number = PyLong_FromLongLong(direction);
    if (number == NULL) {
        goto failed;
    }
    PyStructSequence_SET_ITEM(request, 2, number);
    PyStructSequence_SET_ITEM(request, 4, Py_NewRef(withheld ? Py_True : Py_False));
    PyBuffer_Release(&view);
    return request;
malformed:
    PyErr_SetString(PyExc_ValueError, "malformed protobuf wire data");
failed:
    for (int i = 0; i < 5; i++) {
        Py_XDECREF(text[i]);
    }
    Py_XDECREF(request);
    PyBuffer_Release(&view);
    return NULL;
}

/* The first place in [a, b) of `order` (key positions in id order) whose id is not below (hi, lo); b if none. */
static inline Py_ssize_t
id_lower_bound(const uint64_t *pairs, const uint32_t *order, Py_ssize_t a, Py_ssize_t b, uint64_t hi, uint64_t lo)
{
    while (a < b) {
        Py_ssize_t mid = (a + b) >> 1;
        const uint64_t *at = &pairs[2 * (Py_ssize_t)order[mid]];
        if (at[0] < hi || (at[0] == hi && at[1] < lo)) {
            a = mid + 1;
        } else {
            b = mid;
        }
    }
    return a;
}

/* The key position at `a` (from id_lower_bound over n entries) if its id is (hi, lo); -1 if not found. */
static inline int64_t
id_found(const uint64_t *pairs, const uint32_t *order, Py_ssize_t n, Py_ssize_t a, uint64_t hi, uint64_t lo)
{
    if (a < n && pairs[2 * (Py_ssize_t)order[a]] == hi && pairs[2 * (Py_ssize_t)order[a] + 1] == lo) {
        return (int64_t)order[a];
    }
    return -1;
}

/* id_position(ids, by_id, high, low) -> the key position of the entry with this id in a compact.Base, or -1.
 * `ids` holds (high, low) uint64 pairs by key position, `by_id` uint32 key positions in (high, low) order.
 * Every change asks each run of the index whether it holds the id; in Python that binary search was
 * about 12 us a run. */
static PyObject *
id_position(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "id_position(ids, by_id, high, low)");
        return NULL;
    }
    unsigned long long want_hi = PyLong_AsUnsignedLongLong(args[2]);
    if (want_hi == (unsigned long long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    unsigned long long want_lo = PyLong_AsUnsignedLongLong(args[3]);
    if (want_lo == (unsigned long long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_buffer ids, by_id;
    if (PyObject_GetBuffer(args[0], &ids, PyBUF_C_CONTIGUOUS) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &by_id, PyBUF_C_CONTIGUOUS) < 0) {
        PyBuffer_Release(&ids);
        return NULL;
    }
    Py_ssize_t n = by_id.len / 4;
    if (ids.len != 16 * n) {
        PyBuffer_Release(&ids);
        PyBuffer_Release(&by_id);
        PyErr_SetString(PyExc_ValueError, "id_position(): ids must hold two uint64 per by_id entry");
        return NULL;
    }
    const uint64_t *pairs = (const uint64_t *)ids.buf;
    const uint32_t *order = (const uint32_t *)by_id.buf;
    long found = (long)id_found(pairs, order, n, id_lower_bound(pairs, order, 0, n, want_hi, want_lo), want_hi, want_lo);
    PyBuffer_Release(&ids);
    PyBuffer_Release(&by_id);
    return PyLong_FromLong(found);
}

/* id_positions(ids, by_id, fence_hi, fence_lo, stride, high, low, out) -> None:
 * out[i] = id_position(ids, by_id, high[i], low[i]). `high` and `low` are uint64 arrays, `out` an int64
 * array, all of one length; `fence_hi` and `fence_lo` the ids of every `stride`-th entry of `by_id`
 * (compact.Base._fence), contiguous, so that the first steps of each search stay in cache and only the
 * last few read `ids` at random. A change set asks this of every run for all its ids at once, in a worker
 * thread: as numpy steps, each step let go of the GIL and waited for it again behind an event loop busy
 * screening (10k ids: 1.5-3 s instead of milliseconds); here the GIL is let go once. */
static PyObject *
id_positions(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "id_positions(ids, by_id, fence_hi, fence_lo, stride, high, low, out)");
        return NULL;
    }
    Py_ssize_t stride = PyLong_AsSsize_t(args[4]);
    if (stride == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (stride < 1) {
        PyErr_SetString(PyExc_ValueError, "id_positions(): the fence's stride must be at least 1");
        return NULL;
    }
    /* The buffers: ids, by_id, fence_hi, fence_lo, high, low, out (args[4], the stride, is not one). */
    Py_buffer view[7];
    int got = 0;
    for (; got < 7; got++) {
        int flags = got == 6 ? PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE : PyBUF_C_CONTIGUOUS;
        if (PyObject_GetBuffer(args[got < 4 ? got : got + 1], &view[got], flags) < 0) {
            break;
        }
    }
    PyObject *result = NULL;
    if (got == 7) {
        Py_ssize_t n = view[1].len / 4, f = view[2].len / 8, m = view[4].len / 8;
        if (view[0].len != 16 * n || view[1].len != 4 * n || view[3].len != 8 * f ||
            f != (n + stride - 1) / stride || view[5].len != 8 * m || view[6].len != 8 * m) {
            PyErr_SetString(PyExc_ValueError,
                            "id_positions(): ids two uint64 per by_id (uint32) entry, a fence id every `stride` entries;"
                            " high, low, out of one length");
        } else {
            const uint64_t *pairs = (const uint64_t *)view[0].buf;
            const uint32_t *order = (const uint32_t *)view[1].buf;
            const uint64_t *fence_hi = (const uint64_t *)view[2].buf, *fence_lo = (const uint64_t *)view[3].buf;
            const uint64_t *want_hi = (const uint64_t *)view[4].buf, *want_lo = (const uint64_t *)view[5].buf;
            int64_t *out = (int64_t *)view[6].buf;
            Py_BEGIN_ALLOW_THREADS
            for (Py_ssize_t i = 0; i < m; i++) {
                uint64_t hi = want_hi[i], lo = want_lo[i];
                /* j: how many fence ids are below this id; it lies after fence j - 1, at or before fence j. */
                Py_ssize_t a = 0, b = f;
                while (a < b) {
                    Py_ssize_t mid = (a + b) >> 1;
                    if (fence_hi[mid] < hi || (fence_hi[mid] == hi && fence_lo[mid] < lo)) {
                        a = mid + 1;
                    } else {
                        b = mid;
                    }
                }
                Py_ssize_t j = a;
                a = id_lower_bound(pairs, order, j > 0 ? (j - 1) * stride + 1 : 0, j < f ? j * stride : n, hi, lo);
                out[i] = id_found(pairs, order, n, a, hi, lo);
            }
            Py_END_ALLOW_THREADS
            result = Py_None;
            Py_INCREF(result);
        }
    }
    for (int k = 0; k < got; k++) {
        PyBuffer_Release(&view[k]);
    }
    return result;
}

/* ScreenCall's common answers in one C call, for a known tenant's call with an E.164 number:
 * - no entry of the tenant or of its subscribed lists has the number, in any state: ALLOW,
 *   reason NO_ENTRY. That is most calls a switch makes (most callers are on nobody's list);
 * - the first of the tenant and its lists, in that order, with an exact entry for the number has
 *   it in the compact base, enabled, without expiry, for this direction: that entry decides,
 *   BLOCK (the base holds only BLOCK entries; an exact entry beats any prefix, and the tenant's
 *   own, then the earlier list's, wins a tie), and its hit is counted.
 * Screener.screen (screening/usecases/screener.py) makes the same decisions in Python; in a
 * loaded server its steps ran cold at several times their warm cost (docs/performance.md, "The
 * common answers in C").
 *
 * Every other call goes to `fallback` (the Python path), which also counts unknown tenants and
 * raises for bad input: a call is passed on as soon as anything differs from those two cases. So
 * this only ever gives the answer the Python path gives; tests/test_quick_screen.py compares the
 * two call by call. It reads the Python path's own state on each call (the replica's index, the
 * settings, the tenant ids already checked, the hit counter), so no change can leave it behind. */
typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *fallback;      /* screen(request) -> bytes */
    PyObject *replica;       /* .ready, .index (._tenants, ._probes), .data_version */
    PyObject *valid_tenants; /* set: tenant ids whose syntax the Python path has checked */
    PyObject *settings;      /* dict: tenant id -> settings with .lists */
    PyObject *tally;         /* Tally */
    PyObject *hits;          /* .hit(entry id, now) */
    /* Enum values: verdicts, reasons, the entry's kind and action as a base entry has them. */
    uint64_t allow, block, no_entry, block_entry, exact, block_action;
    unsigned long long answered; /* calls answered here rather than by fallback */
} QuickScreen;

static PyObject *str_ready, *str_index, *str_data_version, *str_tenants, *str_probes, *str_exact, *str_prefix,
    *str_lengths_desc, *str_lists, *str_hit;

static int
QuickScreen_traverse(QuickScreen *self, visitproc visit, void *arg)
{
    Py_VISIT(self->fallback);
    Py_VISIT(self->replica);
    Py_VISIT(self->valid_tenants);
    Py_VISIT(self->settings);
    Py_VISIT(self->tally);
    Py_VISIT(self->hits);
    return 0;
}

static int
QuickScreen_clear(QuickScreen *self)
{
    Py_CLEAR(self->fallback);
    Py_CLEAR(self->replica);
    Py_CLEAR(self->valid_tenants);
    Py_CLEAR(self->settings);
    Py_CLEAR(self->tally);
    Py_CLEAR(self->hits);
    return 0;
}

static void
QuickScreen_dealloc(QuickScreen *self)
{
    PyObject_GC_UnTrack(self);
    QuickScreen_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *QuickScreen_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames);

/* QuickScreen(fallback, replica, valid_tenants, settings, tally, hits,
 *             (allow, block, no_entry, block_entry, exact, block_action)) */
static PyObject *
QuickScreen_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *fallback, *replica, *valid_tenants, *settings, *tally, *hits;
    unsigned long long values[6];
    if (kwds != NULL && PyDict_GET_SIZE(kwds) != 0) {
        PyErr_SetString(PyExc_TypeError, "QuickScreen takes positional arguments only");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "OOO!O!O!O(KKKKKK):QuickScreen", &fallback, &replica, &PySet_Type, &valid_tenants,
                          &PyDict_Type, &settings, &TallyType, &tally, &hits, &values[0], &values[1], &values[2],
                          &values[3], &values[4], &values[5])) {
        return NULL;
    }
    if (!PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "QuickScreen: fallback must be callable");
        return NULL;
    }
    QuickScreen *self = (QuickScreen *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = QuickScreen_vectorcall;
    self->fallback = Py_NewRef(fallback);
    self->replica = Py_NewRef(replica);
    self->valid_tenants = Py_NewRef(valid_tenants);
    self->settings = Py_NewRef(settings);
    self->tally = Py_NewRef(tally);
    self->hits = Py_NewRef(hits);
    self->allow = values[0];
    self->block = values[1];
    self->no_entry = values[2];
    self->block_entry = values[3];
    self->exact = values[4];
    self->block_action = values[5];
    return (PyObject *)self;
}

#define OWNER_NONE 0    /* no exact entry of the owner has the number */
#define OWNER_DECIDES 1 /* a qualifying base entry has it: *entry_id set */
#define OWNER_OTHER 2   /* anything else: the Python path decides */

/* The owner's exact entry for the number, as ScreeningIndex.lookup finds it: the overlay's, else
 * the first run's that is not shadowed. -1 with an exception set. *known: whether the owner has
 * entries at all. */
static int
owner_exact(PyObject *owner, PyObject *number, int64_t key, long direction, PyObject *overlay, PyObject *probes,
            int *known, PyObject **entry_id)
{
    PyObject *rules = PyDict_GetItemWithError(overlay, owner);
    if (rules != NULL) {
        *known = 1;
        PyObject *exact = PyObject_GetAttr(rules, str_exact);
        if (exact == NULL) {
            return -1;
        }
        int has = PyDict_Check(exact) ? PyDict_Contains(exact, number) : 1;
        Py_DECREF(exact);
        if (has != 0) {
            return has < 0 ? -1 : OWNER_OTHER;
        }
    } else if (PyErr_Occurred()) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(probes); i++) {
        PyObject *probe = PyTuple_GET_ITEM(probes, i);
        if (!PyTuple_Check(probe) || PyTuple_GET_SIZE(probe) != 2 ||
            !Py_IS_TYPE(PyTuple_GET_ITEM(probe, 0), &SearcherType) || !PyAnySet_Check(PyTuple_GET_ITEM(probe, 1))) {
            return OWNER_OTHER;
        }
        Searcher *search = (Searcher *)PyTuple_GET_ITEM(probe, 0);
        PyObject *ordinal = PyDict_GetItemWithError(search->tenants, owner);
        if (ordinal == NULL) {
            if (PyErr_Occurred()) {
                return -1;
            }
            continue;
        }
        *known = 1;
        Py_ssize_t pos = find_key(search, ordinal, key);
        if (pos < 0) {
            continue;
        }
        PyObject *id = format_id(search, pos);
        if (id == NULL) {
            return -1;
        }
        int shadowed = PySet_Contains(PyTuple_GET_ITEM(probe, 1), id);
        if (shadowed != 0) {
            Py_DECREF(id);
            if (shadowed < 0) {
                return -1;
            }
            continue; /* changed since the run was built: the overlay or an older run answers */
        }
        int64_t flags = ((const int64_t *)search->keys.buf)[pos];
        if ((flags & EXPIRES) || !(flags & ENABLED) || !(flags & direction)) {
            Py_DECREF(id);
            return OWNER_OTHER;
        }
        *entry_id = id;
        return OWNER_DECIDES;
    }
    return OWNER_NONE;
}

/* 0 when none of the owner's overlay prefixes is a prefix of the number, 1 when one is, -1 with an
 * exception set. */
static int
owner_prefix(PyObject *owner, PyObject *number, PyObject *overlay)
{
    PyObject *rules = PyDict_GetItemWithError(overlay, owner);
    if (rules == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    PyObject *prefix = PyObject_GetAttr(rules, str_prefix);
    if (prefix == NULL) {
        return -1;
    }
    int has = PyDict_Check(prefix) ? 0 : 1;
    if (has == 0 && PyDict_GET_SIZE(prefix) != 0) {
        PyObject *lengths = PyObject_GetAttr(rules, str_lengths_desc);
        if (lengths == NULL) {
            has = -1;
        } else if (!PyTuple_Check(lengths)) {
            has = 1;
        } else {
            Py_ssize_t size = PyUnicode_GET_LENGTH(number);
            for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(lengths) && has == 0; i++) {
                Py_ssize_t length = PyLong_AsSsize_t(PyTuple_GET_ITEM(lengths, i));
                if (length == -1 && PyErr_Occurred()) {
                    has = -1;
                } else if (length <= size) {
                    PyObject *head = PyUnicode_Substring(number, 0, length);
                    has = head == NULL ? -1 : PyDict_Contains(prefix, head);
                    Py_XDECREF(head);
                }
            }
        }
        Py_XDECREF(lengths);
    }
    Py_DECREF(prefix);
    return has;
}

static inline double
clock_seconds(clockid_t clock)
{
    struct timespec now;
    clock_gettime(clock, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

/* The encoded answer when the call is one of the common cases (*verdict set); NULL with no
 * exception set when it is not (the fallback answers), NULL with one on an error. */
static PyObject *
quick_answer(QuickScreen *self, PyObject *request, long *direction, uint64_t *verdict)
{
    PyObject *tenant = PyStructSequence_GET_ITEM(request, 0);
    PyObject *number = PyStructSequence_GET_ITEM(request, 1);
    PyObject *call_id = PyStructSequence_GET_ITEM(request, 3);
    if (PyStructSequence_GET_ITEM(request, 4) != Py_False || !PyUnicode_Check(number) || !e164_text(number) ||
        !PyUnicode_Check(call_id) || !PyLong_CheckExact(PyStructSequence_GET_ITEM(request, 2))) {
        return NULL;
    }
    int overflow;
    *direction = PyLong_AsLongAndOverflow(PyStructSequence_GET_ITEM(request, 2), &overflow);
    if (*direction != 1 && *direction != 2) {
        return NULL;
    }
    int valid = PySet_Contains(self->valid_tenants, tenant);
    if (valid <= 0) {
        return NULL;
    }
    PyObject *ready = PyObject_GetAttr(self->replica, str_ready);
    if (ready == NULL) {
        return NULL;
    }
    Py_DECREF(ready);
    if (ready != Py_True) {
        return NULL;
    }
    PyObject *settings = PyDict_GetItemWithError(self->settings, tenant); /* borrowed */
    if (settings == NULL && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *lists = NULL, *index = NULL, *overlay = NULL, *probes = NULL, *version = NULL, *entry_id = NULL;
    PyObject *answer = NULL;
    if (settings != NULL && ((lists = PyObject_GetAttr(settings, str_lists)) == NULL || !PyTuple_Check(lists))) {
        goto done;
    }
    if ((index = PyObject_GetAttr(self->replica, str_index)) == NULL ||
        (overlay = PyObject_GetAttr(index, str_tenants)) == NULL || !PyDict_Check(overlay) ||
        (probes = PyObject_GetAttr(index, str_probes)) == NULL || !PyTuple_Check(probes)) {
        goto done;
    }
    int64_t key = number_key(number);
    int known = settings != NULL;
    Py_ssize_t owners = 1 + (lists == NULL ? 0 : PyTuple_GET_SIZE(lists)), decided = -1;
    for (Py_ssize_t i = 0; i < owners && decided < 0; i++) {
        int owner_known = 0;
        PyObject *owner = i == 0 ? tenant : PyTuple_GET_ITEM(lists, i - 1);
        int found = owner_exact(owner, number, key, *direction, overlay, probes, &owner_known, &entry_id);
        if (found < 0 || found == OWNER_OTHER) {
            goto done;
        }
        if (found == OWNER_DECIDES) {
            decided = i;
        }
        known |= i == 0 && owner_known;
    }
    if (decided < 0) {
        for (Py_ssize_t i = 0; i < owners; i++) {
            if (owner_prefix(i == 0 ? tenant : PyTuple_GET_ITEM(lists, i - 1), number, overlay) != 0) {
                goto done;
            }
        }
        if (!known) {
            goto done; /* counted as an unknown tenant by the fallback */
        }
    }
    if ((version = PyObject_GetAttr(self->replica, str_data_version)) == NULL) {
        goto done;
    }
    /* The fields as screening/api/wire.py's screen_response writes them, by field number - 1. */
    const char *text[RESPONSE_FIELDS] = {NULL};
    Py_ssize_t size[RESPONSE_FIELDS] = {0};
    uint64_t values[RESPONSE_FIELDS] = {0};
    values[6] = (uint64_t)PyLong_AsLongLong(version);
    if (values[6] == (uint64_t)-1 && PyErr_Occurred()) {
        goto done;
    }
    text[1] = (const char *)PyUnicode_1BYTE_DATA(number);
    size[1] = PyUnicode_GET_LENGTH(number);
    if ((text[5] = PyUnicode_AsUTF8AndSize(call_id, &size[5])) == NULL) {
        goto done;
    }
    if (decided < 0) {
        *verdict = values[0] = self->allow;
        values[7] = self->no_entry;
    } else {
        PyObject *now = PyFloat_FromDouble(clock_seconds(CLOCK_REALTIME)); /* time.time() */
        if (now == NULL) {
            goto done;
        }
        PyObject *args[3] = {self->hits, entry_id, now};
        PyObject *counted = PyObject_VectorcallMethod(str_hit, args, 3, NULL);
        Py_DECREF(now);
        if (counted == NULL) {
            goto done;
        }
        Py_DECREF(counted);
        *verdict = values[0] = self->block;
        values[7] = self->block_entry;
        /* matched_* and decided_* both name the entry: its id, its number (the call's), its kind. */
        text[2] = text[8] = (const char *)PyUnicode_1BYTE_DATA(entry_id);
        size[2] = size[8] = PyUnicode_GET_LENGTH(entry_id);
        text[3] = text[9] = text[1];
        size[3] = size[9] = size[1];
        values[4] = values[10] = self->exact;
        values[11] = self->block_action;
        if (decided > 0) {
            PyObject *list = PyTuple_GET_ITEM(lists, decided - 1);
            if (!PyUnicode_Check(list) || (text[12] = PyUnicode_AsUTF8AndSize(list, &size[12])) == NULL) {
                goto done;
            }
        }
    }
    answer = write_response(text, size, values);
done:
    Py_XDECREF(lists);
    Py_XDECREF(index);
    Py_XDECREF(overlay);
    Py_XDECREF(probes);
    Py_XDECREF(version);
    Py_XDECREF(entry_id);
    return answer;
}

/* quick(request[, context]) -> the encoded ScreenCallResponse */
static PyObject *
QuickScreen_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    QuickScreen *self = (QuickScreen *)callable;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs < 1 || nargs > 2 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        PyErr_SetString(PyExc_TypeError, "QuickScreen(request[, context]) takes positional arguments only");
        return NULL;
    }
    PyObject *request = args[0];
    if (Py_IS_TYPE(request, ScreenRequestType)) {
        double started = clock_seconds(CLOCK_MONOTONIC); /* time.perf_counter()'s clock on Linux */
        long direction = 0;
        uint64_t verdict = 0;
        PyObject *answer = quick_answer(self, request, &direction, &verdict);
        if (answer != NULL) {
            tally_count((Tally *)self->tally, (long)verdict, direction, clock_seconds(CLOCK_MONOTONIC) - started);
            self->answered++;
            return answer;
        }
        if (PyErr_Occurred()) {
            return NULL;
        }
    }
    return PyObject_CallOneArg(self->fallback, request);
}

static PyObject *
QuickScreen_get_answered(QuickScreen *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(self->answered);
}

static PyGetSetDef QuickScreen_getset[] = {
    {"answered", (getter)QuickScreen_get_answered, NULL, "calls answered here rather than by the fallback", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject QuickScreenType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "screening._native.QuickScreen",
    .tp_basicsize = sizeof(QuickScreen),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "QuickScreen(fallback, replica, valid_tenants, settings, tally, hits, (allow, block, no_entry, "
              "block_entry, exact, block_action)): ScreenCall's common answers in C, every other call by "
              "fallback(request)",
    .tp_new = QuickScreen_new,
    .tp_dealloc = (destructor)QuickScreen_dealloc,
    .tp_traverse = (traverseproc)QuickScreen_traverse,
    .tp_clear = (inquiry)QuickScreen_clear,
    .tp_vectorcall_offset = offsetof(QuickScreen, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_getset = QuickScreen_getset,
};

static PyMethodDef module_methods[] = {
    {"id_positions", (PyCFunction)(void (*)(void))id_positions, METH_FASTCALL,
     "id_positions(ids, by_id, fence_hi, fence_lo, stride, high, low, out) -> None: out[i] = the position of id"
     " (high[i], low[i]), or -1"},
    {"id_position", (PyCFunction)(void (*)(void))id_position, METH_FASTCALL,
     "id_position(ids, by_id, high, low) -> the key position of the entry with this id, or -1"},
    {"is_e164", is_e164, METH_O, "is_e164(text) -> whether text is '+' and 1-15 ASCII digits"},
    {"number_keys", (PyCFunction)(void (*)(void))number_keys, METH_FASTCALL,
     "number_keys(numbers, out) -> None: out[i] = numbers[i]'s key, or -1 when it cannot be encoded"},
    {"screen_request", screen_request, METH_O,
     "screen_request(data) -> ScreenRequest: a ScreenCallRequest's fields from its encoding; ValueError if malformed"},
    {"screen_response", (PyCFunction)(void (*)(void))screen_response, METH_FASTCALL,
     "screen_response(*fields) -> bytes: a ScreenCallResponse of these 13 field values, encoded"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "screening._native",
    .m_doc = "The screening hot path in C; compact.py, numbers.py and metrics.py have pure-Python equivalents.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    if (PyType_Ready(&SearcherType) < 0 || PyType_Ready(&TallyType) < 0 || PyType_Ready(&QuickScreenType) < 0) {
        return NULL;
    }
    struct {
        PyObject **name;
        const char *text;
    } names[] = {
        {&str_ready, "ready"},     {&str_index, "index"},   {&str_data_version, "data_version"},
        {&str_tenants, "_tenants"}, {&str_probes, "_probes"}, {&str_exact, "exact"},
        {&str_prefix, "prefix"},   {&str_lengths_desc, "_lengths_desc"}, {&str_lists, "lists"},
        {&str_hit, "hit"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (*names[i].name == NULL && (*names[i].name = PyUnicode_InternFromString(names[i].text)) == NULL) {
            return NULL;
        }
    }
    if (never == NULL && (never = PyFloat_FromDouble(Py_HUGE_VAL)) == NULL) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&native_module);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&SearcherType);
    if (PyModule_AddObject(module, "Searcher", (PyObject *)&SearcherType) < 0) {
        Py_DECREF(&SearcherType);
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&TallyType);
    if (PyModule_AddObject(module, "Tally", (PyObject *)&TallyType) < 0) {
        Py_DECREF(&TallyType);
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&QuickScreenType);
    if (PyModule_AddObject(module, "QuickScreen", (PyObject *)&QuickScreenType) < 0) {
        Py_DECREF(&QuickScreenType);
        Py_DECREF(module);
        return NULL;
    }
    if (ScreenRequestType == NULL && (ScreenRequestType = PyStructSequence_NewType(&request_desc)) == NULL) {
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(ScreenRequestType);
    if (PyModule_AddObject(module, "ScreenRequest", (PyObject *)ScreenRequestType) < 0) {
        Py_DECREF(ScreenRequestType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
