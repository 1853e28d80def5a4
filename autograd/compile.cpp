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
#include <utility>

#include "autograd/detail/record.hpp"
#include "autograd/hooks.hpp"
#include "autograd/kernels/parallel.hpp"
#include "autograd/scopes.hpp"

namespace tapegrad {

namespace detail {
template <class T> bool fusable_matmul(const node<T>& n);  // autograd/matmul.cpp
template <class T> int pass_through_operand(const node<T>& n);  // autograd/ops_elementwise.cpp
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
    index_slots indices;  // sized at the trace, never after: ops keep their addresses
    std::vector<node<T>*> arg_nodes;                      // the trace's tensor arguments
    std::vector<std::shared_ptr<node<T>>> bound;          // this call's tensor arguments, held while in use
    std::vector<std::pair<node<T>**, std::size_t>> patches;  // input slots that read argument i
    std::vector<node<T>*> retaining;                      // nodes with retain_grad(): forget it each call
    std::vector<event> events;
    std::vector<op> ops;
    std::deque<fused_sgd_step<T>> fused;                  // stable addresses: matmul nodes point here
    std::vector<sgd_fusion<T>*> fused_from;               // the request of each fused entry
    // Pass: runs of elementwise nodes whose backward kernels the reverse pass takes block by block
    struct reverse_item {
        node<T>* n;
        bool active = false;  // reached by the current pass
        T* dst[2]{};          // gradient buffers of the inputs that take one
        bool had[2]{};        // input j's gradient already held a value when this node's rule ran
    };
    struct reverse_run {
        std::size_t size = 0;              // elements of each node
        std::vector<reverse_item> items;  // descending tape order
    };
    std::vector<reverse_run> reverse_runs;
    std::vector<std::size_t> reverse_first, reverse_last;
    reverse_ranges reverse;
    // Pass: the reverse pass as a plan, made at the first replay of the program's one backward()
    enum class grad_kind : std::uint8_t { none, node, leaf, other };  // what an input is, for its gradient
    struct plan_step {
        node<T>* n;         // null: run `range` of the fused reverse loops, its nodes at indices <= top
        grad_kind in[2]{};  // as planned; a call that finds otherwise keeps the tape's loop
        int alias = -1;     // alias_bias_grad: the input that takes n's gradient buffer instead of a copy
        std::size_t range = 0, top = 0;
    };
    std::vector<plan_step> plan;
    struct leaf_check {
        node<T>* const* slot;  // the input slot: an argument's is patched on every call
        grad_kind k;
    };
    std::vector<leaf_check> plan_leaves;  // the inputs off the step's tape: what a freeze or a hook changes
    bool plan_made = false;  // for the latest trace
    bool plan_allowed = false;  // plan_backward, and the program has one backward()
    bool alias_allowed = false; // alias_bias_grad, and not check mode
    bool planned = false;    // a plan exists
    node<T>* plan_root = nullptr;
    const xt::xarray<T>* plan_seed = nullptr;
    node<T>* out = nullptr;
    // check mode: called by the trace when the eager run reaches event `capture_at` (or at its end)
    std::function<void()> capture;
    std::size_t capture_at = 0;
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
        if (p.capture && p.events.size() == p.capture_at) std::exchange(p.capture, nullptr)();  // before the event runs
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
        for (const auto& i : p.indices)
            if (&i == labels) return true;
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
        if (a.index) {
            key.push_back(3);
            key.push_back(a.index->dimension());
            key.insert(key.end(), a.index->shape().begin(), a.index->shape().end());
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
        if (a.index) {
            const auto& s = a.index->shape();
            if (at + 2 + s.size() > n || key[at] != 3 || key[at + 1] != s.size()) return false;
            for (std::size_t d = 0; d < s.size(); ++d)
                if (key[at + 2 + d] != s[d]) return false;
            at += 2 + s.size();
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

// Whether node n can run in a fused reverse loop of nodes of `size` elements: an
// elementwise kernel whose inputs that take a gradient are this tape's nodes of its size.
template <class T> bool reverse_fusable(const tape<T>& tp, const node<T>& n, std::size_t size) {
    if (!n.backward_range || n.hooks || n.value.size() != size || n.n_inputs > 2) return false;
    for (std::uint32_t j = 0; j < n.n_inputs; ++j) {
        const node<T>* m = n.inputs[j];
        if (m->requires_grad && (!m->on_tape || m->home != &tp || m->value.size() != size || m->hooks)) return false;
    }
    return true;
}

// Range k of the program's fused reverse loops, nodes at indices <= top, for reverse pass `pass`:
// first which nodes the pass reached and which gradients they write first (as the eager
// rules decide, in the same order), then block by block through all of them.
template <class T> void run_reverse_range(void* ctx, std::size_t k, std::size_t top, std::uint64_t pass) {
    auto& run = static_cast<typename compiled_core<T>::program*>(ctx)->reverse_runs[k];
    for (auto& it : run.items) {
        node<T>& n = *it.n;
        it.active = n.index <= top && n.pass == pass && n.requires_grad;
        if (!it.active) continue;
        for (std::uint32_t j = 0; j < n.n_inputs; ++j) {
            node<T>* m = n.inputs[j];
            it.dst[j] = nullptr;
            if (!m->requires_grad || !m->on_tape) continue;  // a leaf unfrozen after the trace: the program has no gradient for it
            it.had[j] = m->pass == pass;
            if (!it.had[j]) fit(m->grad, m->value.shape());
            it.dst[j] = m->grad.data();
            m->pass = pass;
        }
    }
    parallel_for(run.size, fused_block, [&](std::size_t begin, std::size_t end) {
        for (std::size_t b = begin; b < end; b += fused_block) {
            const std::size_t e = std::min(end, b + fused_block);
            for (auto& it : run.items)
                if (it.active) it.n->backward_range(*it.n, b, e, it.dst, it.had);
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
    p.plan_made = p.planned = p.plan_allowed = false;
    p.plan.clear();
    p.reason.clear();
    p.out = nullptr;
    p.arg_nodes.clear();
    std::size_t n_labels = 0, n_indices = 0;
    for (const auto& a : args) {
        n_labels += a.labels != nullptr;
        n_indices += a.index != nullptr;
    }
    p.labels.resize(n_labels);
    p.indices.resize(n_indices);
    for (std::size_t i = 0, k = 0, j = 0; i < args.size(); ++i) {
        if (args[i].labels) p.labels[k++] = *args[i].labels;
        else if (args[i].index) p.indices[j++] = *args[i].index;
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
        out = run.call(run.ctx, p.labels, p.indices);
    }
    if (p.capture) std::exchange(p.capture, nullptr)();
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
    p.plan_allowed = o_.plan_backward && backwards == 1;
    p.alias_allowed = o_.alias_bias_grad && !o_.check;
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

    // Pass: runs of at least two elementwise nodes of one size (nodes that take no
    // gradient may sit between them) go through the reverse pass as one blocked loop.
    p.reverse_runs.clear();
    if (o_.fuse_backward_elementwise)
        for (std::size_t top = tp.size(); top-- > 0;) {
            node<T>& t = tp.at(top);
            if (!t.requires_grad || !reverse_fusable(tp, t, t.value.size())) continue;
            typename program::reverse_run run;
            run.size = t.value.size();
            std::size_t fused = 0;
            for (std::size_t i = top + 1; i-- > 0;) {
                node<T>& n = tp.at(i);
                if (n.requires_grad && !reverse_fusable(tp, n, run.size)) break;
                run.items.push_back({&n});
                fused += n.requires_grad;
            }
            while (!run.items.back().n->requires_grad) run.items.pop_back();  // the top node stays: it takes a gradient
            top = run.items.back().n->index;  // the loop goes on below the run
            if (fused >= 2) p.reverse_runs.push_back(std::move(run));
        }
    p.reverse_first.clear();
    p.reverse_last.clear();
    for (const auto& run : p.reverse_runs) {
        p.reverse_first.push_back(run.items.back().n->index);
        p.reverse_last.push_back(run.items.front().n->index + 1);
    }
    p.reverse = {p.reverse_first.data(), p.reverse_last.data(), p.reverse_runs.size(), &p, &run_reverse_range<T>};

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

namespace {

// What input m of a compiled step's node is for its gradient: none (no gradient), a node
// of the step's tape, a leaf without hooks, or other (a hooked leaf, another tape's node).
template <class T>
typename compiled_core<T>::program::grad_kind grad_kind_of(const tape<T>& tp, const node<T>* m) {
    using kind = typename compiled_core<T>::program::grad_kind;
    if (!m->requires_grad) return kind::none;
    if (m->on_tape) return m->home == &tp ? kind::node : kind::other;
    return m->hooks ? kind::other : kind::leaf;
}

// The plan of the backward() from root: the nodes the pass reaches, in the order the
// tape's loop takes them (a fused reverse loop as one step, where the loop runs it), or
// none when one of them has hooks, no kernel or more inputs.
template <class T> void make_plan(typename compiled_core<T>::program& p, node<T>* root, const xt::xarray<T>* seed) {
    using program = typename compiled_core<T>::program;
    p.plan_made = true;
    p.planned = false;
    p.plan.clear();
    p.plan_leaves.clear();
    tape<T>& tp = *p.tp;
    if (!root->on_tape || root->home != &tp) return;
    std::vector<char> reached(tp.size(), 0);
    reached[root->index] = 1;
    const reverse_ranges& runs = p.reverse;
    std::size_t next_range = 0;
    for (std::size_t i = root->index + 1; i-- > 0;) {
        while (next_range < runs.count && runs.first[next_range] > i) ++next_range;
        if (next_range < runs.count && i < runs.last[next_range]) {  // as tape::run: the run's nodes <= i, at once
            const std::size_t first = runs.first[next_range];
            for (std::size_t r = i + 1; r-- > first;) {  // what run_reverse_range writes: the inputs of reached nodes
                const node<T>& n = tp.at(r);
                if (!reached[r] || !n.requires_grad) continue;
                for (std::uint32_t j = 0; j < n.n_inputs; ++j)
                    if (n.inputs[j]->requires_grad && n.inputs[j]->on_tape) reached[n.inputs[j]->index] = 1;
            }
            typename program::plan_step s{nullptr};
            s.range = next_range++;
            s.top = i;
            p.plan.push_back(s);
            i = first;
            continue;
        }
        node<T>& n = tp.at(i);
        if (!reached[i] || !n.backward) continue;
        if (n.hooks || !n.backward_kernel || n.n_inputs > 2) return;
        typename program::plan_step s{&n};
        for (std::uint32_t j = 0; j < n.n_inputs; ++j) {
            node<T>* m = n.inputs[j];
            s.in[j] = grad_kind_of(tp, m);
            if (s.in[j] == program::grad_kind::other) return;
            if (s.in[j] == program::grad_kind::node) reached[m->index] = 1;
            // each leaf once, but every slot of an argument: the next call may bind other tensors there
            const bool argument = std::find(p.arg_nodes.begin(), p.arg_nodes.end(), m) != p.arg_nodes.end();
            const bool listed = std::any_of(p.plan_leaves.begin(), p.plan_leaves.end(),
                                            [&](const typename program::leaf_check& c) { return *c.slot == m; });
            if (!(m->on_tape && m->home == &tp) && (argument || !listed)) p.plan_leaves.push_back({&n.inputs[j], s.in[j]});
        }
        // A bias add's full operand, read by it alone, takes its gradient as it is: the
        // buffers trade places instead of a copy (a node's gradient is read by its own
        // rule only; check mode compares them, so it keeps the copy).
        const int through = p.alias_allowed ? pass_through_operand(n) : -1;
        node<T>* dummy = nullptr;
        if (through >= 0 && s.in[through] == program::grad_kind::node && readers_of(tp, n.inputs[through], &dummy) == 1)
            s.alias = through;
        p.plan.push_back(s);
    }
    p.plan_root = root;
    p.plan_seed = seed;
    p.planned = true;
}

// The planned pass: every input's gradient buffer as backward_ctx::targets finds it (a
// node's: held if this pass wrote it; a leaf's: claimed, held if it holds a gradient; the
// weight of a fused SGD step: its value), then the node's kernel.
template <class T> bool run_plan(void* ctx, std::uint64_t pass) {
    using program = typename compiled_core<T>::program;
    using kind = typename program::grad_kind;
    program& p = *static_cast<program*>(ctx);
    tape<T>& tp = *p.tp;
    // As planned, or nothing is written. Only inputs off the step's tape change what they
    // are for the pass (set_requires_grad, hooks); its own nodes gain hooks through the
    // step's result only.
    for (const auto& c : p.plan_leaves)
        if (grad_kind_of(tp, *c.slot) != c.k) return false;
    for (const auto& s : p.plan)
        if (s.n && s.n->hooks) return false;  // a fused run checked its nodes at the trace
    node<T>* root = p.plan_root;
    fit(root->grad, root->value.shape());
    T* g = root->grad.data();
    if (p.plan_seed) std::copy(p.plan_seed->data(), p.plan_seed->data() + p.plan_seed->size(), g);
    else std::fill(g, g + root->value.size(), T(1));  // d root / d root
    root->pass = pass;
    for (const auto& s : p.plan) {
        if (!s.n) {
            p.reverse.run(p.reverse.ctx, s.range, s.top, pass);
            continue;
        }
        node<T>& n = *s.n;
        grad_target<T> out[2];
        bool any = false;
        node<T>* alias = nullptr;
        for (std::uint32_t j = 0; j < n.n_inputs; ++j) {
            node<T>* m = n.inputs[j];
            if (s.in[j] == kind::none) continue;
            if (static_cast<int>(j) == s.alias && m->pass != pass) {  // its one reader: gradient n's, unchanged
                alias = m;
                continue;
            }
            any = true;
            if (s.in[j] == kind::node) {
                const bool had = m->pass == pass;
                if (!had) fit(m->grad, m->value.shape());
                out[j] = {m->grad.data(), had, false};
                m->pass = pass;
                continue;
            }
            if (m->writer.load(std::memory_order_acquire) != &tp) tp.claim(m);
            const fused_sgd_step<T>* f = n.fused_step;
            if (f && f->weight == m && !m->grad_defined) {
                out[j] = {m->value.data(), false, true};
                continue;
            }
            const bool had = m->grad_defined;
            if (!had) fit(m->grad, m->value.shape());
            else backward_ctx<T>::check_held(m, m->grad);
            out[j] = {m->grad.data(), had, false};
            m->grad_defined = true;
            m->pass = pass;
        }
        if (any) n.backward_kernel(n, out);
        if (alias) {  // after the kernel, which read n's gradient
            fit(alias->grad, n.grad.shape());  // one shape: only the first pass allocates
            alias->grad.storage().swap(n.grad.storage());  // the buffers trade places (xarray's swap copies shapes)
            alias->pass = pass;
        }
    }
    return true;
}

// Point the program at this call's arguments: its labels into the label slots, its
// tensors into the input slots that read them.
template <class T> void bind(typename compiled_core<T>::program& p, const std::vector<compiled_arg<T>>& args) {
    p.bound.resize(p.arg_nodes.size());
    for (std::size_t i = 0, t = 0, k = 0, j = 0; i < args.size(); ++i) {
        if (args[i].labels) {
            p.labels[k++].assign(args[i].labels->begin(), args[i].labels->end());  // same size: no allocation
        } else if (args[i].index) {
            const xt::xarray<std::size_t>& from = *args[i].index;  // the key matched its shape
            std::copy(from.data(), from.data() + from.size(), p.indices[j++].data());
        } else {
            if (p.bound[t] != *args[i].owner) p.bound[t] = *args[i].owner;  // the same tensor again: no count changes
            p.arg_nodes[t++] = args[i].tensor_node;
        }
    }
    for (auto& [slot, a] : p.patches) *slot = p.arg_nodes[a];
    for (node<T>* n : p.retaining) n->hooks->retained_defined = false;  // as a new eager step's nodes
}

template <class T> void run_op(typename compiled_core<T>::program& p, const typename compiled_core<T>::program::op& o) {
    using program = typename compiled_core<T>::program;
    switch (o.k) {
    case program::kind::kernel: o.n->forward(*o.n, o.n->inputs); break;
    case program::kind::loop: run_loop(*p.tp, o.first, o.last); break;
    case program::kind::backward: {
        for (std::size_t f = 0; f < p.fused.size(); ++f) {  // the optimizer's current lr
            const sgd_fusion<T>& req = *p.fused_from[f];
            p.fused[f].lr = T(req.lr);
            p.fused[f].decay = T(1 - req.lr * req.weight_decay);
        }
        const auto& e = p.events[o.event];
        const xt::xarray<T>* seed = e.seeded ? &e.seed : nullptr;  // the trace's backward() checked root and seed
        if (!p.plan_made && p.plan_allowed) make_plan(p, o.n, seed);
        if (p.planned && p.tp->replay_planned({&p, &run_plan<T>})) break;
        p.tp->replay_backward(o.n, seed, p.reverse.count ? &p.reverse : nullptr);
        break;
    }
    case program::kind::host: p.events[o.event].host(); break;
    }
}

// What the check mode compares, read off a tape after its forward, zero_grad() and
// backward() calls: the values of the first `nodes` ops, the gradients the latest
// reverse pass left in ops and in the leaves they read (listed in tape order).
template <class T> struct step_state {
    std::vector<xt::xarray<T>> values;
    std::vector<std::pair<std::size_t, xt::xarray<T>>> op_grads;  // (op, gradient), ops the pass reached
    std::vector<std::pair<bool, xt::xarray<T>>> leaf_grads;       // (defined, gradient)
    std::vector<node<T>*> leaves;
};

template <class T> std::vector<node<T>*> leaves_read(tape<T>& tp) {
    std::vector<node<T>*> out;
    for (std::size_t i = 0; i < tp.size(); ++i)
        for (std::uint32_t k = 0; k < tp.at(i).n_inputs; ++k) {
            node<T>* in = tp.at(i).inputs[k];
            if (!in->on_tape && std::find(out.begin(), out.end(), in) == out.end()) out.push_back(in);
        }
    return out;
}

template <class T> step_state<T> read_state(tape<T>& tp, std::size_t nodes, bool backward_ran) {
    step_state<T> s;
    for (std::size_t i = 0; i < nodes && i < tp.size(); ++i) s.values.push_back(tp.at(i).value);
    if (backward_ran)
        for (std::size_t i = tp.size(); i-- > 0;)
            if (tp.at(i).pass == tp.last_pass() && tp.at(i).requires_grad) s.op_grads.emplace_back(i, tp.at(i).grad);
    s.leaves = leaves_read(tp);
    for (node<T>* l : s.leaves) s.leaf_grads.emplace_back(l->grad_defined, l->grad_defined ? l->grad : xt::xarray<T>());
    return s;
}

// First element where a and b differ bit for bit (NaN equals NaN), or a.size() when none; shapes checked by the caller.
template <class T> std::size_t first_difference(const xt::xarray<T>& a, const xt::xarray<T>& b) {
    for (std::size_t k = 0; k < a.size(); ++k)
        if (!(a.data()[k] == b.data()[k]) && !(std::isnan(a.data()[k]) && std::isnan(b.data()[k]))) return k;
    return a.size();
}

}  // namespace

template <class T> tensor<T> compiled_core<T>::replay(program& p, const std::vector<compiled_arg<T>>& args) {
    ++stats_.replays;
    bind(p, args);
    p.tp->restamp();  // results of the previous call go stale: their buffers are rewritten now
    for (const auto& o : p.ops) {
        if (o.k == program::kind::kernel) o.n->forward(*o.n, o.n->inputs);  // the usual op, without run_op's frame
        else run_op<T>(p, o);
    }
    return tensor<T>::from_tape(p.out);
}

template <class T> tensor<T> compiled_core<T>::check(program& p, const std::vector<compiled_arg<T>>& args, invoker run) {
    // The replay up to the first event that may change values (an optimizer step, a
    // replayed() call): the forward, zero_grad() calls and backward passes...
    std::size_t stop = p.events.size();
    for (std::size_t e = 0; e < p.events.size() && stop == p.events.size(); ++e)
        if (p.events[e].k == program::kind::host && !p.events[e].grads_only) stop = e;
    tape<T>& tp = *p.tp;
    const std::size_t nodes = stop < p.events.size() ? p.events[stop].at : tp.size();
    bind(p, args);
    tp.restamp();
    // ...which writes leaves (gradients; values too: running statistics, fused SGD steps): put them back after
    struct saved_leaf {
        node<T>* n;
        xt::xarray<T> value, grad;
        bool defined;
    };
    std::vector<saved_leaf> saved;
    for (node<T>* l : leaves_read(tp)) saved.push_back({l, l->value, l->grad, l->grad_defined});
    bool backward_ran = false;
    step_state<T> replayed;
    {
        struct restore_scope {  // also when a kernel throws
            std::vector<saved_leaf>& leaves;
            program& q;
            ~restore_scope() {
                for (auto& l : leaves) {
                    l.n->value = std::move(l.value);
                    l.n->grad = std::move(l.grad);
                    l.n->grad_defined = l.defined;
                }
                for (sgd_fusion<T>* req : q.fused_from) std::fill(req->taken.begin(), req->taken.end(), char(0));
            }
        } restore{saved, p};
        for (const auto& o : p.ops) {
            if (o.k == program::kind::host && o.event >= stop) break;
            if ((o.k == program::kind::kernel && o.n->index >= nodes) || (o.k == program::kind::loop && o.first >= nodes)) break;
            run_op<T>(p, o);
            backward_ran = backward_ran || o.k == program::kind::backward;
        }
        replayed = read_state(tp, nodes, backward_ran);
    }
    std::vector<std::string> replayed_ops;
    for (std::size_t i = 0; i < tp.size(); ++i) replayed_ops.push_back(tp.at(i).op);
    std::vector<bool> fused_weight(replayed.leaves.size(), false);  // stepped inside the gemm: no gradient to compare
    for (std::size_t l = 0; l < replayed.leaves.size(); ++l)
        for (const auto& f : p.fused) fused_weight[l] = fused_weight[l] || f.weight == replayed.leaves[l];

    // ...against the function run eagerly (whose effects are the call's), read at the same event.
    step_state<T> eager;
    struct clear_capture {
        program& q;
        ~clear_capture() { q.capture = nullptr; }
    } clear{p};
    p.capture_at = stop;
    p.capture = [&] { eager = read_state(*p.tp, nodes, backward_ran); };
    --stats_.traces;
    tensor<T> out = trace(p, args, run);
    ++stats_.replays;
    auto op_name = [&](std::size_t i) { return std::string(i < tp.size() ? tp.at(i).op : "(none)"); };
    auto fail = [&](std::size_t i, const std::string& what) {
        throw std::logic_error("compile check: op " + std::to_string(i) + " '" + op_name(i) + "' " + what);
    };
    if (tp.size() != replayed_ops.size())
        fail(std::min(tp.size(), replayed_ops.size()),
             "is where the eager run and the program part: the eager run recorded " + std::to_string(tp.size()) +
                 " ops, the program " + std::to_string(replayed_ops.size()) +
                 " (control flow that depends on values?)");
    for (std::size_t i = 0; i < tp.size(); ++i)
        if (replayed_ops[i] != tp.at(i).op) fail(i, "was recorded where the program has '" + replayed_ops[i] + "'");
    auto compare = [&](const xt::xarray<T>& a, const xt::xarray<T>& b, const std::string& what, std::size_t i,
                       const char* hint) {
        const std::string subject = what.empty() ? "" : what + " ";
        if (!detail::shapes_equal(a.shape(), b.shape()))
            fail(i, subject + "has shape " + shape_str(b.shape()) + " eagerly, " + shape_str(a.shape()) + " replayed");
        const std::size_t k = first_difference(a, b);
        if (k < a.size())
            fail(i, subject + "differs at element " + std::to_string(k) + ": replayed " + std::to_string(a.data()[k]) +
                        ", eager " + std::to_string(b.data()[k]) + hint);
    };
    // Forward values in tape order, then gradients in the order the reverse pass made them.
    for (std::size_t i = 0; i < replayed.values.size() && i < eager.values.size(); ++i)
        compare(replayed.values[i], eager.values[i], "", i, " (a value computed outside tapegrad ops, frozen at the trace?)");
    if (replayed.op_grads.size() != eager.op_grads.size())
        fail(replayed.op_grads.empty() ? 0 : replayed.op_grads.front().first,
             "begins a reverse pass that reached " + std::to_string(replayed.op_grads.size()) + " ops replayed, " +
                 std::to_string(eager.op_grads.size()) + " eagerly");
    const char* frozen_backward = " (a backward reading a value frozen at the trace, such as a custom op's parameters?)";
    // A gradient is written by the backward rules of the ops that read the tensor: name them.
    auto writers = [&](const node<T>* of, std::size_t& first) {
        std::string list;
        first = tp.size();
        for (std::size_t j = 0; j < eager.values.size(); ++j) {
            const node<T>& r = tp.at(j);
            if (std::find(r.inputs, r.inputs + r.n_inputs, of) == r.inputs + r.n_inputs) continue;
            if (first == tp.size()) first = j;
            list += (list.empty() ? "" : ", ") + std::to_string(j) + " '" + r.op + "'";
        }
        return "from the backward of op" + std::string(list.find(',') == std::string::npos ? " " : "s ") + list;
    };
    for (std::size_t g = 0; g < replayed.op_grads.size(); ++g) {
        const std::size_t i = replayed.op_grads[g].first;
        if (eager.op_grads[g].first != i) fail(i, "was reached by the replayed reverse pass but not by the eager one");
        std::size_t first;
        compare(replayed.op_grads[g].second, eager.op_grads[g].second, "(its gradient, " + writers(&tp.at(i), first) + ")",
                i, frozen_backward);
    }
    for (std::size_t l = 0; l < replayed.leaves.size() && l < eager.leaves.size(); ++l) {
        if (fused_weight[l]) continue;
        std::size_t reader;  // the first op reading the leaf, named as the op
        const std::string from = writers(eager.leaves[l], reader);
        const std::string what =
            "(the gradient of its input leaf of shape " + shape_str(eager.leaves[l]->value.shape()) + ", " + from + ")";
        if (replayed.leaf_grads[l].first != eager.leaf_grads[l].first)
            fail(reader, what + " is " + (replayed.leaf_grads[l].first ? "set" : "unset") + " replayed, " +
                             (eager.leaf_grads[l].first ? "set" : "unset") + " eagerly");
        if (replayed.leaf_grads[l].first)
            compare(replayed.leaf_grads[l].second, eager.leaf_grads[l].second, what, reader, frozen_backward);
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
        s.fused_backward_loops = last_->reverse_runs.size();
        s.planned_backward_nodes = 0;
        if (last_->planned)
            for (const auto& step : last_->plan) {
                s.planned_backward_nodes += step.n != nullptr;
                s.aliased_bias_grads += step.alias >= 0;
            }
        s.eager_reason = last_->reason;
    }
    return s;
}

template class compiled_core<float>;
template class compiled_core<double>;

}  // namespace detail
}  // namespace tapegrad
