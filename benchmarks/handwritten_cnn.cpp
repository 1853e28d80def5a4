// Hand-written conv layer and default CNN (issue 12, section 3): im2col + one sgemm
// per sample, col2im for the input gradient, batch norm, relu, 2x2 max-pool with
// argmax, linear layers, softmax cross-entropy and Adam/SGD, all written out with
// buffers allocated once in the constructor. The speed a careful C++ programmer
// reaches with BLAS for these exact networks.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <vector>

#include "autograd/kernels/blas.hpp"
#include "benchmarks/cases.hpp"

namespace tapegrad::bench {

namespace {

using buf = std::vector<float>;

// Reductions in 16 independent lanes, so the compiler vectorises them without
// reassociating (no -ffast-math); the lanes are added at the end.
constexpr std::size_t lanes = 16;
inline float lane_total(const float* acc) {
    float s = 0;
    for (std::size_t j = 0; j < lanes; ++j) s += acc[j];
    return s;
}
/// sum of p[0..n)
inline float sum_of(const float* p, std::size_t n) {
    float acc[lanes] = {};
    std::size_t i = 0;
    for (; i + lanes <= n; i += lanes)
        for (std::size_t j = 0; j < lanes; ++j) acc[j] += p[i + j];
    float s = lane_total(acc);
    for (; i < n; ++i) s += p[i];
    return s;
}
/// sum of a[i] * b[i] over [0, n)
inline float dot_of(const float* a, const float* b, std::size_t n) {
    float acc[lanes] = {};
    std::size_t i = 0;
    for (; i + lanes <= n; i += lanes)
        for (std::size_t j = 0; j < lanes; ++j) acc[j] += a[i + j] * b[i + j];
    float s = lane_total(acc);
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}
/// sum of (p - m)^2 over p[0..n)
inline float sq_dev_of(const float* p, float m, std::size_t n) {
    float acc[lanes] = {};
    std::size_t i = 0;
    for (; i + lanes <= n; i += lanes)
        for (std::size_t j = 0; j < lanes; ++j) {
            const float d = p[i + j] - m;
            acc[j] += d * d;
        }
    float s = lane_total(acc);
    for (; i < n; ++i) s += (p[i] - m) * (p[i] - m);
    return s;
}

/// A 3x3, stride 1, padding 1 convolution of C -> O channels on H x W images.
/// Two schemes: one gemm per sample on cols [B, K, L] (`wide` false), or one gemm
/// for the whole batch on cols [K, B*L] (`wide`: larger gemms, but the output and its
/// gradient pass through a [O, B*L] scratch buffer to and from NCHW).
struct conv3x3 {
    std::size_t C, O, H, W;
    bool wide = false;
    std::size_t L() const { return H * W; }
    std::size_t K() const { return C * 9; }
    /// Floats of the cols buffer, and of the dcols buffer (when dx is wanted).
    std::size_t cols_size(std::size_t B) const { return B * K() * L(); }
    std::size_t dcols_size(std::size_t B) const { return wide ? B * K() * L() : K() * L(); }
    /// Floats of the scratch buffer (wide only).
    std::size_t scratch_size(std::size_t B) const { return wide ? O * B * L() : 0; }

    /// Sample n's columns: row c*9 + i*3 + j, column (oy, ox) holds x[c, oy + i - 1,
    /// ox + j - 1], 0 outside; rows `ld` floats apart.
    void im2col(const float* x, float* cols, std::size_t ld) const {
        for (std::size_t c = 0; c < C; ++c)
            for (std::size_t i = 0; i < 3; ++i)
                for (std::size_t j = 0; j < 3; ++j) {
                    float* row = cols + ((c * 3 + i) * 3 + j) * ld;
                    const std::size_t lo = j == 0 ? 1 : 0, hi = j == 2 ? W - 1 : W;
                    for (std::size_t oy = 0; oy < H; ++oy) {
                        float* dst = row + oy * W;
                        const std::size_t ty = oy + i;  // iy + 1
                        if (ty == 0 || ty > H) {
                            std::fill(dst, dst + W, 0.0f);
                            continue;
                        }
                        const float* src = x + (c * H + ty - 1) * W;
                        if (lo) dst[0] = 0.0f;
                        if (hi < W) dst[W - 1] = 0.0f;
                        for (std::size_t ox = lo; ox < hi; ++ox) dst[ox] = src[ox + j - 1];
                    }
                }
    }
    /// dx [C, H, W] = col2im(dcols), im2col's transpose (dx is overwritten).
    void col2im(const float* dcols, std::size_t ld, float* dx) const {
        std::fill(dx, dx + C * L(), 0.0f);
        for (std::size_t c = 0; c < C; ++c)
            for (std::size_t i = 0; i < 3; ++i)
                for (std::size_t j = 0; j < 3; ++j) {
                    const float* row = dcols + ((c * 3 + i) * 3 + j) * ld;
                    const std::size_t lo = j == 0 ? 1 : 0, hi = j == 2 ? W - 1 : W;
                    for (std::size_t oy = 0; oy < H; ++oy) {
                        const std::size_t ty = oy + i;
                        if (ty == 0 || ty > H) continue;
                        const float* src = row + oy * W;
                        float* dst = dx + (c * H + ty - 1) * W;
                        for (std::size_t ox = lo; ox < hi; ++ox) dst[ox + j - 1] += src[ox];
                    }
                }
    }
    /// y [B, O, L] = W cols + b; cols kept for the backward pass.
    void forward(std::size_t B, const float* x, const float* w, const float* b, float* cols, float* y,
                 float* scratch) const {
        const std::size_t l = L(), k = K();
        if (wide) {
            for (std::size_t n = 0; n < B; ++n) im2col(x + n * C * l, cols + n * l, B * l);
            blas::gemm(false, false, O, B * l, k, 1.0f, w, k, cols, B * l, 0.0f, scratch, B * l);
            for (std::size_t n = 0; n < B; ++n)
                for (std::size_t o = 0; o < O; ++o) {
                    const float* src = scratch + o * B * l + n * l;
                    float* dst = y + (n * O + o) * l;
                    for (std::size_t q = 0; q < l; ++q) dst[q] = src[q] + b[o];
                }
            return;
        }
        for (std::size_t n = 0; n < B; ++n) {
            float* cn = cols + n * k * l;
            im2col(x + n * C * l, cn, l);
            float* yn = y + n * O * l;
            blas::gemm(false, false, O, l, k, 1.0f, w, k, cn, l, 0.0f, yn, l);
            for (std::size_t o = 0; o < O; ++o) {
                float* r = yn + o * l;
                for (std::size_t q = 0; q < l; ++q) r[q] += b[o];
            }
        }
    }
    /// db = sum of gy over samples and pixels; dW = gy cols^T summed over samples;
    /// dx (if not null) = col2im(W^T gy).
    void backward(std::size_t B, const float* gy, const float* w, const float* cols, float* dw, float* db,
                  float* dcols, float* dx, float* scratch) const {
        const std::size_t l = L(), k = K();
        std::fill(db, db + O, 0.0f);
        for (std::size_t n = 0; n < B; ++n)
            for (std::size_t o = 0; o < O; ++o) {
                const float* r = gy + (n * O + o) * l;
                if (wide) std::copy(r, r + l, scratch + o * B * l + n * l);
                db[o] += sum_of(r, l);
            }
        if (wide) {
            blas::gemm(false, true, O, k, B * l, 1.0f, scratch, B * l, cols, B * l, 0.0f, dw, k);
            if (!dx) return;
            blas::gemm(true, false, k, B * l, O, 1.0f, w, k, scratch, B * l, 0.0f, dcols, B * l);
            for (std::size_t n = 0; n < B; ++n) col2im(dcols + n * l, B * l, dx + n * C * l);
            return;
        }
        for (std::size_t n = 0; n < B; ++n) {
            const float* gn = gy + n * O * l;
            blas::gemm(false, true, O, k, l, 1.0f, gn, l, cols + n * k * l, l, n ? 1.0f : 0.0f, dw, k);
            if (dx) {
                blas::gemm(true, false, k, l, O, 1.0f, w, k, gn, l, 0.0f, dcols, l);
                col2im(dcols, l, dx + n * C * l);
            }
        }
    }
};

class handwritten_conv : public runner {
  public:
    handwritten_conv(const conv_problem& p, bool wide)
        : c_(p.spec), conv_{c_.in, c_.out, c_.size, c_.size, wide}, x_(p.x), w_(p.w), b_(p.b) {
        const std::size_t B = c_.batch;
        cols_.resize(conv_.cols_size(B));
        scratch_.resize(conv_.scratch_size(B));
        y_.resize(B * c_.out * conv_.L());
        gy_.assign(y_.size(), 1.0f);  // d sum(y) / dy
        dcols_.resize(conv_.dcols_size(B));
        dx_.resize(x_.size());
        dw_.resize(w_.size());
        db_.resize(b_.size());
    }
    float step() override {
        conv_.forward(c_.batch, x_.data(), w_.data(), b_.data(), cols_.data(), y_.data(), scratch_.data());
        double loss = 0;
        for (float v : y_) loss += v;
        conv_.backward(c_.batch, gy_.data(), w_.data(), cols_.data(), dw_.data(), db_.data(), dcols_.data(),
                       dx_.data(), scratch_.data());
        return static_cast<float>(loss);
    }
    step_memory memory_step() override {
        step();
        step_memory m;
        std::size_t n = 0;
        for (const buf* b : {&cols_, &scratch_, &y_, &gy_, &dcols_, &dx_, &dw_, &db_}) n += b->size();
        m.buffer_bytes = static_cast<double>(n * sizeof(float));
        return m;
    }
    std::vector<float> probe() override {
        return {dx_[0], dx_[dx_.size() / 2 + 7], dw_[0], dw_.back(), db_[0]};
    }

  private:
    conv_case c_;
    conv3x3 conv_;
    buf x_, w_, b_, cols_, scratch_, y_, gy_, dcols_, dx_, dw_, db_;
};

/// One parameter with its gradient and optimizer state.
struct param {
    buf v, g, m, s;
    void init(const std::vector<float>& start, bool adam) {
        v = start;
        g.assign(v.size(), 0.0f);
        if (adam) {
            m.assign(v.size(), 0.0f);
            s.assign(v.size(), 0.0f);
        }
    }
    std::size_t floats() const { return v.size() + g.size() + m.size() + s.size(); }
};

/// Training-mode batch norm over [B, C, L] (statistics over B and L per channel),
/// followed by relu: a = relu(gamma * (z - mean) / sqrt(var + eps) + beta).
struct bn_relu {
    std::size_t B = 0, C = 0, L = 0;
    buf xhat, a, inv_std, run_mean, run_var;
    void init(std::size_t batch, std::size_t channels, std::size_t pixels) {
        B = batch, C = channels, L = pixels;
        xhat.resize(B * C * L);
        a.resize(B * C * L);
        inv_std.resize(C);
        run_mean.assign(C, 0.0f);
        run_var.assign(C, 1.0f);
    }
    std::size_t floats() const { return xhat.size() + a.size() + inv_std.size() + run_mean.size() + run_var.size(); }
    void forward(const float* z, const float* gamma, const float* beta) {
        const double M = static_cast<double>(B * L);
        for (std::size_t c = 0; c < C; ++c) {
            double s = 0;  // per plane in float lanes, across planes in double
            for (std::size_t n = 0; n < B; ++n) s += sum_of(z + (n * C + c) * L, L);
            const float mean = static_cast<float>(s / M);
            double q = 0;
            for (std::size_t n = 0; n < B; ++n) q += sq_dev_of(z + (n * C + c) * L, mean, L);
            const float var = static_cast<float>(q / M), is = 1.0f / std::sqrt(var + bn_eps);
            inv_std[c] = is;
            // running statistics as torch.nn.BatchNorm2d keeps them (momentum 0.1, unbiased variance)
            run_mean[c] = 0.9f * run_mean[c] + 0.1f * mean;
            run_var[c] = 0.9f * run_var[c] + 0.1f * static_cast<float>(q / (M - 1));
            for (std::size_t n = 0; n < B; ++n) {
                const float* r = z + (n * C + c) * L;
                float* xh = xhat.data() + (n * C + c) * L;
                float* out = a.data() + (n * C + c) * L;
                for (std::size_t l = 0; l < L; ++l) {
                    xh[l] = (r[l] - mean) * is;
                    out[l] = std::max(gamma[c] * xh[l] + beta[c], 0.0f);
                }
            }
        }
    }
    /// da (gradient of a) -> dz; dgamma, dbeta. dz = gamma inv_std (dy - mean(dy) - xhat mean(dy xhat)),
    /// dy = da where a > 0.
    void backward(const float* da, const float* gamma, float* dz, float* dgamma, float* dbeta) const {
        const float M = static_cast<float>(B * L);
        for (std::size_t c = 0; c < C; ++c) {
            float sb = 0, sg = 0;
            for (std::size_t n = 0; n < B; ++n) {  // dy = da where a > 0, into dz
                const std::size_t off = (n * C + c) * L;
                const float* an = a.data() + off;
                const float* dn = da + off;
                float* dy = dz + off;
                for (std::size_t l = 0; l < L; ++l) dy[l] = an[l] > 0.0f ? dn[l] : 0.0f;
                sb += sum_of(dy, L);
                sg += dot_of(dy, xhat.data() + off, L);
            }
            dbeta[c] = sb;
            dgamma[c] = sg;
            const float k = gamma[c] * inv_std[c], mb = sb / M, mg = sg / M;
            for (std::size_t n = 0; n < B; ++n) {
                const std::size_t off = (n * C + c) * L;
                float* d = dz + off;
                const float* xn = xhat.data() + off;
                for (std::size_t l = 0; l < L; ++l) d[l] = k * (d[l] - mb - xn[l] * mg);
            }
        }
    }
};

/// 2x2, stride 2 max-pool over P planes of H x W; ties go to the first maximum in
/// row-major window order (as PyTorch's CPU kernel).
struct pool2x2 {
    std::size_t P = 0, H = 0, W = 0;
    std::vector<std::uint32_t> at;  // winner's offset inside its plane
    void init(std::size_t planes, std::size_t height, std::size_t width) {
        P = planes, H = height, W = width;
        at.resize(P * (H / 2) * (W / 2));
    }
    void forward(const float* x, float* y) {
        const std::size_t oh = H / 2, ow = W / 2;
        for (std::size_t p = 0; p < P; ++p) {
            const float* img = x + p * H * W;
            for (std::size_t oy = 0; oy < oh; ++oy)
                for (std::size_t ox = 0; ox < ow; ++ox) {
                    std::size_t best = 2 * oy * W + 2 * ox;
                    for (std::size_t cand : {best + 1, best + W, best + W + 1})
                        if (img[cand] > img[best]) best = cand;
                    const std::size_t o = (p * oh + oy) * ow + ox;
                    y[o] = img[best];
                    at[o] = static_cast<std::uint32_t>(best);
                }
        }
    }
    void backward(const float* gy, float* dx) const {
        std::fill(dx, dx + P * H * W, 0.0f);
        const std::size_t per = (H / 2) * (W / 2);
        for (std::size_t p = 0; p < P; ++p)
            for (std::size_t o = 0; o < per; ++o) dx[p * H * W + at[p * per + o]] = gy[p * per + o];
    }
};

/// Adds the time since the previous mark to a stage's forward or backward (when timing).
struct stopwatch {
    std::vector<op_time>* rows;
    std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
    void mark(std::size_t stage, bool forward) {
        if (!rows) return;
        const auto now = std::chrono::steady_clock::now();
        (forward ? (*rows)[stage].forward : (*rows)[stage].backward) += std::chrono::duration<double>(now - last).count();
        last = now;
    }
};

class handwritten_cnn : public runner {
  public:
    handwritten_cnn(const cnn_problem& p, bool wide)
        : c_(p.spec),
          conv1_{1, c_.c1, c_.size, c_.size, wide},
          conv2_{c_.c1, c_.c2, c_.size / 2, c_.size / 2, wide},
          x_(p.x),
          labels_(p.labels) {
        const std::size_t B = c_.batch, S = c_.size, L1 = S * S, L2 = L1 / 4;
        const bool adam = c_.opt == opt_kind::adam;
        w1_.init(p.w1, adam), b1_.init(p.b1, adam), w2_.init(p.w2, adam), b2_.init(p.b2, adam);
        w3_.init(p.w3, adam), b3_.init(p.b3, adam), w4_.init(p.w4, adam), b4_.init(p.b4, adam);
        g1_.init(std::vector<float>(c_.c1, 1.0f), adam), be1_.init(std::vector<float>(c_.c1, 0.0f), adam);
        g2_.init(std::vector<float>(c_.c2, 1.0f), adam), be2_.init(std::vector<float>(c_.c2, 0.0f), adam);
        cols1_.resize(conv1_.cols_size(B));
        scratch_.resize(std::max(conv1_.scratch_size(B), conv2_.scratch_size(B)));
        z1_.resize(B * c_.c1 * L1);
        bn1_.init(B, c_.c1, L1);
        pool1_.init(B * c_.c1, S, S);
        p1_.resize(B * c_.c1 * L2);
        cols2_.resize(conv2_.cols_size(B));
        z2_.resize(B * c_.c2 * L2);
        bn2_.init(B, c_.c2, L2);
        pool2_.init(B * c_.c2, S / 2, S / 2);
        p2_.resize(B * c_.flat());
        h3_.resize(B * c_.hidden);
        z4_.resize(B * c_.classes);
        dz4_.resize(z4_.size());
        dh3_.resize(h3_.size());
        dp2_.resize(p2_.size());
        da2_.resize(z2_.size());
        dz2_.resize(z2_.size());
        dcols2_.resize(conv2_.dcols_size(B));
        dp1_.resize(p1_.size());
        da1_.resize(z1_.size());
        dz1_.resize(z1_.size());
    }

    float step() override { return run(nullptr); }
    /// One step with each stage timed into `rows` (the stages of cnn_stage_names()).
    float timed_step(std::vector<op_time>& rows) { return run(&rows); }
    step_memory memory_step() override {
        step();
        std::size_t n = 0;
        for (const param* q : {&w1_, &b1_, &g1_, &be1_, &w2_, &b2_, &g2_, &be2_, &w3_, &b3_, &w4_, &b4_})
            n += q->floats();
        for (const buf* b : {&x_, &scratch_, &cols1_, &z1_, &p1_, &cols2_, &z2_, &p2_, &h3_, &z4_, &dz4_, &dh3_, &dp2_, &da2_,
                             &dz2_, &dcols2_, &dp1_, &da1_, &dz1_})
            n += b->size();
        n += bn1_.floats() + bn2_.floats() + pool1_.at.size() + pool2_.at.size();  // uint32 = 4 bytes
        step_memory m;
        m.buffer_bytes = static_cast<double>(n * sizeof(float));
        return m;
    }
    std::vector<float> probe() override {
        return {w1_.v[0], w2_.v[100], g2_.v[3], be1_.v[5], w3_.v[1000], b4_.v[2]};
    }

  private:
    float run(std::vector<op_time>* rows) {
        stopwatch sw{rows};
        const std::size_t B = c_.batch, H = c_.hidden, F = c_.flat(), K = c_.classes;
        // forward
        conv1_.forward(B, x_.data(), w1_.v.data(), b1_.v.data(), cols1_.data(), z1_.data(), scratch_.data());
        sw.mark(0, true);
        bn1_.forward(z1_.data(), g1_.v.data(), be1_.v.data());
        sw.mark(1, true);
        pool1_.forward(bn1_.a.data(), p1_.data());
        sw.mark(3, true);
        conv2_.forward(B, p1_.data(), w2_.v.data(), b2_.v.data(), cols2_.data(), z2_.data(), scratch_.data());
        sw.mark(4, true);
        bn2_.forward(z2_.data(), g2_.v.data(), be2_.v.data());
        sw.mark(5, true);
        pool2_.forward(bn2_.a.data(), p2_.data());
        sw.mark(7, true);
        linear(p2_.data(), w3_.v.data(), b3_.v.data(), h3_.data(), B, F, H, true);
        sw.mark(8, true);
        linear(h3_.data(), w4_.v.data(), b4_.v.data(), z4_.data(), B, H, K, false);
        sw.mark(10, true);
        const float loss = cross_entropy();
        sw.mark(11, true);
        // backward
        linear_backward(h3_.data(), dz4_.data(), w4_, b4_, dh3_.data(), B, H, K);
        sw.mark(10, false);
        for (std::size_t i = 0; i < dh3_.size(); ++i) dh3_[i] = h3_[i] > 0.0f ? dh3_[i] : 0.0f;
        sw.mark(9, false);
        linear_backward(p2_.data(), dh3_.data(), w3_, b3_, dp2_.data(), B, F, H);
        sw.mark(8, false);
        pool2_.backward(dp2_.data(), da2_.data());
        sw.mark(7, false);
        bn2_.backward(da2_.data(), g2_.v.data(), dz2_.data(), g2_.g.data(), be2_.g.data());
        sw.mark(5, false);
        conv2_.backward(B, dz2_.data(), w2_.v.data(), cols2_.data(), w2_.g.data(), b2_.g.data(), dcols2_.data(),
                        dp1_.data(), scratch_.data());
        sw.mark(4, false);
        pool1_.backward(dp1_.data(), da1_.data());
        sw.mark(3, false);
        bn1_.backward(da1_.data(), g1_.v.data(), dz1_.data(), g1_.g.data(), be1_.g.data());
        sw.mark(1, false);
        conv1_.backward(B, dz1_.data(), w1_.v.data(), cols1_.data(), w1_.g.data(), b1_.g.data(), nullptr, nullptr,
                        scratch_.data());
        sw.mark(0, false);
        update();
        sw.mark(12, false);
        return loss;
    }
    /// y [B, n] = x [B, k] W^T + b, relu'd if asked.
    static void linear(const float* x, const float* w, const float* b, float* y, std::size_t B, std::size_t k,
                       std::size_t n, bool relu) {
        blas::gemm(false, true, B, n, k, 1.0f, x, k, w, k, 0.0f, y, n);
        for (std::size_t i = 0; i < B; ++i) {
            float* r = y + i * n;
            if (relu)
                for (std::size_t j = 0; j < n; ++j) r[j] = std::max(r[j] + b[j], 0.0f);
            else
                for (std::size_t j = 0; j < n; ++j) r[j] += b[j];
        }
    }
    /// dW = dy^T x, db = column sums of dy, dx = dy W.
    static void linear_backward(const float* x, const float* dy, param& w, param& b, float* dx, std::size_t B,
                                std::size_t k, std::size_t n) {
        std::fill(b.g.begin(), b.g.end(), 0.0f);
        for (std::size_t i = 0; i < B; ++i)
            for (std::size_t j = 0; j < n; ++j) b.g[j] += dy[i * n + j];
        blas::gemm(true, false, n, k, B, 1.0f, dy, n, x, k, 0.0f, w.g.data(), k);
        blas::gemm(false, false, B, k, n, 1.0f, dy, n, w.v.data(), k, 0.0f, dx, k);
    }
    /// mean softmax cross-entropy of z4 at the labels; dz4 = (softmax - onehot) / B.
    float cross_entropy() {
        const std::size_t B = c_.batch, C = c_.classes;
        double loss = 0;
        for (std::size_t i = 0; i < B; ++i) {
            const float* zi = z4_.data() + i * C;
            float* di = dz4_.data() + i * C;
            const float mx = *std::max_element(zi, zi + C);
            float total = 0;
            for (std::size_t j = 0; j < C; ++j) total += (di[j] = std::exp(zi[j] - mx));
            loss += std::log(total) + mx - zi[labels_[i]];
            const float scale = 1.0f / (total * static_cast<float>(B));
            for (std::size_t j = 0; j < C; ++j) di[j] *= scale;
            di[labels_[i]] -= 1.0f / static_cast<float>(B);
        }
        return static_cast<float>(loss / B);
    }
    void update() {
        param* all[] = {&w1_, &b1_, &g1_, &be1_, &w2_, &b2_, &g2_, &be2_, &w3_, &b3_, &w4_, &b4_};
        if (c_.opt == opt_kind::sgd) {
            for (param* q : all)
                for (std::size_t i = 0; i < q->v.size(); ++i) q->v[i] -= sgd_lr * q->g[i];
            return;
        }
        ++t_;
        const float step_size = adam_lr / (1.0f - std::pow(adam_beta1, static_cast<float>(t_)));
        const float inv_sqrt_bc2 = 1.0f / std::sqrt(1.0f - std::pow(adam_beta2, static_cast<float>(t_)));
        for (param* q : all) {
            float* __restrict w = q->v.data();
            float* __restrict m = q->m.data();
            float* __restrict v = q->s.data();
            const float* __restrict g = q->g.data();
            for (std::size_t i = 0, n = q->v.size(); i < n; ++i) {
                m[i] = adam_beta1 * m[i] + (1.0f - adam_beta1) * g[i];
                v[i] = adam_beta2 * v[i] + (1.0f - adam_beta2) * g[i] * g[i];
                w[i] -= step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + adam_eps);
            }
        }
    }

    cnn_case c_;
    conv3x3 conv1_, conv2_;
    buf x_;
    std::vector<std::size_t> labels_;
    param w1_, b1_, g1_, be1_, w2_, b2_, g2_, be2_, w3_, b3_, w4_, b4_;
    bn_relu bn1_, bn2_;
    pool2x2 pool1_, pool2_;
    buf scratch_, cols1_, z1_, p1_, cols2_, z2_, p2_, h3_, z4_;
    buf dz4_, dh3_, dp2_, da2_, dz2_, dcols2_, dp1_, da1_, dz1_;
    std::int64_t t_ = 0;
};

}  // namespace

std::unique_ptr<runner> make_handwritten_conv(const conv_problem& p, bool wide) {
    return std::make_unique<handwritten_conv>(p, wide);
}
std::unique_ptr<runner> make_handwritten_cnn(const cnn_problem& p, bool wide) {
    return std::make_unique<handwritten_cnn>(p, wide);
}

stage_timer handwritten_cnn_timer(const cnn_problem& p) {
    auto net = std::make_shared<handwritten_cnn>(p, false);
    for (int i = 0; i < 5; ++i) net->step();
    return [net] {
        std::vector<op_time> rows;
        for (const auto& name : cnn_stage_names()) rows.push_back({name, 0, 0});
        net->timed_step(rows);
        return rows;
    };
}

}  // namespace tapegrad::bench
