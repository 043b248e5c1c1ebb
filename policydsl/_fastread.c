/* The native reader of the compiled batch path: JSON texts of households straight into column buffers.
 *
 * It reads only the plain, common form of a household, exactly: numbers as integers of hundredths (or
 * millionths), never a float. Whatever it is not sure of — an exponent, an unknown or repeated key, a
 * wrong type, a month given twice, an amount below its minimum, text that is not valid UTF-8 — it
 * *declines*: the household goes to the Python column reader (batch_read.ColumnReader), and from there,
 * if need be, to the reference reader, which gives the error or warning. Declining is always safe;
 * accepting must give exactly what the reference reads. Only Python.h is needed; the columns are
 * returned as bytes that numpy wraps without copying. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

enum {
    K_NUM = 1, K_COUNT, K_BOOL, K_TEXT, K_DATE, K_SET, K_ENUM, K_LIST, K_SERIES, K_RECORD, K_ASOF, K_ID
};

#define MAX_FIELDS 256
#define LONGEST 16      /* characters of an amount read here (batch_read._LONGEST) */
#define WHOLE_DIGITS 15 /* digits before the point (household.MAX_WHOLE_DIGITS) */
#define ID_DIGITS 40    /* digits of a whole-number id (household.MAX_ID_DIGITS) */
#define CACHE_TEXT 64   /* a text column remembers its last text up to this many bytes */
#define MAX_COLUMNS 4096
#define MAX_MONTHS 4096 /* months of one series read here; more go to the msgspec reader */

typedef struct Field Field;

typedef struct {
    Field *fields;
    int n;
} Table;

struct Field {
    const char *name; /* UTF-8, owned by the name object below */
    Py_ssize_t len;
    PyObject *name_obj;
    int kind;
    int col;
    int decimals;
    int has_low, has_high;
    int64_t low, high;
    PyObject *members; /* tuple of str (set, enum), or NULL */
    int nmembers;
    Table sub; /* fields of a record, or of the items of a list */
};

typedef struct {
    int64_t *owner, *index, *value;
    Py_ssize_t size, cap;
} Entries;

typedef struct {
    int64_t index, value;
    int null;
} Month;

typedef struct {
    PyObject_HEAD
    Table top;
    int ncols;
    int *col_kind; /* the kind of each column */
} Reader;

/* What one call of read() fills: a row per text. */
typedef struct {
    Py_ssize_t n;
    int64_t **values;   /* per column, or NULL (text, enum, series) */
    uint8_t **known;    /* per column */
    PyObject **objects; /* per column: a list of str (text, enum), or NULL */
    Entries *series;    /* per column (series only) */
    PyObject **last;    /* per column: the last text made, with its bytes */
    char (*last_bytes)[CACHE_TEXT];
    Py_ssize_t *last_len;
    int64_t *as_of;
    PyObject *ids;
    char *scratch; /* decoded strings with escapes */
    Py_ssize_t scratch_cap;
    Month months[MAX_MONTHS]; /* the months of the series being read */
} Out;

static PyObject *EMPTY; /* "" */

/* ---------------------------------------------------------------- the spec from Python */

static void table_free(Table *t) {
    if (t->fields == NULL) return;
    for (int i = 0; i < t->n; i++) {
        Py_XDECREF(t->fields[i].name_obj);
        Py_XDECREF(t->fields[i].members);
        table_free(&t->fields[i].sub);
    }
    PyMem_Free(t->fields);
    t->fields = NULL;
    t->n = 0;
}

static int table_init(Table *t, PyObject *spec, int depth, int ncols) {
    if (depth > 2) {
        PyErr_SetString(PyExc_ValueError, "spec nested too deeply");
        return -1;
    }
    PyObject *seq = PySequence_Fast(spec, "spec: expected a sequence of fields");
    if (seq == NULL) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > MAX_FIELDS) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "spec: too many fields");
        return -1;
    }
    t->fields = PyMem_Calloc(n ? n : 1, sizeof(Field));
    t->n = (int)n;
    if (t->fields == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Field *f = &t->fields[i];
        PyObject *name, *low, *high, *members, *sub;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "UiiiOOOO", &name, &f->kind, &f->col,
                              &f->decimals, &low, &high, &members, &sub))
            goto fail;
        Py_INCREF(name);
        f->name_obj = name;
        f->name = PyUnicode_AsUTF8AndSize(name, &f->len);
        if (f->name == NULL) goto fail;
        if (f->kind < K_NUM || f->kind > K_ID || f->col < -1 || f->col >= ncols || f->decimals < 0 ||
            f->decimals > 6) {
            PyErr_SetString(PyExc_ValueError, "spec: bad field");
            goto fail;
        }
        if (low != Py_None) {
            f->has_low = 1;
            f->low = PyLong_AsLongLong(low);
            if (f->low == -1 && PyErr_Occurred()) goto fail;
        }
        if (high != Py_None) {
            f->has_high = 1;
            f->high = PyLong_AsLongLong(high);
            if (f->high == -1 && PyErr_Occurred()) goto fail;
        }
        if (members != Py_None) {
            if (!PyTuple_Check(members) || PyTuple_GET_SIZE(members) > 62) {
                PyErr_SetString(PyExc_ValueError, "spec: members must be a tuple of at most 62 texts");
                goto fail;
            }
            for (Py_ssize_t m = 0; m < PyTuple_GET_SIZE(members); m++) {
                PyObject *member = PyTuple_GET_ITEM(members, m);
                if (!PyUnicode_Check(member) || PyUnicode_AsUTF8(member) == NULL) {
                    if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "spec: members must be texts");
                    goto fail;
                }
            }
            Py_INCREF(members);
            f->members = members;
            f->nmembers = (int)PyTuple_GET_SIZE(members);
        }
        if ((f->kind == K_SET || f->kind == K_ENUM) && f->members == NULL) {
            PyErr_SetString(PyExc_ValueError, "spec: a set or enum without members");
            goto fail;
        }
        if (sub != Py_None && table_init(&f->sub, sub, depth + 1, ncols) < 0) goto fail;
    }
    Py_DECREF(seq);
    return 0;
fail:
    Py_DECREF(seq);
    return -1;
}

/* ---------------------------------------------------------------- scanning JSON */

#define WS(c) ((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r')
#define DIGIT(c) ((c) >= '0' && (c) <= '9')

static inline const char *skip_ws(const char *p, const char *end) {
    while (p < end && WS(*p)) p++;
    return p;
}

static inline int literal(const char **pp, const char *end, const char *word, Py_ssize_t len) {
    if (end - *pp >= len && memcmp(*pp, word, len) == 0) {
        *pp += len;
        return 1;
    }
    return 0;
}

static int hex4(const char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (DIGIT(c)) v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

/* A JSON string at *pp (its opening quote): its bytes, in place when it has no escape, else decoded
 * into the scratch buffer. NULL declines (a control character, a bad escape, half a character). */
static const char *read_string(const char **pp, const char *end, Out *o, Py_ssize_t *len) {
    const char *p = *pp + 1, *start = p;
    while (p < end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20) p++;
    if (p >= end || (unsigned char)*p < 0x20) return NULL;
    if (*p == '"') {
        *len = p - start;
        *pp = p + 1;
        return start;
    }
    /* escapes: the decoded text is never longer than the written one */
    char *w = o->scratch;
    memcpy(w, start, p - start);
    w += p - start;
    while (p < end && *p != '"') {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20) return NULL;
        if (c != '\\') {
            *w++ = (char)c;
            p++;
            continue;
        }
        if (end - p < 2) return NULL;
        char e = p[1];
        p += 2;
        switch (e) {
        case '"': *w++ = '"'; break;
        case '\\': *w++ = '\\'; break;
        case '/': *w++ = '/'; break;
        case 'b': *w++ = '\b'; break;
        case 'f': *w++ = '\f'; break;
        case 'n': *w++ = '\n'; break;
        case 'r': *w++ = '\r'; break;
        case 't': *w++ = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (end - p < 4 || !hex4(p, &cp)) return NULL;
            p += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return NULL; /* half a character */
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || !hex4(p + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                    return NULL;
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (cp < 0x80) {
                *w++ = (char)cp;
            } else if (cp < 0x800) {
                *w++ = (char)(0xC0 | (cp >> 6));
                *w++ = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                *w++ = (char)(0xE0 | (cp >> 12));
                *w++ = (char)(0x80 | ((cp >> 6) & 0x3F));
                *w++ = (char)(0x80 | (cp & 0x3F));
            } else {
                *w++ = (char)(0xF0 | (cp >> 18));
                *w++ = (char)(0x80 | ((cp >> 12) & 0x3F));
                *w++ = (char)(0x80 | ((cp >> 6) & 0x3F));
                *w++ = (char)(0x80 | (cp & 0x3F));
            }
            break;
        }
        default:
            return NULL;
        }
    }
    if (p >= end) return NULL;
    *pp = p + 1;
    *len = w - o->scratch;
    return o->scratch;
}

/* An amount: a plain JSON number literal, at most LONGEST characters, WHOLE_DIGITS digits before the
 * point and `decimals` after it, as an integer of 10^-decimals. 0 declines (an exponent, more places…). */
static int read_units(const char **pp, const char *end, int decimals, int64_t *out) {
    const char *p = *pp, *start = p;
    int neg = 0;
    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }
    if (p >= end || !DIGIT(*p)) return 0;
    const char *whole = p;
    if (*p == '0') p++;
    else while (p < end && DIGIT(*p)) p++;
    Py_ssize_t nwhole = p - whole;
    const char *frac = p;
    Py_ssize_t nfrac = 0;
    if (p < end && *p == '.') {
        p++;
        frac = p;
        while (p < end && DIGIT(*p)) p++;
        nfrac = p - frac;
        if (nfrac == 0) return 0;
    }
    if (p < end && (DIGIT(*p) || *p == 'e' || *p == 'E' || *p == '.')) return 0;
    if (p - start > LONGEST || nwhole > WHOLE_DIGITS || nfrac > decimals || nwhole + decimals > 18) return 0;
    int64_t v = 0;
    for (const char *q = whole; q < whole + nwhole; q++) v = v * 10 + (*q - '0');
    for (const char *q = frac; q < frac + nfrac; q++) v = v * 10 + (*q - '0');
    for (Py_ssize_t k = nfrac; k < decimals; k++) v *= 10;
    *out = neg ? -v : v;
    *pp = p;
    return 1;
}

/* A whole number literal of at most `digits` digits: its text in `buf` (NUL-ended). 0 declines. */
static int read_whole(const char **pp, const char *end, int digits, char *buf) {
    const char *p = *pp, *start = p;
    if (p < end && *p == '-') p++;
    if (p >= end || !DIGIT(*p)) return 0;
    const char *first = p;
    if (*p == '0') p++;
    else while (p < end && DIGIT(*p)) p++;
    if (p < end && (DIGIT(*p) || *p == '.' || *p == 'e' || *p == 'E')) return 0;
    if (p - first > digits) return 0;
    memcpy(buf, start, p - start);
    buf[p - start] = 0;
    *pp = p;
    return 1;
}

static int64_t days_before_year(int64_t y) {
    y -= 1;
    return y * 365 + y / 4 - y / 100 + y / 400;
}

static int leap(int64_t y) { return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0); }

/* A date written YYYY-MM-DD (ASCII digits, a real day of year 1 or later): its proleptic Gregorian
 * ordinal, as date.toordinal(); 0 when it is not one. */
static int64_t ordinal(const char *s, Py_ssize_t len) {
    static const int before[] = {0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
    static const int days[] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (len != 10 || s[4] != '-' || s[7] != '-') return 0;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && !DIGIT(s[i])) return 0;
    int64_t y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    int m = (s[5] - '0') * 10 + (s[6] - '0');
    int d = (s[8] - '0') * 10 + (s[9] - '0');
    if (y < 1 || m < 1 || m > 12 || d < 1) return 0;
    int dim = days[m] + (m == 2 && leap(y));
    if (d > dim) return 0;
    return days_before_year(y) + before[m] + (m > 2 && leap(y)) + d;
}

static int member(const Field *f, const char *s, Py_ssize_t len) {
    for (int m = 0; m < f->nmembers; m++) {
        Py_ssize_t mlen;
        const char *name = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(f->members, m), &mlen);
        if (mlen == len && memcmp(name, s, len) == 0) return m;
    }
    return -1;
}

static const Field *lookup(const Table *t, const char *key, Py_ssize_t len, int *hint) {
    int n = t->n;
    for (int k = 0; k < n; k++) {
        int j = (*hint + k) % n; /* households usually give their keys in the same order */
        const Field *f = &t->fields[j];
        if (f->len == len && memcmp(f->name, key, len) == 0) {
            *hint = j + 1;
            return f;
        }
    }
    return NULL;
}

static int set_object(Out *o, int col, Py_ssize_t row, PyObject *value) {
    PyObject *list = o->objects[col];
    PyObject *old = PyList_GET_ITEM(list, row);
    PyList_SET_ITEM(list, row, value);
    Py_DECREF(old);
    return 1;
}

/* A text value as a str, the column's last one again when the bytes are the same. 0 declines. */
static int set_text(Out *o, int col, Py_ssize_t row, const char *s, Py_ssize_t len) {
    PyObject *text;
    if (o->last[col] != NULL && o->last_len[col] == len && memcmp(o->last_bytes[col], s, len) == 0) {
        text = o->last[col];
        Py_INCREF(text);
    } else {
        text = PyUnicode_DecodeUTF8(s, len, NULL);
        if (text == NULL) {
            PyErr_Clear();
            return 0;
        }
        if (len <= CACHE_TEXT) {
            Py_XDECREF(o->last[col]);
            Py_INCREF(text);
            o->last[col] = text;
            memcpy(o->last_bytes[col], s, len);
            o->last_len[col] = len;
        }
    }
    return set_object(o, col, row, text);
}

static int entries_add(Entries *e, int64_t owner, int64_t index, int64_t value) {
    if (e->size == e->cap) {
        Py_ssize_t cap = e->cap ? e->cap * 2 : 4096;
        int64_t *a = PyMem_Realloc(e->owner, cap * sizeof(int64_t));
        if (a == NULL) return -1;
        e->owner = a;
        a = PyMem_Realloc(e->index, cap * sizeof(int64_t));
        if (a == NULL) return -1;
        e->index = a;
        a = PyMem_Realloc(e->value, cap * sizeof(int64_t));
        if (a == NULL) return -1;
        e->value = a;
        e->cap = cap;
    }
    e->owner[e->size] = owner;
    e->index[e->size] = index;
    e->value[e->size] = value;
    e->size++;
    return 0;
}

static int by_month(const void *a, const void *b) {
    int64_t x = ((const Month *)a)->index, y = ((const Month *)b)->index;
    return (x > y) - (x < y);
}

/* After an item of an object or array: 1 when a comma follows (another item comes), 0 when the
 * closing bracket does (consumed), -1 for anything else. */
static int after_item(const char **pp, const char *end, char close) {
    const char *p = skip_ws(*pp, end);
    if (p < end && *p == ',') {
        *pp = skip_ws(p + 1, end);
        return 1;
    }
    if (p < end && *p == close) {
        *pp = p + 1;
        return 0;
    }
    return -1;
}

/* Results of the readers below: 1 read, 0 declined, -1 a Python error (out of memory). */
static int read_object(const Table *t, const char **pp, const char *end, Out *o, Py_ssize_t row, int items);

/* Monthly amounts: {"YYYY-MM": amount or null, ...}, months 01-12, none twice, amounts at or above the
 * minimum; kept sorted by month. */
static int read_series(const Field *f, const char **pp, const char *end, Out *o, Py_ssize_t row) {
    const char *p = *pp + 1;
    int count = 0, sorted = 1;
    if (f->col < 0) return 0;
    p = skip_ws(p, end);
    if (p < end && *p == '}') {
        p++;
    } else {
        for (;;) {
            if (p >= end || *p != '"') return 0;
            Py_ssize_t len;
            const char *key = read_string(&p, end, o, &len);
            if (key == NULL || len != 7 || key[4] != '-') return 0;
            for (int i = 0; i < 7; i++)
                if (i != 4 && !DIGIT(key[i])) return 0;
            int64_t year = (key[0] - '0') * 1000 + (key[1] - '0') * 100 + (key[2] - '0') * 10 + (key[3] - '0');
            int month = (key[5] - '0') * 10 + (key[6] - '0');
            if (month < 1 || month > 12 || count >= MAX_MONTHS) return 0;
            p = skip_ws(p, end);
            if (p >= end || *p != ':') return 0;
            p = skip_ws(p + 1, end);
            int64_t value = 0;
            uint8_t null = 0;
            if (literal(&p, end, "null", 4)) {
                null = 1;
            } else {
                if (!read_units(&p, end, 2, &value)) return 0;
                if (f->has_low && value < f->low) return 0;
            }
            Month *m = &o->months[count++];
            m->index = year * 12 + month - 1;
            m->value = value;
            m->null = null;
            sorted = sorted && (count == 1 || m[-1].index < m->index);
            int next = after_item(&p, end, '}');
            if (next < 0) return 0;
            if (next == 0) break;
        }
    }
    if (!sorted) { /* in month order; a month given twice declines */
        qsort(o->months, count, sizeof(Month), by_month);
        for (int k = 1; k < count; k++)
            if (o->months[k].index == o->months[k - 1].index) return 0;
    }
    Entries *e = &o->series[f->col];
    for (int k = 0; k < count; k++)
        if (!o->months[k].null && entries_add(e, row, o->months[k].index, o->months[k].value) < 0) {
            PyErr_NoMemory();
            return -1;
        }
    o->known[f->col][row] = 1;
    *pp = p;
    return 1;
}

/* One value of field f. With items set, f belongs to the items of a list: checked, not kept. */
static int read_value(const Field *f, const char **pp, const char *end, Out *o, Py_ssize_t row, int items) {
    const char *p = *pp;
    int keep = !items && f->col >= 0;
    if (f->kind != K_ID && literal(&p, end, "null", 4)) { /* a missing fact: unknown, as if absent */
        *pp = p;
        return 1;
    }
    switch (f->kind) {
    case K_NUM: {
        int64_t v;
        if (!read_units(&p, end, f->decimals, &v) || (f->has_low && v < f->low)) return 0;
        if (keep) {
            o->values[f->col][row] = v;
            o->known[f->col][row] = 1;
        }
        break;
    }
    case K_COUNT: {
        char buf[WHOLE_DIGITS + 3];
        if (!read_whole(&p, end, WHOLE_DIGITS, buf)) return 0;
        int64_t v = strtoll(buf, NULL, 10);
        if ((f->has_low && v < f->low) || (f->has_high && v > f->high)) return 0;
        if (keep) {
            o->values[f->col][row] = v;
            o->known[f->col][row] = 1;
        }
        break;
    }
    case K_BOOL: {
        int64_t v;
        if (literal(&p, end, "true", 4)) v = 1;
        else if (literal(&p, end, "false", 5)) v = 0;
        else return 0;
        if (keep) {
            o->values[f->col][row] = v;
            o->known[f->col][row] = 1;
        }
        break;
    }
    case K_TEXT:
    case K_ENUM:
    case K_DATE:
    case K_ASOF: {
        if (p >= end || *p != '"') return 0;
        Py_ssize_t len;
        const char *s = read_string(&p, end, o, &len);
        if (s == NULL) return 0;
        if (f->kind == K_TEXT) {
            if (keep && !set_text(o, f->col, row, s, len)) return 0;
            if (!keep) { /* still has to be valid text */
                PyObject *check = PyUnicode_DecodeUTF8(s, len, NULL);
                if (check == NULL) {
                    PyErr_Clear();
                    return 0;
                }
                Py_DECREF(check);
            }
        } else if (f->kind == K_ENUM) {
            int m = member(f, s, len);
            if (m < 0) return 0;
            if (keep) {
                PyObject *name = PyTuple_GET_ITEM(f->members, m);
                Py_INCREF(name);
                set_object(o, f->col, row, name);
            }
        } else {
            int64_t day = ordinal(s, len);
            if (day == 0) return 0;
            if (f->kind == K_ASOF) o->as_of[row] = day;
            else if (keep) o->values[f->col][row] = day;
        }
        if (keep) o->known[f->col][row] = 1;
        break;
    }
    case K_SET:
    case K_LIST: {
        if (p >= end || *p != '[') return 0;
        p = skip_ws(p + 1, end);
        int64_t mask = 0, length = 0;
        if (p < end && *p == ']') {
            p++;
        } else {
            for (;;) {
                if (f->kind == K_SET) {
                    if (p >= end || *p != '"') return 0;
                    Py_ssize_t len;
                    const char *s = read_string(&p, end, o, &len);
                    int m = s == NULL ? -1 : member(f, s, len);
                    if (m < 0) return 0;
                    mask |= (int64_t)1 << m;
                } else {
                    if (p >= end || *p != '{') return 0;
                    int r = read_object(&f->sub, &p, end, o, row, 1);
                    if (r != 1) return r;
                }
                length++;
                int next = after_item(&p, end, ']');
                if (next < 0) return 0;
                if (next == 0) break;
            }
        }
        if (keep) {
            o->values[f->col][row] = f->kind == K_SET ? mask : length;
            o->known[f->col][row] = 1;
        }
        break;
    }
    case K_SERIES:
        if (p >= end || *p != '{' || items) return 0;
        {
            int r = read_series(f, &p, end, o, row);
            if (r != 1) return r;
        }
        break;
    case K_RECORD:
        if (p >= end || *p != '{' || items) return 0;
        {
            int r = read_object(&f->sub, &p, end, o, row, 0);
            if (r != 1) return r;
        }
        break;
    case K_ID: {
        PyObject *id;
        if (literal(&p, end, "null", 4)) {
            *pp = p;
            return 1;
        }
        if (p < end && *p == '"') {
            Py_ssize_t len;
            const char *s = read_string(&p, end, o, &len);
            if (s == NULL) return 0;
            id = PyUnicode_DecodeUTF8(s, len, NULL);
        } else {
            char buf[ID_DIGITS + 3];
            if (!read_whole(&p, end, ID_DIGITS, buf)) return 0;
            id = PyLong_FromString(buf, NULL, 10);
        }
        if (id == NULL) {
            PyErr_Clear();
            return 0;
        }
        PyObject *old = PyList_GET_ITEM(o->ids, row);
        PyList_SET_ITEM(o->ids, row, id);
        Py_DECREF(old);
        break;
    }
    default:
        return 0;
    }
    *pp = p;
    return 1;
}

/* An object of the fields of table t, at *pp (its opening brace): no unknown key, none twice. */
static int read_object(const Table *t, const char **pp, const char *end, Out *o, Py_ssize_t row, int items) {
    uint8_t seen[MAX_FIELDS];
    memset(seen, 0, t->n);
    int hint = 0;
    const char *p = skip_ws(*pp + 1, end);
    if (p < end && *p == '}') {
        *pp = p + 1;
        return 1;
    }
    for (;;) {
        if (p >= end || *p != '"') return 0;
        Py_ssize_t len;
        const char *key = read_string(&p, end, o, &len);
        if (key == NULL) return 0;
        const Field *f = lookup(t, key, len, &hint);
        if (f == NULL) return 0;
        Py_ssize_t at = f - t->fields;
        if (seen[at]) return 0;
        seen[at] = 1;
        p = skip_ws(p, end);
        if (p >= end || *p != ':') return 0;
        p = skip_ws(p + 1, end);
        int r = read_value(f, &p, end, o, row, items);
        if (r != 1) return r;
        int next = after_item(&p, end, '}');
        if (next < 0) return 0;
        if (next == 0) {
            *pp = p;
            return 1;
        }
    }
}

/* ---------------------------------------------------------------- the Reader type */

static void Reader_dealloc(Reader *self) {
    table_free(&self->top);
    PyMem_Free(self->col_kind);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Each field's column, checked: one kind per column, and a column for every field that keeps one
 * (list items keep none). -1 with a ValueError otherwise. */
static int note_columns(const Table *t, int *kinds, int items) {
    for (int i = 0; i < t->n; i++) {
        const Field *f = &t->fields[i];
        int kept = f->kind != K_RECORD && f->kind != K_ASOF && f->kind != K_ID;
        if (!items && kept && f->col < 0) {
            PyErr_Format(PyExc_ValueError, "spec: field %s has no column", f->name);
            return -1;
        }
        if (!items && f->col >= 0) {
            if (!kept || (kinds[f->col] != 0 && kinds[f->col] != f->kind)) {
                PyErr_Format(PyExc_ValueError, "spec: column %d given to fields of two kinds", f->col);
                return -1;
            }
            kinds[f->col] = f->kind;
        }
        if (note_columns(&f->sub, kinds, items || f->kind == K_LIST) < 0) return -1;
    }
    return 0;
}

static int Reader_init(Reader *self, PyObject *args, PyObject *kwds) {
    PyObject *spec;
    int ncols;
    static char *kwlist[] = {"spec", "columns", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Oi", kwlist, &spec, &ncols)) return -1;
    if (ncols < 0 || ncols > MAX_COLUMNS) {
        PyErr_SetString(PyExc_ValueError, "columns out of range");
        return -1;
    }
    table_free(&self->top);
    PyMem_Free(self->col_kind);
    self->ncols = ncols;
    self->col_kind = PyMem_Calloc(ncols ? ncols : 1, sizeof(int));
    if (self->col_kind == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (table_init(&self->top, spec, 0, ncols) < 0) return -1;
    return note_columns(&self->top, self->col_kind, 0);
}

static PyObject *as_bytes(const void *data, Py_ssize_t size) {
    return PyBytes_FromStringAndSize(data, size);
}

static void out_free(Out *o, int ncols) {
    for (int c = 0; c < ncols; c++) {
        if (o->values) PyMem_Free(o->values[c]);
        if (o->known) PyMem_Free(o->known[c]);
        if (o->objects) Py_XDECREF(o->objects[c]);
        if (o->series) {
            PyMem_Free(o->series[c].owner);
            PyMem_Free(o->series[c].index);
            PyMem_Free(o->series[c].value);
        }
        if (o->last) Py_XDECREF(o->last[c]);
    }
    PyMem_Free(o->values);
    PyMem_Free(o->known);
    PyMem_Free(o->objects);
    PyMem_Free(o->series);
    PyMem_Free(o->last);
    PyMem_Free(o->last_bytes);
    PyMem_Free(o->last_len);
    PyMem_Free(o->as_of);
    PyMem_Free(o->scratch);
    Py_XDECREF(o->ids);
}

static PyObject *new_list_of(Py_ssize_t n, PyObject *fill) {
    PyObject *list = PyList_New(n);
    if (list == NULL) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_INCREF(fill);
        PyList_SET_ITEM(list, i, fill);
    }
    return list;
}

PyDoc_STRVAR(Reader_read_doc,
             "read(texts) -> (ok, as_of, ids, values, known, objects, series)\n\n"
             "ok: bytes, 1 for each text read, 0 for one declined. as_of: int64 ordinals (0: none). ids: a\n"
             "list. Per column: values (int64 bytes, or None), known (bytes), objects (a list of str for\n"
             "text and enum columns, else None), series ((owner, index, value) int64 bytes, or None).");

/* The households of ``n`` texts: the items of ``seq`` (str or bytes), or else the spans
 * [starts[i], ends[i]) of ``buf``. */
static PyObject *read_all(Reader *self, Py_ssize_t n, PyObject *seq, const char *buf, const int64_t *starts,
                          const int64_t *ends) {
    int ncols = self->ncols;
    Out *o = PyMem_Calloc(1, sizeof(Out));
    uint8_t *ok = PyMem_Calloc(n ? n : 1, 1);
    PyObject *result = NULL;
    if (o == NULL || ok == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    o->n = n;
    o->values = PyMem_Calloc(ncols ? ncols : 1, sizeof(int64_t *));
    o->known = PyMem_Calloc(ncols ? ncols : 1, sizeof(uint8_t *));
    o->objects = PyMem_Calloc(ncols ? ncols : 1, sizeof(PyObject *));
    o->series = PyMem_Calloc(ncols ? ncols : 1, sizeof(Entries));
    o->last = PyMem_Calloc(ncols ? ncols : 1, sizeof(PyObject *));
    o->last_bytes = PyMem_Calloc(ncols ? ncols : 1, CACHE_TEXT);
    o->last_len = PyMem_Calloc(ncols ? ncols : 1, sizeof(Py_ssize_t));
    o->as_of = PyMem_Calloc(n ? n : 1, sizeof(int64_t));
    o->ids = new_list_of(n, Py_None);
    if (!o->values || !o->known || !o->objects || !o->series || !o->last || !o->last_bytes || !o->last_len ||
        !o->as_of || !o->ids) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        goto done;
    }
    for (int c = 0; c < ncols; c++) {
        int kind = self->col_kind[c];
        o->known[c] = PyMem_Calloc(n ? n : 1, 1);
        if (o->known[c] == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        if (kind == K_TEXT || kind == K_ENUM) {
            o->objects[c] = new_list_of(n, EMPTY);
            if (o->objects[c] == NULL) goto done;
        } else if (kind != K_SERIES) {
            o->values[c] = PyMem_Calloc(n ? n : 1, sizeof(int64_t));
            if (o->values[c] == NULL) {
                PyErr_NoMemory();
                goto done;
            }
        }
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *s;
        Py_ssize_t len;
        PyObject *item = seq != NULL ? PySequence_Fast_GET_ITEM(seq, i) : NULL;
        if (item == NULL) {
            s = buf + starts[i];
            len = (Py_ssize_t)(ends[i] - starts[i]);
        } else if (PyUnicode_Check(item)) {
            s = PyUnicode_AsUTF8AndSize(item, &len);
            if (s == NULL) { /* a lone surrogate: not text that UTF-8 can hold */
                PyErr_Clear();
                continue;
            }
        } else if (PyBytes_Check(item)) {
            s = PyBytes_AS_STRING(item);
            len = PyBytes_GET_SIZE(item);
        } else {
            continue;
        }
        if (len + 1 > o->scratch_cap) {
            PyMem_Free(o->scratch);
            o->scratch_cap = len + 1 > 4096 ? len + 1 : 4096;
            o->scratch = PyMem_Malloc(o->scratch_cap);
            if (o->scratch == NULL) {
                PyErr_NoMemory();
                goto done;
            }
        }
        const char *end = s + len;
        const char *p = skip_ws(s, end);
        if (p >= end || *p != '{') continue;
        int r = read_object(&self->top, &p, end, o, i, 0);
        if (r < 0) goto done;
        ok[i] = r == 1 && skip_ws(p, end) == end;
    }
    PyObject *values = PyList_New(ncols), *known = PyList_New(ncols), *objects = PyList_New(ncols),
             *series = PyList_New(ncols);
    if (values == NULL || known == NULL || objects == NULL || series == NULL) goto fail;
    for (int c = 0; c < ncols; c++) {
        PyObject *v = o->values[c] ? as_bytes(o->values[c], n * sizeof(int64_t)) : Py_NewRef(Py_None);
        PyObject *k = as_bytes(o->known[c], n);
        PyObject *obj = o->objects[c] ? Py_NewRef(o->objects[c]) : Py_NewRef(Py_None);
        PyObject *s = Py_None;
        if (self->col_kind[c] == K_SERIES) {
            Entries *e = &o->series[c];
            PyObject *owner = as_bytes(e->owner, e->size * sizeof(int64_t)),
                     *index = as_bytes(e->index, e->size * sizeof(int64_t)),
                     *value = as_bytes(e->value, e->size * sizeof(int64_t));
            s = owner && index && value ? PyTuple_Pack(3, owner, index, value) : NULL;
            Py_XDECREF(owner);
            Py_XDECREF(index);
            Py_XDECREF(value);
        } else {
            Py_INCREF(s);
        }
        if (v == NULL || k == NULL || s == NULL) {
            Py_XDECREF(v);
            Py_XDECREF(k);
            Py_XDECREF(obj);
            Py_XDECREF(s);
            goto fail;
        }
        PyList_SET_ITEM(values, c, v);
        PyList_SET_ITEM(known, c, k);
        PyList_SET_ITEM(objects, c, obj);
        PyList_SET_ITEM(series, c, s);
    }
    PyObject *ok_bytes = as_bytes(ok, n), *as_of = as_bytes(o->as_of, n * sizeof(int64_t));
    if (ok_bytes != NULL && as_of != NULL)
        result = PyTuple_Pack(7, ok_bytes, as_of, o->ids, values, known, objects, series);
    Py_XDECREF(ok_bytes);
    Py_XDECREF(as_of);
    if (result == NULL) goto fail;
    Py_DECREF(values);
    Py_DECREF(known);
    Py_DECREF(objects);
    Py_DECREF(series);
    goto done;
fail:
    Py_XDECREF(values);
    Py_XDECREF(known);
    Py_XDECREF(objects);
    Py_XDECREF(series);
done:
    if (o != NULL) out_free(o, ncols);
    PyMem_Free(o);
    PyMem_Free(ok);
    return result;
}

static PyObject *Reader_read(Reader *self, PyObject *texts) {
    PyObject *seq = PySequence_Fast(texts, "read: expected a sequence of texts");
    if (seq == NULL) return NULL;
    PyObject *result = read_all(self, PySequence_Fast_GET_SIZE(seq), seq, NULL, NULL, NULL);
    Py_DECREF(seq);
    return result;
}

PyDoc_STRVAR(Reader_read_spans_doc,
             "read_spans(buffer, starts, ends) -> as read(texts)\n\n"
             "The texts are the spans [starts[i], ends[i]) of buffer (bytes); starts and ends are int64\n"
             "bytes, as lines() gives them.");

static PyObject *Reader_read_spans(Reader *self, PyObject *args) {
    Py_buffer buf, starts, ends;
    if (!PyArg_ParseTuple(args, "y*y*y*", &buf, &starts, &ends)) return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = starts.len / (Py_ssize_t)sizeof(int64_t);
    if (starts.len != ends.len || starts.len % (Py_ssize_t)sizeof(int64_t)) {
        PyErr_SetString(PyExc_ValueError, "read_spans: starts and ends must be int64 of the same length");
        goto done;
    }
    const int64_t *st = starts.buf, *en = ends.buf;
    for (Py_ssize_t i = 0; i < n; i++)
        if (st[i] < 0 || en[i] < st[i] || en[i] > buf.len) {
            PyErr_SetString(PyExc_ValueError, "read_spans: a span outside the buffer");
            goto done;
        }
    result = read_all(self, n, NULL, buf.buf, st, en);
done:
    PyBuffer_Release(&buf);
    PyBuffer_Release(&starts);
    PyBuffer_Release(&ends);
    return result;
}

static inline int blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\x0b' || c == '\x0c'; }

PyDoc_STRVAR(lines_doc,
             "lines(block, before) -> (numbers, starts, ends)\n\n"
             "The households of a block of whole lines (bytes) that follows ``before`` lines of its file, as\n"
             "batch.block_lines reads them: each line that is not blank, its number, and the span of its text\n"
             "without the line end (and without a byte order mark on line 1 of the file); int64 bytes.");

static PyObject *lines(PyObject *module, PyObject *args) {
    (void)module;
    Py_buffer view;
    Py_ssize_t before;
    if (!PyArg_ParseTuple(args, "y*n", &view, &before)) return NULL;
    const char *s = view.buf;
    Py_ssize_t len = view.len, cap = 1, k = 0, line = before;
    for (const char *p = s; (p = memchr(p, '\n', (size_t)(s + len - p))) != NULL; p++) cap++;
    int64_t *number = PyMem_Malloc(cap * sizeof(int64_t)), *start = PyMem_Malloc(cap * sizeof(int64_t)),
            *end = PyMem_Malloc(cap * sizeof(int64_t));
    PyObject *result = NULL;
    if (number == NULL || start == NULL || end == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t pos = 0; pos < len;) {
        const char *nl = memchr(s + pos, '\n', (size_t)(len - pos));
        Py_ssize_t stop = nl != NULL ? nl - s : len, a = pos, b = stop;
        line++;
        while (a < stop && blank(s[a])) a++;
        if (a < stop) { /* not blank: the text, without the \r of a CRLF line end */
            while (b > pos && s[b - 1] == '\r') b--;
            a = pos;
            if (line == 1 && b - a >= 3 && memcmp(s + a, "\xef\xbb\xbf", 3) == 0) a += 3;
            number[k] = line;
            start[k] = a;
            end[k] = b;
            k++;
        }
        pos = stop + 1;
    }
    PyObject *n = as_bytes(number, k * sizeof(int64_t)), *st = as_bytes(start, k * sizeof(int64_t)),
             *en = as_bytes(end, k * sizeof(int64_t));
    if (n != NULL && st != NULL && en != NULL) result = PyTuple_Pack(3, n, st, en);
    Py_XDECREF(n);
    Py_XDECREF(st);
    Py_XDECREF(en);
done:
    PyMem_Free(number);
    PyMem_Free(start);
    PyMem_Free(end);
    PyBuffer_Release(&view);
    return result;
}

/* A part of the rows written by rows(): what each row gets from it. */
typedef struct {
    int kind; /* P_TEXT: the same text in every row; P_EACH: a list, an item per row; P_PICK: texts[index[k]];
                 P_INT: the decimal digits of values[k] */
    const char *text;
    Py_ssize_t len;
    PyObject *list;
    const int64_t *numbers;
    Py_ssize_t count;
} Part;

enum { P_TEXT, P_EACH, P_PICK, P_INT };

/* The UTF-8 of a str or bytes item; NULL (with an error) for anything else. */
static const char *utf8_of(PyObject *item, Py_ssize_t *len) {
    if (PyBytes_Check(item)) {
        *len = PyBytes_GET_SIZE(item);
        return PyBytes_AS_STRING(item);
    }
    if (PyUnicode_Check(item)) return PyUnicode_AsUTF8AndSize(item, len);
    PyErr_SetString(PyExc_TypeError, "rows: texts must be str or bytes");
    return NULL;
}

static int part_of(PyObject *spec, Part *part, Py_ssize_t n) {
    memset(part, 0, sizeof(Part));
    if (PyBytes_Check(spec) || PyUnicode_Check(spec)) {
        part->kind = P_TEXT;
        part->text = utf8_of(spec, &part->len);
        return part->text == NULL ? -1 : 0;
    }
    if (PyList_Check(spec)) {
        if (PyList_GET_SIZE(spec) != n) {
            PyErr_SetString(PyExc_ValueError, "rows: a list part must have an item per position");
            return -1;
        }
        part->kind = P_EACH;
        part->list = spec;
        return 0;
    }
    const char *kind;
    PyObject *a, *b = NULL;
    Py_buffer view;
    if (PyTuple_Check(spec) && PyTuple_GET_SIZE(spec) == 3 && PyArg_ParseTuple(spec, "sOO", &kind, &a, &b) &&
        strcmp(kind, "pick") == 0 && PyList_Check(a)) {
        part->kind = P_PICK;
        part->list = a;
    } else if (PyTuple_Check(spec) && PyTuple_GET_SIZE(spec) == 2 && PyArg_ParseTuple(spec, "sO", &kind, &b) &&
               strcmp(kind, "int") == 0) {
        part->kind = P_INT;
    } else {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "rows: a part is a text, a list, ('pick', texts, index) or ('int', values)");
        return -1;
    }
    if (!PyBytes_Check(b)) {
        PyErr_SetString(PyExc_TypeError, "rows: indexes and values are int64 bytes");
        return -1;
    }
    if (PyObject_GetBuffer(b, &view, PyBUF_SIMPLE) < 0) return -1;
    part->numbers = view.buf;
    part->count = view.len / (Py_ssize_t)sizeof(int64_t);
    PyBuffer_Release(&view); /* bytes are immutable: the pointer stays valid while the tuple holds them */
    if (part->count != n || view.len % (Py_ssize_t)sizeof(int64_t)) {
        PyErr_SetString(PyExc_ValueError, "rows: an index or value per position");
        return -1;
    }
    if (part->kind == P_PICK)
        for (Py_ssize_t k = 0; k < n; k++)
            if (part->numbers[k] < 0 || part->numbers[k] >= PyList_GET_SIZE(part->list)) {
                PyErr_SetString(PyExc_IndexError, "rows: an index outside its texts");
                return -1;
            }
    return 0;
}

/* The decimal digits of v, written at the end of buf (24 bytes); returns where they start. */
static char *digits(int64_t v, char *buf, Py_ssize_t *len) {
    char *end = buf + 24, *p = end;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *--p = '-';
    *len = end - p;
    return p;
}

/* The text part ``p`` gives row ``k`` (a number is written in ``buf``, 24 bytes). */
static const char *piece_of(const Part *p, Py_ssize_t k, char *buf, Py_ssize_t *len) {
    switch (p->kind) {
    case P_TEXT:
        *len = p->len;
        return p->text;
    case P_EACH:
        if (PyList_GET_SIZE(p->list) <= k) break;
        return utf8_of(PyList_GET_ITEM(p->list, k), len);
    case P_PICK:
        if (PyList_GET_SIZE(p->list) <= p->numbers[k]) break;
        return utf8_of(PyList_GET_ITEM(p->list, p->numbers[k]), len);
    case P_INT:
        return digits(p->numbers[k], buf, len);
    }
    PyErr_SetString(PyExc_RuntimeError, "rows: a part changed while the rows were written");
    return NULL;
}

PyDoc_STRVAR(rows_doc,
             "rows(parts, target, positions) -> None\n\n"
             "For each k, target[positions[k]] = bytes: the UTF-8 of each part in turn, where a part is a text\n"
             "(str or bytes) the same in every row, a list (its k-th item), ('pick', texts, index) (texts[index[k]])\n"
             "or ('int', values) (the digits of values[k]); index and values are int64 bytes. Rows of JSON Lines\n"
             "are written this way from pieces each made once per column or per group of alike rows.");

static PyObject *rows(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *specs, *target, *positions;
    if (!PyArg_ParseTuple(args, "O!O!O!", &PyList_Type, &specs, &PyList_Type, &target, &PyList_Type, &positions))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(positions), nparts = PyList_GET_SIZE(specs);
    specs = PySequence_Tuple(specs); /* held for the whole call: the parts' buffers stay alive */
    if (specs == NULL) return NULL;
    PyObject *result = NULL;
    Part *parts = PyMem_Calloc(nparts ? nparts : 1, sizeof(Part));
    if (parts == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t j = 0; j < nparts; j++)
        if (part_of(PyTuple_GET_ITEM(specs, j), &parts[j], n) < 0) goto done;
    const char **text = PyMem_Calloc(nparts ? nparts : 1, sizeof(char *));
    Py_ssize_t *size = PyMem_Calloc(nparts ? nparts : 1, sizeof(Py_ssize_t));
    char (*number)[24] = PyMem_Calloc(nparts ? nparts : 1, 24);
    if (text == NULL || size == NULL || number == NULL) {
        PyErr_NoMemory();
        goto free;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        Py_ssize_t length = 0;
        for (Py_ssize_t j = 0; j < nparts; j++) { /* the pieces of this row, kept for the copy below */
            text[j] = piece_of(&parts[j], k, number[j], &size[j]);
            if (text[j] == NULL) goto free;
            length += size[j];
        }
        PyObject *row = PyBytes_FromStringAndSize(NULL, length);
        if (row == NULL) goto free;
        char *at = PyBytes_AS_STRING(row);
        for (Py_ssize_t j = 0; j < nparts; j++) {
            memcpy(at, text[j], (size_t)size[j]);
            at += size[j];
        }
        Py_ssize_t position = k < PyList_GET_SIZE(positions) ? PyLong_AsSsize_t(PyList_GET_ITEM(positions, k)) : -1;
        if (position < 0 || position >= PyList_GET_SIZE(target)) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_IndexError, "rows: a position outside the target");
            Py_DECREF(row);
            goto free;
        }
        PyList_SetItem(target, position, row); /* steals the row, releases what was there */
    }
    result = Py_NewRef(Py_None);
free:
    PyMem_Free(text);
    PyMem_Free(size);
    PyMem_Free(number);
    goto done;
done:
    PyMem_Free(parts);
    Py_DECREF(specs);
    return result;
}

PyDoc_STRVAR(hold_memory_doc,
"hold_memory() -> bool\n\n"
"Keep memory that this process frees for its next use instead of returning it to the system: blocks up\n"
"to 32 MiB come from the heap (not a fresh mapping each), and the heap is not trimmed below 256 MiB.\n"
"A batch worker allocates and frees the same few megabytes at every block; taking fresh pages from the\n"
"system each time made a page fault per 4 KiB touched. The process's memory stays at its largest\n"
"block's. True where the C library takes the setting (glibc), else False and nothing changes.");

static PyObject *hold_memory(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
#if defined(__GLIBC__) && defined(M_MMAP_THRESHOLD) && defined(M_TRIM_THRESHOLD)
    if (mallopt(M_MMAP_THRESHOLD, 32 << 20) && mallopt(M_TRIM_THRESHOLD, 256 << 20)) Py_RETURN_TRUE;
#endif
    Py_RETURN_FALSE;
}

static PyMethodDef module_methods[] = {
    {"hold_memory", (PyCFunction)hold_memory, METH_NOARGS, hold_memory_doc},
    {"lines", (PyCFunction)lines, METH_VARARGS, lines_doc},
    {"rows", (PyCFunction)rows, METH_VARARGS, rows_doc},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef Reader_methods[] = {
    {"read", (PyCFunction)Reader_read, METH_O, Reader_read_doc},
    {"read_spans", (PyCFunction)Reader_read_spans, METH_VARARGS, Reader_read_spans_doc},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "policydsl._fastread.Reader",
    .tp_basicsize = sizeof(Reader),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = PyDoc_STR("Reader(spec, columns): reads households of one policy into columns."),
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Reader_init,
    .tp_dealloc = (destructor)Reader_dealloc,
    .tp_methods = Reader_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastread",
    "The native reader of the compiled batch path (optional: batch_read falls back to msgspec).", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastread(void) {
    if (PyType_Ready(&ReaderType) < 0) return NULL;
    EMPTY = PyUnicode_FromString("");
    if (EMPTY == NULL) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&ReaderType);
    if (PyModule_AddObject(m, "Reader", (PyObject *)&ReaderType) < 0) {
        Py_DECREF(&ReaderType);
        Py_DECREF(m);
        return NULL;
    }
    static const char *names[] = {"NUM", "COUNT", "BOOL", "TEXT", "DATE", "SET", "ENUM", "LIST", "SERIES",
                                  "RECORD", "AS_OF", "ID"};
    for (int k = 0; k < 12; k++)
        if (PyModule_AddIntConstant(m, names[k], k + 1) < 0) return NULL;
    if (PyModule_AddIntConstant(m, "MAX_FIELDS", MAX_FIELDS) < 0 ||
        PyModule_AddIntConstant(m, "MAX_COLUMNS", MAX_COLUMNS) < 0)
        return NULL;
    return m;
}
