#include "data/dataset.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <stdexcept>

namespace tapegrad::data {

dataset dataset::subset(const std::vector<std::size_t>& rows) const {
    dataset out;
    out.name = name;
    out.features = features;
    out.class_names = class_names;
    out.x.resize(rows.size() * features);
    out.y.resize(rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) {
        if (rows[i] >= size()) {
            throw std::out_of_range("dataset::subset: row " + std::to_string(rows[i]) + " of a data set with " +
                                    std::to_string(size()) + " rows");
        }
        std::copy_n(x.begin() + static_cast<std::ptrdiff_t>(rows[i] * features), features,
                    out.x.begin() + static_cast<std::ptrdiff_t>(i * features));
        out.y[i] = y[rows[i]];
    }
    return out;
}

const std::vector<std::string>& fashion_mnist_classes() {
    static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                   "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
    return names;
}

dataset load_idx_pair(const std::string& images_path, const std::string& labels_path,
                      const std::vector<std::string>& class_names, const std::string& name) {
    idx_array images = read_idx(images_path, 3);
    idx_array labels = read_idx(labels_path, 1);
    if (images.dims[0] != labels.dims[0]) {
        throw data_error(images_path + " has " + std::to_string(images.dims[0]) + " images but " + labels_path +
                         " has " + std::to_string(labels.dims[0]) +
                         " labels (bytes 4-7 of each header); use matching images and labels files");
    }
    if (images.dims[0] == 0) throw data_error(images_path + ": holds no images (bytes 4-7 of the header are 0)");
    if (images.dims[1] == 0 || images.dims[2] == 0) {
        throw data_error(images_path + ": images of " + std::to_string(images.dims[1]) + " x " +
                         std::to_string(images.dims[2]) + " pixels (bytes 8-15 of the header): each needs at least one");
    }
    dataset d;
    d.name = name;
    d.class_names = class_names;
    d.features = std::size_t(images.dims[1]) * images.dims[2];
    const std::size_t n = images.dims[0];
    d.y.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t label = labels.data[i];
        if (label >= class_names.size()) {
            throw data_error(labels_path + ": label " + std::to_string(label) + " of example " + std::to_string(i) +
                             " at byte " + std::to_string(8 + i) + " is out of range: there are " +
                             std::to_string(class_names.size()) + " classes (0.." +
                             std::to_string(class_names.size() - 1) + ")");
        }
        d.y[i] = label;
    }
    d.x.resize(images.data.size());
    std::transform(images.data.begin(), images.data.end(), d.x.begin(),
                   [](std::uint8_t v) { return static_cast<float>(v); });
    return d;
}

std::string default_fashion_dir() {
    if (const char* env = std::getenv("TAPEGRAD_FASHION_DIR"); env && *env) return env;
    return "/usr/share/datasets/fashion-mnist";
}

dataset load_fashion_mnist(const std::string& dir, bool train) {
    const std::string prefix = dir + "/" + (train ? "train" : "t10k");
    return load_idx_pair(prefix + "-images-idx3-ubyte.gz", prefix + "-labels-idx1-ubyte.gz", fashion_mnist_classes(),
                         train ? "fashion-mnist/train" : "fashion-mnist/test");
}

namespace {

/// A field as it may appear in a message: at most 24 characters, control and
/// non-ASCII bytes as \xNN, so a binary file cannot flood or garble the terminal.
std::string printable(const unsigned char* p, std::size_t n) {
    std::string s;
    const std::size_t shown = std::min<std::size_t>(n, 24);
    for (std::size_t i = 0; i < shown; ++i) {
        if (p[i] >= 0x20 && p[i] < 0x7f) {
            s += static_cast<char>(p[i]);
        } else {
            static const char digits[] = "0123456789abcdef";
            s += "\\x";
            s += digits[p[i] >> 4];
            s += digits[p[i] & 15];
        }
    }
    if (n > shown) s += "... (" + std::to_string(n) + " bytes)";
    return s;
}

/// A field that is a decimal integer: an optional '-', then digits filling
/// [p, p+n) exactly (no '+', no spaces, no NUL). Saturates at +-1000000 (out
/// of range either way). False for anything else.
bool parse_integer(const unsigned char* p, std::size_t n, long& v) {
    std::size_t k = 0;
    const bool negative = n > 0 && p[0] == '-';
    if (negative) k = 1;
    if (k == n) return false;
    v = 0;
    for (; k < n; ++k) {
        if (p[k] < '0' || p[k] > '9') return false;
        v = std::min<long>(v * 10 + (p[k] - '0'), 1000000);
    }
    if (negative) v = -v;
    return true;
}

}  // namespace

// 1797 rows of at most ~200 bytes: 64 MiB is far beyond any honest file and
// stops a gzip bomb before it fills memory.
constexpr std::size_t max_csv_bytes = std::size_t(64) << 20;

dataset load_digits_csv(const std::string& path) { return parse_digits_csv(read_gz_file(path, max_csv_bytes), path); }

dataset load_digits_csv(const unsigned char* data, std::size_t size, const std::string& name) {
    return parse_digits_csv(read_gz_bytes(data, size, name, max_csv_bytes), name);
}

dataset parse_digits_csv(const std::vector<unsigned char>& bytes, const std::string& path) {
    dataset d;
    d.name = "digits";
    d.features = 64;
    for (int c = 0; c < 10; ++c) d.class_names.push_back(std::to_string(c));
    constexpr std::size_t fields = 65;
    std::size_t line = 0;
    std::size_t i = 0;
    const std::size_t n = bytes.size();
    const unsigned char* b = bytes.data();
    while (i < n) {
        ++line;
        const std::size_t line_start = i;
        std::size_t end = i;
        while (end < n && b[end] != '\n') ++end;
        std::size_t stop = end;
        if (stop > i && b[stop - 1] == '\r') --stop;
        if (stop == i) {  // blank line
            i = end + 1;
            continue;
        }
        long values[fields];
        std::size_t starts[fields], lengths[fields];
        std::size_t count = 0;
        std::size_t p = i;
        while (p <= stop) {
            std::size_t q = p;
            while (q < stop && b[q] != ',') ++q;
            if (count == fields) {
                throw data_error(path + ": line " + std::to_string(line) + " (byte " + std::to_string(line_start) +
                                 ") has more than 65 values, expected 65 (64 pixels then the label)");
            }
            long v = 0;
            if (!parse_integer(b + p, q - p, v)) {
                throw data_error(path + ": line " + std::to_string(line) + ", field " + std::to_string(count + 1) +
                                 " (byte " + std::to_string(p) + "): not an integer: '" + printable(b + p, q - p) +
                                 "' (expected a whole number: 0..16 for a pixel, 0..9 for the label)");
            }
            starts[count] = p;
            lengths[count] = q - p;
            values[count++] = v;
            p = q + 1;
        }
        if (count != fields) {
            throw data_error(path + ": line " + std::to_string(line) + " (byte " + std::to_string(line_start) +
                             ") has " + std::to_string(count) + " values, expected 65 (64 pixels then the label)");
        }
        for (std::size_t k = 0; k < 64; ++k) {
            if (values[k] < 0 || values[k] > 16) {
                throw data_error(path + ": line " + std::to_string(line) + " (byte " + std::to_string(starts[k]) +
                                 "): pixel " + std::to_string(k) + " = " + printable(b + starts[k], lengths[k]) +
                                 " is outside 0..16");
            }
            d.x.push_back(static_cast<float>(values[k]));
        }
        if (values[64] < 0 || values[64] > 9) {
            throw data_error(path + ": line " + std::to_string(line) + ": label " +
                             printable(b + starts[64], lengths[64]) + " is out of range (byte " +
                             std::to_string(starts[64]) + "): there are 10 classes (0..9)");
        }
        d.y.push_back(static_cast<std::size_t>(values[64]));
        i = end + 1;
    }
    if (d.y.empty()) throw data_error(path + ": no rows (" + std::to_string(n) + " bytes); expected 65 values a line");
    return d;
}

std::string digits_path() {
    if (const char* env = std::getenv("TAPEGRAD_DIGITS"); env && *env) return env;
    // The build passes absolute source paths, so __FILE__ locates the source
    // tree's data/ directory; a relocated binary falls back to ./data.
    std::string here = __FILE__;
    const std::size_t slash = here.find_last_of('/');
    const std::string beside = (slash == std::string::npos ? std::string(".") : here.substr(0, slash)) +
                               "/digits.csv.gz";
    if (std::ifstream(beside).good()) return beside;
    if (std::ifstream("data/digits.csv.gz").good()) return "data/digits.csv.gz";
    throw data_error(beside + ": the embedded digits data set is missing; set TAPEGRAD_DIGITS to its path");
}

std::vector<std::size_t> permutation(std::size_t n, std::uint64_t seed) {
    std::vector<std::size_t> p(n);
    for (std::size_t i = 0; i < n; ++i) p[i] = i;
    std::mt19937_64 rng(seed);
    for (std::size_t i = n; i > 1; --i) {
        // Rejection sampling gives an unbiased index in [0, i) that does not depend
        // on the standard library's distribution implementation.
        const std::uint64_t bound = i;
        const std::uint64_t limit = std::numeric_limits<std::uint64_t>::max() -
                                    std::numeric_limits<std::uint64_t>::max() % bound;
        std::uint64_t r;
        do r = rng();
        while (r >= limit);
        std::swap(p[i - 1], p[static_cast<std::size_t>(r % bound)]);
    }
    return p;
}

split split_train_validation(const dataset& d, double fraction, std::uint64_t seed) {
    if (!(fraction > 0.0 && fraction < 1.0)) {
        throw std::invalid_argument("split_train_validation: fraction must be in (0, 1), got " +
                                    std::to_string(fraction));
    }
    if (d.size() < 2) throw std::invalid_argument("split_train_validation: need at least 2 examples in " + d.name);
    const std::vector<std::size_t> p = permutation(d.size(), seed ^ 0x5eed5117ull);
    std::size_t n_val = static_cast<std::size_t>(std::llround(fraction * static_cast<double>(d.size())));
    n_val = std::clamp<std::size_t>(n_val, 1, d.size() - 1);
    std::vector<std::size_t> val_rows(p.begin(), p.begin() + static_cast<std::ptrdiff_t>(n_val));
    std::vector<std::size_t> train_rows(p.begin() + static_cast<std::ptrdiff_t>(n_val), p.end());
    // Keep each part in the original order: the split is a choice of rows, not a shuffle.
    std::sort(val_rows.begin(), val_rows.end());
    std::sort(train_rows.begin(), train_rows.end());
    split s{d.subset(train_rows), d.subset(val_rows)};
    s.train.name = d.name + "/train";
    s.validation.name = d.name + "/validation";
    return s;
}

normalization parse_normalization(const std::string& s) {
    if (s == "none") return normalization::none;
    if (s == "scale") return normalization::scale;
    if (s == "global") return normalization::global;
    if (s == "feature" || s == "per-feature" || s == "per_feature") return normalization::per_feature;
    throw std::invalid_argument("unknown normalisation '" + s + "': use none, scale, global or feature");
}

std::string to_string(normalization n) {
    switch (n) {
        case normalization::none: return "none";
        case normalization::scale: return "scale";
        case normalization::global: return "global";
        case normalization::per_feature: return "feature";
    }
    return "?";
}

normalizer::normalizer(normalization kind, std::vector<float> mean, std::vector<float> scale)
    : kind_(kind), mean_(std::move(mean)), scale_(std::move(scale)) {
    if (mean_.size() != scale_.size()) {
        throw std::invalid_argument("normalizer: mean has " + std::to_string(mean_.size()) + " values but scale has " +
                                    std::to_string(scale_.size()));
    }
}

void normalizer::fit(const dataset& train) {
    const std::size_t n = train.size(), f = train.features;
    if (n == 0) throw std::invalid_argument("normalizer::fit: empty data set " + train.name);
    mean_.clear();
    scale_.clear();
    switch (kind_) {
        case normalization::none: return;
        case normalization::scale: {
            float mx = 0;
            for (float v : train.x) mx = std::max(mx, std::abs(v));
            mean_ = {0.f};
            scale_ = {mx > 0 ? mx : 1.f};
            return;
        }
        case normalization::global: {
            double s = 0, s2 = 0;
            for (float v : train.x) s += v;
            const double m = s / static_cast<double>(train.x.size());
            for (float v : train.x) s2 += (v - m) * (v - m);
            const double sd = std::sqrt(s2 / static_cast<double>(train.x.size()));
            mean_ = {static_cast<float>(m)};
            scale_ = {sd > 1e-12 ? static_cast<float>(sd) : 1.f};
            return;
        }
        case normalization::per_feature: {
            std::vector<double> s(f, 0.0), s2(f, 0.0);
            for (std::size_t i = 0; i < n; ++i)
                for (std::size_t j = 0; j < f; ++j) s[j] += train.x[i * f + j];
            for (std::size_t j = 0; j < f; ++j) s[j] /= static_cast<double>(n);
            for (std::size_t i = 0; i < n; ++i)
                for (std::size_t j = 0; j < f; ++j) {
                    const double dv = train.x[i * f + j] - s[j];
                    s2[j] += dv * dv;
                }
            mean_.resize(f);
            scale_.resize(f);
            for (std::size_t j = 0; j < f; ++j) {
                const double sd = std::sqrt(s2[j] / static_cast<double>(n));
                mean_[j] = static_cast<float>(s[j]);
                // A constant feature (MNIST's border pixels) carries no information: leave it at 0.
                scale_[j] = sd > 1e-6 ? static_cast<float>(sd) : 1.f;
            }
            return;
        }
    }
}

void normalizer::apply(dataset& d) const {
    if (kind_ == normalization::none) return;
    const std::size_t f = d.features;
    if (mean_.empty()) throw std::logic_error("normalizer::apply: call fit() first");
    if (mean_.size() != 1 && mean_.size() != f) {
        throw std::invalid_argument("normalizer::apply: statistics for " + std::to_string(mean_.size()) +
                                    " features, data set " + d.name + " has " + std::to_string(f));
    }
    if (mean_.size() == 1) {
        const float m = mean_[0], inv = 1.f / scale_[0];
        for (float& v : d.x) v = (v - m) * inv;
        return;
    }
    std::vector<float> inv(f);
    for (std::size_t j = 0; j < f; ++j) inv[j] = 1.f / scale_[j];
    for (std::size_t i = 0; i < d.size(); ++i)
        for (std::size_t j = 0; j < f; ++j) d.x[i * f + j] = (d.x[i * f + j] - mean_[j]) * inv[j];
}

loader::loader(const dataset& d, std::size_t batch_size, std::uint64_t seed, bool shuffle)
    : data_(&d), batch_size_(batch_size), seed_(seed), shuffle_(shuffle) {
    if (batch_size == 0) throw std::invalid_argument("loader: batch size must be at least 1");
    if (d.size() == 0) throw std::invalid_argument("loader: data set " + d.name + " is empty");
    start_epoch(0);
}

void loader::start_epoch(std::size_t epoch) {
    if (shuffle_) {
        // Mix seed and epoch so each epoch's order depends only on both.
        std::seed_seq seq{static_cast<std::uint32_t>(seed_), static_cast<std::uint32_t>(seed_ >> 32),
                          static_cast<std::uint32_t>(epoch), static_cast<std::uint32_t>(epoch >> 32)};
        std::uint32_t words[2];
        seq.generate(words, words + 2);
        order_ = permutation(data_->size(), (std::uint64_t(words[0]) << 32) | words[1]);
    } else {
        order_.resize(data_->size());
        for (std::size_t i = 0; i < order_.size(); ++i) order_[i] = i;
    }
    pos_ = 0;
}

bool loader::next(batch& out) {
    const std::size_t n = data_->size();
    if (pos_ >= n) return false;
    const std::size_t b = std::min(batch_size_, n - pos_);
    const std::size_t f = data_->features;
    if (out.x.dimension() != 2 || out.x.shape()[0] != b || out.x.shape()[1] != f) out.x.resize({b, f});
    out.y.resize(b);
    float* dst = out.x.data();
    for (std::size_t i = 0; i < b; ++i) {
        const std::size_t r = order_[pos_ + i];
        std::copy_n(data_->x.data() + r * f, f, dst + i * f);
        out.y[i] = data_->y[r];
    }
    pos_ += b;
    return true;
}

// n / b rounded up without forming n + b - 1, which wraps for a huge batch size.
std::size_t loader::batches_per_epoch() const {
    const std::size_t n = data_->size();
    return n / batch_size_ + (n % batch_size_ != 0);
}

void loader::skip(std::size_t batches) {
    const std::size_t n = data_->size();
    const std::size_t rest = n - pos_;
    const std::size_t left = rest / batch_size_ + (rest % batch_size_ != 0);
    pos_ = batches >= left ? n : pos_ + batches * batch_size_;  // batches * b < rest here: no overflow
}

}  // namespace tapegrad::data
