// tapegrad's side of the comparison: the model written directly with core ops
// (and, separately, with nn::mlp + optim, eager or as a compiled step), one full
// step per call. Eager SGD takes its step in optim::sgd::step(); the compiled step
// fuses it into the weight-gradient gemm, as the hand-written step does.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>

#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xnoalias.hpp>

#include "autograd/compile.hpp"
#include "autograd/conv.hpp"
#include "autograd/ops.hpp"
#include "benchmarks/cases.hpp"
#include "nn/conv_layers.hpp"
#include "nn/layers.hpp"
#include "optim/optimizer.hpp"

namespace tapegrad::bench {

namespace {

using tf = tensor<float>;

compile_options options_of(compiled_passes p) {
    compile_options o;
    o.fuse_elementwise = p.elementwise;
    o.fuse_bias_activation = p.bias_activation;
    o.fuse_sgd = p.sgd;
    o.fuse_backward_elementwise = p.backward_elementwise;
    o.plan_backward = p.plan_backward;
    o.alias_bias_grad = p.alias_bias_grad;
    return o;
}

xt::xarray<float> to_array(const std::vector<float>& v, const shape_t& shape) {
    xt::xarray<float> a = xt::xarray<float>::from_shape(shape);
    std::copy(v.begin(), v.end(), a.begin());
    return a;
}

step_memory tape_memory() {
    const auto s = tape<float>::current().stats();
    return {s.nodes, s.value_bytes + s.arena_bytes};
}

/// Logits of the case's MLP on core ops: z = h W^T + b, the activation between layers.
tf mlp_logits(const mlp_case& c, const tf& x, const std::vector<tf>& w, const std::vector<tf>& b) {
    tf h = x;
    for (std::size_t l = 0; l < w.size(); ++l) {
        tf z = matmul(h, w[l], false, true) + b[l];
        if (l + 1 == w.size()) {
            h = z;
        } else {
            h = c.act == act_kind::relu ? relu(z) : tanh(z);
        }
    }
    return h;
}

/// Forward + loss of the case.
tf mlp_loss(const mlp_case& c, const tf& x, const std::vector<tf>& w, const std::vector<tf>& b,
            const tf& onehot, const std::vector<std::size_t>& labels) {
    tf h = mlp_logits(c, x, w, b);
    return c.loss == loss_kind::cross_entropy ? cross_entropy(h, labels) : mse(softmax(h, -1), onehot);
}

/// Rows whose largest logit is at the label.
std::size_t count_correct(const xt::xarray<float>& logits, const std::size_t* labels) {
    const std::size_t n = logits.shape()[0], k = logits.shape()[1];
    std::size_t hits = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const float* row = logits.data() + i * k;
        hits += static_cast<std::size_t>(std::max_element(row, row + k) - row) == labels[i];
    }
    return hits;
}

/// Copy a batch into the input leaf, the label vector and the one-hot leaf.
void load_batch(const mlp_case& c, const float* x, const std::size_t* labels, tf& xt_, tf& onehot,
                std::vector<std::size_t>& label_vec) {
    const std::size_t in = c.sizes.front(), classes = c.sizes.back();
    std::copy(x, x + c.batch * in, xt_.mutable_value().data());
    label_vec.assign(labels, labels + c.batch);
    auto& oh = onehot.mutable_value();
    std::fill(oh.begin(), oh.end(), 0.0f);
    for (std::size_t i = 0; i < c.batch; ++i) oh.data()[i * classes + labels[i]] = 1.0f;
}

/// What the two MLP runners share: the case, the batch leaves, the memory sample
/// and accuracy; each says how it computes logits and takes a step.
class tapegrad_mlp_base : public runner {
  public:
    step_memory memory_step() override {
        want_mem_ = true;
        step();
        want_mem_ = false;
        return mem_;
    }
    void set_batch(const float* x, const std::size_t* labels) override {
        load_batch(c_, x, labels, x_, onehot_, labels_);
    }
    std::size_t correct(const float* x, const std::size_t* labels, std::size_t n) override {
        no_grad guard;
        tf in(to_array(std::vector<float>(x, x + n * c_.sizes.front()), {n, c_.sizes.front()}));
        return count_correct(logits(in).value(), labels);
    }

  protected:
    explicit tapegrad_mlp_base(const mlp_problem& p) : c_(p.spec), labels_(p.labels) {
        x_ = tf(to_array(p.x, {c_.batch, c_.sizes.front()}));
        onehot_ = tf(to_array(p.onehot, {c_.batch, c_.sizes.back()}));
    }
    virtual tf logits(const tf& in) = 0;

    mlp_case c_;
    std::vector<std::size_t> labels_;
    tf x_, onehot_;
    step_memory mem_;
    bool want_mem_ = false;
};

class tapegrad_mlp : public tapegrad_mlp_base {
  public:
    explicit tapegrad_mlp(const mlp_problem& p) : tapegrad_mlp_base(p) {
        const auto& s = c_.sizes;
        for (std::size_t l = 0; l < p.w.size(); ++l) {
            w_.emplace_back(to_array(p.w[l], {s[l + 1], s[l]}), true);
            b_.emplace_back(to_array(p.b[l], {s[l + 1]}), true);
        }
        if (c_.opt == opt_kind::adam) {  // the library's Adam on the core-op model's leaves
            std::vector<tf> params(w_.begin(), w_.end());
            params.insert(params.end(), b_.begin(), b_.end());
            optim::adam_options o;
            o.lr = adam_lr;
            o.beta1 = adam_beta1;
            o.beta2 = adam_beta2;
            o.eps = adam_eps;
            adam_ = std::make_unique<optim::adam<float>>(params, o);
        }
    }

    float step() override {
        tf loss = mlp_loss(c_, x_, w_, b_, onehot_, labels_);
        const float value = loss.item();
        loss.backward();
        if (want_mem_) mem_ = tape_memory();
        update();
        reset_tape<float>();
        return value;
    }

  private:
    tf logits(const tf& in) override { return mlp_logits(c_, in, w_, b_); }
    void update() {
        if (adam_) {
            adam_->step();
            adam_->zero_grad();
            return;
        }
        for (auto* group : {&w_, &b_})
            for (auto& t : *group) {
                if (!t.has_grad()) continue;
                xt::noalias(t.mutable_value()) -= sgd_lr * t.grad();
                t.zero_grad();
            }
    }

    std::vector<tf> w_, b_;
    std::unique_ptr<optim::adam<float>> adam_;
};

/// Same step through the nn/optim layers (what a user of the library writes).
class tapegrad_nn_mlp : public tapegrad_mlp_base {
  public:
    tapegrad_nn_mlp(const mlp_problem& p, bool compiled, compiled_passes passes = {})
        : tapegrad_mlp_base(p),
          compiled_(compiled),
          step_(compile(
              [this](const tf& x, const tf& onehot, const std::vector<std::size_t>& labels) {
                  return eager_step(x, onehot, labels);
              },
              options_of(passes))) {
        std::mt19937_64 rng(1);
        net_ = nn::mlp<float>(c_.sizes, c_.act == act_kind::relu ? nn::activation::relu : nn::activation::tanh,
                              rng);
        auto params = net_->parameters();
        for (std::size_t l = 0; l < p.w.size(); ++l) {  // same start as the other engines
            std::copy(p.w[l].begin(), p.w[l].end(), params[2 * l].mutable_value().begin());
            std::copy(p.b[l].begin(), p.b[l].end(), params[2 * l + 1].mutable_value().begin());
        }
        if (c_.opt == opt_kind::sgd) {
            optim::sgd_options o;
            o.lr = sgd_lr;
            opt_ = std::make_unique<optim::sgd<float>>(params, o);
        } else {
            optim::adam_options o;
            o.lr = adam_lr;
            opt_ = std::make_unique<optim::adam<float>>(params, o);
        }
    }

    float step() override {
        if (compiled_) return step_(x_, onehot_, labels_).item();
        const float value = eager_step(x_, onehot_, labels_).item();
        if (want_mem_) mem_ = tape_memory();
        reset_tape<float>();
        return value;
    }

  private:
    tf logits(const tf& in) override { return net_->forward(in); }
    tf eager_step(const tf& x, const tf& onehot, const std::vector<std::size_t>& labels) {
        opt_->zero_grad();
        tf out = net_->forward(x);
        tf loss = c_.loss == loss_kind::cross_entropy ? cross_entropy(out, labels) : mse(softmax(out, -1), onehot);
        loss.backward();
        opt_->step();
        return loss;
    }

    std::shared_ptr<nn::sequential<float>> net_;
    std::unique_ptr<optim::optimizer<float>> opt_;
    bool compiled_;
    compiled<float, tf, tf, std::vector<std::size_t>> step_;
};

class tapegrad_opchain : public runner {
  public:
    tapegrad_opchain(const opchain_problem& p, bool compiled, compiled_passes passes)
        : spec_(p.spec), compiled_(compiled), step_(compile([this](const tf& x) { return chain(x); }, options_of(passes))) {
        const shape_t s{1, spec_.width};
        x_ = tf(to_array(p.x, s), true);
        a_ = tf(to_array(p.a, s));
        b_ = tf(to_array(p.b, s));
        c_ = tf(to_array(p.c, s));
    }

    float step() override {
        if (compiled_) {
            tf out = step_(x_);
            return spec_.backward ? x_.grad().data()[0] : out.value().data()[0];
        }
        tf out = chain(x_);
        const float check = spec_.backward ? x_.grad().data()[0] : out.value().data()[0];
        if (want_mem_) mem_ = tape_memory();
        reset_tape<float>();
        return check;
    }
    /// The chain and, for fwd+bwd, its backward; returns sum(y) or y.
    tf chain(const tf& x) {
        if (spec_.backward) x_.zero_grad();
        tf y = x;
        for (std::size_t i = 0; i < spec_.ops; ++i) {
            switch (chain_op_at(i)) {
                case chain_op::mul: y = y * a_; break;
                case chain_op::add: y = y + b_; break;
                case chain_op::tanh: y = tapegrad::tanh(y); break;
                case chain_op::sub: y = y - c_; break;
                case chain_op::sigmoid: y = sigmoid(y); break;
            }
        }
        if (!spec_.backward) return y;
        tf s = sum(y);
        s.backward();
        return s;
    }
    step_memory memory_step() override {
        want_mem_ = true;
        step();
        want_mem_ = false;
        return mem_;
    }

  private:
    opchain_case spec_;
    tf x_, a_, b_, c_;
    step_memory mem_;
    bool want_mem_ = false;
    bool compiled_;
    compiled<float, tf> step_;
};

/// One conv layer on core ops: y = conv2d(x, W, b, padding 1), loss = sum(y), backward.
class tapegrad_conv : public runner {
  public:
    explicit tapegrad_conv(const conv_problem& p) : c_(p.spec) {
        x_ = tf(to_array(p.x, {c_.batch, c_.in, c_.size, c_.size}), true);
        w_ = tf(to_array(p.w, {c_.out, c_.in, 3, 3}), true);
        b_ = tf(to_array(p.b, {c_.out}), true);
    }

    float step() override {
        for (tf* t : {&x_, &w_, &b_}) t->zero_grad();
        conv2d_options o;
        o.padding = {1, 1};
        tf loss = sum(conv2d(x_, w_, b_, o));
        const float value = loss.item();
        loss.backward();
        if (want_mem_) mem_ = tape_memory();
        reset_tape<float>();
        return value;
    }
    step_memory memory_step() override {
        want_mem_ = true;
        step();
        want_mem_ = false;
        return mem_;
    }
    std::vector<float> probe() override {
        return {x_.grad().data()[0], x_.grad().data()[x_.grad().size() / 2 + 7], w_.grad().data()[0],
                w_.grad().data()[w_.grad().size() - 1], b_.grad().data()[0]};
    }

  private:
    conv_case c_;
    tf x_, w_, b_;
    step_memory mem_;
    bool want_mem_ = false;
};

/// The default CNN on core ops: conv2d, batch norm + relu (one batch_norm2d_relu node:
/// batch statistics, biased variance), max_pool2d, flatten, matmul, cross_entropy;
/// optim::adam / sgd.
class tapegrad_cnn : public runner {
  public:
    explicit tapegrad_cnn(const cnn_problem& p) : c_(p.spec), labels_(p.labels) {
        const std::size_t B = c_.batch, S = c_.size;
        x_ = tf(to_array(p.x, {B, 1, S, S}));
        w1_ = tf(to_array(p.w1, {c_.c1, 1, 3, 3}), true);
        b1_ = tf(to_array(p.b1, {c_.c1}), true);
        w2_ = tf(to_array(p.w2, {c_.c2, c_.c1, 3, 3}), true);
        b2_ = tf(to_array(p.b2, {c_.c2}), true);
        w3_ = tf(to_array(p.w3, {c_.hidden, c_.flat()}), true);
        b3_ = tf(to_array(p.b3, {c_.hidden}), true);
        w4_ = tf(to_array(p.w4, {c_.classes, c_.hidden}), true);
        b4_ = tf(to_array(p.b4, {c_.classes}), true);
        for (std::size_t c : {c_.c1, c_.c2}) {  // running statistics, as torch.nn.BatchNorm2d keeps
            run_mean_.emplace_back(xt::xarray<float>(xt::zeros<float>({c})));
            run_var_.emplace_back(xt::xarray<float>(xt::ones<float>({c})));
        }
        g1_ = tf(xt::xarray<float>(xt::ones<float>({c_.c1})), true);
        be1_ = tf(xt::xarray<float>(xt::zeros<float>({c_.c1})), true);
        g2_ = tf(xt::xarray<float>(xt::ones<float>({c_.c2})), true);
        be2_ = tf(xt::xarray<float>(xt::zeros<float>({c_.c2})), true);
        std::vector<tf> params{w1_, b1_, g1_, be1_, w2_, b2_, g2_, be2_, w3_, b3_, w4_, b4_};
        if (c_.opt == opt_kind::adam) {
            optim::adam_options o;
            o.lr = adam_lr;
            o.beta1 = adam_beta1;
            o.beta2 = adam_beta2;
            o.eps = adam_eps;
            opt_ = std::make_unique<optim::adam<float>>(params, o);
        } else {
            optim::sgd_options o;
            o.lr = sgd_lr;
            opt_ = std::make_unique<optim::sgd<float>>(params, o);
        }
    }

    float step() override {
        opt_->zero_grad();
        tf loss = cross_entropy(logits(x_), labels_);
        const float value = loss.item();
        loss.backward();
        if (want_mem_) mem_ = tape_memory();
        opt_->step();
        reset_tape<float>();
        return value;
    }
    step_memory memory_step() override {
        want_mem_ = true;
        step();
        want_mem_ = false;
        return mem_;
    }
    std::vector<float> probe() override {
        return {w1_.value().data()[0], w2_.value().data()[100], g2_.value().data()[3], be1_.value().data()[5],
                w3_.value().data()[1000], b4_.value().data()[2]};
    }

    /// Per-stage times of one step (see tapegrad_cnn_breakdown): each stage's forward
    /// by a clock around it; its backward from the moment its output's gradient is
    /// complete (a hook on the output) to the moment its input's is.
    std::vector<op_time> timed_step(std::size_t (*allocations)()) {
        using clk = std::chrono::steady_clock;
        auto since = [](clk::time_point a, clk::time_point b) { return std::chrono::duration<double>(b - a).count(); };
        std::vector<op_time> rows;
        std::vector<clk::time_point> done;  // when stage k's output gradient was complete
        std::vector<tf> outs;
        tf h = x_;
        const auto names = cnn_stage_names();
        auto stage = [&](std::size_t k, auto&& f) {
            const std::size_t a0 = allocations ? allocations() : 0;
            const auto t0 = clk::now();
            h = f(h);
            const auto t1 = clk::now();
            const std::size_t a1 = allocations ? allocations() : 0;
            rows.push_back({names[k], since(t0, t1), 0, allocations ? static_cast<double>(a1 - a0) : -1.0});
            outs.push_back(h);
        };
        conv2d_options pad1;
        pad1.padding = {1, 1};
        opt_->zero_grad();
        stage(0, [&](const tf& v) { return conv2d(v, w1_, b1_, pad1); });
        // With the fused node, stage 2 (relu) is empty: its time is in stage 1.
        stage(1, [&](const tf& v) { return fused_relu_ ? batch_norm_relu(v, g1_, be1_, 0) : batch_norm(v, g1_, be1_, 0); });
        stage(2, [&](const tf& v) { return fused_relu_ ? v : relu(v); });
        stage(3, [&](const tf& v) { return max_pool2d(v, {2, 2}); });
        stage(4, [&](const tf& v) { return conv2d(v, w2_, b2_, pad1); });
        stage(5, [&](const tf& v) { return fused_relu_ ? batch_norm_relu(v, g2_, be2_, 1) : batch_norm(v, g2_, be2_, 1); });
        stage(6, [&](const tf& v) { return fused_relu_ ? v : relu(v); });
        stage(7, [&](const tf& v) { return max_pool2d(v, {2, 2}); });
        stage(8, [&](const tf& v) { return matmul(flatten(v), w3_, false, true) + b3_; });
        stage(9, [&](const tf& v) { return relu(v); });
        stage(10, [&](const tf& v) { return matmul(v, w4_, false, true) + b4_; });
        stage(11, [&](const tf& v) { return cross_entropy(v, labels_); });
        done.assign(outs.size(), clk::time_point{});
        for (std::size_t k = 0; k + 1 < outs.size(); ++k)
            outs[k].register_hook([&done, k](const tf&) {
                done[k] = clk::now();
                return tf();
            });
        (void)outs.back().item();
        const auto b0 = clk::now();
        outs.back().backward();
        const auto b1 = clk::now();
        for (std::size_t k = 0; k < rows.size(); ++k) {
            const auto start = k + 1 < rows.size() ? done[k] : b0;  // the loss's gradient is seeded
            const auto end = k > 0 ? done[k - 1] : b1;              // conv1's input needs no gradient
            rows[k].backward = since(start, end);
        }
        const auto o0 = clk::now();
        opt_->step();
        rows.push_back({names[12], 0, since(o0, clk::now())});
        const auto r0 = clk::now();
        outs.clear();
        h = tf();
        reset_tape<float>();
        rows.push_back({names[13], 0, since(r0, clk::now())});
        return rows;
    }

  private:
    /// y = (x - mean) / sqrt(var + eps) * gamma + beta over axes 0, 2, 3 (training mode).
    /// The fused batch_norm2d op (training mode, running statistics updated), or with
    /// TAPEGRAD_BENCH_COMPOSITE_BN=1 the composite of core ops below.
    tf batch_norm(const tf& x, const tf& gamma, const tf& beta, std::size_t layer) {
        if (composite_bn_) return composite_batch_norm(x, gamma, beta);
        return batch_norm2d(x, gamma, beta, run_mean_[layer], run_var_[layer], true, 0.1, bn_eps);
    }
    /// relu(batch_norm(...)): one batch_norm2d_relu node, or with
    /// TAPEGRAD_BENCH_UNFUSED_BN_RELU=1 (or the composite batch norm) two.
    tf batch_norm_relu(const tf& x, const tf& gamma, const tf& beta, std::size_t layer) {
        if (!fused_relu_) return relu(batch_norm(x, gamma, beta, layer));
        return batch_norm2d_relu(x, gamma, beta, run_mean_[layer], run_var_[layer], true, 0.1, bn_eps);
    }
    static tf composite_batch_norm(const tf& x, const tf& gamma, const tf& beta) {
        const std::size_t C = x.shape()[1];
        const tf d = x - mean(x, {0, 2, 3}, true);
        const tf inv_std = rsqrt(add_scalar(mean(d * d, {0, 2, 3}, true), bn_eps));
        return d * inv_std * reshape(gamma, {1, C, 1, 1}) + reshape(beta, {1, C, 1, 1});
    }
    tf logits(const tf& x) {
        conv2d_options pad1;
        pad1.padding = {1, 1};
        tf h = max_pool2d(batch_norm_relu(conv2d(x, w1_, b1_, pad1), g1_, be1_, 0), {2, 2});
        h = max_pool2d(batch_norm_relu(conv2d(h, w2_, b2_, pad1), g2_, be2_, 1), {2, 2});
        h = relu(matmul(flatten(h), w3_, false, true) + b3_);
        return matmul(h, w4_, false, true) + b4_;
    }

    cnn_case c_;
    std::vector<std::size_t> labels_;
    tf x_, w1_, b1_, g1_, be1_, w2_, b2_, g2_, be2_, w3_, b3_, w4_, b4_;
    std::vector<tf> run_mean_, run_var_;
    bool composite_bn_ = std::getenv("TAPEGRAD_BENCH_COMPOSITE_BN") != nullptr;
    bool fused_relu_ = !composite_bn_ && std::getenv("TAPEGRAD_BENCH_UNFUSED_BN_RELU") == nullptr;
    std::unique_ptr<optim::optimizer<float>> opt_;
    step_memory mem_;
    bool want_mem_ = false;
};

}  // namespace

std::unique_ptr<runner> make_tapegrad(const mlp_problem& p) { return std::make_unique<tapegrad_mlp>(p); }
std::unique_ptr<runner> make_tapegrad_nn(const mlp_problem& p) { return std::make_unique<tapegrad_nn_mlp>(p, false); }
std::unique_ptr<runner> make_tapegrad_compiled(const mlp_problem& p, compiled_passes passes) {
    return std::make_unique<tapegrad_nn_mlp>(p, true, passes);
}
std::unique_ptr<runner> make_tapegrad_opchain(const opchain_problem& p, bool compiled, compiled_passes passes) {
    return std::make_unique<tapegrad_opchain>(p, compiled, passes);
}

namespace {

/// The same CNN through the nn layers (nn::conv2d, nn::batch_norm2d, nn::max_pool2d,
/// nn::flatten, nn::linear in an nn::sequential) and optim, as a library user writes it;
/// `compiled`: the same step through tapegrad::compile.
class tapegrad_nn_cnn : public runner {
  public:
    tapegrad_nn_cnn(const cnn_problem& p, bool compiled)
        : c_(p.spec),
          labels_(p.labels),
          compiled_(compiled),
          step_(compile([this](const tf& x, const std::vector<std::size_t>& labels) { return eager_step(x, labels); })) {
        std::mt19937_64 rng(1);
        conv2d_options pad1;
        pad1.padding = {1, 1};
        auto relu_layer = [] { return std::make_shared<nn::activation_module<float>>(nn::activation::relu); };
        net_ = std::make_shared<nn::sequential<float>>(std::vector<std::shared_ptr<nn::module<float>>>{
            std::make_shared<nn::conv2d<float>>(1, c_.c1, std::array<std::size_t, 2>{3, 3}, rng, pad1),
            std::make_shared<nn::batch_norm2d<float>>(c_.c1, bn_eps),
            relu_layer(),
            std::make_shared<nn::max_pool2d<float>>(std::array<std::size_t, 2>{2, 2}),
            std::make_shared<nn::conv2d<float>>(c_.c1, c_.c2, std::array<std::size_t, 2>{3, 3}, rng, pad1),
            std::make_shared<nn::batch_norm2d<float>>(c_.c2, bn_eps),
            relu_layer(),
            std::make_shared<nn::max_pool2d<float>>(std::array<std::size_t, 2>{2, 2}),
            std::make_shared<nn::flatten<float>>(),
            std::make_shared<nn::linear<float>>(c_.flat(), c_.hidden, rng),
            relu_layer(),
            std::make_shared<nn::linear<float>>(c_.hidden, c_.classes, rng),
        });
        params_ = net_->parameters();
        // conv1 w, b; bn1 gamma, beta; conv2 w, b; bn2 gamma, beta; linear 1 w, b; linear 2 w, b
        const std::vector<float> ones1(c_.c1, 1.0f), zeros1(c_.c1, 0.0f), ones2(c_.c2, 1.0f), zeros2(c_.c2, 0.0f);
        const std::vector<const std::vector<float>*> start{&p.w1, &p.b1, &ones1, &zeros1, &p.w2, &p.b2,
                                                           &ones2, &zeros2, &p.w3, &p.b3, &p.w4, &p.b4};
        if (params_.size() != start.size())
            throw std::runtime_error("tapegrad_nn_cnn: expected 12 parameters, the network has " +
                                     std::to_string(params_.size()));
        for (std::size_t i = 0; i < start.size(); ++i) {
            auto& v = params_[i].mutable_value();
            if (v.size() != start[i]->size())
                throw std::runtime_error("tapegrad_nn_cnn: parameter " + std::to_string(i) + " has " +
                                         std::to_string(v.size()) + " elements, expected " +
                                         std::to_string(start[i]->size()));
            std::copy(start[i]->begin(), start[i]->end(), v.begin());
        }
        x_ = tf(to_array(p.x, {c_.batch, 1, c_.size, c_.size}));
        if (c_.opt == opt_kind::adam) {
            optim::adam_options o;
            o.lr = adam_lr;
            o.beta1 = adam_beta1;
            o.beta2 = adam_beta2;
            o.eps = adam_eps;
            opt_ = std::make_unique<optim::adam<float>>(params_, o);
        } else {
            optim::sgd_options o;
            o.lr = sgd_lr;
            opt_ = std::make_unique<optim::sgd<float>>(params_, o);  // after backward, as the other CNN engines
        }
    }
    float step() override {
        if (compiled_) return step_(x_, labels_).item();
        const float value = eager_step(x_, labels_).item();
        reset_tape<float>();
        return value;
    }
    step_memory memory_step() override {
        want_mem_ = true;
        step();
        want_mem_ = false;
        return mem_;
    }
    std::vector<float> probe() override {
        return {params_[0].value().data()[0], params_[4].value().data()[100], params_[6].value().data()[3],
                params_[3].value().data()[5], params_[8].value().data()[1000], params_[11].value().data()[2]};
    }

  private:
    tf eager_step(const tf& x, const std::vector<std::size_t>& labels) {
        opt_->zero_grad();
        tf loss = cross_entropy(net_->forward(x), labels);
        loss.backward();
        if (want_mem_) mem_ = tape_memory();
        opt_->step();
        return loss;
    }

    cnn_case c_;
    std::vector<std::size_t> labels_;
    tf x_;
    std::shared_ptr<nn::sequential<float>> net_;
    std::vector<tf> params_;
    std::unique_ptr<optim::optimizer<float>> opt_;
    step_memory mem_;
    bool want_mem_ = false;
    bool compiled_;
    compiled<float, tf, std::vector<std::size_t>> step_;
};

}  // namespace

std::unique_ptr<runner> make_tapegrad_nn_cnn(const cnn_problem& p, bool compiled) {
    return std::make_unique<tapegrad_nn_cnn>(p, compiled);
}
std::unique_ptr<runner> make_tapegrad_conv(const conv_problem& p) { return std::make_unique<tapegrad_conv>(p); }
std::unique_ptr<runner> make_tapegrad_cnn(const cnn_problem& p) { return std::make_unique<tapegrad_cnn>(p); }

stage_timer tapegrad_cnn_timer(const cnn_problem& p, std::size_t (*allocations)()) {
    auto net = std::make_shared<tapegrad_cnn>(p);
    for (int i = 0; i < 5; ++i) net->step();  // warm buffers
    return [net, allocations] { return net->timed_step(allocations); };
}

}  // namespace tapegrad::bench
