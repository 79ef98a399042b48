// SPDX-License-Identifier: MIT
// pybind11 module deltaprop._core: a thin layer over the public C++ API. Arrays arrive validated by
// python/deltaprop (dtype, C order, shape); this layer re-checks what it relies on, releases the GIL
// around compute and serialises calls that write a network.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <vector>

#include "deltaprop/deltaprop.hpp"

namespace py = pybind11;

namespace {

struct PyNet {
    deltaprop::Network net;
    std::mutex mu;  // held by every call that writes parameters, gradients or the workspace

    explicit PyNet(deltaprop::Network n) : net(std::move(n)) {}
    std::size_t elem() const { return net.dtype() == DP_FLOAT64 ? 8 : 4; }
    py::dtype dtype() const {
        return net.dtype() == DP_FLOAT64 ? py::dtype::of<double>() : py::dtype::of<float>();
    }
};

// The array must be C-contiguous with the given dtype and rows*cols elements (cols 0: any).
const void* buffer(const py::array& a, const py::dtype& dt, const char* name, std::size_t rows,
                   std::size_t cols) {
    if (!a.dtype().is(dt) && !a.dtype().equal(dt))
        throw py::type_error(std::string(name) + ": expected dtype " + py::str(dt).cast<std::string>() +
                             ", got " + py::str(a.dtype()).cast<std::string>());
    if (!(a.flags() & py::array::c_style))
        throw py::value_error(std::string(name) + ": expected a C-contiguous array");
    if (cols && static_cast<std::size_t>(a.size()) != rows * cols)
        throw py::value_error(std::string(name) + ": expected " + std::to_string(rows * cols) +
                              " elements, got " + std::to_string(a.size()));
    return a.data();
}

// numpy.ndarray itself, set when the module is imported (numpy outlives this module's arrays).
PyTypeObject* ndarray_type = nullptr;

// The one test of whether an array can go to the core as it is, with no check or conversion left for
// the Python layer (python/deltaprop/_network.py, Network._array, converts everything else): a
// numpy.ndarray (not a subclass), of dtype dt (the same descriptor: the net's), C-contiguous, of shape
// (rows, cols); rows 0: any batch >= 1; cols 0: a 1-D array of `rows` elements.
bool exact(py::handle x, const py::dtype& dt, std::size_t rows, std::size_t cols) {
    if (Py_TYPE(x.ptr()) != ndarray_type) return false;
    const auto a = py::reinterpret_borrow<py::array>(x);
    const py::ssize_t ndim = cols ? 2 : 1;
    if (a.ndim() != ndim || a.shape(0) < 1 || (rows && std::size_t(a.shape(0)) != rows) ||
        (cols && std::size_t(a.shape(1)) != cols) || !(a.flags() & py::array::c_style))
        return false;
    return a.dtype().is(dt);
}

std::size_t rows_of(const py::array& a) { return a.ndim() == 0 ? 1 : static_cast<std::size_t>(a.shape(0)); }

// Targets: class indices (int64, 1-D) or values in the net's dtype.
dp_target target_kind(const py::array& y) {
    return y.dtype().equal(py::dtype::of<std::int64_t>()) ? DP_TARGET_CLASSES : DP_TARGET_VALUES;
}
const void* targets(PyNet& n, const py::array& y, std::size_t batch) {
    if (target_kind(y) == DP_TARGET_CLASSES) return buffer(y, py::dtype::of<std::int64_t>(), "Y", batch, 1);
    return buffer(y, n.dtype(), "Y", batch, n.net.n_out());
}

// Per-sample weights: None, or a C-contiguous array of the net's dtype with `rows` elements.
const void* weights(PyNet& n, const py::object& w, const char* name, std::size_t rows) {
    if (w.is_none()) return nullptr;
    return buffer(w.cast<py::array>(), n.dtype(), name, rows, 1);
}

py::array view(py::object owner, PyNet& n, void* ptr, std::vector<py::ssize_t> shape, bool writeable) {
    std::vector<py::ssize_t> strides(shape.size());
    py::ssize_t s = static_cast<py::ssize_t>(n.elem());
    for (std::size_t i = shape.size(); i-- > 0;) {
        strides[i] = s;
        s *= shape[i];
    }
    py::array a(n.dtype(), shape, strides, ptr, owner);
    if (!writeable) a.attr("flags").attr("writeable") = false;
    return a;
}

struct CancelState {
    std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now(), read = last;
    unsigned calls = 0, stride = 1;  // the clock is read every `stride` calls
};

// Between batches: look for Ctrl-C at most every 20 ms (taking the GIL costs more than a tiny batch).
// The clock itself is read about once a millisecond: every call for long batches, every few hundred
// for online training, where reading it would cost a few percent.
int check_signals(void* user) {
    auto* st = static_cast<CancelState*>(user);
    if (++st->calls < st->stride) return 0;
    st->calls = 0;
    const auto now = std::chrono::steady_clock::now();
    const auto since = now - st->read;
    st->read = now;
    if (since < std::chrono::microseconds(500) && st->stride < 4096) st->stride *= 2;
    else if (since > std::chrono::milliseconds(2) && st->stride > 1) st->stride /= 2;
    if (now - st->last < std::chrono::milliseconds(20)) return 0;
    st->last = now;
    py::gil_scoped_acquire gil;
    return PyErr_CheckSignals() != 0 ? 1 : 0;
}

// deltaprop.DivergenceError (a FloatingPointError) with where training diverged.
py::object divergence_error(const std::string& message, const dp_divergence& d) {
    static const char* const phases[] = {"forward", "loss", "backward", "update"};
    const int ph = int(d.phase);
    const py::object cls = py::module_::import("deltaprop._errors").attr("DivergenceError");
    return cls(message, py::arg("epoch") = d.epoch, py::arg("batch") = d.batch,
               py::arg("phase") = (ph >= 0 && ph < 4 ? phases[ph] : "unknown"), py::arg("layer") = d.layer,
               py::arg("unit") = d.unit);
}

// The Python callbacks of fit, called from the training loop with the GIL taken. An exception raised
// in one is kept, training is stopped, and it is raised again once the loop has returned.
struct FitCallbacks {
    CancelState cancel;
    py::object on_epoch, on_progress;
    std::exception_ptr error;
    py::object reduce, owner;  // data-parallel training: reduce(grads, stats, first, count, batch)
    py::object layer_ready;    // overlap: layer_ready(grads, first, count, batch, layer, begin, end)
    py::object grads_view;     // layer_ready's view of the slots, kept while they stay the same
    const void* grads_ptr = nullptr;
    std::size_t grads_slots = 0;
    PyNet* net = nullptr;
};

int fit_cancel(void* user) {
    auto* c = static_cast<FitCallbacks*>(user);
    if (c->error) return 1;
    return check_signals(&c->cancel);
}

int fit_epoch(void* user, const dp_epoch_record* r) {
    auto* c = static_cast<FitCallbacks*>(user);
    py::gil_scoped_acquire gil;
    try {
        const py::object res =
            c->on_epoch(py::make_tuple(r->epoch, r->loss, r->val_loss, r->val_accuracy, r->lr, r->seconds));
        return PyObject_IsTrue(res.ptr()) == 1 ? 1 : 0;
    } catch (...) {
        c->error = std::current_exception();
        return 1;
    }
}

void fit_progress(void* user, const dp_progress* p) {
    auto* c = static_cast<FitCallbacks*>(user);
    py::gil_scoped_acquire gil;
    if (c->error) return;
    try {
        c->on_progress(py::make_tuple(p->epoch, p->epochs, p->batch, p->batches, p->samples, p->loss, p->seconds));
    } catch (...) {
        c->error = std::current_exception();
    }
}

// One step's reduction across processes (dp_reduce_call): the Python function gets views of the
// slots, with no copy, and its truth value stops training on every process alike.
int fit_reduce(void* user, const dp_reduce_call* c) {
    auto* cb = static_cast<FitCallbacks*>(user);
    py::gil_scoped_acquire gil;
    try {
        const auto slots = py::ssize_t(c->n_slots);
        const py::object grads = c->grads ? py::object(view(cb->owner, *cb->net, c->grads,
                                                            {slots, py::ssize_t(c->n_params)}, true))
                                          : py::none();
        const py::array stats(py::dtype::of<double>(), {slots, py::ssize_t(4)}, {py::ssize_t(32), py::ssize_t(8)},
                              c->stats, cb->owner);
        const py::object res = cb->reduce(grads, stats, c->first, c->count,
                                          c->batch == std::size_t(-1) ? py::object(py::none()) : py::int_(c->batch));
        return PyObject_IsTrue(res.ptr()) == 1 ? 1 : 0;
    } catch (...) {
        if (!cb->error) cb->error = std::current_exception();
        return 1;
    }
}

// Overlap: layer `layer`'s gradient, elements [begin, end) of every slot, is final on this process.
// An exception is kept (the Python side carries failures to every process through reduce).
void fit_layer(void* user, const dp_reduce_call* c, std::size_t layer, std::size_t begin, std::size_t end) {
    auto* cb = static_cast<FitCallbacks*>(user);
    py::gil_scoped_acquire gil;
    try {
        if (c->grads != cb->grads_ptr || c->n_slots != cb->grads_slots || !cb->grads_view) {
            cb->grads_view = view(cb->owner, *cb->net, c->grads, {py::ssize_t(c->n_slots), py::ssize_t(c->n_params)},
                                  true);
            cb->grads_ptr = c->grads;
            cb->grads_slots = c->n_slots;
        }
        cb->layer_ready(cb->grads_view, c->first, c->count, c->batch, layer, begin, end);
    } catch (...) {
        if (!cb->error) cb->error = std::current_exception();
    }
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "deltaprop native core (use the deltaprop package, not this module)";
    ndarray_type = reinterpret_cast<PyTypeObject*>(py::module_::import("numpy").attr("ndarray").ptr());

    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const deltaprop::io_error& e) {
            PyErr_SetString(PyExc_OSError, e.what());
        } catch (const deltaprop::state_error& e) {
            PyErr_SetString(PyExc_RuntimeError, e.what());
        } catch (const deltaprop::diverged& e) {
            // deltaprop.DivergenceError (a FloatingPointError), with where it happened
            const dp_divergence& d = e.where();
            const py::object err = divergence_error(e.what(), d);
            PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(err.ptr())), err.ptr());
        }
    });

    py::class_<dp_optimizer>(m, "Optimizer")
        .def(py::init([](int kind) { return dp_optimizer_default(static_cast<dp_optimizer_kind>(kind)); }),
             py::arg("kind"))
        .def_property("kind", [](const dp_optimizer& o) { return int(o.kind); },
                      [](dp_optimizer& o, int k) { o.kind = static_cast<dp_optimizer_kind>(k); })
        .def_readwrite("lr", &dp_optimizer::lr)
        .def_readwrite("momentum", &dp_optimizer::momentum)
        .def_readwrite("nesterov", &dp_optimizer::nesterov)
        .def_readwrite("weight_decay", &dp_optimizer::weight_decay)
        .def_readwrite("beta1", &dp_optimizer::beta1)
        .def_readwrite("beta2", &dp_optimizer::beta2)
        .def_readwrite("eps", &dp_optimizer::eps)
        .def_readwrite("amsgrad", &dp_optimizer::amsgrad)
        .def_readwrite("eps_hat", &dp_optimizer::eps_hat)
        .def_readwrite("clip_norm", &dp_optimizer::clip_norm);

    py::class_<dp_schedule>(m, "Schedule")
        .def(py::init([](int kind) { return dp_schedule_default(static_cast<dp_schedule_kind>(kind)); }),
             py::arg("kind"))
        .def_property("kind", [](const dp_schedule& o) { return int(o.kind); },
                      [](dp_schedule& o, int k) { o.kind = static_cast<dp_schedule_kind>(k); })
        .def_readwrite("per_step", &dp_schedule::per_step)
        .def_readwrite("power", &dp_schedule::power)
        .def_readwrite("scale", &dp_schedule::scale)
        .def_readwrite("gamma", &dp_schedule::gamma)
        .def_readwrite("step_size", &dp_schedule::step_size)
        .def_readwrite("t_max", &dp_schedule::t_max)
        .def_readwrite("warmup", &dp_schedule::warmup)
        .def_readwrite("eta_min", &dp_schedule::eta_min)
        .def_readwrite("factor", &dp_schedule::factor)
        .def_readwrite("patience", &dp_schedule::patience)
        .def_readwrite("cooldown", &dp_schedule::cooldown)
        .def_readwrite("threshold", &dp_schedule::threshold)
        .def_readwrite("threshold_abs", &dp_schedule::threshold_abs)
        .def_readwrite("min_lr", &dp_schedule::min_lr);

    // The rules of the core, for checking an optimizer or schedule when it is made (Python).
    m.def("check_optimizer", [](const dp_optimizer& o) { deltaprop::check(dp_optimizer_check(&o)); }, py::arg("optimizer"));
    m.def("check_schedule", [](const dp_schedule& s, double lr0) { deltaprop::check(dp_schedule_check(&s, lr0)); }, py::arg("schedule"), py::arg("lr0"));

    m.def("version", [] { return std::string(dp_version()); });
    m.def("set_num_threads", [](int n) { deltaprop::set_num_threads(n); }, py::arg("n"));
    m.def("get_num_threads", [] { return deltaprop::num_threads(); });
    m.def("set_kernel_level", [](int level) { deltaprop::set_kernel_level(static_cast<dp_kernel_level>(level)); }, py::arg("level"));
    m.def("get_kernel_level", [] { return static_cast<int>(deltaprop::kernel_level()); });
    m.def("get_kernel_family_level", [](int family) {
        return static_cast<int>(deltaprop::kernel_family_level(static_cast<dp_kernel_family>(family)));
    }, py::arg("family"));
    // What the library ignored or clamped of DELTAPROP_KERNEL / DELTAPROP_NUM_THREADS (None if nothing).
    m.def("env_warning", []() -> py::object {
        const char* w = dp_env_warning();
        return w ? py::object(py::str(w)) : py::object(py::none());
    });

    py::class_<PyNet>(m, "Net")
        .def(py::init([](const std::vector<std::size_t>& sizes, const std::vector<int>& acts,
                         const std::vector<double>& slopes, int loss, int dtype, int init,
                         std::uint64_t seed) {
                 std::vector<dp_activation> a(acts.size());
                 for (std::size_t i = 0; i < acts.size(); ++i) a[i] = static_cast<dp_activation>(acts[i]);
                 return new PyNet(deltaprop::Network(sizes, a, static_cast<dp_loss>(loss),
                                                     static_cast<dp_dtype>(dtype),
                                                     static_cast<dp_init>(init), seed, slopes));
             }),
             py::arg("sizes"), py::arg("activations"), py::arg("slopes"), py::arg("loss"),
             py::arg("dtype"), py::arg("init"), py::arg("seed"))
        .def_static("load", [](const std::string& path) {
            deltaprop::Network n = [&] {
                py::gil_scoped_release rel;
                return deltaprop::Network::load(path);
            }();
            return new PyNet(std::move(n));
        }, py::arg("path"))
        .def_static("from_bytes", [](const py::bytes& b) {
            const std::string s = b;
            return new PyNet(deltaprop::Network::load_buffer(s.data(), s.size()));
        }, py::arg("data"))
        .def("to_bytes", [](PyNet& n, bool optimizer) {
            std::vector<std::uint8_t> bytes;
            {
                std::lock_guard<std::mutex> lk(n.mu);
                bytes = n.net.save_buffer(optimizer);
            }
            return py::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        }, py::arg("optimizer"))
        .def("save", [](PyNet& n, const std::string& path, bool optimizer) {
            py::gil_scoped_release rel;
            std::lock_guard<std::mutex> lk(n.mu);
            n.net.save(path, optimizer);
        }, py::arg("path"), py::arg("optimizer"))
        .def("copy_state", [](PyNet& n, PyNet& src) {
            if (&n == &src) return;
            std::lock_guard<std::mutex> lk(n.mu);
            deltaprop::check(dp_net_copy_state(n.net.handle(), src.net.handle()));
        }, py::arg("src"))
        .def("clone", [](PyNet& n) {
            std::lock_guard<std::mutex> lk(n.mu);
            return new PyNet(deltaprop::Network(n.net));
        })
        .def_property_readonly("sizes", [](PyNet& n) {
            std::vector<std::size_t> s(n.net.num_layers() + 1);
            for (std::size_t i = 0; i < s.size(); ++i) s[i] = n.net.size(i);
            return s;
        })
        .def_property_readonly("activations", [](PyNet& n) {
            std::vector<int> a(n.net.num_layers());
            for (std::size_t i = 0; i < a.size(); ++i) a[i] = n.net.activation(i);
            return a;
        })
        .def_property_readonly("slopes", [](PyNet& n) {
            std::vector<double> s(n.net.num_layers());
            for (std::size_t i = 0; i < s.size(); ++i) s[i] = n.net.slope(i);
            return s;
        })
        .def_property_readonly("loss_kind", [](PyNet& n) { return static_cast<int>(n.net.loss_kind()); })
        .def_property_readonly("init_kind", [](PyNet& n) { return static_cast<int>(n.net.init_kind()); })
        .def_property_readonly("dtype", [](PyNet& n) { return n.dtype(); })
        .def_property_readonly("n_params", [](PyNet& n) { return n.net.num_params(); })
        .def("layer_offsets", [](PyNet& n, std::size_t l) { return n.net.layer_offsets(l); }, py::arg("layer"))
        .def("params", [](py::object self) {
            PyNet& n = self.cast<PyNet&>();
            return view(self, n, n.net.params(), {py::ssize_t(n.net.num_params())}, true);
        })
        .def("grads", [](py::object self) {
            PyNet& n = self.cast<PyNet&>();
            return view(self, n, n.net.grads(), {py::ssize_t(n.net.num_params())}, true);
        })
        .def("velocity", [](py::object self) {
            PyNet& n = self.cast<PyNet&>();
            return view(self, n, n.net.velocity(), {py::ssize_t(n.net.num_params())}, true);
        })
        .def("workspace", [](py::object self, std::size_t layer) {
            PyNet& n = self.cast<PyNet&>();
            const void *z = nullptr, *a = nullptr, *d = nullptr;
            std::size_t batch = 0;
            deltaprop::check(dp_net_workspace(n.net.handle(), layer, &z, &a, &d, &batch));
            const py::ssize_t w = py::ssize_t(n.net.size(layer + 1));
            auto mk = [&](const void* p) -> py::object {
                if (!p) return py::none();
                return view(self, n, const_cast<void*>(p), {py::ssize_t(batch), w}, false);
            };
            return py::make_tuple(mk(z), mk(a), mk(d));
        }, py::arg("layer"))
        .def("reserve", [](PyNet& n, std::size_t max_batch) {
            std::lock_guard<std::mutex> lk(n.mu);
            n.net.reserve(max_batch);
        }, py::arg("max_batch"))
        .def("init", [](PyNet& n, int init, std::uint64_t seed) {
            std::lock_guard<std::mutex> lk(n.mu);
            n.net.init(static_cast<dp_init>(init), seed);
        }, py::arg("init"), py::arg("seed"))
        .def("seed", [](PyNet& n, std::uint64_t seed) {
            std::lock_guard<std::mutex> lk(n.mu);
            n.net.seed(seed);
        }, py::arg("seed"))
        .def("forward", [](PyNet& n, const py::array& x) {
            const std::size_t batch = rows_of(x);
            const void* xp = buffer(x, n.dtype(), "X", batch, n.net.n_in());
            py::array out(n.dtype(), std::vector<py::ssize_t>{py::ssize_t(batch), py::ssize_t(n.net.n_out())});
            void* op = out.mutable_data();
            {
                py::gil_scoped_release rel;
                std::lock_guard<std::mutex> lk(n.mu);
                n.net.forward(xp, batch, op);
            }
            return out;
        }, py::arg("x"))
        .def("predict", [](PyNet& n, const py::array& x) {
            const std::size_t batch = rows_of(x);
            const void* xp = buffer(x, n.dtype(), "X", batch, n.net.n_in());
            py::array out(n.dtype(), std::vector<py::ssize_t>{py::ssize_t(batch), py::ssize_t(n.net.n_out())});
            void* op = out.mutable_data();
            {
                py::gil_scoped_release rel;
                n.net.predict(xp, batch, op);
            }
            return out;
        }, py::arg("x"))
        // Whether x can be passed as it is (exact above); the Python layer asks before converting.
        .def("exact", [](const PyNet& n, py::handle x, std::size_t rows, std::size_t cols) {
            return exact(x, n.dtype(), rows, cols);
        }, py::arg("x"), py::arg("rows"), py::arg("cols"))
        // predict in one call, without the Python layer (a second call into it costs a tenth of a
        // batch-1 predict), when x is exact for (any batch, n_in). Anything else returns None, and the
        // Python layer converts it (Network._array), then calls predict.
        .def("predict_exact", [](PyNet& n, py::handle x) -> py::object {
            const py::dtype dt = n.dtype();
            if (!exact(x, dt, 0, n.net.n_in())) return py::none();
            const auto a = py::reinterpret_borrow<py::array>(x);
            // The output array is made (and the GIL let go) while the workers start on the first layers.
            struct Out {
                py::dtype dt;
                py::ssize_t rows, cols;
                py::object array;
                PyThreadState* released;
                std::exception_ptr error;
            } o{dt, a.shape(0), py::ssize_t(n.net.n_out()), py::object(), nullptr, nullptr};
            auto out_for = [](void* p) -> void* {
                auto* o = static_cast<Out*>(p);
                try {
                    py::array arr(o->dt, std::vector<py::ssize_t>{o->rows, o->cols});
                    void* data = arr.mutable_data();
                    o->array = std::move(arr);
                    o->released = PyEval_SaveThread();
                    return data;
                } catch (...) {  // (no exception may cross the C ABI)
                    o->error = std::current_exception();
                    return nullptr;
                }
            };
            try {
                n.net.predict_into(a.data(), std::size_t(a.shape(0)), out_for, &o);
            } catch (...) {
                if (o.released) PyEval_RestoreThread(o.released);
                if (o.error) std::rethrow_exception(o.error);
                throw;
            }
            if (o.released) PyEval_RestoreThread(o.released);
            return o.array;
        }, py::arg("x"))
        .def("loss", [](PyNet& n, const py::array& x, const py::array& y, const py::object& sw, double l2) {
            const std::size_t batch = rows_of(x);
            const void* xp = buffer(x, n.dtype(), "X", batch, n.net.n_in());
            const void* yp = targets(n, y, batch);
            const void* wp = weights(n, sw, "sample_weight", batch);
            const dp_target kind = target_kind(y);
            py::gil_scoped_release rel;
            return n.net.loss(xp, batch, kind, yp, wp, l2);
        }, py::arg("x"), py::arg("y"), py::arg("sample_weight"), py::arg("l2"))
        .def("backward", [](PyNet& n, const py::array& x, const py::array& y, const py::object& sw, double l2,
                            bool accumulate) {
            const std::size_t batch = rows_of(x);
            const void* xp = buffer(x, n.dtype(), "X", batch, n.net.n_in());
            const void* yp = targets(n, y, batch);
            const void* wp = weights(n, sw, "sample_weight", batch);
            const dp_target kind = target_kind(y);
            py::gil_scoped_release rel;
            std::lock_guard<std::mutex> lk(n.mu);
            return n.net.backward(xp, batch, kind, yp, wp, l2, accumulate);
        }, py::arg("x"), py::arg("y"), py::arg("sample_weight"), py::arg("l2"), py::arg("accumulate"))
        .def("backward_output_grad", [](PyNet& n, const py::array& g, bool accumulate) {
            const std::size_t batch = rows_of(g);
            const void* gp = buffer(g, n.dtype(), "grad", batch, n.net.n_out());
            py::gil_scoped_release rel;
            std::lock_guard<std::mutex> lk(n.mu);
            n.net.backward_output_grad(gp, batch, accumulate);
        }, py::arg("grad"), py::arg("accumulate"))
        .def("step", [](PyNet& n, const dp_optimizer& opt) {
            py::gil_scoped_release rel;
            std::lock_guard<std::mutex> lk(n.mu);
            n.net.step(opt);
        }, py::arg("optimizer"))
        .def("train_batch", [](PyNet& n, const py::array& x, const py::array& y, const py::object& sw, double l2,
                               const dp_optimizer& opt) {
            const std::size_t batch = rows_of(x);
            const void* xp = buffer(x, n.dtype(), "X", batch, n.net.n_in());
            const void* yp = targets(n, y, batch);
            const void* wp = weights(n, sw, "sample_weight", batch);
            const dp_target kind = target_kind(y);
            py::gil_scoped_release rel;
            std::lock_guard<std::mutex> lk(n.mu);
            return n.net.train_batch(xp, batch, kind, yp, opt, wp, l2);
        }, py::arg("x"), py::arg("y"), py::arg("sample_weight"), py::arg("l2"), py::arg("optimizer"))
        .def("optimizer_state", [](py::object self) {
            PyNet& n = self.cast<PyNet&>();
            const auto st = n.net.optimizer_state();
            py::list bufs;
            for (void* b : st.buffers)
                bufs.append(b ? py::object(view(self, n, b, {py::ssize_t(n.net.num_params())}, false)) : py::none());
            return py::make_tuple(int(st.kind), st.step, bufs);
        })
        .def("reset_optimizer", [](PyNet& n, int kind) {
            std::lock_guard<std::mutex> lk(n.mu);
            n.net.reset_optimizer(static_cast<dp_optimizer_kind>(kind));
        }, py::arg("kind"))
        // The training loop. Returns (records, epochs_done, best_epoch, stopped_early, interrupted): one
        // (epoch, loss, val_loss, val_accuracy, lr, seconds) tuple per completed epoch. Ctrl-C and
        // divergence raise (KeyboardInterrupt, DivergenceError) with the records so far in
        // `.records` of the exception.
        .def("fit", [](py::object self, const py::array& x, const py::array& y, const py::object& sw,
                       const py::object& xv, const py::object& yv, const py::object& wv, std::size_t epochs,
                       std::size_t batch_size, bool shuffle, double l2, const dp_optimizer& opt,
                       const dp_schedule& sched, bool early_stopping, int monitor, std::size_t patience,
                       double min_delta, bool restore_best, const py::object& on_epoch,
                       const py::object& on_progress, double progress_interval, const py::object& reduce,
                       int reduce_kind, std::size_t rank, std::size_t ranks, bool sharded,
                       std::size_t steps_per_epoch, std::size_t chunk_rows, const py::object& layer_ready) {
            PyNet& n = self.cast<PyNet&>();
            const std::size_t rows = rows_of(x);
            dp_fit_options o = dp_fit_options_default();
            const void* xp = buffer(x, n.dtype(), "X", rows, n.net.n_in());
            const void* yp = targets(n, y, rows);
            const dp_target kind = target_kind(y);
            o.sample_weight = weights(n, sw, "sample_weight", rows);
            py::array xva, yva;
            if (!xv.is_none()) {
                xva = xv.cast<py::array>();
                yva = yv.cast<py::array>();
                o.n_val = rows_of(xva);
                o.x_val = buffer(xva, n.dtype(), "X_val", o.n_val, n.net.n_in());
                o.y_val = targets(n, yva, o.n_val);
                o.val_kind = target_kind(yva);
                o.w_val = weights(n, wv, "sample_weight_val", o.n_val);
            }
            o.epochs = epochs;
            o.batch_size = batch_size;
            o.shuffle = shuffle ? 1 : 0;
            o.l2 = l2;
            o.optimizer = opt;
            o.schedule = sched;
            o.early_stopping = early_stopping ? 1 : 0;
            o.monitor = static_cast<dp_monitor>(monitor);
            o.patience = patience;
            o.min_delta = min_delta;
            o.restore_best = restore_best ? 1 : 0;
            FitCallbacks cb;
            cb.on_epoch = on_epoch;
            cb.on_progress = on_progress;
            o.cancel = fit_cancel;
            o.user = &cb;
            if (!on_epoch.is_none()) o.on_epoch = fit_epoch;
            if (!on_progress.is_none()) {
                o.on_progress = fit_progress;
                o.progress_interval = progress_interval;
            }
            if (!reduce.is_none()) {  // data-parallel: stops are agreed through reduce, never alone
                cb.reduce = reduce;
                cb.owner = self;
                cb.net = &n;
                o.reduce = fit_reduce;
                o.reduce_user = &cb;
                o.cancel = nullptr;
                o.reduce_kind = static_cast<dp_reduce_kind>(reduce_kind);
                o.rank = rank;
                o.ranks = ranks;
                o.sharded = sharded ? 1 : 0;
                o.steps_per_epoch = steps_per_epoch;
                o.chunk_rows = chunk_rows;
                if (!layer_ready.is_none()) {
                    cb.layer_ready = layer_ready;
                    o.layer_ready = fit_layer;
                }
            }
            std::vector<dp_epoch_record> history(epochs);
            dp_fit_result res{};
            dp_status st = DP_OK;
            std::string message;
            dp_divergence where{};
            {
                py::gil_scoped_release rel;
                std::lock_guard<std::mutex> lk(n.mu);
                st = dp_net_fit(n.net.handle(), xp, rows, kind, yp, &o, history.data(), &res);
                if (st != DP_OK) message = dp_last_error();
                if (st == DP_ERR_DIVERGED) dp_last_divergence(&where);
            }
            py::list records;
            for (std::size_t e = 0; e < res.epochs_done; ++e) {
                const dp_epoch_record& r = history[e];
                records.append(py::make_tuple(r.epoch, r.loss, r.val_loss, r.val_accuracy, r.lr, r.seconds));
            }
            const py::tuple out = py::make_tuple(records, res.epochs_done, res.best_epoch, bool(res.stopped_early),
                                                 bool(res.interrupted || st == DP_ERR_INTERRUPTED));
            if (cb.error) {
                try {
                    std::rethrow_exception(cb.error);
                } catch (py::error_already_set& e) {  // e.g. KeyboardInterrupt from a callback
                    e.value().attr("records") = out;
                    throw;
                }
            }
            if (st == DP_ERR_INTERRUPTED) {
                if (PyErr_Occurred()) {
                    py::error_already_set e;
                    e.value().attr("records") = out;
                    throw e;
                }
                PyErr_SetNone(PyExc_KeyboardInterrupt);
                py::error_already_set e;
                e.value().attr("records") = out;
                throw e;
            }
            if (st == DP_ERR_DIVERGED) {
                const py::object err = divergence_error(message, where);
                err.attr("records") = out;
                PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(err.ptr())), err.ptr());
                throw py::error_already_set();
            }
            deltaprop::check(st);  // (the message of this thread's last failure)
            return out;
        }, py::arg("x"), py::arg("y"), py::arg("sample_weight"), py::arg("x_val"), py::arg("y_val"), py::arg("sample_weight_val"), py::arg("epochs"), py::arg("batch_size"), py::arg("shuffle"), py::arg("l2"), py::arg("optimizer"), py::arg("schedule"), py::arg("early_stopping"), py::arg("monitor"), py::arg("patience"), py::arg("min_delta"), py::arg("restore_best"), py::arg("on_epoch"), py::arg("on_progress"), py::arg("progress_interval"), py::arg("reduce") = py::none(), py::arg("reduce_kind") = 0, py::arg("rank") = 0, py::arg("ranks") = 1, py::arg("sharded") = false, py::arg("steps_per_epoch") = 0, py::arg("chunk_rows") = 0, py::arg("layer_ready") = py::none());
}
