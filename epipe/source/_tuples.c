/* epipe.source._tuples: a pgoutput TupleData straight into a row dict.
 *
 * The compiled twin of `Table.parse_python` (epipe/source/translate.py), which stays the
 * definition: a property test holds the two equal. Half of the tailer's time was that loop
 * in Python. The common column types are converted here; any other, and any value outside
 * the plain shapes handled here, goes to the column's Python converter, so results (and
 * errors) are the converter's own.
 *
 * parse(buf, pos, table, columns, codes, converters, error) -> (row, unchanged, end)
 *   codes: one byte per column: 'i' integer, 'b' boolean, 's' text, 'z' timestamptz,
 *   anything else: call the converter.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static PyObject *
call_converter(PyObject *convert, const char *start, Py_ssize_t size)
{
    PyObject *slice = PyBytes_FromStringAndSize(start, size);
    if (slice == NULL) {
        return NULL;
    }
    PyObject *value = PyObject_CallOneArg(convert, slice);
    Py_DECREF(slice);
    return value;
}

/* int(b"...") for an optional '-' and 1..18 digits; anything else is the converter's. */
static PyObject *
integer(PyObject *convert, const char *start, Py_ssize_t size)
{
    Py_ssize_t i = (size > 0 && start[0] == '-') ? 1 : 0;
    Py_ssize_t digits = size - i;
    if (digits < 1 || digits > 18) {
        return call_converter(convert, start, size);
    }
    long long value = 0;
    for (; i < size; i++) {
        char c = start[i];
        if (c < '0' || c > '9') {
            return call_converter(convert, start, size);
        }
        value = value * 10 + (c - '0');
    }
    return PyLong_FromLongLong(start[0] == '-' ? -value : value);
}

/* '2026-11-26 18:13:52.03+00' -> '2026-11-26T18:13:52.03+00:00' for ASCII text of up to 64
 * bytes that starts with a digit; the rest (infinity, odd text) is the converter's. */
static PyObject *
timestamptz(PyObject *convert, const char *start, Py_ssize_t size)
{
    char iso[68];
    if (size < 19 || size > 64 || start[0] < '0' || start[0] > '9') {
        return call_converter(convert, start, size);
    }
    for (Py_ssize_t i = 0; i < size; i++) {
        if ((unsigned char)start[i] > 0x7F) {
            return call_converter(convert, start, size);
        }
    }
    memcpy(iso, start, (size_t)size);
    iso[10] = 'T';
    Py_ssize_t length = size;
    if (iso[length - 3] == '+' || iso[length - 3] == '-') {
        memcpy(iso + length, ":00", 3);
        length += 3;
    }
    return PyUnicode_DecodeASCII(iso, length, NULL);
}

static int
malformed(PyObject *error, PyObject *table, const char *what)
{
    PyErr_Format(error, "%U: %s", table, what);
    return -1;
}

static PyObject *
parse(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "parse() takes 7 arguments");
        return NULL;
    }
    PyObject *buffer = args[0], *table = args[2], *columns = args[3], *codes = args[4];
    PyObject *converters = args[5], *error = args[6];
    if (!PyBytes_Check(buffer) || !PyUnicode_Check(table) || !PyTuple_Check(columns)
        || !PyBytes_Check(codes) || !PyTuple_Check(converters)) {
        PyErr_SetString(PyExc_TypeError, "parse(bytes, int, str, tuple, bytes, tuple, type)");
        return NULL;
    }
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred()) {
        return NULL;
    }
    const unsigned char *buf = (const unsigned char *)PyBytes_AS_STRING(buffer);
    Py_ssize_t end = PyBytes_GET_SIZE(buffer);
    Py_ssize_t ncolumns = PyTuple_GET_SIZE(columns);
    if (PyBytes_GET_SIZE(codes) != ncolumns || PyTuple_GET_SIZE(converters) != ncolumns) {
        PyErr_SetString(PyExc_ValueError, "parse(): one code and converter per column");
        return NULL;
    }
    const char *code = PyBytes_AS_STRING(codes);
    if (pos < 0 || pos + 2 > end) {
        malformed(error, table, "tuple runs past the end of the message");
        return NULL;
    }
    Py_ssize_t count = (int16_t)((buf[pos] << 8) | buf[pos + 1]);
    if (count != ncolumns) {
        PyErr_Format(error, "%U: %zd columns in a tuple of %zd", table, count, ncolumns);
        return NULL;
    }
    pos += 2;
    PyObject *row = PyDict_New();
    PyObject *unchanged = PyList_New(0);
    if (row == NULL || unchanged == NULL) {
        goto fail;
    }
    for (Py_ssize_t i = 0; i < ncolumns; i++) {
        PyObject *name = PyTuple_GET_ITEM(columns, i);
        if (pos >= end) {
            malformed(error, table, "tuple runs past the end of the message");
            goto fail;
        }
        unsigned char kind = buf[pos];
        if (kind == 't') {
            if (pos + 5 > end) {
                malformed(error, table, "tuple runs past the end of the message");
                goto fail;
            }
            int32_t size = (int32_t)(((uint32_t)buf[pos + 1] << 24) | ((uint32_t)buf[pos + 2] << 16)
                                     | ((uint32_t)buf[pos + 3] << 8) | (uint32_t)buf[pos + 4]);
            Py_ssize_t start = pos + 5;
            if (size < 0 || size > end - start) {
                malformed(error, table, "tuple runs past the end of the message");
                goto fail;
            }
            pos = start + size;
            const char *text = (const char *)buf + start;
            PyObject *convert = PyTuple_GET_ITEM(converters, i);
            PyObject *value;
            switch (code[i]) {
            case 'i':
                value = integer(convert, text, size);
                break;
            case 'b':
                value = (size == 1 && text[0] == 't') ? Py_True : Py_False;
                Py_INCREF(value);
                break;
            case 's':
                value = PyUnicode_DecodeUTF8(text, size, NULL);
                break;
            case 'z':
                value = timestamptz(convert, text, size);
                break;
            default:
                value = call_converter(convert, text, size);
            }
            if (value == NULL) {
                goto fail;
            }
            int failed = PyDict_SetItem(row, name, value);
            Py_DECREF(value);
            if (failed) {
                goto fail;
            }
        } else if (kind == 'n') {
            if (PyDict_SetItem(row, name, Py_None)) {
                goto fail;
            }
            pos += 1;
        } else if (kind == 'u') {
            if (PyList_Append(unchanged, name)) {
                goto fail;
            }
            pos += 1;
        } else {
            PyErr_Format(error, "unexpected tuple column kind '%c'", (int)kind);
            goto fail;
        }
    }
    PyObject *result = Py_BuildValue("(NNn)", row, unchanged, pos);
    return result;
fail:
    Py_XDECREF(row);
    Py_XDECREF(unchanged);
    return NULL;
}

static PyMethodDef methods[] = {
    {"parse", (PyCFunction)(void (*)(void))parse, METH_FASTCALL,
     "parse(buf, pos, table, columns, codes, converters, error) -> (row, unchanged, end)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_tuples", "pgoutput TupleData -> row dict (compiled)", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__tuples(void)
{
    return PyModule_Create(&module);
}
