#pragma once
// Labelled classification data sets, their train/validation split, normalisation
// and a seeded mini-batch loader.
//
//     auto all = data::load_digits();               // embedded; or load_digits_csv(path)
//     auto [train, val] = data::split_train_validation(all, 0.2, seed);
//     data::normalizer norm(data::normalization::per_feature);
//     norm.fit(train); norm.apply(train); norm.apply(val);
//     data::loader batches(train, 64, seed);
//     for (std::size_t epoch = 0; ...; ++epoch) {
//         batches.start_epoch(epoch);              // reshuffle, a function of (seed, epoch)
//         data::batch b;
//         while (batches.next(b)) { ... b.x [B, F], b.y ... }
//     }

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <xtensor/xarray.hpp>

#include "data/idx.hpp"

namespace tapegrad::data {

/// A labelled data set in memory: `size()` rows of `features` floats.
struct dataset {
    std::string name;                      ///< "fashion-mnist/train", "digits", ...
    std::size_t features = 0;              ///< values per example
    std::vector<float> x;                  ///< row-major [size(), features]
    std::vector<std::size_t> y;            ///< class label per example, < class_names.size()
    std::vector<std::string> class_names;  ///< one name per class

    /// Number of examples.
    std::size_t size() const { return y.size(); }
    /// Number of classes.
    std::size_t num_classes() const { return class_names.size(); }
    /// The examples at `rows`, in that order (a copy).
    dataset subset(const std::vector<std::size_t>& rows) const;
};

/// The class names of Fashion-MNIST, label 0 first.
const std::vector<std::string>& fashion_mnist_classes();

/// Images and labels from a pair of IDX files (gzip or plain): images
/// [N, rows, cols] uint8 become N rows of rows*cols floats in 0..255. Throws
/// data_error naming the file for a count mismatch or a label >= class count.
dataset load_idx_pair(const std::string& images_path, const std::string& labels_path,
                      const std::vector<std::string>& class_names, const std::string& name);

/// Fashion-MNIST's training (60000) or test (10000) set from `dir`.
dataset load_fashion_mnist(const std::string& dir, bool train);
/// Fashion-MNIST's directory: $TAPEGRAD_FASHION_DIR if set, else Debian's
/// /usr/share/datasets/fashion-mnist.
std::string default_fashion_dir();

/// The UCI digits CSV (64 values 0..16 then the label, one row per image),
/// gzip or plain. Throws data_error naming the file and line on a bad row.
dataset load_digits_csv(const std::string& path);
/// load_digits_csv on a file's bytes (gzip or plain) already in memory; `name`
/// stands for the file in error messages.
dataset load_digits_csv(const unsigned char* data, std::size_t size, const std::string& name);
/// The same rows from CSV text already in memory; `path` names it in errors.
dataset parse_digits_csv(const std::vector<unsigned char>& bytes, const std::string& path);
/// Path of the copy shipped in the source tree (data/digits.csv.gz); throws if
/// it is not there.
std::string digits_path();
/// The digits data set compiled into the library (data/digits.csv.gz, embedded
/// by the build): needs no file, so an installed or moved program still has it.
dataset load_digits();

/// Two disjoint parts of one data set.
struct split {
    dataset train;       ///< the larger part
    dataset validation;  ///< `fraction` of the examples, at least one
};

/// Shuffle `d` with `seed` and put `fraction` (0..1) of it in the validation part.
/// The same seed always gives the same split.
split split_train_validation(const dataset& d, double fraction, std::uint64_t seed);

/// How inputs are standardised.
enum class normalization {
    none,         ///< leave the raw values
    scale,        ///< divide by the training maximum (inputs in [0, 1])
    global,       ///< (x - mean) / std with one mean and std over all training values
    per_feature,  ///< (x - mean_j) / std_j per feature; constant features get std 1
};

/// Parse "none" / "scale" / "global" / "feature"; throws std::invalid_argument.
normalization parse_normalization(const std::string& s);
/// The name parse_normalization accepts.
std::string to_string(normalization n);

/// Standardisation statistics computed on the training split only, then applied
/// unchanged to validation and test data (no leakage).
class normalizer {
  public:
    /// A normaliser of the given kind; call fit() before apply().
    explicit normalizer(normalization kind = normalization::per_feature) : kind_(kind) {}
    /// A normaliser with known statistics (e.g. loaded from a checkpoint).
    normalizer(normalization kind, std::vector<float> mean, std::vector<float> scale);
    /// Compute the statistics of `train` (in double, so the result does not
    /// depend on summation order beyond rounding).
    void fit(const dataset& train);
    /// Apply in place: x = (x - mean) / scale.
    void apply(dataset& d) const;
    /// The kind of normalisation.
    normalization kind() const { return kind_; }
    /// Per-feature (or one global) offset subtracted.
    const std::vector<float>& mean() const { return mean_; }
    /// Per-feature (or one global) divisor.
    const std::vector<float>& scale() const { return scale_; }

  private:
    normalization kind_;
    std::vector<float> mean_;
    std::vector<float> scale_;
};

/// One mini-batch: inputs [B, features] and their labels.
struct batch {
    xt::xarray<float> x;         ///< [B, features]
    std::vector<std::size_t> y;  ///< B labels
};

/// Mini-batches over a data set. The order of epoch e is a fixed function of
/// (seed, e), so a resumed run sees exactly the batches an uninterrupted run would.
class loader {
  public:
    /// Batches of `batch_size` over `d` (kept by reference: it must outlive the
    /// loader). `shuffle` off gives the stored order.
    loader(const dataset& d, std::size_t batch_size, std::uint64_t seed, bool shuffle = true);
    /// Begin epoch `epoch`: compute its order and rewind.
    void start_epoch(std::size_t epoch);
    /// Fill `out` with the next batch (the last one may be smaller); false at the
    /// end of the epoch. Reuses `out`'s buffers when the size is unchanged.
    bool next(batch& out);
    /// Skip the next `batches` batches of this epoch (a resumed, interrupted
    /// epoch continues where it stopped).
    void skip(std::size_t batches);
    /// Batches in one epoch (the last one may be smaller).
    std::size_t batches_per_epoch() const;
    /// Examples in one epoch.
    std::size_t size() const { return data_->size(); }
    /// The current epoch's order of example indices (the distributed sampler shards it).
    const std::vector<std::size_t>& order() const { return order_; }

  private:
    const dataset* data_;
    std::size_t batch_size_;
    std::uint64_t seed_;
    bool shuffle_;
    std::vector<std::size_t> order_;
    std::size_t pos_ = 0;
};

/// The permutation of 0..n-1 for `seed`: a Fisher-Yates shuffle driven by
/// std::mt19937_64 with its own index draw, so it is identical on every platform.
std::vector<std::size_t> permutation(std::size_t n, std::uint64_t seed);

}  // namespace tapegrad::data
