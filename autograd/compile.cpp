// Compiled steps: the trace (the function run eagerly on the program's own tape,
// every op recorded, its backward()/zero_grad()/optimizer steps heard as events),
// the passes over the recorded program, and the replay: kernels over the tape's
// buffers, no node made, one guard on the arguments.

#include "autograd/compile.hpp"

#include <algorithm>
#include <cmath>
#include <deque>
#include <stdexcept>
#include <string>
#include <thread>

#include "autograd/detail/record.hpp"
#include "autograd/hooks.hpp"
#include "autograd/kernels/parallel.hpp"
#include "autograd/scopes.hpp"

namespace tapegrad {

namespace detail {
template <class T> bool fusable_matmul(const node<T>& n);  // autograd/matmul.cpp
}  // namespace detail

namespace detail {

namespace {
// Elements per block of a fused loop: a few blocks of every buffer of a chain stay in L1.
constexpr std::size_t fused_block = 2048;
}  // namespace

template <class T> struct compiled_core<T>::program {
    enum class kind { kernel, loop, backward, host };
    struct op {
        kind k;
        node<T>* n = nullptr;        // kernel; backward: the root
        std::size_t first = 0, last = 0;  // loop: nodes [first, last) of the tape; backward: its event
        std::size_t event = 0;       // host: the event
    };
    struct event {
        kind k = kind::host;  // backward or host
        node<T>* root = nullptr;
        bool seeded = false;
        xt::xarray<T> seed;
        std::function<void()> host;
        sgd_fusion<T>* sgd = nullptr;
        bool grads_only = false;  // zero_grad: no value depends on it
        std::size_t at = 0;       // nodes recorded before it
    };

    std::vector<std::size_t> key;
    std::unique_ptr<tape<T>> tp = std::make_unique<tape<T>>();
    label_slots labels;
    std::vector<node<T>*> arg_nodes;                      // the trace's tensor arguments
    std::vector<std::shared_ptr<node<T>>> bound;          // this call's tensor arguments, held while in use
    std::vector<std::pair<node<T>**, std::size_t>> patches;  // input slots that read argument i
    std::vector<node<T>*> retaining;                      // nodes with retain_grad(): forget it each call
    std::vector<event> events;
    std::vector<op> ops;
    std::deque<fused_sgd_step<T>> fused;                  // stable addresses: matmul nodes point here
    std::vector<sgd_fusion<T>*> fused_from;               // the request of each fused entry
    node<T>* out = nullptr;
    bool ready = false;        // a trace finished
    bool replayable = false;
    std::string reason;
    std::size_t kernels = 0, loops = 0, bias_loops = 0;
};

namespace {

template <class T> struct recorder final : tracer<T> {
    using program = typename compiled_core<T>::program;
    program& p;
    explicit recorder(program& prog) : p(prog) {}
    void add(typename program::event e) {
        e.at = p.tp->size();
        p.events.push_back(std::move(e));
    }
    void on_backward(node<T>* root, const xt::xarray<T>* seed) override {
        if (!root->on_tape || root->home != p.tp.get()) {
            not_replayable("backward() ran from a tensor recorded outside the compiled function");
            return;
        }
        typename program::event e;
        e.k = program::kind::backward;
        e.root = root;
        if (seed) {
            e.seeded = true;
            e.seed = *seed;
        }
        add(std::move(e));
    }
    void on_host(std::function<void()> fn, sgd_fusion<T>* sgd, bool grads_only) override {
        typename program::event e;
        e.k = program::kind::host;
        e.host = std::move(fn);
        e.sgd = sgd;
        e.grads_only = grads_only;
        add(std::move(e));
    }
    void not_replayable(std::string why) override {
        if (p.reason.empty()) p.reason = std::move(why);
    }
    bool is_label_argument(const void* labels) const override {
        for (const auto& l : p.labels)
            if (&l == labels) return true;
        return false;
    }
};

// The signature of a call: per argument its kind, shape and requires_grad, or label count.
template <class T> void make_key(const std::vector<compiled_arg<T>>& args, std::vector<std::size_t>& key) {
    key.clear();
    for (const auto& a : args) {
        if (a.labels) {
            key.push_back(2);
            key.push_back(a.labels->size());
            continue;
        }
        const auto& s = a.tensor_node->value.shape();
        key.push_back(a.requires_grad ? 1 : 0);
        key.push_back(s.size());
        key.insert(key.end(), s.begin(), s.end());
    }
}

// Whether the call's signature is `key` (make_key's layout), without building it.
template <class T> bool same_key(const std::vector<compiled_arg<T>>& args, const std::vector<std::size_t>& key) {
    std::size_t at = 0;
    const std::size_t n = key.size();
    for (const auto& a : args) {
        if (a.labels) {
            if (at + 2 > n || key[at] != 2 || key[at + 1] != a.labels->size()) return false;
            at += 2;
            continue;
        }
        const auto& s = a.tensor_node->value.shape();
        if (at + 2 + s.size() > n || key[at] != (a.requires_grad ? 1u : 0u) || key[at + 1] != s.size()) return false;
        for (std::size_t d = 0; d < s.size(); ++d)
            if (key[at + 2 + d] != s[d]) return false;
        at += 2 + s.size();
    }
    return at == n;
}

template <class T> std::size_t readers_of(const tape<T>& tp_const, const node<T>* leaf, node<T>** reader) {
    auto& tp = const_cast<tape<T>&>(tp_const);
    std::size_t count = 0;
    for (std::size_t i = 0; i < tp.size(); ++i) {
        node<T>& n = tp.at(i);
        for (std::uint32_t k = 0; k < n.n_inputs; ++k)
            if (n.inputs[k] == leaf) {
                ++count;
                *reader = &n;
            }
    }
    return count;
}

// A fused loop: nodes [first, last) block by block, each block through all of them while
// it is in cache; blocks split across the engine threads as an eager elementwise op's
// elements are (each element is computed alike either way: bit-identical).
template <class T> void run_loop(tape<T>& tp, std::size_t first, std::size_t last) {
    const std::size_t size = tp.at(first).value.size();
    parallel_for(size, fused_block, [&](std::size_t begin, std::size_t end) {
        for (std::size_t b = begin; b < end; b += fused_block) {
            const std::size_t e = std::min(end, b + fused_block);
            for (std::size_t i = first; i < last; ++i) {
                node<T>& n = tp.at(i);
                n.forward_range(n, b, e);
            }
        }
    });
}

}  // namespace

template <class T> compiled_core<T>::compiled_core(compile_options o) : o_(o) {}
template <class T> compiled_core<T>::~compiled_core() = default;

template <class T> typename compiled_core<T>::program& compiled_core<T>::find(const std::vector<compiled_arg<T>>& args) {
    if (last_ && same_key(args, last_->key)) return *last_;  // the usual call: no key built
    make_key(args, key_);
    for (auto& p : programs_)
        if (p->key == key_) return *(last_ = p.get());
    programs_.push_back(std::make_unique<program>());
    program& p = *programs_.back();
    p.key = key_;
    return *(last_ = &p);
}

template <class T> tensor<T> compiled_core<T>::call(const std::vector<compiled_arg<T>>& args, invoker run) {
    if (busy_.exchange(true, std::memory_order_acquire))
        throw std::logic_error(
            "compile: a compiled step was called while it was running (from its own function, or from two threads at "
            "once); a step runs on one thread at a time: give each thread its own compile()");
    struct busy_scope {
        std::atomic<bool>& b;
        ~busy_scope() { b.store(false, std::memory_order_release); }
    } busy{busy_};
    program& p = find(args);
    if (p.tp->owner() != std::this_thread::get_id()) p.tp->lease();  // the step moved to this thread
    if (!p.ready || !p.replayable) return trace(p, args, run);
    if (o_.check) return check(p, args, run);
    return replay(p, args);
}

template <class T>
tensor<T> compiled_core<T>::trace(program& p, const std::vector<compiled_arg<T>>& args, invoker run) {
    ++stats_.traces;
    p.ready = false;
    p.tp->reset();
    p.events.clear();
    p.ops.clear();
    p.patches.clear();
    p.fused.clear();
    p.fused_from.clear();
    p.reason.clear();
    p.out = nullptr;
    p.arg_nodes.clear();
    std::size_t n_labels = 0;
    for (const auto& a : args) n_labels += a.labels != nullptr;
    p.labels.resize(n_labels);
    for (std::size_t i = 0, k = 0; i < args.size(); ++i) {
        if (args[i].labels) p.labels[k++] = *args[i].labels;
        else p.arg_nodes.push_back(args[i].tensor_node);
    }
    recorder<T> rec(p);
    tensor<T> out;
    {
        struct redirect_scope {
            tape<T>* saved_tape = tape<T>::redirect();
            tracer<T>* saved_tracer = active_tracer<T>();
            explicit redirect_scope(tape<T>* t, tracer<T>* r) {
                tape<T>::redirect() = t;
                active_tracer<T>() = r;
            }
            ~redirect_scope() {
                tape<T>::redirect() = saved_tape;
                active_tracer<T>() = saved_tracer;
            }
        } scope(p.tp.get(), &rec);
        force_recording all(true);
        out = run.call(run.ctx, p.labels);
    }
    tape<T>& tp = *p.tp;
    if (!out.defined()) rec.not_replayable("the compiled function returned an undefined tensor");
    else if (!out.node_ptr()->on_tape || out.node_ptr()->home != &tp)
        rec.not_replayable("the compiled function returned a leaf, not the result of an op it ran");
    else p.out = out.node_ptr();
    for (std::size_t i = 0; i < tp.size() && p.reason.empty(); ++i)
        if (!tp.at(i).forward)
            rec.not_replayable(std::string("op '") + tp.at(i).op + "' (node " + std::to_string(i) +
                               ") has no replay kernel yet");
    p.ready = true;
    p.replayable = p.reason.empty();
    if (!p.replayable) return out;

    // Which input slots read the arguments: the replay points them at each call's tensors.
    p.retaining.clear();
    for (std::size_t i = 0; i < tp.size(); ++i) {
        node<T>& n = tp.at(i);
        if (n.hooks && n.hooks->retain) p.retaining.push_back(&n);
        for (std::uint32_t k = 0; k < n.n_inputs; ++k)
            for (std::size_t a = 0; a < p.arg_nodes.size(); ++a)
                if (n.inputs[k] == p.arg_nodes[a]) p.patches.push_back({&n.inputs[k], a});
    }

    // Pass: SGD fused into the weight-gradient gemm, for a step with one backward()
    // directly followed by the SGD step, and weights read by one matmul only.
    std::size_t backwards = 0;
    for (const auto& e : p.events) backwards += e.k == program::kind::backward;
    if (o_.fuse_sgd && backwards == 1)
        for (std::size_t j = 0; j + 1 < p.events.size(); ++j) {
            const auto& b = p.events[j];
            const auto& h = p.events[j + 1];
            if (b.k != program::kind::backward || h.k != program::kind::host || !h.sgd || h.at != b.at) continue;
            for (std::size_t w = 0; w < h.sgd->params.size(); ++w) {
                node<T>* leaf = h.sgd->params[w];
                node<T>* reader = nullptr;
                if (readers_of(tp, leaf, &reader) != 1 || !fusable_matmul(*reader) || reader->index >= b.at) continue;
                if (reader->inputs[0] == leaf && reader->inputs[1] == leaf) continue;
                p.fused.push_back({leaf, T(0), T(1), &h.sgd->taken[w]});
                p.fused_from.push_back(h.sgd);
                reader->fused_step = &p.fused.back();
            }
        }

    // Pass: kernels in order, elementwise chains of one size grouped into loops.
    std::size_t next_event = 0;
    auto flush_events = [&](std::size_t upto) {
        while (next_event < p.events.size() && p.events[next_event].at <= upto) {
            const auto& e = p.events[next_event];
            typename program::op o{e.k};
            if (e.k == program::kind::backward) o.n = e.root;
            o.event = next_event++;
            p.ops.push_back(o);
        }
    };
    p.kernels = p.loops = p.bias_loops = 0;
    for (std::size_t i = 0; i < tp.size();) {
        flush_events(i);
        node<T>& n = tp.at(i);
        ++p.kernels;
        std::size_t j = i + 1;
        if (n.forward_range) {
            const bool bias = n.n_inputs == 2 && n.inputs[0]->value.size() != n.inputs[1]->value.size();
            const node<T>* big = bias ? (n.inputs[0]->value.size() == n.value.size() ? n.inputs[0] : n.inputs[1]) : nullptr;
            const bool after_gemm = bias && big->on_tape && big->home == &tp && fusable_matmul(*big);
            const bool allowed = after_gemm ? o_.fuse_bias_activation : o_.fuse_elementwise;
            // the chain may not cross an event (a backward or host call between two of its ops)
            const std::size_t stop = next_event < p.events.size() ? p.events[next_event].at : tp.size();
            while (allowed && j < stop && tp.at(j).forward_range && tp.at(j).value.size() == n.value.size() &&
                   !(tp.at(j).n_inputs == 2 && tp.at(j).inputs[0]->value.size() != tp.at(j).inputs[1]->value.size()))
                ++j;
            if (j - i >= 2) {
                typename program::op o{program::kind::loop};
                o.first = i;
                o.last = j;
                p.ops.push_back(o);
                ++(after_gemm ? p.bias_loops : p.loops);
                p.kernels += j - i - 1;
                i = j;
                continue;
            }
            j = i + 1;
        }
        typename program::op o{program::kind::kernel};
        o.n = &n;
        p.ops.push_back(o);
        i = j;
    }
    flush_events(tp.size());
    return out;
}

template <class T> tensor<T> compiled_core<T>::replay(program& p, const std::vector<compiled_arg<T>>& args) {
    ++stats_.replays;
    p.bound.resize(p.arg_nodes.size());
    for (std::size_t i = 0, t = 0, k = 0; i < args.size(); ++i) {
        if (args[i].labels) {
            p.labels[k++].assign(args[i].labels->begin(), args[i].labels->end());  // same size: no allocation
        } else {
            p.bound[t] = args[i].owner;
            p.arg_nodes[t++] = args[i].tensor_node;
        }
    }
    for (auto& [slot, a] : p.patches) *slot = p.arg_nodes[a];
    tape<T>& tp = *p.tp;
    tp.restamp();  // results of the previous call go stale: their buffers are rewritten now
    for (node<T>* n : p.retaining) n->hooks->retained_defined = false;  // as a new eager step's nodes
    for (const auto& o : p.ops) {
        switch (o.k) {
        case program::kind::kernel: o.n->forward(*o.n, o.n->inputs); break;
        case program::kind::loop: run_loop(tp, o.first, o.last); break;
        case program::kind::backward: {
            for (std::size_t f = 0; f < p.fused.size(); ++f) {  // the optimizer's current lr
                const sgd_fusion<T>& req = *p.fused_from[f];
                p.fused[f].lr = T(req.lr);
                p.fused[f].decay = T(1 - req.lr * req.weight_decay);
            }
            const auto& e = p.events[o.event];
            tp.replay_backward(o.n, e.seeded ? &e.seed : nullptr);  // the trace's backward() checked root and seed
            break;
        }
        case program::kind::host: p.events[o.event].host(); break;
        }
    }
    return tensor<T>::from_tape(p.out);
}

template <class T> tensor<T> compiled_core<T>::check(program& p, const std::vector<compiled_arg<T>>& args, invoker run) {
    // The replayed forward up to the first event, from this call's arguments...
    std::vector<xt::xarray<T>> replayed_values;
    std::vector<std::string> replayed_ops;
    {
        program& q = p;
        q.bound.resize(q.arg_nodes.size());
        for (std::size_t i = 0, t = 0, k = 0; i < args.size(); ++i) {
            if (args[i].labels) q.labels[k++].assign(args[i].labels->begin(), args[i].labels->end());
            else {
                q.bound[t] = args[i].owner;
                q.arg_nodes[t++] = args[i].tensor_node;
            }
        }
        for (auto& [slot, a] : q.patches) *slot = q.arg_nodes[a];
        tape<T>& tp = *q.tp;
        // up to the first event values can depend on (zero_grad calls cannot change any)
        std::size_t first_event = tp.size();
        for (const auto& e : q.events)
            if (!(e.k == program::kind::host && e.grads_only)) {
                first_event = e.at;
                break;
            }
        // kernels may write leaves they read (batch norm's running statistics): put them back after
        std::vector<std::pair<node<T>*, xt::xarray<T>>> leaves;
        for (std::size_t i = 0; i < first_event; ++i)
            for (std::uint32_t k = 0; k < tp.at(i).n_inputs; ++k) {
                node<T>* in = tp.at(i).inputs[k];
                if (in->on_tape) continue;
                bool seen = false;
                for (const auto& l : leaves) seen = seen || l.first == in;
                if (!seen) leaves.emplace_back(in, in->value);
            }
        for (const auto& o : q.ops) {
            if (o.k == program::kind::kernel && o.n->index < first_event) o.n->forward(*o.n, o.n->inputs);
            else if (o.k == program::kind::loop && o.last <= first_event) {
                run_loop(tp, o.first, o.last);
            } else if (o.k == program::kind::host && q.events[o.event].grads_only) {
                continue;
            } else if (o.k != program::kind::kernel && o.k != program::kind::loop) {
                break;
            }
        }
        for (std::size_t i = 0; i < first_event; ++i) replayed_values.push_back(tp.at(i).value);
        for (std::size_t i = 0; i < tp.size(); ++i) replayed_ops.push_back(tp.at(i).op);
        for (auto& [leaf, value] : leaves) leaf->value = std::move(value);
    }
    // ...against the function run eagerly (whose effects are the call's).
    --stats_.traces;
    tensor<T> out = trace(p, args, run);
    ++stats_.replays;
    tape<T>& tp = *p.tp;
    auto fail = [&](std::size_t i, const std::string& what) {
        throw std::logic_error("compile check: op " + std::to_string(i) + " '" +
                               (i < tp.size() ? tp.at(i).op : "(none)") + "' " + what);
    };
    if (tp.size() != replayed_ops.size())
        fail(std::min(tp.size(), replayed_ops.size()),
             "is where the eager run and the program part: the eager run recorded " + std::to_string(tp.size()) +
                 " ops, the program " + std::to_string(replayed_ops.size()) +
                 " (control flow that depends on values?)");
    for (std::size_t i = 0; i < tp.size(); ++i)
        if (replayed_ops[i] != tp.at(i).op) fail(i, "was recorded where the program has '" + replayed_ops[i] + "'");
    for (std::size_t i = 0; i < replayed_values.size(); ++i) {
        const auto& a = replayed_values[i];
        const auto& b = tp.at(i).value;
        if (a.shape() != b.shape()) fail(i, "has shape " + shape_str(b.shape()) + " eagerly, " + shape_str(a.shape()) + " replayed");
        for (std::size_t k = 0; k < a.size(); ++k)
            if (!(a.data()[k] == b.data()[k]) && !(std::isnan(a.data()[k]) && std::isnan(b.data()[k])))
                fail(i, "differs at element " + std::to_string(k) + ": replayed " + std::to_string(a.data()[k]) +
                            ", eager " + std::to_string(b.data()[k]) +
                            " (a value computed outside tapegrad ops, frozen at the trace?)");
    }
    return out;
}

template <class T> compile_stats compiled_core<T>::stats() const {
    compile_stats s = stats_;
    s.programs = programs_.size();
    if (last_) {
        s.kernels = last_->kernels;
        s.fused_loops = last_->loops;
        s.fused_bias_activation = last_->bias_loops;
        s.fused_sgd_weights = last_->fused.size();
        s.eager_reason = last_->reason;
    }
    return s;
}

template class compiled_core<float>;
template class compiled_core<double>;

}  // namespace detail
}  // namespace tapegrad
