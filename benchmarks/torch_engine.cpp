// LibTorch's side of the comparison, in its own translation unit because its
// headers take long to compile. Written as a LibTorch user would: parameter
// tensors with requires_grad, F::linear, F::cross_entropy / F::mse_loss, and
// torch::optim::SGD / Adam.

#include <torch/torch.h>

#include "benchmarks/cases.hpp"

namespace tapegrad::bench {

namespace {

namespace F = torch::nn::functional;

torch::Tensor from(const std::vector<float>& v, std::vector<int64_t> shape) {
    return torch::from_blob(const_cast<float*>(v.data()), shape, torch::kFloat32).clone();
}

class torch_mlp : public runner {
  public:
    explicit torch_mlp(const mlp_problem& p) : c_(p.spec) {
        const auto& s = c_.sizes;
        const auto B = static_cast<int64_t>(c_.batch);
        x_ = from(p.x, {B, static_cast<int64_t>(s.front())});
        onehot_ = from(p.onehot, {B, static_cast<int64_t>(s.back())});
        std::vector<int64_t> labels(p.labels.begin(), p.labels.end());
        labels_ = torch::tensor(labels, torch::kLong);
        std::vector<torch::Tensor> params;
        for (std::size_t l = 0; l < p.w.size(); ++l) {
            w_.push_back(from(p.w[l], {static_cast<int64_t>(s[l + 1]), static_cast<int64_t>(s[l])}).requires_grad_());
            b_.push_back(from(p.b[l], {static_cast<int64_t>(s[l + 1])}).requires_grad_());
            params.push_back(w_.back());
            params.push_back(b_.back());
        }
        if (c_.opt == opt_kind::sgd)
            opt_ = std::make_unique<torch::optim::SGD>(params, torch::optim::SGDOptions(sgd_lr));
        else
            opt_ = std::make_unique<torch::optim::Adam>(
                params, torch::optim::AdamOptions(adam_lr).betas({adam_beta1, adam_beta2}).eps(adam_eps));
    }

    torch::Tensor logits(const torch::Tensor& x) {
        torch::Tensor h = x;
        for (std::size_t l = 0; l < w_.size(); ++l) {
            h = F::linear(h, w_[l], b_[l]);
            if (l + 1 < w_.size()) h = c_.act == act_kind::relu ? torch::relu(h) : torch::tanh(h);
        }
        return h;
    }

    void set_batch(const float* x, const std::size_t* labels) override {
        torch::NoGradGuard guard;
        const auto B = static_cast<int64_t>(c_.batch);
        x_.copy_(torch::from_blob(const_cast<float*>(x), {B, static_cast<int64_t>(c_.sizes.front())}));
        auto* l = labels_.data_ptr<int64_t>();
        for (int64_t i = 0; i < B; ++i) l[i] = static_cast<int64_t>(labels[i]);
        onehot_.zero_();
        auto* oh = onehot_.data_ptr<float>();
        for (int64_t i = 0; i < B; ++i) oh[i * static_cast<int64_t>(c_.sizes.back()) + l[i]] = 1.0f;
    }

    std::size_t correct(const float* x, const std::size_t* labels, std::size_t n) override {
        torch::NoGradGuard guard;
        auto in = torch::from_blob(const_cast<float*>(x), {static_cast<int64_t>(n), static_cast<int64_t>(c_.sizes.front())});
        auto pred = logits(in).argmax(1);
        const auto* p = pred.data_ptr<int64_t>();
        std::size_t hits = 0;
        for (std::size_t i = 0; i < n; ++i) hits += static_cast<std::size_t>(p[i]) == labels[i];
        return hits;
    }

    float step() override {
        opt_->zero_grad();
        torch::Tensor h = logits(x_);
        torch::Tensor loss = c_.loss == loss_kind::cross_entropy ? F::cross_entropy(h, labels_)
                                                                 : F::mse_loss(torch::softmax(h, -1), onehot_);
        loss.backward();
        opt_->step();
        return loss.item<float>();
    }

  private:
    mlp_case c_;
    torch::Tensor x_, onehot_, labels_;
    std::vector<torch::Tensor> w_, b_;
    std::unique_ptr<torch::optim::Optimizer> opt_;
};

class torch_opchain : public runner {
  public:
    explicit torch_opchain(const opchain_problem& p) : spec_(p.spec) {
        const std::vector<int64_t> s{1, static_cast<int64_t>(spec_.width)};
        x_ = from(p.x, s).requires_grad_();
        a_ = from(p.a, s);
        b_ = from(p.b, s);
        c_ = from(p.c, s);
    }

    float step() override {
        torch::Tensor y = x_;
        for (std::size_t i = 0; i < spec_.ops; ++i) {
            switch (chain_op_at(i)) {
                case chain_op::mul: y = y * a_; break;
                case chain_op::add: y = y + b_; break;
                case chain_op::tanh: y = torch::tanh(y); break;
                case chain_op::sub: y = y - c_; break;
                case chain_op::sigmoid: y = torch::sigmoid(y); break;
            }
        }
        if (!spec_.backward) return y.data_ptr<float>()[0];
        y.sum().backward();
        const float g = x_.grad().data_ptr<float>()[0];
        x_.mutable_grad().reset();
        return g;
    }

  private:
    opchain_case spec_;
    torch::Tensor x_, a_, b_, c_;
};

/// One conv layer: torch::conv2d (oneDNN/mkldnn or the native kernels, as LibTorch
/// picks), loss = y.sum(), backward into x, weight and bias.
class torch_conv : public runner {
  public:
    explicit torch_conv(const conv_problem& p) : c_(p.spec) {
        const auto B = static_cast<int64_t>(c_.batch), C = static_cast<int64_t>(c_.in),
                   O = static_cast<int64_t>(c_.out), S = static_cast<int64_t>(c_.size);
        x_ = from(p.x, {B, C, S, S}).requires_grad_();
        w_ = from(p.w, {O, C, 3, 3}).requires_grad_();
        b_ = from(p.b, {O}).requires_grad_();
    }
    float step() override {
        for (auto* t : {&x_, &w_, &b_}) t->mutable_grad().reset();
        torch::Tensor loss = torch::conv2d(x_, w_, b_, /*stride=*/1, /*padding=*/1).sum();
        loss.backward();
        return loss.item<float>();
    }
    std::vector<float> probe() override {
        const auto gx = x_.grad().contiguous(), gw = w_.grad().contiguous(), gb = b_.grad().contiguous();
        return {gx.data_ptr<float>()[0], gx.data_ptr<float>()[gx.numel() / 2 + 7], gw.data_ptr<float>()[0],
                gw.data_ptr<float>()[gw.numel() - 1], gb.data_ptr<float>()[0]};
    }

  private:
    conv_case c_;
    torch::Tensor x_, w_, b_;
};

/// The default CNN as a LibTorch user writes it with torch::nn modules
/// (Conv2d, BatchNorm2d in training mode, Linear) and torch::optim.
class torch_cnn : public runner {
  public:
    explicit torch_cnn(const cnn_problem& p) : c_(p.spec) {
        namespace nn = torch::nn;
        const auto c1 = static_cast<int64_t>(c_.c1), c2 = static_cast<int64_t>(c_.c2);
        conv1_ = nn::Conv2d(nn::Conv2dOptions(1, c1, 3).padding(1));
        bn1_ = nn::BatchNorm2d(nn::BatchNorm2dOptions(c1).eps(bn_eps));
        conv2_ = nn::Conv2d(nn::Conv2dOptions(c1, c2, 3).padding(1));
        bn2_ = nn::BatchNorm2d(nn::BatchNorm2dOptions(c2).eps(bn_eps));
        fc1_ = nn::Linear(static_cast<int64_t>(c_.flat()), static_cast<int64_t>(c_.hidden));
        fc2_ = nn::Linear(static_cast<int64_t>(c_.hidden), static_cast<int64_t>(c_.classes));
        {
            torch::NoGradGuard guard;  // the shared initial weights
            conv1_->weight.copy_(from(p.w1, conv1_->weight.sizes().vec()));
            conv1_->bias.copy_(from(p.b1, conv1_->bias.sizes().vec()));
            conv2_->weight.copy_(from(p.w2, conv2_->weight.sizes().vec()));
            conv2_->bias.copy_(from(p.b2, conv2_->bias.sizes().vec()));
            fc1_->weight.copy_(from(p.w3, fc1_->weight.sizes().vec()));
            fc1_->bias.copy_(from(p.b3, fc1_->bias.sizes().vec()));
            fc2_->weight.copy_(from(p.w4, fc2_->weight.sizes().vec()));
            fc2_->bias.copy_(from(p.b4, fc2_->bias.sizes().vec()));
        }
        const auto B = static_cast<int64_t>(c_.batch), S = static_cast<int64_t>(c_.size);
        x_ = from(p.x, {B, 1, S, S});
        std::vector<int64_t> labels(p.labels.begin(), p.labels.end());
        labels_ = torch::tensor(labels, torch::kLong);
        std::vector<torch::Tensor> params;
        for (auto* m : std::initializer_list<nn::Module*>{conv1_.get(), bn1_.get(), conv2_.get(), bn2_.get(),
                                                          fc1_.get(), fc2_.get()})
            for (auto& t : m->parameters()) params.push_back(t);
        if (c_.opt == opt_kind::sgd)
            opt_ = std::make_unique<torch::optim::SGD>(params, torch::optim::SGDOptions(sgd_lr));
        else
            opt_ = std::make_unique<torch::optim::Adam>(
                params, torch::optim::AdamOptions(adam_lr).betas({adam_beta1, adam_beta2}).eps(adam_eps));
    }
    float step() override {
        opt_->zero_grad();
        torch::Tensor h = F::max_pool2d(torch::relu(bn1_(conv1_(x_))), F::MaxPool2dFuncOptions(2));
        h = F::max_pool2d(torch::relu(bn2_(conv2_(h))), F::MaxPool2dFuncOptions(2));
        h = fc2_(torch::relu(fc1_(h.flatten(1))));
        torch::Tensor loss = F::cross_entropy(h, labels_);
        loss.backward();
        opt_->step();
        return loss.item<float>();
    }
    std::vector<float> probe() override {
        auto at = [](const torch::Tensor& t, int64_t i) { return t.contiguous().data_ptr<float>()[i]; };
        return {at(conv1_->weight, 0), at(conv2_->weight, 100), at(bn2_->weight, 3), at(bn1_->bias, 5),
                at(fc1_->weight, 1000), at(fc2_->bias, 2)};
    }

  private:
    cnn_case c_;
    torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr};
    torch::nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr};
    torch::nn::Linear fc1_{nullptr}, fc2_{nullptr};
    torch::Tensor x_, labels_;
    std::unique_ptr<torch::optim::Optimizer> opt_;
};

}  // namespace

std::unique_ptr<runner> make_torch(const mlp_problem& p) { return std::make_unique<torch_mlp>(p); }
std::unique_ptr<runner> make_torch_opchain(const opchain_problem& p) { return std::make_unique<torch_opchain>(p); }
std::unique_ptr<runner> make_torch_conv(const conv_problem& p) { return std::make_unique<torch_conv>(p); }
std::unique_ptr<runner> make_torch_cnn(const cnn_problem& p) { return std::make_unique<torch_cnn>(p); }
bool have_torch() { return true; }
void torch_set_threads(int n) {
    torch::set_num_threads(n);
}
std::string torch_info() {
    return "LibTorch " TORCH_VERSION ", mkldnn (oneDNN) " +
           std::string(at::hasMKLDNN() && at::globalContext().userEnabledMkldnn() ? "on" : "off") + ", " +
           at::get_parallel_info();
}

}  // namespace tapegrad::bench
