// The two directions of broadcasting on raw buffers: sum_to (a broadcast tensor
// summed back down to the shape it came from: every broadcast op's gradient and
// every reduction) and broadcast_back (a reduced gradient spread back over the
// reduced axes: the gradient of every reduction).
//
// Both first merge adjacent axes that are all kept or all reduced, so the work
// becomes a loop over contiguous runs with a small odometer over the merged outer
// blocks: [256, 1024] -> [256, 1] is 256 runs of 1024, not 262144 index updates.

#include <algorithm>
#include <numeric>

#include <xtensor/xstorage.hpp>

#include "autograd/detail/record.hpp"

namespace tapegrad::detail {

namespace {

/// `big` seen as merged blocks: extent of each block and whether `small` keeps it
/// (true) or it is broadcast/reduced (false). Size-1 axes of `big` are dropped.
struct blocks {
    xt::svector<std::size_t, 8> extent;
    xt::svector<bool, 8> kept;
    std::size_t total = 1;

    template <class S> blocks(const S& big, const xshape& small) {
        const std::size_t lead = big.size() - small.size();
        for (std::size_t i = 0; i < big.size(); ++i) {
            if (big[i] == 1) continue;  // size-1 axes change nothing
            const bool k = i >= lead && small[i - lead] == big[i];
            if (!extent.empty() && kept.back() == k) extent.back() *= big[i];
            else { extent.push_back(big[i]); kept.push_back(k); }
            total *= big[i];
        }
        if (std::find(big.begin(), big.end(), std::size_t(0)) != big.end()) total = 0;
    }

    /// Stride in the small buffer of each outer block (0 where reduced), row-major over kept extents.
    xt::svector<std::size_t, 8> small_strides() const {
        const std::size_t nb = extent.size();
        xt::svector<std::size_t, 8> stride(nb, 0);
        std::size_t s = kept[nb - 1] ? extent[nb - 1] : 1;
        for (std::size_t b = nb - 1; b-- > 0;) {
            if (!kept[b]) continue;
            stride[b] = s;
            s *= extent[b];
        }
        return stride;
    }
};

/// Throws unless `small` broadcasts to `big` (what sum_to and broadcast_back need).
template <class S> void check_broadcastable(const char* op, const S& big, const xshape& small) {
    bool ok = small.size() <= big.size();
    for (std::size_t j = 0; ok && j < small.size(); ++j) {
        const std::size_t b = big[j + big.size() - small.size()];
        ok = small[j] == b || small[j] == 1;
    }
    if (!ok)
        throw shape_error(std::string(op) + ": shape " + shape_str(big) + " is not a broadcast of " +
                          shape_str(small));
}

/// Visits the runs of the merged blocks: f(run index, offset in the small buffer).
template <class F> void for_each_run(const blocks& bl, F&& f) {
    const std::size_t nb = bl.extent.size();
    const std::size_t runs = bl.total / bl.extent[nb - 1];
    const auto stride = bl.small_strides();
    xt::svector<std::size_t, 8> idx(nb, 0);
    std::size_t off = 0;
    for (std::size_t r = 0; r < runs; ++r) {
        f(r, off);
        for (std::size_t b = nb - 1; b-- > 0;) {  // odometer over the outer blocks
            if (++idx[b] < bl.extent[b]) {
                off += stride[b];
                break;
            }
            off -= stride[b] * (bl.extent[b] - 1);
            idx[b] = 0;
        }
    }
}

/// Sum of n contiguous values with 8 independent accumulators (not latency bound).
template <class T> T run_sum(const T* p, std::size_t n) {
    T acc[8] = {};
    const std::size_t full = n / 8 * 8;
    for (std::size_t j = 0; j < full; j += 8)
        for (std::size_t k = 0; k < 8; ++k) acc[k] += p[j + k];
    T t = 0;
    for (std::size_t j = full; j < n; ++j) t += p[j];
    for (T a : acc) t += a;
    return t;
}

/// Elements of `small` when, without its leading 1s, it is the trailing axes of `big`
/// (a bias row repeated over big's rows); else 0.
template <class S> std::size_t trailing_row(const S& big, const xshape& small) {
    if (small.size() > big.size()) return 0;  // not a broadcast of big: the general path throws
    std::size_t lead = 0;
    while (lead < small.size() && small[lead] == 1) ++lead;
    const std::size_t r = small.size() - lead;
    if (r == 0) return 0;
    std::size_t extent = 1;
    for (std::size_t i = 0; i < r; ++i) {
        if (small[lead + i] != big[big.size() - r + i]) return 0;
        extent *= small[lead + i];
    }
    return extent;
}

}  // namespace

template <class T> void sum_to(const xt::xarray<T>& src, xt::xarray<T>& dst, const xshape& dst_shape, bool accumulate) {
    const auto& ss = src.shape();
    if (const std::size_t inner = trailing_row(ss, dst_shape)) {
        // A bias's gradient: rows added in order, as the general path below adds them
        // (bit-identical), without building its blocks; it costs more than the sums on small rows.
        if (!accumulate) {
            fit(dst, dst_shape);
            std::fill(dst.begin(), dst.end(), T(0));
        }
        T* out = dst.data();
        const T* in = src.data();
        for (std::size_t r = 0, rows = src.size() / inner; r < rows; ++r)
            for (std::size_t j = 0; j < inner; ++j) out[j] += in[r * inner + j];
        return;
    }
    check_broadcastable("sum_to", ss, dst_shape);
    if (!accumulate) {
        fit(dst, dst_shape);
        std::fill(dst.begin(), dst.end(), T(0));
    }
    const blocks bl(ss, dst_shape);
    if (bl.total == 0) return;
    T* out = dst.data();
    const T* in = src.data();
    if (bl.extent.empty()) {  // one element
        out[0] += in[0];
        return;
    }
    const std::size_t inner = bl.extent.back();
    if (bl.kept.back()) {
        for_each_run(bl, [&](std::size_t r, std::size_t off) {
            const T* p = in + r * inner;
            T* o = out + off;
            for (std::size_t j = 0; j < inner; ++j) o[j] += p[j];
        });
    } else {
        for_each_run(bl, [&](std::size_t r, std::size_t off) { out[off] += run_sum(in + r * inner, inner); });
    }
}

template <class T>
void broadcast_back(const T* g, const xshape& g_shape, xt::xarray<T>& dst, const xshape& dst_shape, bool accumulate,
                    T scale) {
    check_broadcastable("broadcast_back", dst_shape, g_shape);
    if (!accumulate) fit(dst, dst_shape);
    const blocks bl(dst_shape, g_shape);
    if (bl.total == 0) return;
    T* out = dst.data();
    if (bl.extent.empty()) {
        out[0] = accumulate ? out[0] + scale * g[0] : scale * g[0];
        return;
    }
    const std::size_t inner = bl.extent.back();
    const bool inner_kept = bl.kept.back();
    for_each_run(bl, [&](std::size_t r, std::size_t off) {
        T* o = out + r * inner;
        if (inner_kept) {
            const T* p = g + off;
            if (accumulate) for (std::size_t j = 0; j < inner; ++j) o[j] += scale * p[j];
            else for (std::size_t j = 0; j < inner; ++j) o[j] = scale * p[j];
        } else {
            const T v = scale * g[off];
            if (accumulate) for (std::size_t j = 0; j < inner; ++j) o[j] += v;
            else std::fill(o, o + inner, v);
        }
    });
}

#define TAPEGRAD_BROADCAST(T)                                                                 \
    template void sum_to<T>(const xt::xarray<T>&, xt::xarray<T>&, const xshape&, bool);       \
    template void broadcast_back<T>(const T*, const xshape&, xt::xarray<T>&, const xshape&, bool, T);
TAPEGRAD_BROADCAST(float)
TAPEGRAD_BROADCAST(double)

}  // namespace tapegrad::detail
