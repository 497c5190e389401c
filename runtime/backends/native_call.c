/* rnnedge's per-step call into a generated C step (runtime/backends/native_call.py builds it).
 *
 * One Stepper per runner: it holds the address of rnnedge_step (or, for n streams, of
 * rnnedge_step_n and n, with the streams' tensors one after another), the runner's
 * two bound (in, out) pointer arrays whose state buffers swap roles every step, the
 * workspace, the bound input buffer and the bound outputs. step(x) does in C what the ctypes
 * path does in Python: checks x (exact type, dtype, shape, C order; finite in checked_step),
 * copies it in, calls the step, flips the parity and returns NEW arrays copied from the
 * outputs (the caller owns them: the next step overwrites the bound buffers). Anything the
 * fast path does not take goes to Python callables: `slow(x)` (step: another dtype or shape,
 * a list), `check(x)` (checked_step, also for NaN/Inf: the Stream's checks, which convert or
 * raise) and `fail(rc)` (a nonzero return), which raise the backend's own errors.
 */
#define PY_SSIZE_T_CLEAN
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <Python.h>
#include <structmember.h>
#include <numpy/arrayobject.h>
#include <string.h>
#include <stdint.h>

typedef int (*step_fn)(const float *const *, float *const *, void *);
/* rnnedge_step_n: a Stepper made with n > 0 steps n streams per call (streams(n)) */
typedef int (*step_n_fn)(int, const float *const *, float *const *, void *);

typedef struct {
    PyObject_HEAD
    step_fn fn;
    step_n_fn fn_n;
    void *bound[2][2]; /* [parity][in, out]: the two pointer arrays */
    void *ws;
    PyArrayObject *x;  /* the bound input (its shape and dtype are the expected ones) */
    PyObject *ys;      /* tuple of the bound outputs */
    PyObject *slow, *fail, *check;
    int parity, single, nogil;
    int n;             /* 0: fn is rnnedge_step; n > 0: fn is rnnedge_step_n over n streams */
} Stepper;

static int all_finite(const PyArrayObject *x)
{
    const uint32_t *v = (const uint32_t *)PyArray_DATA((PyArrayObject *)x);
    npy_intp n = PyArray_SIZE((PyArrayObject *)x);
    uint32_t bad = 0;
    for (npy_intp i = 0; i < n; i++) bad |= ((v[i] & 0x7f800000u) == 0x7f800000u);
    return !bad;
}

static int takes(Stepper *s, PyObject *o, int finite)
{
    if (!PyArray_CheckExact(o)) return 0;
    PyArrayObject *a = (PyArrayObject *)o, *x = s->x;
    int nd = PyArray_NDIM(x);
    if (PyArray_TYPE(a) != PyArray_TYPE(x) || PyArray_NDIM(a) != nd) return 0;
    if (!PyArray_IS_C_CONTIGUOUS(a) || PyArray_ISBYTESWAPPED(a)) return 0;
    for (int i = 0; i < nd; i++)
        if (PyArray_DIM(a, i) != PyArray_DIM(x, i)) return 0;
    return !finite || all_finite(a);
}

static PyObject *copy_of(PyObject *o)
{
    /* a new C-order float32 array with y's shape and data: cheaper than PyArray_NewCopy,
     * which goes through numpy's general assignment machinery */
    PyArrayObject *y = (PyArrayObject *)o;
    PyObject *c = PyArray_SimpleNew(PyArray_NDIM(y), PyArray_DIMS(y), PyArray_TYPE(y));
    if (c != NULL) memcpy(PyArray_DATA((PyArrayObject *)c), PyArray_DATA(y), PyArray_NBYTES(y));
    return c;
}

static PyObject *outputs(Stepper *s)
{
    Py_ssize_t n = PyTuple_GET_SIZE(s->ys);
    if (s->single) return copy_of(PyTuple_GET_ITEM(s->ys, 0));
    PyObject *t = PyTuple_New(n);
    if (t == NULL) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *y = copy_of(PyTuple_GET_ITEM(s->ys, i));
        if (y == NULL) { Py_DECREF(t); return NULL; }
        PyTuple_SET_ITEM(t, i, y);
    }
    return t;
}

static int call(const Stepper *s, void **b)
{
    if (s->n > 0)
        return s->fn_n(s->n, (const float *const *)b[0], (float *const *)b[1], s->ws);
    return s->fn((const float *const *)b[0], (float *const *)b[1], s->ws);
}

static PyObject *run(Stepper *s, PyArrayObject *a)
{
    memcpy(PyArray_DATA(s->x), PyArray_DATA(a), PyArray_NBYTES(a));
    void **b = s->bound[s->parity];
    int rc;
    if (s->nogil) {
        Py_BEGIN_ALLOW_THREADS
        rc = call(s, b);
        Py_END_ALLOW_THREADS
    } else {
        rc = call(s, b);
    }
    if (rc) return PyObject_CallFunction(s->fail, "i", rc);
    s->parity ^= 1;
    return outputs(s);
}

static PyObject *stepper_step(Stepper *s, PyObject *o)
{
    if (!takes(s, o, 0)) return PyObject_CallOneArg(s->slow, o);
    return run(s, (PyArrayObject *)o);
}

static PyObject *stepper_checked_step(Stepper *s, PyObject *o)
{
    /* x as it comes, or as `check` converts it (check raises the Stream's InputError) */
    if (takes(s, o, 1)) return run(s, (PyArrayObject *)o);
    if (s->check == NULL || s->check == Py_None) {
        PyErr_SetString(PyExc_RuntimeError, "Stepper.check is not set");
        return NULL;
    }
    PyObject *c = PyObject_CallOneArg(s->check, o);
    if (c == NULL) return NULL;
    PyObject *r = takes(s, c, 1) ? run(s, (PyArrayObject *)c) : PyObject_CallOneArg(s->slow, c);
    Py_DECREF(c);
    return r;
}

static PyObject *stepper_get_parity(Stepper *s, void *closure)
{
    (void)closure;
    return PyLong_FromLong(s->parity);
}

static int stepper_set_parity(Stepper *s, PyObject *v, void *closure)
{
    (void)closure;
    long p = v == NULL ? -1 : PyLong_AsLong(v);
    if (p != 0 && p != 1) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "parity is 0 or 1");
        return -1;
    }
    s->parity = (int)p;
    return 0;
}

static int stepper_init(Stepper *s, PyObject *args, PyObject *kw)
{
    (void)kw;
    unsigned long long fn, i0, o0, i1, o1, ws;
    PyObject *x, *ys, *slow, *fail;
    int nogil, n = 0;
    if (!PyArg_ParseTuple(args, "KKKKKKO!O!OOp|i", &fn, &i0, &o0, &i1, &o1, &ws, &PyArray_Type,
                          &x, &PyTuple_Type, &ys, &slow, &fail, &nogil, &n))
        return -1;
    if (PyTuple_GET_SIZE(ys) < 1) {
        PyErr_SetString(PyExc_ValueError, "a step has at least one output");
        return -1;
    }
    for (Py_ssize_t i = -1; i < PyTuple_GET_SIZE(ys); i++) {
        PyObject *a = i < 0 ? x : PyTuple_GET_ITEM(ys, i);
        if (!PyArray_CheckExact(a) || !PyArray_IS_C_CONTIGUOUS((PyArrayObject *)a)) {
            PyErr_SetString(PyExc_TypeError, "bound buffers must be C-contiguous numpy arrays");
            return -1;
        }
    }
    s->fn = (step_fn)(uintptr_t)fn;
    s->fn_n = (step_n_fn)(uintptr_t)fn;
    s->bound[0][0] = (void *)(uintptr_t)i0;
    s->bound[0][1] = (void *)(uintptr_t)o0;
    s->bound[1][0] = (void *)(uintptr_t)i1;
    s->bound[1][1] = (void *)(uintptr_t)o1;
    s->ws = (void *)(uintptr_t)ws;
    Py_INCREF(x); Py_XSETREF(s->x, (PyArrayObject *)x);
    Py_INCREF(ys); Py_XSETREF(s->ys, ys);
    Py_INCREF(slow); Py_XSETREF(s->slow, slow);
    Py_INCREF(fail); Py_XSETREF(s->fail, fail);
    s->nogil = nogil;
    s->n = n < 0 ? 0 : n;
    s->single = PyTuple_GET_SIZE(ys) == 1;
    s->parity = 0;
    return 0;
}

static int stepper_traverse(Stepper *s, visitproc visit, void *arg)
{
    Py_VISIT(s->x); Py_VISIT(s->ys); Py_VISIT(s->slow); Py_VISIT(s->fail); Py_VISIT(s->check);
    return 0;
}

static int stepper_clear(Stepper *s)
{
    Py_CLEAR(s->x); Py_CLEAR(s->ys); Py_CLEAR(s->slow); Py_CLEAR(s->fail); Py_CLEAR(s->check);
    return 0;
}

static void stepper_dealloc(Stepper *s)
{
    PyObject_GC_UnTrack(s);
    stepper_clear(s);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static PyMethodDef stepper_methods[] = {
    {"step", (PyCFunction)stepper_step, METH_O, "one step of one stream: x -> outputs"},
    {"checked_step", (PyCFunction)stepper_checked_step, METH_O,
     "step() of x refused unless finite, else of check(x)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef stepper_getset[] = {
    {"parity", (getter)stepper_get_parity, (setter)stepper_set_parity,
     "which of the two bound pointer sets the next step uses", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef stepper_members[] = {
    {"check", T_OBJECT, offsetof(Stepper, check), 0, "x -> checked x (checked_step's slow path)"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject StepperType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rnnedge_call.Stepper",
    .tp_basicsize = sizeof(Stepper),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)stepper_init,
    .tp_dealloc = (destructor)stepper_dealloc,
    .tp_traverse = (traverseproc)stepper_traverse,
    .tp_clear = (inquiry)stepper_clear,
    .tp_methods = stepper_methods,
    .tp_getset = stepper_getset,
    .tp_members = stepper_members,
};

static int noop(const float *const *in, float *const *out, void *ws)
{
    (void)in; (void)out; (void)ws;
    return 0;
}

static PyObject *noop_address(PyObject *self, PyObject *unused)
{
    /* a step that does nothing: a Stepper on it times the call path alone */
    (void)self; (void)unused;
    return PyLong_FromUnsignedLongLong((unsigned long long)(uintptr_t)noop);
}

static PyMethodDef module_methods[] = {
    {"noop_address", noop_address, METH_NOARGS, "the address of a step that does nothing"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "rnnedge_call", NULL, -1, module_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_rnnedge_call(void)
{
    import_array();
    if (PyType_Ready(&StepperType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&StepperType);
    if (PyModule_AddObject(m, "Stepper", (PyObject *)&StepperType) < 0) {
        Py_DECREF(&StepperType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
