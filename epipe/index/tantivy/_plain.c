/* epipe.index.tantivy._plain: whether a document's JSON text carries it exactly.
 *
 * The compiled twins of `exact_numbers_python` and `plain_time_python`
 * (epipe/index/tantivy/document.py), which stay the definitions: a property test holds the
 * two equal. Both run for every document handed to tantivy as JSON text (a move rewrites
 * 100,000 at a time); in Python they were a tenth of the index consumer's time.
 *
 * exact_numbers(value, dumps) -> bool
 *   Every float in `value` (dicts and lists walked, exact types only) is finite and its
 *   text as `dumps` writes it (orjson.dumps: the text tantivy will read) has at most
 *   2^53 as its digits and a power of ten of at most 22 either way.
 * plain_time(text) -> bool
 *   `text` is YYYY-MM-DDTHH:MM:SS[.ffffff]+HH:MM (seconds below 60) of a year 1678..2261.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>

#define EXACT_DIGITS (UINT64_C(1) << 53)
#define EXACT_POWER 22

/* 1: the text of a double reads back exactly, 0: it does not, -1: not a number's text. */
static int
exact_text(const char *text, Py_ssize_t size)
{
    Py_ssize_t i = 0;
    uint64_t digits = 0;
    int significant = 0; /* digits counted after the leading zeros */
    long fraction = 0;
    long exponent = 0;
    if (i < size && text[i] == '-') {
        i++;
    }
    int seen = 0, in_fraction = 0;
    for (; i < size && text[i] != 'e' && text[i] != 'E'; i++) {
        char c = text[i];
        if (c == '.' && !in_fraction) {
            in_fraction = 1;
            continue;
        }
        if (c < '0' || c > '9') {
            return -1;
        }
        seen = 1;
        if (in_fraction) {
            fraction++;
        }
        if (significant == 0 && c == '0') {
            continue;
        }
        if (++significant > 19) {
            return 0; /* above 10^19: far past 2^53 */
        }
        digits = digits * 10 + (uint64_t)(c - '0');
    }
    if (!seen) {
        return -1;
    }
    if (i < size) { /* the exponent */
        i++;
        int negative = 0;
        if (i < size && (text[i] == '-' || text[i] == '+')) {
            negative = text[i] == '-';
            i++;
        }
        if (i == size) {
            return -1;
        }
        for (; i < size; i++) {
            char c = text[i];
            if (c < '0' || c > '9') {
                return -1;
            }
            if (exponent < 100000) {
                exponent = exponent * 10 + (c - '0');
            }
        }
        if (negative) {
            exponent = -exponent;
        }
    }
    long power = exponent - fraction;
    return digits <= EXACT_DIGITS && power <= EXACT_POWER && power >= -EXACT_POWER;
}

/* 1 exact, 0 not, -1 error (raised). */
static int
exact_float(PyObject *item, PyObject *dumps)
{
    if (!isfinite(PyFloat_AS_DOUBLE(item))) {
        return 0;
    }
    PyObject *text = PyObject_CallOneArg(dumps, item);
    if (text == NULL) {
        return -1;
    }
    if (!PyBytes_Check(text)) {
        Py_DECREF(text);
        PyErr_SetString(PyExc_TypeError, "exact_numbers(): dumps must return bytes");
        return -1;
    }
    int exact = exact_text(PyBytes_AS_STRING(text), PyBytes_GET_SIZE(text));
    if (exact < 0) {
        PyErr_Format(PyExc_ValueError, "exact_numbers(): %R is not a number's text", text);
    }
    Py_DECREF(text);
    return exact;
}

static PyObject *
exact_numbers(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "exact_numbers() takes 2 arguments");
        return NULL;
    }
    PyObject *dumps = args[1];
    /* A stack of our own, as the definition's: any depth is walked. It holds a reference
     * to each item, so that a `dumps` that changed a container could not free one. */
    Py_ssize_t capacity = 64, top = 0;
    PyObject **stack = PyMem_Malloc((size_t)capacity * sizeof(PyObject *));
    if (stack == NULL) {
        return PyErr_NoMemory();
    }
    Py_INCREF(args[0]);
    stack[top++] = args[0];
    int result = 1;
    while (top > 0 && result == 1) {
        PyObject *item = stack[--top];
        Py_ssize_t count = 0;
        if (PyDict_CheckExact(item)) {
            count = PyDict_GET_SIZE(item);
        } else if (PyList_CheckExact(item)) {
            count = PyList_GET_SIZE(item);
        } else if (PyFloat_CheckExact(item)) {
            result = exact_float(item, dumps);
        }
        if (count > 0 && top + count > capacity) {
            Py_ssize_t wanted = (top + count) * 2;
            PyObject **grown = PyMem_Realloc(stack, (size_t)wanted * sizeof(PyObject *));
            if (grown == NULL) {
                PyErr_NoMemory();
                result = -1;
                count = 0;
            } else {
                stack = grown;
                capacity = wanted;
            }
        }
        if (count > 0 && PyDict_CheckExact(item)) {
            Py_ssize_t pos = 0;
            PyObject *key, *value;
            while (PyDict_Next(item, &pos, &key, &value)) {
                Py_INCREF(value);
                stack[top++] = value;
            }
        } else if (count > 0) {
            for (Py_ssize_t i = 0; i < count; i++) {
                PyObject *value = PyList_GET_ITEM(item, i);
                Py_INCREF(value);
                stack[top++] = value;
            }
        }
        Py_DECREF(item);
    }
    while (top > 0) {
        Py_DECREF(stack[--top]);
    }
    PyMem_Free(stack);
    if (result < 0) {
        return NULL;
    }
    return PyBool_FromLong(result);
}

static int
all_digits(const char *text, int count)
{
    for (int i = 0; i < count; i++) {
        if (text[i] < '0' || text[i] > '9') {
            return 0;
        }
    }
    return 1;
}

static PyObject *
plain_time(PyObject *module, PyObject *text)
{
    (void)module;
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "plain_time() takes a str, not %T", text);
        return NULL;
    }
    if (!PyUnicode_IS_ASCII(text)) {
        Py_RETURN_FALSE; /* every character of the pattern is ASCII */
    }
    const char *t = (const char *)PyUnicode_DATA(text);
    Py_ssize_t size = PyUnicode_GET_LENGTH(text);
    Py_ssize_t zone = size - 6; /* where [+-]HH:MM starts */
    if (size != 25 && size != 32) {
        Py_RETURN_FALSE;
    }
    int ok = all_digits(t, 4) && t[4] == '-' && all_digits(t + 5, 2) && t[7] == '-'
             && all_digits(t + 8, 2) && t[10] == 'T' && all_digits(t + 11, 2)
             && t[13] == ':' && all_digits(t + 14, 2) && t[16] == ':' && t[17] >= '0'
             && t[17] <= '5' && all_digits(t + 18, 1)
             && (size == 25 || (t[19] == '.' && all_digits(t + 20, 6)))
             && (t[zone] == '+' || t[zone] == '-') && all_digits(t + zone + 1, 2)
             && t[zone + 3] == ':' && all_digits(t + zone + 4, 2)
             && memcmp(t, "1678", 4) >= 0 && memcmp(t, "2261", 4) <= 0;
    return PyBool_FromLong(ok);
}

static PyMethodDef methods[] = {
    {"exact_numbers", (PyCFunction)(void (*)(void))exact_numbers, METH_FASTCALL,
     "exact_numbers(value, dumps) -> whether tantivy reads every double in value back "
     "from its text"},
    {"plain_time", (PyCFunction)plain_time, METH_O,
     "plain_time(text) -> whether text is an ISO 8601 time tantivy's JSON reader takes as is"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_plain", "what a document's JSON text carries exactly (compiled)",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__plain(void)
{
    return PyModule_Create(&module);
}
